"""Mixed precision: thresholds in the variables' (float32) dtype, uint8 masks, exact keep counts."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
from conftest import tfmot_keep_count, to_numpy

import prunekit
from prunekit import ConstantSparsity, UpdatePruningStep, prune_low_magnitude

L = keras.layers
POLICIES = ["mixed_float16", "mixed_bfloat16"]


@pytest.fixture(params=POLICIES)
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def model():
    inputs = keras.Input((6, 6, 2))
    x = L.Flatten()(L.Conv2D(3, 3, name="conv")(inputs))
    x = L.Dense(8, name="hidden")(x)
    return keras.Model(inputs, L.Dense(2, name="out", dtype="float32")(x))


def test_masks_in_variable_dtype_and_exact_sparsity(policy, tmp_path):
    base = model()
    compute = "float16" if policy == "mixed_float16" else "bfloat16"
    assert base.get_layer("hidden").compute_dtype == compute
    pruned = prune_low_magnitude(base, ConstantSparsity(0.5, 0, frequency=1))
    wrappers = [w for w in prunekit.iter_wrappers(pruned) if w.masks]
    for wrapper in wrappers:
        weight = wrapper.prunable_weights[0]
        assert weight.dtype == "float32"
        assert wrapper.masks[0].dtype == "uint8" and wrapper.thresholds[0].dtype == "float32"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 6, 6, 2)).astype("float32")
    optimizer = keras.optimizers.SGD(0.01)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    pruned.compile(optimizer, "mse")
    pruned.fit(x, rng.normal(size=(8, 2)), batch_size=4, verbose=0,
               callbacks=[UpdatePruningStep()])
    for wrapper in wrappers:
        values = to_numpy(wrapper.prunable_weights[0])
        assert int((values != 0).sum()) == tfmot_keep_count(values.size, 0.5), wrapper.name
        assert float(to_numpy(wrapper.thresholds[0])) > 0.0
    out = pruned.predict(x, verbose=0)
    assert np.all(np.isfinite(out))
    path = os.path.join(tmp_path, "mixed.keras")
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    assert [w.masks[0].dtype for w in prunekit.iter_wrappers(loaded) if w.masks] == [
        "uint8"] * 3
    stripped = prunekit.strip_pruning(loaded)
    np.testing.assert_allclose(stripped.predict(x, verbose=0), out, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_mask_is_ranked_in_full_precision(policy, scope):
    # 1 + 2**-12 and 1 round to the same float16/bfloat16 number: ranking the compute-dtype
    # copy would tie them and keep both; the float32 values keep exactly the larger one.
    layer = L.Dense(1, use_bias=False, name="d")
    model = keras.Sequential([keras.Input((2,)), layer])
    layer.kernel.assign(np.array([[1.0], [1.0 + 2.0 ** -12]], "float32"))
    pruned = prune_low_magnitude(model, ConstantSparsity(0.5, 0, frequency=1),
                                 pruning_scope=scope)
    wrapper = pruned.layers[0]
    callback = UpdatePruningStep()
    callback.set_model(pruned)
    callback.on_train_begin()
    pruned(np.ones((1, 2), "float32"), training=True)
    np.testing.assert_array_equal(to_numpy(wrapper.masks[0]), [[0.0], [1.0]])
    assert float(to_numpy(wrapper.thresholds[0])) == np.float32(1.0 + 2.0 ** -12)


def test_m_by_n_under_mixed_precision(policy):
    model = keras.Sequential([keras.Input((8,)), L.Dense(2, name="d")])
    pruned = prune_low_magnitude(model, sparsity_m_by_n=(2, 4))
    callback = UpdatePruningStep()
    callback.set_model(pruned)
    callback.on_train_begin()
    pruned(np.ones((1, 8), "float32"), training=True)
    mask = to_numpy(pruned.layers[0].masks[0])
    assert mask.dtype == np.uint8 and mask.sum() == 8  # 2 of every 4 inputs, 2 outputs
