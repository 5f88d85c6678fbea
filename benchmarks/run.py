"""Run every benchmark, one process per backend, and keep the results of each run.

Usage: python benchmarks/run.py [--only NAME]
NAME: overhead, compression, study, sweep, structured, oneshot, auto or distribution.

Results go to benchmarks/results/<timestamp>/ (a new folder each run; nothing is overwritten).
Backends that are not installed are skipped, and named.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = ("jax", "tensorflow", "torch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, choices=["overhead", "compression", "study",
                                                         "sweep", "structured", "oneshot",
                                                         "auto", "distribution"])
    return parser


def installed(backends=BACKENDS):
    """The backends whose package is installed (found without importing it)."""
    return [name for name in backends if importlib.util.find_spec(name) is not None]


def main(argv=None):
    args = build_parser().parse_args(argv)
    backends = installed()
    missing = [name for name in BACKENDS if name not in backends]
    if "jax" not in backends and args.only not in ("overhead", "structured"):
        print("benchmarks/run.py: error: the compression, study, sweep, oneshot, auto and "
              "distribution benchmarks run on JAX, which is not installed: "
              "pip install 'prunekit[jax]'", file=sys.stderr)
        return 2
    out = os.path.join(HERE, "results", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=False)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"results: {out}")
    if missing:
        print(f"skipped (not installed): {', '.join(missing)}; pip install "
              + " ".join(f"'prunekit[{name}]'" for name in missing))
    status = 0
    if args.only in (None, "overhead"):
        for backend in backends:
            status |= subprocess.call([sys.executable, os.path.join(HERE, "bench_overhead.py"),
                                       "--backend", backend,
                                       "--json", os.path.join(out, f"overhead-{backend}.json")])
    if args.only in (None, "structured"):
        for backend in backends:
            status |= subprocess.call([sys.executable, os.path.join(HERE, "bench_structured.py"),
                                       "--backend", backend,
                                       "--json", os.path.join(out, f"structured-{backend}.json")])
    jax = dict(os.environ, KERAS_BACKEND="jax")
    commands = {
        "compression": [os.path.join(out, "compression.json")],
        "study": ["--backend", "jax"],
        "sweep": [os.path.join(out, "sweep.json"), "--backend", "jax"],
        "oneshot": [os.path.join(out, "oneshot.json")],
        "auto": [os.path.join(out, "auto.json"), "--backend", "jax"],
        "distribution": ["--json", os.path.join(out, "distribution.json")],
    }
    for name, extra in commands.items():
        if args.only in (None, name):
            script = os.path.join(HERE, f"bench_{name}.py")
            status |= subprocess.call([sys.executable, script, *extra], env=jax)
    return status


if __name__ == "__main__":
    sys.exit(main())
