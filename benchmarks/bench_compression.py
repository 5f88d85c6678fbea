"""Compression benchmark: what pruning + the .pkz format really save, against honest baselines.

Two models:

1. The article's Friedman regressor (Dense(128, relu) -> Dense(1, relu) on 10 inputs, 1,537
   parameters), trained, then pruned to 50% with prunekit's tfmot-style API and stripped.
   Target: the int8 .pkz file (architecture included) <= 2,000 bytes, with test MSE within 10%
   of the pruned float32 model's.
2. A 784-1024-1024-10 MLP on scikit-learn's digits upsampled to 28x28 (MNIST cannot be
   downloaded here), trained briefly, pruned to 80%, stripped. Target: int8 .pkz >= 14x
   smaller than the unpruned baseline's zipped .keras file, and within 5% of the entropy bound.

Not a timed test. Prints a table and writes every figure as JSON:

    KERAS_BACKEND=jax python benchmarks/bench_compression.py [OUT.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

import prunekit
from prunekit.export import decode_model, encode_model, model_sizes, reconstruction_error


def friedman_data():
    from sklearn.datasets import make_friedman1
    from sklearn.model_selection import train_test_split

    x, y = make_friedman1(n_samples=10000, n_features=10, random_state=0)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.33, random_state=42)
    return x_tr.astype("float32"), x_te.astype("float32"), y_tr.astype("float32"), y_te


def digits28_data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype("float32") / 16.0  # (n, 8, 8)
    # bilinear upsampling 8x8 -> 28x28: MNIST-shaped inputs for a 784-wide MLP
    grid = np.linspace(0, 7, 28)
    lo = np.floor(grid).astype(int)
    hi = np.minimum(lo + 1, 7)
    frac = (grid - lo).astype("float32")
    rows = images[:, lo, :] * (1 - frac)[None, :, None] + images[:, hi, :] * frac[None, :, None]
    up = rows[:, :, lo] * (1 - frac)[None, None, :] + rows[:, :, hi] * frac[None, None, :]
    x = up.reshape(len(up), 784)
    return train_test_split(x, digits.target, test_size=0.25, random_state=0)


def prune_and_strip(model, x, y, sparsity, epochs, loss, batch_size=32):
    """prunekit's tfmot-style recipe: wrap, fine-tune with UpdatePruningStep, strip."""
    pruned = prunekit.prune_low_magnitude(
        model, pruning_schedule=prunekit.ConstantSparsity(sparsity, 0, frequency=1)
    )
    pruned.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    pruned.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
        callbacks=[prunekit.UpdatePruningStep()],
    )
    return pruned, prunekit.strip_pruning(pruned)


def mse(model, x, y) -> float:
    return float(np.mean((model.predict(x, verbose=0).reshape(-1) - y) ** 2))


def accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def kernel_sparsity(model) -> list[float]:
    out = []
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            k = np.asarray(keras.ops.convert_to_numpy(layer.kernel))
            out.append(round(float(np.mean(k == 0)), 4))
    return out


def modes_quality(stripped, metric) -> dict:
    """The metric of the model decoded from each .pkz mode (what a user loads back)."""
    return {
        mode: metric(decode_model(encode_model(stripped, mode).data))
        for mode in ("float32", "float16", "int8")
    }


def run_friedman(epochs: int, prune_epochs: int) -> dict:
    keras.utils.set_random_seed(0)
    x_tr, x_te, y_tr, y_te = friedman_data()

    def build():
        return keras.Sequential(
            [
                keras.Input((10,)),
                keras.layers.Dense(128, activation="relu"),
                keras.layers.Dense(1, activation="relu"),
            ]
        )

    base = build()
    base.compile(optimizer="adam", loss="mse")
    t0 = time.time()
    base.fit(x_tr, y_tr, epochs=epochs, verbose=0)
    train_s = time.time() - t0
    base_mse = mse(base, x_te, y_te)
    base_sizes = model_sizes(base)
    start = build()
    start.set_weights(base.get_weights())
    t0 = time.time()
    pruned, stripped = prune_and_strip(start, x_tr, y_tr, 0.5, prune_epochs, "mse")
    prune_s = time.time() - t0
    sizes = model_sizes(pruned, stripped=stripped)
    quality = modes_quality(stripped, lambda m: mse(m, x_te, y_te))
    return {
        "model": "Friedman Dense(128 relu)->Dense(1 relu), 10 inputs",
        "epochs": epochs,
        "prune_epochs": prune_epochs,
        "train_s": train_s,
        "prune_s": prune_s,
        "kernel_sparsity": kernel_sparsity(stripped),
        "mse_baseline": base_mse,
        "mse_pruned_float32": mse(stripped, x_te, y_te),
        "mse_by_mode": quality,
        "baseline_sizes": base_sizes.as_dict(),
        "pruned_sizes": sizes.as_dict(),
        "int8_error": reconstruction_error(stripped, "int8"),
        "checks": {
            "int8_bytes_le_2000": sizes.compressed["int8"] <= 2000,
            "int8_mse_within_10pct_of_float": quality["int8"] <= 1.10 * quality["float32"],
        },
    }


