"""auto_prune end to end: allocation known by construction, the back-off, scales, small data."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import to_numpy

import prunekit
from prunekit.auto import allocate

#: A short ladder keeps the tests fast; 0.9 and 0.95 bracket what the robust layer allows.
LADDER = (0.3, 0.9, 0.95)


def _two_layer_problem():
    """``robust`` is the identity plus 1e-3 noise (90 % of it is noise: prunable for free);
    ``fragile`` is dense N(0, 1) (every weight matters). Targets: the model's output plus
    noise of std 0.1, so the baseline MSE is about 0.01."""
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((16,)),
                              keras.layers.Dense(16, name="robust"),
                              keras.layers.Dense(4, name="fragile")])
    robust = np.eye(16) + rng.normal(scale=1e-3, size=(16, 16))
    fragile = rng.normal(size=(16, 4))
    model.set_weights([robust.astype("float32"), np.zeros(16, "float32"),
                       fragile.astype("float32"), np.zeros(4, "float32")])
    x = rng.normal(size=(300, 16)).astype("float32")
    y = (x @ robust @ fragile + rng.normal(scale=0.1, size=(300, 4))).astype("float32")
    return model, x, y


def test_allocation_prunes_the_robust_layer_and_spares_the_fragile_one():
    model, x, y = _two_layer_problem()
    before = [w.copy() for w in model.get_weights()]
    pruned, report = prunekit.auto_prune(model, (x, y), max_drop="10%", metric="mse",
                                         epochs=2, learning_rate=1e-4, max_trials=2,
                                         ladder=LADDER)
    # By construction: robust to 90 % (keeps 26 >= the 16 diagonal weights; 95 % keeps 13 and
    # loses part of the identity), fragile dense (30 % of N(0,1) weights is far over budget).
    assert report.sparsities["robust"] == pytest.approx(0.9, abs=0.01)
    assert report.sparsities["fragile"] == 0.0
    assert report.held and report.drop <= 0.10
    kernel = keras.ops.convert_to_numpy(pruned.get_layer("robust").kernel)
    assert np.mean(kernel == 0) == pytest.approx(0.9, abs=0.01)
    assert np.all(np.diag(kernel) != 0)
    for old, new in zip(before, model.get_weights()):  # the user's model is untouched
        np.testing.assert_array_equal(old, new)


def test_back_off_after_a_broken_budget(monkeypatch):
    model, x, y = _two_layer_problem()
    # Force the first trial to the end of the path (every layer at 95 %): it must break.
    monkeypatch.setattr(allocate, "budget_index", lambda path, max_drop: len(path) - 1)
    _, report = prunekit.auto_prune(model, (x, y), max_drop="10%", metric="mse", epochs=2,
                                    learning_rate=1e-4, max_trials=3, ladder=LADDER)
    first, later = report.trials[0], report.trials[1:]
    assert not first.held and first.targets == {"fragile": 0.95, "robust": 0.95}
    assert later and all(t.removed < first.removed for t in later)
    assert report.held and report.sparsities["fragile"] == 0.0
    assert report.sparsities["robust"] < 0.95


def test_large_scale_targets_and_too_few_steps():
    rng = np.random.default_rng(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="h"),
                              keras.layers.Dense(1, name="o")])
    hidden = rng.normal(size=(4, 8))
    w = rng.normal(size=(4, 1))
    out = np.linalg.pinv(hidden) @ w * 1e4
    model.set_weights([hidden.astype("float32"), np.zeros(8, "float32"),
                       out.astype("float32"), np.full(1, 1e5, "float32")])
    x = rng.normal(size=(100, 4)).astype("float32")
    y = (x @ w[:, 0] * 1e4 + 1e5 + rng.normal(scale=1e3, size=100)).astype("float32")
    pruned, report = prunekit.auto_prune(model, (x, y), sparsity=0.5, epochs=2, batch_size=32,
                                         ladder=(0.5,))
    data = prunekit.auto.data.split_data(x, y)  # the same seeded split
    predictions = to_numpy(pruned(data.x_val))[:, 0].astype("float64")
    expected = np.mean((predictions - data.y_val) ** 2)
    assert report.value == pytest.approx(expected, rel=1e-5)  # original units
    assert 1e5 < report.baseline < 1e7  # noise std 1e3: MSE about 1e6
    assert f"{np.std(data.y_train):.4g}" in report.loss  # trained on standardised targets
    # 80 rows / 32 -> 3 steps per epoch, 6 steps: the frequency of 100 is lowered, and said.
    assert report.schedule["frequency"] == 1 and any("instead" in n for n in report.notes)
    assert report.sparsities == {"h": 0.5, "o": 0.5}


@keras.saving.register_keras_serializable(package="test_auto_run")
class SmallNet(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.out = keras.layers.Dense(1)

    def call(self, x, training=False):
        return self.out(self.hidden(x, training=training), training=training)


def test_subclassed_model():
    x = np.random.default_rng(2).normal(size=(120, 4)).astype("float32")
    model = SmallNet()
    model(x[:1])
    before = [w.copy() for w in model.get_weights()]
    pruned, report = prunekit.auto_prune(model, (x, x.sum(axis=1)), sparsity=0.5, epochs=1,
                                    ladder=(0.5,))
    assert sorted(report.sparsities.values()) == [0.5, 0.5]
    kernels = [keras.ops.convert_to_numpy(w) for w in pruned.weights if w.path.endswith("kernel")]
    assert [float(np.mean(k == 0)) for k in kernels] == [0.5, 0.5]
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_back_off_continues_below_the_ladder():
    # One dense N(0, 1) layer: pruning 50 % of it (the only rung) is far over a 1 % budget, so
    # the back-off halves the sparsity twice: 50 %, 25 %, 12.5 %.
    rng = np.random.default_rng(5)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(4, name="fragile")])
    weights = rng.normal(size=(16, 4)).astype("float32")
    model.set_weights([weights, np.zeros(4, "float32")])
    x = rng.normal(size=(200, 16)).astype("float32")
    y = x @ weights + rng.normal(scale=0.1, size=(200, 4)).astype("float32")
    _, report = prunekit.auto_prune(model, (x, y), max_drop="1%", metric="mse", epochs=1,
                                    learning_rate=1e-4, ladder=(0.5,))
    assert [t.targets["fragile"] for t in report.trials] == [0.5, 0.25, 0.125]
    assert [t.index for t in report.trials] == [1, -1, -2]
    assert [t.removed for t in report.trials] == [32, 16, 8]
    assert not any(t.held for t in report.trials)
    assert report.sparsities == {"fragile": 0.0} and "unpruned" in report.notes[-1]


def test_structured_shrinks_half_the_hidden_units():
    x = np.random.default_rng(6).normal(size=(120, 6)).astype("float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, name="h"),
                              keras.layers.Dense(1, name="o")])
    _, report = prunekit.auto_prune(model, (x, x.sum(axis=1)), sparsity=0.5, structured=True,
                                    epochs=1, ladder=(0.5,))
    # 6*16 + 16 + 16*1 + 1 = 129 parameters; half the hidden units: 6*8 + 8 + 8 + 1 = 65.
    assert (report.structured["params_before"], report.structured["params_after"]) == (129, 65)
    assert report.shrunk_model.get_layer("h").units == 8
    assert sorted(report.structured["latency_ms"]) == ["1", "32"]
    assert "shrunk_model" not in report.as_dict() and report.shrunk_model is not None


def test_structured_needs_a_fixed_sparsity_and_a_graph_model():
    x = np.zeros((50, 4), "float32")
    model = SmallNet()
    model(x[:1])
    with pytest.raises(prunekit.auto.AutoPruneError, match="give --sparsity"):
        prunekit.auto_prune(model, (x, x.sum(axis=1)), max_drop="1%", structured=True)
    with pytest.raises(prunekit.auto.AutoPruneError, match="Sequential or Functional"):
        prunekit.auto_prune(model, (x, x.sum(axis=1)), sparsity=0.5, structured=True)
