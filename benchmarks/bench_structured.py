"""Structured pruning: parameters, MACs and inference latency, dense vs shrunk; and accuracy.

Usage: python benchmarks/bench_structured.py --backend jax [--repeats 3] [--json out.json]
       [--models mlp,resnet50,mobilenetv2,transformer] [--no-accuracy]

For every model and every fraction removed (30/50/70 %, one-shot, L2 importance, uniform over
dependency groups) the dense and the shrunk model are timed alternately in this one process
(the backend's compiled forward pass; median of ``repeats`` calls after one warm-up call) at
batch 1 and 32. The accuracy experiment trains a small CNN on scikit-learn's digits: dense;
50 % of the filters and units removed by gradual structured pruning (PolynomialDecay) with
fine-tuning, then shrunk; and unstructured magnitude pruning at the same parameter count.
The machine's load (``os.getloadavg``) is recorded next to the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

RATIOS = (0.3, 0.5, 0.7)


def _models():
    import keras
    from keras import layers

    def mlp():
        return keras.Sequential([keras.Input((784,)), layers.Dense(1024, activation="relu"),
                                 layers.Dense(1024, activation="relu"), layers.Dense(10)])

    def transformer(seq=64, dim=256, heads=8, ff=1024, blocks=2):
        i = keras.Input((seq, dim))
        x = i
        for _ in range(blocks):
            a = layers.MultiHeadAttention(heads, dim // heads)(x, x)
            x = layers.LayerNormalization()(x + a)
            f = layers.Dense(dim)(layers.Dense(ff, activation="gelu")(x))
            x = layers.LayerNormalization()(x + f)
        return keras.Model(i, layers.Dense(10)(layers.GlobalAveragePooling1D()(x)))

    return {
        "mlp": mlp,
        "resnet50": lambda: keras.applications.ResNet50(weights=None),
        "mobilenetv2": lambda: keras.applications.MobileNetV2(weights=None),
        "transformer": transformer,
    }


def bench_model(name, make, repeats):
    import keras

    from prunekit.structured import measure_latency, shrink

    keras.utils.set_random_seed(0)
    dense = make()
    rows = []
    for ratio in RATIOS:
        start = time.perf_counter()
        small, report = shrink(dense, ratio, importance="l2")
        shrink_s = time.perf_counter() - start
        times = measure_latency([dense, small], (1, 32), repeats=repeats, warmup=1)
        rows.append({
            "model": name, "removed": ratio, "shrink_s": round(shrink_s, 1),
            "params_dense": dense.count_params(), "params_shrunk": small.count_params(),
            "params_ratio": dense.count_params() / small.count_params(),
            "macs_ratio": report.macs_ratio,
            "dense_ms_b1": 1000 * times[0][1], "shrunk_ms_b1": 1000 * times[1][1],
            "latency_ratio_b1": times[0][1] / times[1][1],
            "dense_ms_b32": 1000 * times[0][32], "shrunk_ms_b32": 1000 * times[1][32],
            "latency_ratio_b32": times[0][32] / times[1][32],
            "load": os.getloadavg()[0],
        })
        print(_row(rows[-1]), flush=True)
    return rows


def _row(r):
    return (f"{r['model']:<12} {int(100 * r['removed']):>3}%  params {r['params_ratio']:5.2f}x  "
            f"MACs {r['macs_ratio']:5.2f}x  b1 {r['dense_ms_b1']:8.2f}/{r['shrunk_ms_b1']:8.2f} ms "
            f"= {r['latency_ratio_b1']:4.2f}x  b32 {r['dense_ms_b32']:8.1f}/"
            f"{r['shrunk_ms_b32']:8.1f} ms = {r['latency_ratio_b32']:4.2f}x  load {r['load']:.1f}")


def accuracy(epochs=30, fine_tune=10):
    import keras
    import numpy as np
    from keras import layers
    from sklearn.datasets import load_digits

    import prunekit
    from prunekit.structured import prune_structured, shrink

    data = load_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    y = data.target.astype("int32")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, test = order[:1400], order[1400:]

    def cnn():
        keras.utils.set_random_seed(0)
        return keras.Sequential([
            keras.Input((8, 8, 1)),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.BatchNormalization(),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(10)])

    def fit(model, n, callbacks=()):
        model.compile(keras.optimizers.Adam(1e-3),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        model.fit(x[train], y[train], batch_size=32, epochs=n, verbose=0,
                  callbacks=list(callbacks))

    def acc(model):
        pred = np.argmax(np.asarray(model.predict(x[test], verbose=0)), axis=1)
        return float(np.mean(pred == y[test]))

    dense = cnn()
    fit(dense, epochs)
    steps = int(np.ceil(len(train) / 32))
    structured = cnn()
    structured.set_weights(dense.get_weights())
    schedule = prunekit.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=steps * fine_tune // 2,
                                        frequency=steps // 2)
    fit(structured, fine_tune, [prune_structured(structured, schedule, importance="l2")])
    small, report = shrink(structured)
    target = 1 - small.count_params() / dense.count_params()
    unstructured = cnn()
    unstructured.set_weights(dense.get_weights())
    pruned = prunekit.prune_low_magnitude(unstructured, prunekit.PolynomialDecay(
        0.0, target, begin_step=0, end_step=steps * fine_tune // 2, frequency=steps // 2))
    fit(pruned, fine_tune, [prunekit.UpdatePruningStep()])
    stripped = prunekit.strip_pruning(pruned)
    nonzero = int(sum(np.count_nonzero(w) for w in stripped.get_weights()))
    result = {"dense_acc": acc(dense), "dense_params": dense.count_params(),
              "structured_acc": acc(small), "structured_params": small.count_params(),
              "structured_masked_acc": acc(structured),
              "unstructured_acc": acc(stripped), "unstructured_nonzero_params": nonzero,
              "load": os.getloadavg()[0]}
    print("digits: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                  for k, v in result.items()), flush=True)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["jax", "tensorflow", "torch"], required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="mlp,resnet50,mobilenetv2,transformer")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    print(f"backend {args.backend}, {os.cpu_count()} cores, load {os.getloadavg()}", flush=True)
    makers = _models()
    rows = []
    for name in args.models.split(","):
        rows += bench_model(name, makers[name], args.repeats)
    result = {"backend": args.backend, "cores": os.cpu_count(), "repeats": args.repeats,
              "latency": rows, "accuracy": None if args.no_accuracy else accuracy()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
