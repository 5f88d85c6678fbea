"""Training time per step, pruned vs unpruned, on one backend (run one process per backend).

Usage: python benchmarks/bench_overhead.py --backend jax [--repeats 5] [--json out.json]

Both models are timed in the same process, alternating, and each figure is the median over
repeats of an epoch's wall time divided by its steps, after a warm-up epoch (compilation).
The pruned model uses ConstantSparsity(0.5, 0) with tfmot's default frequency of 100.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _models(name):
    import keras

    if name == "seed (10-128-1, batch 32)":
        layers, inputs, outputs, rows = [128], 10, 1, 6700
    else:
        layers, inputs, outputs, rows = [1024, 1024], 784, 10, 4096
    def make():
        keras.utils.set_random_seed(0)
        hidden = [keras.layers.Dense(u, activation="relu") for u in layers]
        return keras.Sequential([keras.Input((inputs,))] + hidden + [keras.layers.Dense(outputs)])
    return make, inputs, outputs, rows


def bench(name, repeats):
    import keras
    import numpy as np

    import prunekit

    make, inputs, outputs, rows = _models(name)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, inputs)).astype("float32")
    y = rng.normal(size=(rows, outputs)).astype("float32")
    steps = int(np.ceil(rows / 32))
    plain = make()
    pruned = prunekit.prune_low_magnitude(make(), prunekit.ConstantSparsity(0.5, 0))
    for model in (plain, pruned):
        model.compile(optimizer="adam", loss="mse")
    callbacks = {id(plain): [], id(pruned): [prunekit.UpdatePruningStep()]}
    times = {id(plain): [], id(pruned): []}
    for model in (plain, pruned):  # warm-up: compilation
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=callbacks[id(model)])
    for _ in range(repeats):
        for model in (plain, pruned):
            start = time.perf_counter()
            model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=callbacks[id(model)])
            times[id(model)].append((time.perf_counter() - start) / steps)
    plain_ms = 1000 * float(np.median(times[id(plain)]))
    pruned_ms = 1000 * float(np.median(times[id(pruned)]))
    return {"model": name, "steps_per_epoch": steps, "unpruned_ms_per_step": plain_ms,
            "pruned_ms_per_step": pruned_ms, "ratio": pruned_ms / plain_ms}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", required=True, choices=["jax", "tensorflow", "torch"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="append-free output file for the results")
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    results = [bench(name, args.repeats) for name in
               ("seed (10-128-1, batch 32)", "MLP (784-1024-1024-10, batch 32)")]
    for row in results:
        print(f"{args.backend:<11} {row['model']:<34} unpruned {row['unpruned_ms_per_step']:7.3f} "
              f"ms/step  pruned {row['pruned_ms_per_step']:7.3f} ms/step  "
              f"ratio {row['ratio']:.3f}", flush=True)
    if args.json:
        payload = {"backend": args.backend, "keras": keras.__version__, "results": results}
        tmp = args.json + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(payload, handle, indent=2)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
