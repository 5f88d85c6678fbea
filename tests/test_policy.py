"""Pruning policies (tfmot-behaviour.md §5): PruningPolicy and PruneForLatencyOnXNNPack."""

from __future__ import annotations

import keras
import pytest

import prunekit
from prunekit import PruneForLatencyOnXNNPack, PruneLowMagnitude, PruningPolicy, prune_low_magnitude

L = keras.layers
START_ERROR = ("Could not find `Conv2D 3x3` layer with stride 2x2, `input filters == 3` and "
               "`VALID` padding and preceding `ZeroPadding2D` with `padding == 1` in all input "
               "branches of the model")
END_ERROR = "Could not find a `GlobalAveragePooling2D` layer in all output branches"


def count_wrappers(model):
    return len(list(prunekit.iter_wrappers(model)))


def stem(x, filters=16):
    """ZeroPadding2D(1) -> Conv2D 3x3 stride 2 'valid' over 3 channels: the start layer."""
    return L.Conv2D(filters, 3, strides=2, padding="valid")(L.ZeroPadding2D(1)(x))


def prune(model):
    return prune_low_magnitude(model, pruning_policy=PruneForLatencyOnXNNPack())


def test_reference_example_wraps_only_the_1x1_conv():
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 1)(L.DepthwiseConv2D(3, padding="same")(stem(i, 8)))
    model = keras.Model(i, L.Dense(3)(L.GlobalAveragePooling2D()(x)))
    pruned = prune(model)
    wrapped = [layer.layer for layer in pruned.layers if isinstance(layer, PruneLowMagnitude)]
    assert [(type(w).__name__, tuple(w.kernel_size)) for w in wrapped] == [("Conv2D", (1, 1))]


@pytest.mark.parametrize("case,message", [
    ("no_start", START_ERROR),
    ("no_end", END_ERROR),
    ("middle", "Layer MaxPooling2D is not supported for the PruneForLatencyOnXNNPack pruning "
               "policy"),
])
def test_error_messages_are_tfmots(case, message):
    i = keras.Input((8, 8, 3))
    if case == "no_start":
        x = L.Conv2D(16, 3, strides=2, padding="same")(i)
    else:
        x = stem(i)
    x = L.Conv2D(16, 1)(x)
    if case == "middle":
        x = L.MaxPooling2D()(x)
    out = L.AveragePooling2D(2)(x) if case == "no_end" else L.GlobalAveragePooling2D()(x)
    model = keras.Model(i, out)
    with pytest.raises(ValueError) as error:
        prune(model)
    assert str(error.value) == message


def test_sequential_must_be_built_and_nested_models_are_walked():
    layers = lambda: [L.ZeroPadding2D(1), L.Conv2D(4, 3, strides=2, padding="valid"),  # noqa: E731
                      L.DepthwiseConv2D(3, padding="same"), L.Conv2D(8, 1),
                      L.GlobalAveragePooling2D()]
    with pytest.raises(ValueError, match="^Unbuilt models are not supported currently.$"):
        prune(keras.Sequential(layers()))
    assert count_wrappers(prune(keras.Sequential([keras.Input((8, 8, 3))] + layers()))) == 1
    nested = keras.Sequential([
        keras.Input((8, 8, 3)), L.ZeroPadding2D(1), L.Conv2D(4, 3, strides=2, padding="valid"),
        keras.Sequential([L.Conv2D(8, 1), L.Conv2D(16, 1)]), L.GlobalAveragePooling2D()])
    assert count_wrappers(prune(nested)) == 2


def test_reused_layer_wrapped_once_and_double_pruning_is_stable():
    i = keras.Input((8, 8, 3))
    conv = L.Conv2D(16, 1)
    model = keras.Model(i, L.GlobalAveragePooling2D()(conv(conv(stem(i)))))
    pruned = prune(model)
    assert count_wrappers(pruned) == 1
    assert count_wrappers(prune(pruned)) == 1  # wrappers are looked through and kept
    identity_clone = keras.models.clone_model(model, clone_function=lambda layer: layer)
    assert count_wrappers(prune(identity_clone)) == 1


