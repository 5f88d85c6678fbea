"""Time the full pruning study (runs a, b, c, d, r; up to 300 epochs each) on JAX.

Usage::

    .venv/bin/python benchmarks/bench_study.py            # full study, JAX
    .venv/bin/python benchmarks/bench_study.py --quick    # 3 epochs per run
    .venv/bin/python benchmarks/bench_study.py --backend tensorflow --runs a,b,c

Target: <= 120 s wall time for the default runs on a 2-core CPU (tfmot on TensorFlow needs
about 3 minutes for runs a-c alone, see reference/seed-experiment.md).

The machine is shared, so the wall time follows the load of other jobs; the CPU time printed
beside it is the steadier figure.

Recorded on the 2-core shared CPU VM (JAX, keras 3.15.1, seed 0), default runs a,b,c,d,r,
epochs 251 / 182 / 300 / 59 / 45 (early stopping), test MSE 0.0311 / 2.4404 / 0.0507 /
0.0344 / 0.0245 in every run (seeded):
    steps_per_execution=1, load average ~2-3:  102 s wall
    steps_per_execution=8, load average ~3-6:  124 s wall (fit 22.7 / 22.7 / 38.1 / 11.5 / 8.7 s)
    steps_per_execution=8, load average ~4-5:  106.5 s wall, 102 s CPU (fit 27.5 / 18.8 / 23.8 /
                                               7.9 / 7.6 s; 4.8 s of imports)
    runs a,b,c only, same load: 172 s wall / 111 s CPU with 1 vs 121 s wall / 85 s CPU with 8.
Pruned epochs cost about 0.06 s of CPU on JAX (168 batches of 32).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    """Run the study once and print wall time, per-run fit time and epochs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="jax", choices=("jax", "tensorflow", "torch"))
    parser.add_argument("--runs", default="a,b,c,d,r")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend  # before anything imports Keras

    start = time.perf_counter()
    from prunekit.study.config import FULL_EPOCHS, QUICK_EPOCHS, make_config
    from prunekit.study.execute import run_study

    imported = time.perf_counter() - start
    out = args.out or os.path.join(tempfile.mkdtemp(prefix="bench-study-"), "run")
    config = make_config(runs=args.runs, epochs=QUICK_EPOCHS if args.quick else FULL_EPOCHS,
                         quick=args.quick)
    outcome = run_study(config, out=out)
    total = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"backend {outcome.meta['backend']}, runs {args.runs}, epochs <= {config.epochs}")
    print(f"{'run':<12} {'epochs':>6} {'fit s':>7} {'s/epoch':>8} {'test MSE':>9}")
    for r in outcome.results:
        per_epoch = r.wall_time_s / max(r.epochs, 1)
        print(f"{r.run_id:<12} {r.epochs:>6} {r.wall_time_s:>7.1f} {per_epoch:>8.3f} "
              f"{r.test_metric:>9.4f}")
    print(f"imports {imported:.1f} s, study {outcome.meta['total_time_s']:.1f} s, "
          f"total wall time {total:.1f} s (target <= 120 s), "
          f"CPU time {usage.ru_utime + usage.ru_stime:.1f} s, load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"run folder: {outcome.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
