"""Functional graphs with Keras Operation nodes (``x + y``, ``x * y``, ``ops.concatenate``).

In Keras 3 these are Operation nodes, not layers (Keras 2 made them TFOpLambda layers). Every
graph walk passes through them: pruning, stripping, the XNNPACK policy, the compressed export.
ResNet-style models are built both ways -- with ``keras.layers.Add`` and with ``+`` -- and must
behave identically. Expected keep counts are worked out by hand (tfmot's rule, see
reference/tfmot-behaviour.md: ``k = round(n * (1 - s))``; the sizes below make it exact).
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
from conftest import to_numpy

import prunekit
from prunekit import (ConstantSparsity, PruneForLatencyOnXNNPack, PruneLowMagnitude,
                      UpdatePruningStep, prune_low_magnitude, strip_pruning)
from prunekit.export import load_compressed, save_compressed
from prunekit.walk import is_operation_node

L = keras.layers

# Kernel sizes: stem 3*3*3*8 = 216, expand and mix 8*8 = 64, head 8*2 = 16. At 75 % sparsity
# tfmot keeps a quarter of each: 54, 16, 16 and 4 weights.
KEPT_AT_75 = {"stem": 54, "expand": 16, "mix": 16, "head": 4}


def add(a, b, residual):
    return L.Add()([a, b]) if residual == "layer" else a + b


def resnet(residual):
    """ZeroPadding -> stem conv 3x3/2 -> two residual 1x1 blocks -> GAP -> 1x1 head."""
    keras.utils.set_random_seed(11)
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, strides=2, padding="valid", name="stem")(L.ZeroPadding2D(1)(inputs))
    x = add(x, L.Conv2D(8, 1, name="expand")(x), residual)
    x = add(x, L.Conv2D(8, 1, name="mix")(x), residual)
    x = L.GlobalAveragePooling2D(keepdims=True)(x)
    return keras.Model(inputs, L.Flatten()(L.Conv2D(2, 1, name="head")(x)))


def data():
    rng = np.random.default_rng(5)
    return (rng.normal(size=(12, 8, 8, 3)).astype("float32"),
            rng.normal(size=(12, 2)).astype("float32"))


def pruned_wrappers(model):
    """The wrappers that prune something (layers without kernels are wrapped too, as in tfmot)."""
    return {w.layer.name: w for w in prunekit.iter_wrappers(model) if w.prunable_weights}


def operation_names(model):
    return [type(op).__name__ for op in model.operations if is_operation_node(op)]


def train(model):
    pruned = prune_low_magnitude(model, ConstantSparsity(0.75, 0, frequency=1))
    pruned.compile(keras.optimizers.SGD(0.05), "mse")
    x, y = data()
    pruned.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
               callbacks=[UpdatePruningStep()])
    return pruned


def test_issue_example_prunes_with_and_without_skip_unsupported():
    inputs = keras.Input((8,))
    hidden = L.Dense(8, name="hidden")(inputs)
    model = keras.Model(inputs, L.Dense(2, name="out")(hidden + inputs))
    for skip in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing is unsupported: no warning either
            pruned = prune_low_magnitude(model, skip_unsupported=skip)
        assert prunekit.pruning_report(pruned) == prunekit.PruningReport(("hidden", "out"), ())
        assert operation_names(pruned) == ["Add"]


@pytest.mark.parametrize("residual", ["layer", "op"])
def test_resnet_prunes_trains_strips_saves_and_exports(residual, tmp_path):
    pruned = train(resnet(residual))
    assert operation_names(pruned) == ([] if residual == "layer" else ["Add", "Add"])
    wrappers = pruned_wrappers(pruned)
    assert sorted(wrappers) == sorted(KEPT_AT_75)
    assert {name: int(to_numpy(w.pruning_step)) for name, w in wrappers.items()} == dict.fromkeys(
        KEPT_AT_75, 3)
    nonzeros = {name: int(np.count_nonzero(to_numpy(w.layer.kernel)))
                for name, w in wrappers.items()}
    assert nonzeros == KEPT_AT_75
    x = data()[0]
    expected = pruned.predict(x, verbose=0)

    stripped = strip_pruning(pruned)
    assert not any(isinstance(layer, PruneLowMagnitude) for layer in stripped.layers)
    assert operation_names(stripped) == operation_names(pruned)
    assert {layer.name: int(np.count_nonzero(to_numpy(layer.kernel)))
            for layer in stripped.layers if hasattr(layer, "kernel")} == KEPT_AT_75
    np.testing.assert_allclose(stripped.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)

    pruned.save(tmp_path / "pruned.keras")
    reloaded = keras.saving.load_model(tmp_path / "pruned.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    stripped.save(tmp_path / "stripped.keras")
    np.testing.assert_array_equal(
        keras.saving.load_model(tmp_path / "stripped.keras").predict(x, verbose=0),
        stripped.predict(x, verbose=0))

    save_compressed(stripped, tmp_path / "model.pkz")
    restored = load_compressed(tmp_path / "model.pkz")
    assert operation_names(restored) == operation_names(stripped)
    np.testing.assert_array_equal(restored.predict(x, verbose=0), stripped.predict(x, verbose=0))


def test_plus_and_add_layer_train_to_the_same_weights():
    by_layer, by_op = train(resnet("layer")), train(resnet("op"))
    layer_wrappers, op_wrappers = pruned_wrappers(by_layer), pruned_wrappers(by_op)
    assert sorted(layer_wrappers) == sorted(op_wrappers) == sorted(KEPT_AT_75)
    for name, a in layer_wrappers.items():
        b = op_wrappers[name]
        np.testing.assert_array_equal(to_numpy(a.masks[0]), to_numpy(b.masks[0]))
        np.testing.assert_allclose(to_numpy(a.layer.kernel), to_numpy(b.layer.kernel),
                                   rtol=1e-5, atol=1e-6)


def test_subclassed_model_holding_a_residual_block():
    block = resnet("op")

    @keras.saving.register_keras_serializable("prunekit_tests")
    class Holder(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.block = block

        def call(self, x, training=None):
            return self.block(x, training=training)

    model = Holder()
    model(data()[0][:1])
    prune_low_magnitude(model, ConstantSparsity(0.75, 0, frequency=1))
    assert operation_names(model.block) == ["Add", "Add"]
    assert sorted(pruned_wrappers(model)) == sorted(KEPT_AT_75)
    assert operation_names(strip_pruning(model).block) == ["Add", "Add"]


# ---------------------------------------------------------------------- XNNPACK policy
def xnnpack(model):
    return prune_low_magnitude(model, pruning_policy=PruneForLatencyOnXNNPack())


@pytest.mark.parametrize("residual", ["layer", "op"])
def test_xnnpack_policy_accepts_residuals_both_ways(residual):
    pruned = xnnpack(resnet(residual))
    # tfmot's rule: every 1x1 Conv2D is wrapped, the 3x3 stem is not.
    assert sorted(w.layer.name for w in prunekit.iter_wrappers(pruned)) == [
        "expand", "head", "mix"]


def test_xnnpack_policy_with_keras_ops_as_in_tfmot():
    """tfmot's testFunctionalModelWithTFOpsForLatencyOnXNNPackPolicy: 1 pruned layer.

    ``tf.identity`` becomes ``keras.layers.Identity`` (Keras 3 has no identity operation).
    """
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(16, 3, strides=2, padding="valid")(L.ZeroPadding2D(1)(inputs))
    residual = L.Conv2D(16, 1)(x)
    x = x + residual
    x = x - residual
    x = x * residual
    x = L.Identity()(x)
    model = keras.Model(inputs, L.GlobalAveragePooling2D(keepdims=True)(x))
    assert operation_names(model) == ["Add", "Subtract", "Multiply"]
    assert len(list(prunekit.iter_wrappers(xnnpack(model)))) == 1


def test_xnnpack_policy_names_an_unsupported_operation():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, strides=2, padding="valid")(L.ZeroPadding2D(1)(inputs))
    x = keras.ops.concatenate([x, L.Conv2D(8, 1)(x)], axis=-1)
    model = keras.Model(inputs, L.GlobalAveragePooling2D(keepdims=True)(x))
    with pytest.raises(ValueError, match="^Layer Concatenate is not supported for the "
                                         "PruneForLatencyOnXNNPack pruning policy$"):
        xnnpack(model)