def test_no_prunable_layers_is_fine():
    i = keras.Input((8, 8, 3))
    x = L.Activation("relu")(L.DepthwiseConv2D(3, padding="same")(stem(i)))
    assert count_wrappers(prune(keras.Model(i, L.GlobalAveragePooling2D()(x)))) == 0


def test_two_branch_model_wraps_all_six_1x1_convs():
    i1, i2 = keras.Input((16, 16, 3)), keras.Input((16, 16, 3))
    x1 = stem(i1)
    x1 = L.Add()([L.DepthwiseConv2D(3, padding="same")(x1), L.Conv2D(16, 1)(x1)])
    x2 = L.ZeroPadding2D(1)(stem(i2, 8))
    x2 = L.DepthwiseConv2D(3, strides=2, padding="valid")(x2)
    gate = L.Activation("sigmoid")(L.Conv2D(32, 1)(L.GlobalAveragePooling2D(keepdims=True)(x2)))
    up = L.UpSampling2D(interpolation="bilinear")(L.Conv2D(32, 1)(x2))
    x2 = L.Conv2D(16, 1)(L.Multiply()([gate, up]))
    x = L.GlobalAveragePooling2D(keepdims=True)(L.Add()([x1, x2]))
    model = keras.Model([i1, i2], [L.Conv2D(7, 1)(x), L.Conv2D(3, 1)(x)])
    assert count_wrappers(prune(model)) == 6


def test_subclassed_model_is_refused_before_anything_changes():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = L.Conv2D(4, 1)

        def call(self, x):
            return self.conv(x)

    net = Net()
    net(keras.ops.ones((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="^Subclassed models are not supported currently.$"):
        prune(net)
    assert isinstance(net.conv, L.Conv2D)


def test_allow_pruning_semantics():
    policy = PruneForLatencyOnXNNPack()

    class MyConv(L.Conv2D):
        pass

    assert policy.allow_pruning(L.Conv2D(2, 1)) and policy.allow_pruning(MyConv(2, (1, 1)))
    assert not policy.allow_pruning(L.Conv2D(2, 3))
    assert not policy.allow_pruning(L.Dense(2))


def test_custom_policy_and_abstract_base():
    with pytest.raises(TypeError):
        PruningPolicy()

    class DenseOnly(PruningPolicy):
        def __init__(self):
            self.checked = []

        def allow_pruning(self, layer):
            return isinstance(layer, L.Dense)

        def ensure_model_supports_pruning(self, model):
            self.checked.append(model.name)

    policy = DenseOnly()
    model = keras.Sequential([keras.Input((4,)), L.Dense(3), L.Dropout(0.1), L.Dense(2)],
                             name="seq")
    pruned = prune_low_magnitude(model, pruning_policy=policy)
    assert policy.checked == ["seq"]
    assert [type(layer).__name__ for layer in pruned.layers] == [
        "PruneLowMagnitude", "Dropout", "PruneLowMagnitude"]


def test_policy_can_skip_an_unsupported_layer():
    class Odd(L.Layer):
        def call(self, x):
            return x

    class DenseOnly(PruningPolicy):
        def allow_pruning(self, layer):
            return isinstance(layer, L.Dense)

        def ensure_model_supports_pruning(self, model):
            pass

    model = keras.Sequential([keras.Input((4,)), L.Dense(3), Odd()])
    assert count_wrappers(prune_low_magnitude(model, pruning_policy=DenseOnly())) == 1


def test_exports():
    import prunekit as tfmot

    assert tfmot.sparsity.keras.PruningPolicy is PruningPolicy
    assert tfmot.sparsity.keras.PruneForLatencyOnXNNPack is PruneForLatencyOnXNNPack
