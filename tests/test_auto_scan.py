"""The sensitivity scan, the metrics and the greedy allocation, against independent computations."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import tfmot_keep_count

from prunekit.auto import allocate
from prunekit.auto.metric import Budget, metric_value, parse_max_drop
from prunekit.auto.scan import LayerCurve, ScanResult, sensitivity_scan


def _mlp():
    model = keras.Sequential([keras.Input((6,)),
                              keras.layers.Dense(8, activation="relu", name="hidden"),
                              keras.layers.Dense(1, name="out")])
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    return model


def _numpy_forward(weights, x):
    w1, b1, w2, b2 = weights
    return np.maximum(x @ w1 + b1, 0) @ w2 + b2


def _numpy_prune(w, sparsity):
    """Keep the tfmot keep-count largest |w| (ties kept, as the library's threshold does)."""
    k = tfmot_keep_count(w.size, sparsity)
    threshold = np.sort(np.abs(w).ravel())[::-1][k - 1]
    return np.where(np.abs(w) >= threshold, w, 0.0)


def test_scan_matches_numpy_masks_and_forward_pass():
    model = _mlp()
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.normal(size=64).astype("float32")
    weights = [np.asarray(w, "float64") for w in model.get_weights()]
    before = [w.copy() for w in model.get_weights()]
    ladder = (0.3, 0.5, 0.9)
    scan = sensitivity_scan(model, x, y, Budget("mse", 0.01), ladder)

    assert [c.name for c in scan.layers] == ["hidden", "out"]
    assert [c.params for c in scan.layers] == [48, 8]
    base = np.mean((_numpy_forward(weights, x)[:, 0] - y) ** 2)
    np.testing.assert_allclose(scan.baseline, base, rtol=1e-5)
    for index, curve in zip((0, 2), scan.layers):  # kernels are weights 0 and 2
        for sparsity, value, drop in zip(ladder, curve.values, curve.drops):
            pruned = list(weights)
            pruned[index] = _numpy_prune(weights[index], sparsity)
            expected = np.mean((_numpy_forward(pruned, x)[:, 0] - y) ** 2)
            np.testing.assert_allclose(value, expected, rtol=1e-5)
            np.testing.assert_allclose(drop, (expected - base) / base, rtol=1e-4, atol=1e-9)
    # The user's model is untouched.
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_metrics_and_drops_by_hand():
    assert metric_value("accuracy", np.array([2, 0, 1]),
                        np.array([[0, 0, 1], [1, 0, 0], [1, 0, 0]])) == pytest.approx(2 / 3)
    assert metric_value("accuracy", np.array([1, 0]), np.array([[0.7], [0.6]])) == 0.5
    assert metric_value("mae", np.array([1.0, 3.0]), np.array([[2.0], [1.0]])) == 1.5
    assert Budget("accuracy", 0.01).drop(0.80, 0.76) == pytest.approx(0.05)  # 0.04 / 0.80
    assert Budget("mse", 0.1, relative=False).drop(2.0, 2.3) == pytest.approx(0.3)
    assert not Budget("mse", 0.1, relative=False).holds(2.0, 2.3)
    assert parse_max_drop("0.5%") == (0.005, True)


def _curve(name, params, drops, ladder=(0.5, 0.9)):
    return LayerCurve(name, params, list(ladder), [0.0] * len(ladder), list(drops))


def test_greedy_path_by_hand():
    # robust: 1000 weights, drops 0 / 0.002; fragile: 100 weights, drops 0.05 / 0.5.
    scan = ScanResult("accuracy", 0.9, [0.5, 0.9],
                      [_curve("robust", 1000, [0.0, 0.002]), _curve("fragile", 100, [0.05, 0.5])])
    path = allocate.greedy_path(scan)
    # Costs per weight: robust 0->0.5: 0; robust 0.5->0.9: 0.002/400 = 5e-6;
    # fragile 0->0.5: 0.05/50 = 1e-3, 0->0.9: 0.5/90; then fragile 0.5->0.9: 0.45/40.
    assert [p.sparsities for p in path] == [
        {"fragile": 0.0, "robust": 0.0}, {"fragile": 0.0, "robust": 0.5},
        {"fragile": 0.0, "robust": 0.9}, {"fragile": 0.5, "robust": 0.9},
        {"fragile": 0.9, "robust": 0.9}]
    assert [p.removed for p in path] == [0, 500, 900, 950, 990]
    assert [p.predicted_drop for p in path] == pytest.approx([0, 0, 0.002, 0.052, 0.502])
    assert allocate.budget_index(path, 0.01) == 2  # robust to 90 %, fragile dense


def test_greedy_path_skips_flat_rungs_and_ignores_gains():
    # A drop that falls with sparsity counts as the running maximum (no "free" gains).
    scan = ScanResult("mse", 1.0, [0.5, 0.9], [_curve("a", 10, [0.2, -0.1])])
    path = allocate.greedy_path(scan)
    assert [p.predicted_drop for p in path] == [0.0, 0.2]
    assert path[-1].sparsities == {"a": 0.9}  # 0.5 and 0.9 cost the same: the larger step
