"""Training behaviour: step counting, frequency, masking semantics, save/resume, custom loops.

Expected values: tfmot-behaviour.md §4, §6, §8 and §10.9-13, or NumPy computations.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import BACKEND, tfmot_keep_count, to_numpy

import prunekit
from prunekit import (ConstantSparsity, MissingCallbackError, PolynomialDecay, UpdatePruningStep,
                      prune_low_magnitude)

KERNEL = np.array([.1, -.9, .5, -.3, .7, .2, -.6, .8, -.4, 1.0], "float32").reshape(10, 1)


def single_dense(schedule, kernel=KERNEL, lr=0.0):
    layer = keras.layers.Dense(1, use_bias=False)
    model = keras.Sequential([keras.Input((kernel.shape[0],)), layer])
    layer.kernel.assign(kernel)
    pruned = prune_low_magnitude(model, schedule)
    pruned.compile(keras.optimizers.SGD(learning_rate=lr), "mse")
    return pruned


def fit(model, batches=1, epochs=1, callback=None, batch_size=1, **kwargs):
    n = batches * batch_size
    x = np.random.default_rng(0).normal(size=(n,) + tuple(model.inputs[0].shape[1:]))
    y = np.zeros((n,) + tuple(model.outputs[0].shape[1:]))
    callback = callback or UpdatePruningStep()
    return model.fit(x.astype("float32"), y.astype("float32"), batch_size=batch_size,
                     epochs=epochs, verbose=0, shuffle=False, callbacks=[callback], **kwargs)


def step_of(model):
    return int(to_numpy(model.layers[0].pruning_step))


def mask_of(model, i=0):
    return to_numpy(model.layers[0].masks[i]).reshape(-1)


def test_deterministic_trace():
    model = single_dense(PolynomialDecay(0.0, 0.8, begin_step=0, end_step=4, frequency=1))
    callback = UpdatePruningStep()
    expected = [([0, 1, 0, 0, 1, 0, 1, 1, 0, 1], 0.6), ([0, 1, 0, 0, 0, 0, 0, 1, 0, 1], 0.8),
                ([0, 1, 0, 0, 0, 0, 0, 0, 0, 1], 0.9)]
    for mask, threshold in expected:
        fit(model, callback=callback)
        np.testing.assert_array_equal(mask_of(model), mask)
        assert float(to_numpy(model.layers[0].thresholds[0])) == pytest.approx(threshold)
    for _ in range(3):
        fit(model, callback=callback)
    np.testing.assert_array_equal(mask_of(model), expected[-1][0])
    assert step_of(model) == 6
    x = np.arange(10, dtype="float32")[None]
    assert float(model.predict(x, verbose=0)[0, 0]) == pytest.approx(8.1, abs=1e-5)
    stripped = prunekit.strip_pruning(model)
    np.testing.assert_array_equal(to_numpy(stripped.layers[0].kernel).reshape(-1),
                                  np.float32([0, -.9, 0, 0, 0, 0, 0, 0, 0, 1.0]))
    assert float(stripped.predict(x, verbose=0)[0, 0]) == pytest.approx(8.1, abs=1e-5)


def test_step_counts():
    model = single_dense(ConstantSparsity(0.5, 0))
    assert step_of(model) == -1
    model.predict(np.ones((3, 10), "float32"), verbose=0)
    model.evaluate(np.ones((3, 10), "float32"), np.ones((3, 1), "float32"), verbose=0)
    assert step_of(model) == -1  # inference leaves the step alone
    fit(model, batches=1, epochs=3)
    assert step_of(model) == 3
    fit(model, batches=2)
    assert step_of(model) == 5  # a second fit continues counting

    model = single_dense(ConstantSparsity(0.5, 0))
    val = (np.ones((4, 10), "float32"), np.ones((4, 1), "float32"))
    fit(model, batches=10, epochs=3, validation_data=val)
    assert step_of(model) == 30  # validation does not count


def test_layer_reused_twice_counts_once_per_batch():
    # tfmot counts calls (4 after 2 batches); prunekit counts training batches (README).
    wrapper = prune_low_magnitude(keras.layers.Dense(4))
    inputs = keras.Input((4,))
    model = keras.Model(inputs, wrapper(wrapper(inputs)))
    model.compile("sgd", "mse")
    fit(model, batches=2)
    assert int(to_numpy(wrapper.pruning_step)) == 2


def test_missing_callback_raises():
    model = single_dense(ConstantSparsity(0.5, 0))
    x, y = np.ones((2, 10), "float32"), np.ones((2, 1), "float32")
    with pytest.raises(MissingCallbackError, match="requires the UpdatePruningStep callback"):
        model.fit(x, y, verbose=0)
    with pytest.raises(MissingCallbackError, match="requires the UpdatePruningStep callback"):
        model(x, training=True)
    model(x, training=False)  # inference needs no callback


def test_frequency_in_training():
    model = single_dense(ConstantSparsity(0.5, 0), kernel=np.arange(1, 11, dtype="float32")[:, None])
    callback = UpdatePruningStep()
    fit(model, batches=30, callback=callback)
    assert mask_of(model).mean() == 1.0  # the first update is at step 100
    fit(model, batches=70, callback=callback)
    assert step_of(model) == 100
    assert mask_of(model).mean() == 0.5

    model = single_dense(ConstantSparsity(0.5, 0, -1, 1))
    fit(model)
    assert mask_of(model).mean() == 0.5


def test_very_high_sparsity_keeps_one_weight():
    base = keras.Sequential([keras.Input((10,)), keras.layers.Dense(8), keras.layers.Dense(5)])
    model = prune_low_magnitude(base, ConstantSparsity(0.99, 0, frequency=1))
    model.compile("sgd", "mse")
    fit(model, batches=2)
    for wrapper in model.layers:
        assert np.count_nonzero(to_numpy(wrapper.layer.kernel)) == 1


def test_polynomial_decay_in_training_and_resume(tmp_path):
    model = single_dense(PolynomialDecay(0.2, 0.6, 1, 4, 3, 1))
    callback = UpdatePruningStep()
    fit(model, callback=callback)
    assert 1 - mask_of(model).mean() == pytest.approx(0.2)
    fit(model, batches=3, callback=callback)
    assert 1 - mask_of(model).mean() == pytest.approx(0.6)

    model = single_dense(PolynomialDecay(0.2, 0.6, 0, 2, 3, 1))
    fit(model, batches=3)
    assert 1 - mask_of(model).mean() == pytest.approx(0.6)
    path = str(tmp_path / "pruned.keras")
    model.save(path)
    restored = keras.saving.load_model(path)  # no custom objects, no prune_scope
    assert step_of(restored) == 3
    np.testing.assert_array_equal(mask_of(restored), mask_of(model))
    assert restored.layers[0].pruning_schedule == model.layers[0].pruning_schedule
    fit(restored)
    assert step_of(restored) == 4
    assert 1 - mask_of(restored).mean() == pytest.approx(0.6)


def test_pruned_weights_get_dense_gradients():
    # One SGD step at step 1 (the only pruning step): the forward pass uses w*mask, and every
    # position -- pruned ones too -- moves by -lr * dL/dw evaluated at the pruned point.
    rng = np.random.default_rng(5)
    w0 = rng.normal(size=(6, 1)).astype("float32")
    x = rng.normal(size=(8, 6)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    lr = 0.1
    model = single_dense(ConstantSparsity(0.5, 1, 1, 1), kernel=w0, lr=lr)
    callback = UpdatePruningStep()
    callback.set_model(model)
    callback.on_train_begin()
    model.train_on_batch(x, y)
    mask = (np.abs(w0) >= np.sort(np.abs(w0).ravel())[::-1][2]).astype("float32")
    np.testing.assert_array_equal(mask_of(model), mask.ravel())
    grad = 2.0 / len(x) * x.T @ (x @ (w0 * mask) - y)
    w1 = to_numpy(model.layers[0].layer.kernel)
    np.testing.assert_allclose(w1, w0 - lr * grad, rtol=1e-5, atol=1e-6)
    assert np.all(w1[mask == 0] != w0[mask == 0])  # pruned positions received gradients


def test_revived_weight_is_masked_in_inference_and_returns_when_large():
    model = single_dense(ConstantSparsity(0.5, 0, -1, 1))
    callback = UpdatePruningStep()
    fit(model, callback=callback)
    pruned_index = int(np.flatnonzero(mask_of(model) == 0)[0])
    kernel = to_numpy(model.layers[0].layer.kernel).copy()
    revived = kernel.copy()
    revived[pruned_index] = 100.0
    model.layers[0].layer.kernel.assign(revived)
    x = np.random.default_rng(1).normal(size=(3, 10)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ kernel, rtol=1e-5, atol=1e-6)
    fit(model, callback=callback)  # a pruning step ranks the current weights
    assert mask_of(model)[pruned_index] == 1
    assert to_numpy(model.layers[0].layer.kernel).ravel()[pruned_index] == 100.0


def test_epoch_end_weights_exactly_sparse():
    base = keras.Sequential([keras.Input((10,)), keras.layers.Dense(16), keras.layers.Dense(3)])
    model = prune_low_magnitude(base, ConstantSparsity(0.7, 0, frequency=3))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    fit(model, batches=7, batch_size=4, epochs=2)
    for wrapper in model.layers:
        size = int(np.prod(wrapper.layer.kernel.shape))
        assert np.count_nonzero(to_numpy(wrapper.layer.kernel)) == tfmot_keep_count(size, 0.7)


def test_zero_sparsity_is_a_no_op():
    def make():
        keras.utils.set_random_seed(7)
        return keras.Sequential([keras.Input((10,)), keras.layers.Dense(6, activation="relu"),
                                 keras.layers.Dense(1)])

    plain, base = make(), make()
    pruned = prune_low_magnitude(base, ConstantSparsity(0.0, 0, frequency=1))
    plain.compile(keras.optimizers.Adam(0.01), "mse")
    pruned.compile(keras.optimizers.Adam(0.01), "mse")
    x = np.random.default_rng(2).normal(size=(40, 10)).astype("float32")
    y = x[:, :1] * 2.0
    plain.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    pruned.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False,
               callbacks=[UpdatePruningStep()])
    for a, b in zip(plain.weights, prunekit.strip_pruning(pruned).weights):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6, atol=1e-7)


def _custom_loop_step(model, optimizer, x, y):
    """One training step without `fit`, written for each backend."""
    x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
    if BACKEND == "jax":
        import jax

        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]

        def loss_fn(tv, ntv):
            out, ntv = model.stateless_call(tv, ntv, x, training=True)
            return keras.ops.mean((out - y) ** 2), ntv

        (_, ntv), grads = jax.value_and_grad(loss_fn, has_aux=True)(tv, ntv)
        for v, value in zip(model.non_trainable_variables, ntv):
            v.assign(value)
        optimizer.apply(grads, model.trainable_variables)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = keras.ops.mean((model(x, training=True) - y) ** 2)
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    else:
        model.zero_grad()
        loss = keras.ops.mean((model(x, training=True) - y) ** 2)
        loss.backward()
        optimizer.apply([v.value.grad for v in model.trainable_variables],
                        model.trainable_variables)


def test_custom_training_loop_matches_fit():
    def make():
        keras.utils.set_random_seed(3)
        base = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8), keras.layers.Dense(2)])
        return prune_low_magnitude(base, PolynomialDecay(0.1, 0.7, 0, 6, frequency=2))

    rng = np.random.default_rng(4)
    x = rng.normal(size=(8, 6)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")

    by_fit = make()
    by_fit.compile(keras.optimizers.SGD(0.05), "mse")
    by_fit.fit(x, y, batch_size=8, epochs=6, verbose=0, callbacks=[UpdatePruningStep()])

    by_hand = make()
    optimizer = keras.optimizers.SGD(0.05)
    optimizer.build(by_hand.trainable_variables)
    callback = UpdatePruningStep()
    callback.set_model(by_hand)
    callback.on_train_begin()
    for epoch in range(6):
        _custom_loop_step(by_hand, optimizer, x, y)
        callback.on_epoch_end(epoch)
    for a, b in zip(by_fit.layers, by_hand.layers):
        assert int(to_numpy(a.pruning_step)) == int(to_numpy(b.pruning_step)) == 6
        np.testing.assert_array_equal(to_numpy(a.masks[0]), to_numpy(b.masks[0]))
        np.testing.assert_allclose(to_numpy(a.layer.kernel), to_numpy(b.layer.kernel),
                                   rtol=1e-5, atol=1e-6)
