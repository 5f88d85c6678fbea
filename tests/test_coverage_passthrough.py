"""Layers without prunable weights pass through; custom and unknown layers; skip_unsupported."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

import prunekit
from prunekit import PrunableLayer, PruneLowMagnitude, SkippedLayer, prune_low_magnitude
from prunekit import registry

L = keras.layers
# Names Keras gives weights that hold a layer's main linear map: none may pass through.
PRUNABLE_NAMES = {"kernel", "embeddings", "recurrent_kernel", "depthwise_kernel",
                  "pointwise_kernel", "reverse_embeddings"}
# Constructor arguments for pass-through layers that need some (the rest take none).
ARGS = {
    "Activation": ("relu",), "Reshape": ((-1,),), "Permute": ((1,),), "RepeatVector": (2,),
    "Lambda": (lambda x: x,), "Rescaling": (0.5,), "Resizing": (4, 4), "CenterCrop": (4, 4),
    "RandomCrop": (4, 4), "Dropout": (0.1,), "SpatialDropout1D": (0.1,),
    "SpatialDropout2D": (0.1,), "SpatialDropout3D": (0.1,), "AlphaDropout": (0.1,),
    "GaussianDropout": (0.1,), "GaussianNoise": (0.1,), "AveragePooling1D": (2,),
    "AveragePooling2D": (2,), "AveragePooling3D": (2,), "MaxPooling1D": (2,),
    "MaxPooling2D": (2,), "MaxPooling3D": (2,), "AdaptiveAveragePooling1D": (2,),
    "AdaptiveAveragePooling2D": (2,), "AdaptiveAveragePooling3D": (2,),
    "AdaptiveMaxPooling1D": (2,), "AdaptiveMaxPooling2D": (2,), "AdaptiveMaxPooling3D": (2,),
    "GroupNormalization": (1,), "Discretization": ([0.0],), "Hashing": (4,),
    "CategoryEncoding": (8,), "RandomRotation": (0.1,), "RandomZoom": (0.1,),
    "RandomTranslation": (0.1, 0.1), "RandomContrast": (0.1,), "RandomBrightness": (0.1,),
    "RandomShear": (0.1,), "Normalization": (), "Dot": (1,), "HashedCrossing": (2,),
    "RandomElasticTransform": (), "UpSampling1D": (), "MelSpectrogram": (),
}
INPUTS = [np.ones((2, 4, 4, 4, 3)), np.ones((2, 8, 8, 3)), np.ones((2, 6, 3)), np.ones((2, 3)),
          np.zeros((2, 3), "int32")]


def try_build(cls):
    """Build ``cls`` (creating its weights) for the first sample input shape it accepts."""
    args = ARGS.get(cls.__name__, ())
    for x in INPUTS:
        try:
            layer = cls(*args)
            layer.build([x.shape, x.shape] if cls.__name__ in MERGE else x.shape)
            return layer
        except Exception:  # noqa: BLE001 -- wrong rank or dtype for this layer: try the next
            continue
    return None


MERGE = {"Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply", "Subtract",
         "Attention", "AdditiveAttention", "HashedCrossing"}


def exported_layer_classes():
    return {obj for obj in vars(L).values()
            if isinstance(obj, type) and issubclass(obj, keras.layers.Layer)}


def test_every_keras_layer_is_classified_once():
    tables = {"prunable": set(registry._PRUNABLE) | set(registry._PRUNABLE_BY_CONFIG),
              "container": set(registry._CONTAINERS), "pass_through": set(registry._PASS_THROUGH),
              "opaque": set(registry._OPAQUE)}
    exported = exported_layer_classes()
    for cls in exported:
        homes = [name for name, table in tables.items() if cls in table]
        assert len(homes) == 1, (cls.__name__, homes)
    expected_pass = {L.GroupNormalization, L.Rescaling, L.BatchNormalization, L.Dropout,
                     L.LayerNormalization, L.UnitNormalization, L.PReLU, L.Attention,
                     L.Normalization, L.Resizing, L.Flatten, L.Add, L.Lambda, L.Identity}
    assert expected_pass <= tables["pass_through"]
    assert tables["opaque"] == {L.Layer, L.Wrapper, L.InputLayer, L.JaxLayer, L.FlaxLayer,
                                L.TorchModuleWrapper, L.TFSMLayer, L.SpectralNormalization,
                                L.Pipeline}


def test_no_pass_through_class_extends_a_prunable_one():
    prunable = set(registry._PRUNABLE) | set(registry._PRUNABLE_BY_CONFIG) | set(
        registry._CONTAINERS)
    for cls in registry._PASS_THROUGH:
        assert not any(issubclass(cls, base) for base in prunable), cls


def test_pass_through_layers_hold_no_prunable_weight():
    built, unbuildable = [], []
    for cls in sorted(registry._PASS_THROUGH, key=lambda c: c.__name__):
        layer = try_build(cls)
        if layer is None:
            unbuildable.append(cls.__name__)
            continue
        built.append(cls.__name__)
        names = {v.name for v in layer.weights}
        assert not names & PRUNABLE_NAMES, (cls.__name__, names)
        assert registry.get_prunable_weights(layer) == []
    # Only text/lookup and exotic augmentation layers need inputs the loop does not try.
    assert len(built) >= 80, unbuildable
    assert {"GroupNormalization", "Rescaling", "PReLU", "RMSNormalization"} <= set(built)


def test_model_with_pass_through_layers_trains_and_strips():
    inputs = keras.Input((8, 8, 3))
    x = L.Rescaling(1 / 255.0)(inputs)
    x = L.Conv2D(4, 3, name="conv")(x)
    x = L.GroupNormalization(2)(x)
    x = L.PReLU()(x)
    x = L.Flatten()(L.UnitNormalization()(x))
    model = keras.Model(inputs, L.Dense(2, name="head")(L.RMSNormalization()(x)))
    pruned = prune_low_magnitude(model, prunekit.ConstantSparsity(0.5, 0, frequency=1))
    wrapped = {w.layer.name: len(w.masks) for w in prunekit.iter_wrappers(pruned)}
    assert wrapped["conv"] == 1 and wrapped["head"] == 1
    assert sum(wrapped.values()) == 2 and len(wrapped) == 8  # every layer wrapped, as tfmot
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(4, 8, 8, 3))
    pruned.compile("sgd", "mse")
    pruned.fit(x, rng.normal(size=(4, 2)), verbose=0, callbacks=[prunekit.UpdatePruningStep()])
    stripped = prunekit.strip_pruning(pruned)
    np.testing.assert_allclose(stripped.predict(x, verbose=0), pruned.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_custom_layers_three_ways():
    class Mixin(L.Dense, PrunableLayer):
        def get_prunable_weights(self):
            return [self.kernel, self.bias]

    class Duck(L.Dense):
        def get_prunable_weights(self):
            return [self.bias]

    class Registered(L.Dense):
        pass

    prunekit.register_prunable(Registered, ["kernel"])
    model = keras.Sequential([keras.Input((4,)), Mixin(3, name="m"), Duck(3, name="d"),
                              Registered(2, name="r")])
    pruned = prune_low_magnitude(model)
    assert [[tuple(m.shape) for m in w.masks] for w in pruned.layers] == [
        [(4, 3), (3,)], [(3,)], [(3, 2)]]


@pytest.mark.parametrize("tie,shapes", [(True, [(10, 4)]), (False, [(10, 4), (4, 10)])])
def test_reversible_embedding(tie, shapes):
    layer = L.ReversibleEmbedding(10, 4, tie_weights=tie)
    model = keras.Sequential([keras.Input((3,), dtype="int32"), layer])
    assert [tuple(m.shape) for m in prune_low_magnitude(model).layers[0].masks] == shapes


class Odd(L.Layer):
    def build(self, shape):
        self.w = self.add_weight(shape=shape[-1:])

    def call(self, x):
        return x * self.w


class Block(L.Layer):
    """A custom layer made of sub-layers and holding no weight of its own."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = L.Dense(4, name="inner")
        self.out = L.Dense(4, name="out")

    def call(self, x):
        return self.out(keras.ops.relu(self.inner(x)))


