"""Run every benchmark, one process per backend, and keep the results of each run.

Usage: python benchmarks/run.py [--only overhead|compression|study|sweep|distribution]

Results go to benchmarks/results/<timestamp>/ (a new folder each run; nothing is overwritten).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = ("jax", "tensorflow", "torch")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None,
                        choices=["overhead", "compression", "study", "sweep", "distribution"])
    args = parser.parse_args(argv)
    out = os.path.join(HERE, "results", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=False)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"results: {out}")
    status = 0
    if args.only in (None, "overhead"):
        for backend in BACKENDS:
            status |= subprocess.call([sys.executable, os.path.join(HERE, "bench_overhead.py"),
                                       "--backend", backend,
                                       "--json", os.path.join(out, f"overhead-{backend}.json")])
    jax = dict(os.environ, KERAS_BACKEND="jax")
    commands = {
        "compression": [os.path.join(out, "compression.json")],
        "study": ["--backend", "jax"],
        "sweep": [os.path.join(out, "sweep.json"), "--backend", "jax"],
        "distribution": ["--json", os.path.join(out, "distribution.json")],
    }
    for name, extra in commands.items():
        if args.only in (None, name):
            script = os.path.join(HERE, f"bench_{name}.py")
            status |= subprocess.call([sys.executable, script, *extra], env=jax)
    return status


if __name__ == "__main__":
    sys.exit(main())
