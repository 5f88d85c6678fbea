"""Group importances against NumPy, and gradual structured pruning during fit."""

import keras
import numpy as np
import pytest
from keras import layers

import prunekit
from prunekit.structured import (BatchNormScale, DependencyGraph, L1Importance, L2Importance,
                                 TaylorImportance, prune_structured, shrink)
from prunekit.structured.importance import unit_scores


def _model():
    keras.utils.set_random_seed(0)
    i = keras.Input((5,))
    h = layers.Dense(4, name="h")(i)
    h = layers.BatchNormalization(name="bn")(h)
    model = keras.Model(i, layers.Dense(2, name="out")(h))
    bn = model.get_layer("bn")
    bn.set_weights([np.array([1.0, -2.0, 0.5, 3.0]), np.array([.1, .2, .3, .4]),
                    np.zeros(4), np.ones(4)])
    return model


def _by_channel(model, scores):
    graph = DependencyGraph(model)
    (group,) = [g for g in graph.groups if g.layers == ["h"]]
    return np.array([scores[u] for u in group.units])


def _parts(model):
    k, b = model.get_layer("h").get_weights()
    gamma, beta = model.get_layer("bn").get_weights()[:2]
    rows = model.get_layer("out").get_weights()[0]
    return k, b, gamma, beta, rows


def test_l1_l2_bn_scale_match_numpy():
    model = _model()
    graph = DependencyGraph(model)
    k, b, gamma, beta, rows = _parts(model)
    l1 = np.abs(k).sum(0) + np.abs(b) + np.abs(gamma) + np.abs(beta) + np.abs(rows).sum(1)
    l2 = np.sqrt((k ** 2).sum(0) + b ** 2 + gamma ** 2 + beta ** 2 + (rows ** 2).sum(1))
    np.testing.assert_allclose(_by_channel(model, unit_scores(graph, L1Importance())), l1,
                               rtol=1e-6)
    np.testing.assert_allclose(_by_channel(model, unit_scores(graph, L2Importance())), l2,
                               rtol=1e-6)
    np.testing.assert_allclose(_by_channel(model, unit_scores(graph, BatchNormScale())),
                               [1.0, 2.0, 0.5, 3.0])


def test_taylor_matches_a_finite_difference_gradient():
    model = _model()
    x = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
    y = np.random.default_rng(1).normal(size=(6, 2)).astype("float32")
    from prunekit.structured.pruning import loss_gradients

    grads = loss_gradients(model, (x, y), "mse")
    scores = _by_channel(model, unit_scores(DependencyGraph(model), TaylorImportance(), grads))
    # Independent: d/deps of the loss when every coupled weight of channel c is scaled by
    # (1 + eps) is sum(w * dL/dw) over those weights; Taylor = its square.
    def loss_with(c, eps):
        m = keras.models.clone_model(model)
        m.set_weights(model.get_weights())
        for name, axis in (("h", 1), ("out", 0)):
            ws = m.get_layer(name).get_weights()
            ws[0] = ws[0].copy()
            idx = [slice(None)] * 2
            idx[axis] = c
            ws[0][tuple(idx)] *= 1 + eps
            if name == "h":
                ws[1] = ws[1].copy(); ws[1][c] *= 1 + eps
            m.get_layer(name).set_weights(ws)
        g, bt, mm, mv = m.get_layer("bn").get_weights()
        g, bt = g.copy(), bt.copy()
        g[c] *= 1 + eps; bt[c] *= 1 + eps
        m.get_layer("bn").set_weights([g, bt, mm, mv])
        pred = keras.ops.convert_to_numpy(m(x, training=False)).astype(np.float64)
        return float(np.mean((pred - y) ** 2))
    eps = 1e-3
    fd = np.array([(loss_with(c, eps) - loss_with(c, -eps)) / (2 * eps) for c in range(4)])
    np.testing.assert_allclose(scores, fd ** 2, rtol=0.02, atol=1e-6)


def test_single_weight_mask_uses_output_channels():
    w = keras.ops.convert_to_tensor(np.array([[3.0, 0.1, 1.0], [4.0, 0.1, 1.0]]))
    mask, _ = L2Importance().compute_mask(w, 0.34)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(mask), [[1, 0, 1], [1, 0, 1]])


def test_gradual_pruning_with_a_schedule_then_shrink(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), layers.Dense(16, activation="relu", name="h"),
                              layers.Dense(8, activation="relu", name="g"), layers.Dense(1)])
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    schedule = prunekit.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=8, frequency=2)
    pruning = prune_structured(model, schedule, importance="l1", log_dir=str(tmp_path / "logs"))
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[pruning])
    assert pruning.step == 12 and pruning.sparsity == 0.5
    # Whole units are zero: 8 columns of h (and the rows of g that read them).
    h = model.get_layer("h").kernel.numpy()
    assert int((np.abs(h).max(axis=0) == 0).sum()) == 8
    path = str(tmp_path / "masked.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    small, _ = shrink(loaded)
    assert small.get_layer("h").units == 8 and small.get_layer("g").units == 4
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)
    assert any(p.name.startswith("events") for p in (tmp_path / "logs").iterdir())


def test_gradual_pruning_refuses_several_batches_per_call():
    model = _model()
    model.compile("sgd", "mse", steps_per_execution=4)
    pruning = prune_structured(model, prunekit.ConstantSparsity(0.5, 0, frequency=1))
    pruning.set_model(model)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="steps_per_execution=1.*Received: "
                                         "steps_per_execution=4"):
        pruning.on_train_begin()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_taylor_without_data_is_refused():
    with pytest.raises(ValueError, match="needs a batch of data"):
        prune_structured(_model(), prunekit.ConstantSparsity(0.5, 0), importance="taylor")


def test_group_criterion_in_the_wrapper_masks_whole_columns(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), layers.Dense(8, name="h"), layers.Dense(1)])
    pruned = prunekit.prune_low_magnitude(
        model, prunekit.ConstantSparsity(0.5, 0, frequency=1), criterion=L2Importance())
    pruned.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    pruned.fit(x, x[:, :1], epochs=1, verbose=0, callbacks=[prunekit.UpdatePruningStep()])
    path = str(tmp_path / "p.keras")
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    kernel = prunekit.strip_pruning(loaded).get_layer("h").kernel.numpy()
    assert int((np.abs(kernel).max(axis=0) == 0).sum()) == 4  # 4 of 8 whole columns