def nested_model(odd=True):
    inner = keras.Sequential([keras.Input((4,)), L.Dense(4, name="a")]
                             + ([Odd(name="odd")] if odd else []), name="inner_seq")
    inputs = keras.Input((4,))
    return keras.Model(inputs, L.Dense(2, name="head")(Block(name="block")(inner(inputs))))


def test_unknown_layer_error_names_the_path_and_changes_nothing():
    model = nested_model()
    before = [id(layer) for layer in model._flatten_layers()]
    with pytest.raises(ValueError) as error:
        prune_low_magnitude(model)
    message = str(error.value)
    assert "Layer 'inner_seq/odd' of class Odd is not supported" in message
    assert "get_prunable_weights()" in message and "register_prunable(Odd, ['kernel'])" in message
    assert "skip_unsupported=True" in message and "Nothing was changed" in message
    assert [id(layer) for layer in model._flatten_layers()] == before
    assert not list(prunekit.iter_wrappers(model))


def test_skip_unsupported_records_and_warns_once():
    model = nested_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pruned = prune_low_magnitude(model, skip_unsupported=True)
    messages = [str(w.message) for w in caught if "unsupported" in str(w.message)]
    assert len(messages) == 1 and "'inner_seq/odd' (Odd)" in messages[0]
    skipped = (SkippedLayer(
        "inner_seq/odd", "Odd",
        "its class Odd is neither a built-in layer prunekit knows nor a PrunableLayer"),)
    report = prunekit.pruning_report(pruned)
    assert report == prunekit.PruningReport(("inner_seq/a", "block", "head"), skipped)
    assert "'inner_seq/odd' (Odd): its class Odd" in str(report)
    assert pruned._prunekit_skipped == skipped  # the 0.1.0 attribute still reads
    assert "prunekit.pruning_report(model)" in messages[0]
    inner = pruned.get_layer("inner_seq")
    assert isinstance(inner.get_layer("odd"), Odd)
    assert isinstance(inner.layers[0], PruneLowMagnitude)
    x = np.ones((2, 4), "float32")
    pruned.compile("sgd", "mse")
    pruned.fit(x, np.zeros((2, 2)), verbose=0, callbacks=[prunekit.UpdatePruningStep()])