def run_mlp(epochs: int, prune_epochs: int) -> dict:
    keras.utils.set_random_seed(0)
    x_tr, x_te, y_tr, y_te = digits28_data()

    def build():
        return keras.Sequential(
            [
                keras.Input((784,)),
                keras.layers.Dense(1024, activation="relu"),
                keras.layers.Dense(1024, activation="relu"),
                keras.layers.Dense(10),
            ]
        )

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    base = build()
    base.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    t0 = time.time()
    base.fit(x_tr, y_tr, epochs=epochs, batch_size=64, verbose=0)
    train_s = time.time() - t0
    base_sizes = model_sizes(base, keras_int8=False)
    start = build()
    start.set_weights(base.get_weights())
    t0 = time.time()
    pruned, stripped = prune_and_strip(start, x_tr, y_tr, 0.8, prune_epochs, loss, batch_size=64)
    prune_s = time.time() - t0
    sizes = model_sizes(pruned, stripped=stripped)
    int8 = sizes.compressed["int8"]
    quality = modes_quality(stripped, lambda m: accuracy(m, x_te, y_te))
    return {
        "model": "MLP 784-1024-1024-10 (digits upsampled to 28x28)",
        "epochs": epochs,
        "prune_epochs": prune_epochs,
        "train_s": train_s,
        "prune_s": prune_s,
        "kernel_sparsity": kernel_sparsity(stripped),
        "accuracy_baseline": accuracy(base, x_te, y_te),
        "accuracy_by_mode": quality,
        "baseline_sizes": base_sizes.as_dict(),
        "pruned_sizes": sizes.as_dict(),
        "int8_times_smaller_than_baseline_zip": base_sizes.keras_zip_bytes / int8,
        "int8_ratio_to_bound": sizes.ratio_to_bound("int8"),
        "checks": {
            "int8_ge_14x_smaller_than_baseline_zip": base_sizes.keras_zip_bytes / int8 >= 14,
            "int8_within_5pct_of_bound": sizes.ratio_to_bound("int8") <= 1.05,
        },
    }


def table(result: dict) -> str:
    base, pr = result["baseline_sizes"], result["pruned_sizes"]
    rows = [
        ("baseline .keras / zipped", f"{base['keras_bytes']:,} / {base['keras_zip_bytes']:,}"),
        (
            "pruned (unstripped) .keras / zipped",
            f"{pr['keras_bytes']:,} / {pr['keras_zip_bytes']:,}",
        ),
    ]
    if pr.get("keras_int8_zip_bytes"):
        rows.append(("stripped, keras quantize int8, zipped", f"{pr['keras_int8_zip_bytes']:,}"))
    for mode in ("float32", "float16", "int8"):
        rows.append(
            (
                f".pkz {mode}",
                (
                    f"{pr['compressed'][mode]:,} B  bound {pr['bound'][mode]:,.0f} "
                    f"(x{pr['ratio_to_bound'][mode]:.3f}; "
                    f"order-0 x{pr['ratio_to_bound_order0'][mode]:.3f})  "
                    f"{base['keras_zip_bytes'] / pr['compressed'][mode]:.1f}x < baseline zip"
                ),
            )
        )
    width = max(len(r[0]) for r in rows)
    lines = [result["model"], f"  kernel sparsity {result['kernel_sparsity']}"]
    lines += [f"  {a:<{width}}  {b}" for a, b in rows]
    for key in ("mse_baseline", "mse_pruned_float32", "accuracy_baseline"):
        if key in result:
            lines.append(f"  {key}: {result[key]:.4f}")
    for key in ("mse_by_mode", "accuracy_by_mode"):
        if key in result:
            lines.append(f"  {key}: " + ", ".join(f"{m} {v:.4f}" for m, v in result[key].items()))
    lines += [f"  check {k}: {'PASS' if v else 'FAIL'}" for k, v in result["checks"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="benchmarks/results/compression.json")
    parser.add_argument("--quick", action="store_true", help="fewer epochs (a smoke run)")
    args = parser.parse_args(argv)
    quick = args.quick
    results = {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "python": platform.python_version(),
        "quick": quick,
        "friedman": run_friedman(epochs=5 if quick else 60, prune_epochs=2 if quick else 20),
        "mlp": run_mlp(epochs=1 if quick else 5, prune_epochs=1 if quick else 3),
    }
    print(table(results["friedman"]))
    print()
    print(table(results["mlp"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(results, handle, indent=2, default=str)
    os.replace(tmp, out)
    print(f"\nwrote {out}")
    checks = [v for r in ("friedman", "mlp") for v in results[r]["checks"].values()]
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
