"""Training time per step, pruned vs unpruned, on one backend (run one process per backend).

Usage: python benchmarks/bench_overhead.py --backend jax [--repeats 5] [--json out.json]
       [--models seed,mlp]

For each model the unpruned model and two pruned copies -- ``PolynomialDecay(0.2 -> 0.8)``
over the whole benchmark with ``frequency`` 50 and 100 -- are timed in the same process,
alternating epochs; each figure is the median over repeats of an epoch's wall time divided by
its steps, after a warm-up epoch (compilation). Also reported: the bytes of pruning state
(masks and thresholds) per pruned weight, in memory and in the ``.keras`` file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zipfile

MODELS = {
    "seed": ("seed (10-128-1, batch 32)", [128], 10, 1, 6700),
    "mlp": ("MLP (784-1024-1024-10, batch 32)", [1024, 1024], 784, 10, 4096),
}
FREQUENCIES = (50, 100)


def _make(layers, inputs, outputs):
    import keras

    keras.utils.set_random_seed(0)
    hidden = [keras.layers.Dense(u, activation="relu") for u in layers]
    return keras.Sequential([keras.Input((inputs,))] + hidden + [keras.layers.Dense(outputs)])


def _state_bytes(pruned):
    """(in-memory bytes of masks + thresholds, pruned weight count) of a pruned model."""
    import keras
    import numpy as np

    import prunekit

    state = weights = 0
    for wrapper in prunekit.iter_wrappers(pruned):
        for mask, threshold in zip(wrapper.masks, wrapper.thresholds):
            state += keras.ops.convert_to_numpy(mask.value).nbytes
            state += keras.ops.convert_to_numpy(threshold.value).nbytes
            weights += int(np.prod(mask.shape))
    return state, weights


def _file_bytes_per_pruned_weight(plain, pruned, weights):
    """Extra bytes per pruned weight in a ``.keras`` file's weights (uncompressed size)."""
    with tempfile.TemporaryDirectory() as folder:
        sizes = []
        for name, model in (("plain", plain), ("pruned", pruned)):
            path = os.path.join(folder, f"{name}.keras")
            model.save(path)
            with zipfile.ZipFile(path) as archive:
                sizes.append(archive.getinfo("model.weights.h5").file_size)
    return (sizes[1] - sizes[0]) / weights


def bench(key, repeats):
    import keras
    import numpy as np

    import prunekit

    name, layers, inputs, outputs, rows = MODELS[key]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, inputs)).astype("float32")
    y = rng.normal(size=(rows, outputs)).astype("float32")
    steps = int(np.ceil(rows / 32))
    end_step = steps * (repeats + 1)
    plain = _make(layers, inputs, outputs)
    models = {"unpruned": plain}
    for frequency in FREQUENCIES:
        schedule = prunekit.PolynomialDecay(0.2, 0.8, 0, end_step, frequency=frequency)
        models[f"frequency {frequency}"] = prunekit.prune_low_magnitude(
            _make(layers, inputs, outputs), schedule)
    for model in models.values():
        model.compile(optimizer="adam", loss="mse")
    times = {label: [] for label in models}

    def epoch(label):
        callbacks = [] if label == "unpruned" else [prunekit.UpdatePruningStep()]
        start = time.perf_counter()
        models[label].fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=callbacks)
        return (time.perf_counter() - start) / steps

    for label in models:  # warm-up: compilation
        epoch(label)
    for _ in range(repeats):
        for label in models:
            times[label].append(epoch(label))
    ms = {label: 1000 * float(np.median(t)) for label, t in times.items()}
    state, weights = _state_bytes(models["frequency 100"])
    file_extra = _file_bytes_per_pruned_weight(plain, models["frequency 100"], weights)
    return {"model": name, "steps_per_epoch": steps, "ms_per_step": ms,
            "ratio": {label: ms[label] / ms["unpruned"] for label in ms if label != "unpruned"},
            "pruned_weights": weights, "state_bytes_per_pruned_weight": state / weights,
            "file_bytes_per_pruned_weight": file_extra}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", required=True, choices=["jax", "tensorflow", "torch"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default="seed,mlp", help="comma-separated: seed, mlp")
    parser.add_argument("--json", default=None, help="append-free output file for the results")
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    import keras

    warnings.filterwarnings("ignore", message="Pruning did not reach")
    results = [bench(key, args.repeats) for key in args.models.split(",")]
    for row in results:
        ratios = "  ".join(f"{label}: {row['ms_per_step'][label]:.3f} ms ({ratio:.3f})"
                           for label, ratio in row["ratio"].items())
        print(f"{args.backend:<11} {row['model']:<34} unpruned "
              f"{row['ms_per_step']['unpruned']:.3f} ms/step  {ratios}  "
              f"state {row['state_bytes_per_pruned_weight']:.3f} B/weight, "
              f".keras +{row['file_bytes_per_pruned_weight']:.3f} B/weight", flush=True)
    if args.json:
        payload = {"backend": args.backend, "keras": keras.__version__, "results": results}
        tmp = args.json + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(payload, handle, indent=2)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
