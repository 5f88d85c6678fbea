"""``auto_prune`` against the best uniform sparsity, at error budgets of 0.5, 1 and 2 %.

Usage: python benchmarks/bench_auto.py OUT.json [--backend jax] [--epochs 4] [--quick]
       [--models digits,friedman]

Two models, trained here from a fixed seed: the digits CNN (8x8x1 -> Conv 16 -> Conv 32 ->
Dense 64 -> 10, accuracy; 60 epochs) and the study's Friedman MLP (10 -> 128 -> 1, MSE; up to
300 epochs with early stopping on 10 % of its training rows, as the study's baseline). Their training
rows are split (seeded) into fine-tuning rows and held-out validation rows; the dataset's test
rows are never used for a decision.

For each budget (relative drop of the validation metric):

* **auto**: ``auto_prune(max_drop=budget)``: scan, greedy per-layer allocation, fine-tuned
  trials with back-off.
* **uniform**: every prunable layer at one sparsity, found by bisection (6 steps over
  [0, 0.99]) as the highest one whose fine-tuned model holds the same budget on the same
  validation rows, with the same fine-tuning.

The figure of merit is the remaining-parameter reduction: nonzero weights (biases included)
of the uniform model over those of the auto model. Goal: >= 1.3. The test-set drop of each is
reported too, to show whether the budget held on rows never seen.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

BUDGETS = (0.005, 0.01, 0.02)


def _models(epochs_train: int):
    """The two models, each trained on its fine-tuning rows only (the validation rows stay
    unseen), with its split."""
    import keras

    from prunekit.auto.data import split_data
    from prunekit.lab.data import load_dataset
    from prunekit.lab.models import build_model, compile_model

    keras.utils.set_random_seed(0)
    digits = load_dataset("digits")
    cnn = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, activation="relu", name="conv1"),
        keras.layers.Conv2D(32, 3, activation="relu", name="conv2"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu", name="dense"),
        keras.layers.Dense(10, activation="softmax", name="output")])
    cnn.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    as_images = lambda a: a.reshape(-1, 8, 8, 1)  # noqa: E731
    cnn_data = split_data(as_images(digits.x_train), digits.y_train, seed=0,
                          description="digits")
    cnn.fit(cnn_data.x_train, cnn_data.y_train, epochs=epochs_train * 2, verbose=0)
    friedman = load_dataset("friedman")
    mlp = build_model(friedman)
    compile_model(mlp, friedman)
    mlp_data = split_data(friedman.x_train, friedman.y_train, seed=0, description="friedman")
    stop = keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True)
    mlp.fit(mlp_data.x_train, mlp_data.y_train, epochs=epochs_train * 10, verbose=0,
            validation_split=0.1, callbacks=[stop])  # as the study: to convergence
    return [("digits CNN", "accuracy", cnn, cnn_data, as_images(digits.x_test),
             digits.y_test),
            ("Friedman MLP", "mse", mlp, mlp_data, friedman.x_test, friedman.y_test)]


def _nonzeros(model) -> int:
    from prunekit.lab.sizes import weight_counts

    return weight_counts(model)[1]


def _relative(report, part):
    """The relative drop of ``part`` (``"val"`` or ``"test"``) whatever the report's mode."""
    baseline, value = ((report.baseline, report.value) if part == "val"
                       else (report.test["baseline"], report.test["value"]))
    sign = 1 if report.metric == "accuracy" else -1
    return round((baseline - value) * sign / abs(baseline), 6)


def _uniform(model, data, budget, cache, settings, test):
    """Highest uniform sparsity holding ``budget`` on the validation rows (bisection)."""
    from prunekit.auto import auto_prune

    low, high, best = 0.0, 0.99, None
    for _ in range(6):
        s = round((low + high) / 2, 4)
        if s not in cache:
            pruned, report = auto_prune(model, data, sparsity=s, ladder=(s,), test=test,
                                        **settings)
            cache[s] = (report, _nonzeros(pruned))
        report, nonzeros = cache[s]
        if _relative(report, "val") <= budget:
            low, best = s, (s, report, nonzeros)
        else:
            high = s
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="JSON file for the results")
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "jax"))
    parser.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs per trial")
    parser.add_argument("--quick", action="store_true", help="one budget (1 %%), 1 epoch")
    parser.add_argument("--models", default="digits,friedman", help="which models to run")
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    from prunekit.auto import auto_prune

    budgets = (0.01,) if args.quick else BUDGETS
    epochs = 1 if args.quick else args.epochs
    settings = {"epochs": epochs, "batch_size": 32, "seed": 0}
    begun, rows = time.perf_counter(), []
    for name, metric, model, data, x_test, y_test in _models(3 if args.quick else 30):
        if name.split()[0].lower() not in args.models.split(","):
            continue
        settings["metric"] = metric
        total = _nonzeros(model)
        cache: dict[float, tuple] = {}
        for budget in budgets:
            start = time.perf_counter()
            pruned, report = auto_prune(model, data, max_drop=f"{budget * 100:g}%", max_trials=6,
                                        test=(x_test, y_test), **settings)
            auto_s = time.perf_counter() - start
            uniform = _uniform(model, data, budget, cache, settings, (x_test, y_test))
            auto_nz = _nonzeros(pruned)
            uni_s, uni_report, uni_nz = uniform or (0.0, None, total)
            row = {"model": name, "budget": budget, "metric": report.metric,
                   "baseline_val": report.baseline, "baseline_test": report.test["baseline"],
                   "total_weights": total, "drops": "relative to the baseline",
                   "auto": {"nonzeros": auto_nz, "sparsities": report.sparsities,
                            "val_drop": _relative(report, "val"), "held_val": report.held,
                            "test_drop": _relative(report, "test"),
                            "held_test": _relative(report, "test") <= budget,
                            "trials": len(report.trials), "wall_s": round(auto_s, 1)},
                   "uniform": {"sparsity": uni_s, "nonzeros": uni_nz,
                               "val_drop": _relative(uni_report, "val") if uni_report else 0.0,
                               "test_drop": _relative(uni_report, "test") if uni_report else 0.0},
                   "reduction_ratio": round(uni_nz / max(auto_nz, 1), 3)}
            row["goal_met"] = row["reduction_ratio"] >= 1.3
            rows.append(row)
            print(f"{name} budget {budget:.1%}: auto {auto_nz:,} nonzero (val drop "
                  f"{report.drop:.4f}, test {_relative(report, 'test'):.4f}) vs uniform {uni_s:.3f} "
                  f"-> {uni_nz:,}: ratio {row['reduction_ratio']:.2f} "
                  f"({'met' if row['goal_met'] else 'not met'})", flush=True)
    result = {"benchmark": "auto", "backend": args.backend, "epochs": epochs,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "load_average": os.getloadavg(), "wall_s": round(time.perf_counter() - begun, 1),
              "rows": rows}
    with open(args.out, "w", encoding="utf-8") as file:
        json.dump(result, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
