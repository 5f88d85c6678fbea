"""Speed-up of ``prunekit sweep`` with 2 worker processes over 1, on a 16-run quick sweep.

Usage: python benchmarks/bench_sweep.py OUT.json [--backend jax] [--epochs 1] [--keep DIR]

The grid (16 runs, no dense run): sparsity 0.5,0.7,0.8,0.9 x schedule constant,polynomial x
layers all,first, on the article's Friedman data, 1 epoch per run. The same sweep runs once
with ``workers=1`` and once with ``workers=2``, each in a fresh folder, and each wall time
includes starting the workers (spawn, imports) -- what a user waits for. Target on 2 cores:
a speed-up >= 1.6x. The load average is recorded: on a shared machine the figure is only
indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time


def _sweep(spec, folder: str, workers: int) -> dict:
    from prunekit.sweep import run_sweep

    start = time.perf_counter()
    outcome = run_sweep(spec, folder, workers=workers)
    wall = time.perf_counter() - start
    runs = outcome.records
    return {"workers": workers, "wall_s": round(wall, 2), "runs": len(runs),
            "failed": len(outcome.failed),
            "sum_run_time_s": round(sum(r["run_time_s"] for r in runs), 2),
            "sum_train_time_s": round(sum(r["train_time_s"] for r in runs), 2),
            "processes": len({r["pid"] for r in runs})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="JSON file for the results")
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "jax"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--keep", metavar="DIR", help="keep the 2-worker sweep folder here")
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    from prunekit.sweep import make_spec

    spec = make_spec(dataset="friedman", epochs=args.epochs, dense=False,
                     sparsity="0.5,0.7,0.8,0.9", schedule="constant,polynomial",
                     layers="all,first")
    load_before = os.getloadavg()
    root = tempfile.mkdtemp(prefix="bench-sweep-")
    try:
        one = _sweep(spec, os.path.join(root, "w1"), 1)
        two = _sweep(spec, os.path.join(root, "w2"), 2)
        if args.keep:
            shutil.copytree(os.path.join(root, "w2"), args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = {
        "benchmark": "sweep 16 runs, workers 2 vs 1", "backend": args.backend,
        "epochs": args.epochs, "cores": os.cpu_count(), "machine": platform.platform(),
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "workers_1": one, "workers_2": two,
        "speedup": round(one["wall_s"] / two["wall_s"], 3), "target_speedup": 1.6,
    }
    with open(args.out, "w", encoding="utf-8") as file:
        json.dump(result, file, indent=2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
