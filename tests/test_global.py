"""Global magnitude pruning: one threshold across the model, checked against NumPy."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
from conftest import numpy_global_threshold, tfmot_keep_count, to_numpy

import prunekit
from prunekit import ConstantSparsity, PolynomialDecay, UpdatePruningStep, prune_low_magnitude

L = keras.layers


def model_with_kernels(rng):
    """Two Dense layers whose kernels have very different scales, plus a Conv1D."""
    model = keras.Sequential([keras.Input((6, 2)), L.Conv1D(3, 2, name="conv"),
                              L.Flatten(), L.Dense(5, name="small"), L.Dense(3, name="large")])
    scales = {"conv": 1.0, "small": 0.05, "large": 2.0}
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            layer.kernel.assign(rng.normal(size=layer.kernel.shape) * scales[layer.name])
    return model


def train_steps(model, steps, rng, lr=0.0):
    model.compile(keras.optimizers.SGD(lr), "mse")
    x, y = rng.normal(size=(4 * steps, 6, 2)), rng.normal(size=(4 * steps, 3))
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[UpdatePruningStep()])


def pruned_kernels(model):
    return [w.prunable_weights[0] for w in prunekit.iter_wrappers(model) if w.prunable_weights]


def test_masks_match_numpy_global_threshold():
    rng = np.random.default_rng(0)
    model = model_with_kernels(rng)
    kernels = [to_numpy(layer.kernel) for layer in model.layers if hasattr(layer, "kernel")]
    pruned = prune_low_magnitude(model, ConstantSparsity(0.7, 0, frequency=1),
                                 pruning_scope="global")
    train_steps(pruned, 1, rng)  # lr 0: weights only change through masking.
    threshold = numpy_global_threshold([np.abs(k) for k in kernels], 0.7)
    wrappers = [w for w in prunekit.iter_wrappers(pruned) if w.prunable_weights]
    for wrapper, kernel in zip(wrappers, kernels):
        np.testing.assert_array_equal(to_numpy(wrapper.masks[0]),
                                      (np.abs(kernel) >= threshold).astype("float32"))
        assert float(to_numpy(wrapper.thresholds[0])) == pytest.approx(float(threshold))
    # Per-layer sparsities differ (the small-scale layer loses almost everything) ...
    per_layer = [float((to_numpy(w) == 0).mean()) for w in pruned_kernels(pruned)]
    assert per_layer[1] > 0.9 > 0.5 > per_layer[2]
    # ... while the model as a whole meets the target exactly (distinct random values).
    total = sum(k.size for k in kernels)
    zeros = sum(int((to_numpy(w) == 0).sum()) for w in pruned_kernels(pruned))
    assert zeros == total - tfmot_keep_count(total, 0.7)


def test_layer_scope_is_the_default_and_differs():
    rng = np.random.default_rng(1)
    model = model_with_kernels(rng)
    pruned = prune_low_magnitude(model, ConstantSparsity(0.7, 0, frequency=1))
    assert all(w.pruning_scope == "layer" for w in prunekit.iter_wrappers(pruned))
    train_steps(pruned, 1, rng)
    for kernel in pruned_kernels(pruned):
        n = int(np.prod(kernel.shape))
        assert int((to_numpy(kernel) != 0).sum()) == tfmot_keep_count(n, 0.7)


def test_polynomial_schedule_global_threshold_per_step():
    rng = np.random.default_rng(2)
    model = model_with_kernels(rng)
    kernels = [to_numpy(layer.kernel) for layer in model.layers if hasattr(layer, "kernel")]
    schedule = PolynomialDecay(0.2, 0.8, begin_step=0, end_step=4, frequency=1)
    pruned = prune_low_magnitude(model, schedule, pruning_scope="global")
    train_steps(pruned, 2, rng)  # steps 1 and 2, lr 0: masks from the unchanged weights
    sparsity = np.float32(0.8) - np.float32(0.6) * np.float32(0.5) ** 3  # p = 2/4
    threshold = numpy_global_threshold([np.abs(k) for k in kernels], sparsity)
    wrappers = [w for w in prunekit.iter_wrappers(pruned) if w.prunable_weights]
    for wrapper, kernel in zip(wrappers, kernels):
        np.testing.assert_array_equal(to_numpy(wrapper.masks[0]),
                                      (np.abs(kernel) >= threshold).astype("float32"))


def test_saved_and_reloaded_then_training_continues_globally(tmp_path):
    rng = np.random.default_rng(3)
    pruned = prune_low_magnitude(model_with_kernels(rng), ConstantSparsity(0.6, 0, frequency=1),
                                 pruning_scope="global")
    train_steps(pruned, 1, rng, lr=0.01)
    path = os.path.join(tmp_path, "global.keras")
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    wrappers = list(prunekit.iter_wrappers(loaded))
    assert {w.pruning_scope for w in wrappers} == {"global"}
    assert [int(to_numpy(w.pruning_step)) for w in wrappers] == [1] * len(wrappers)
    kernels = [to_numpy(k) for k in pruned_kernels(loaded)]
    train_steps(loaded, 1, rng)  # regrouped by UpdatePruningStep; lr 0
    threshold = numpy_global_threshold([np.abs(k) for k in kernels], 0.6)
    for wrapper, kernel in zip([w for w in wrappers if w.prunable_weights], kernels):
        np.testing.assert_array_equal(to_numpy(wrapper.masks[0]),
                                      (np.abs(kernel) >= threshold).astype("float32"))


def test_bad_combinations():
    model = keras.Sequential([keras.Input((4,)), L.Dense(4)])
    with pytest.raises(ValueError, match="pruning_scope must be 'layer'.*Received: "
                                         "pruning_scope='model'"):
        prune_low_magnitude(model, pruning_scope="model")
    with pytest.raises(ValueError, match="needs a criterion that scores them.*Received: "
                                         r"criterion=BlockMagnitudeCriterion\(block_size"):
        prune_low_magnitude(model, pruning_scope="global", block_size=(2, 2))
    with pytest.raises(ValueError, match=r"MByNCriterion prunes by 'm_by_n'.*MByNCriterion\(m=2"):
        prune_low_magnitude(model, pruning_scope="global", sparsity_m_by_n=(2, 4))


def test_wrappers_with_different_schedules_are_refused():
    a = prune_low_magnitude(L.Dense(2, name="a"), ConstantSparsity(0.5, 0),
                            pruning_scope="global")
    b = prune_low_magnitude(L.Dense(2, name="b"), ConstantSparsity(0.6, 0),
                            pruning_scope="global")
    model = keras.Sequential([keras.Input((3,)), a, b])
    callback = UpdatePruningStep()
    callback.set_model(model)
    with pytest.raises(ValueError, match="different schedules.*prune_low_magnitude_a"):
        callback.on_train_begin()


def test_unlinked_global_wrapper_explains_the_fix():
    wrapper = prune_low_magnitude(L.Dense(2), ConstantSparsity(0.5, 0, frequency=1),
                                  pruning_scope="global")
    model = keras.Sequential([keras.Input((3,)), wrapper])
    wrapper.pruning_step.assign(0)
    wrapper._step_ready = True
    with pytest.raises(RuntimeError, match="UpdatePruningStep"):
        model(np.ones((1, 3), "float32"), training=True)