def test_custom_block_is_pruned_through_its_sub_layers():
    pruned = prune_low_magnitude(nested_model(odd=False))
    wrapper = next(w for w in prunekit.iter_wrappers(pruned) if w.layer.name == "block")
    assert [tuple(m.shape) for m in wrapper.masks] == [(4, 4), (4, 4)]
    assert [id(w) for w in wrapper.prunable_weights] == [
        id(wrapper.layer.inner.kernel), id(wrapper.layer.out.kernel)]
    assert prunekit.summary.weight_labels(wrapper) == ["inner/kernel", "out/kernel"]


def test_custom_block_with_its_own_weight_is_unsupported():
    class Scaled(Block):
        def build(self, shape):
            self.scale = self.add_weight(shape=(), name="scale")

        def call(self, x):
            return super().call(x) * self.scale

    model = keras.Sequential([keras.Input((4,)), Scaled(name="scaled")])
    with pytest.raises(ValueError, match="'scaled' of class Scaled.*weights of its own "
                                         r"\(scale\)"):
        prune_low_magnitude(model)


def test_single_unknown_layer():
    with pytest.raises(ValueError, match="Layer 'odd' of class Odd is not supported"):
        prune_low_magnitude(Odd(name="odd"))
    assert registry.is_supported(L.Rescaling(2.0))
