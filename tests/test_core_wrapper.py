"""The wrapper and the model transforms (tfmot-behaviour.md §4, §5, §7, §8; §10.8, .14, .15)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from conftest import to_numpy

import prunekit
from prunekit import ConstantSparsity, PolynomialDecay, PruneLowMagnitude, prune_low_magnitude


class Opaque(keras.layers.Layer):
    """A custom layer with a weight but no get_prunable_weights: unsupported."""

    def build(self, shape):
        self.w = self.add_weight(shape=shape[-1:])

    def call(self, x):
        return x * self.w


def dense_model(*units, inputs=10):
    return keras.Sequential([keras.Input((inputs,))] + [keras.layers.Dense(u) for u in units])


def test_wrapper_variables():
    wrapper = prune_low_magnitude(keras.layers.Dense(3, name="d"))
    model = keras.Sequential([keras.Input((4,)), wrapper])
    assert wrapper.name == "prune_low_magnitude_d"
    shapes = {w.name: tuple(w.shape) for w in wrapper.weights}
    assert shapes == {"kernel": (4, 3), "bias": (3,), "mask": (4, 3), "threshold": (),
                      "pruning_step": ()}
    np.testing.assert_array_equal(to_numpy(wrapper.masks[0]), np.ones((4, 3)))
    assert float(to_numpy(wrapper.thresholds[0])) == 0.0
    assert int(to_numpy(wrapper.pruning_step)) == -1
    assert len(wrapper.trainable_weights) == 2
    assert len(wrapper.get_weights()) == 2
    assert len(model.get_weights()) == 5


def test_parameter_counts_match_the_article():
    base = keras.Sequential([keras.Input((10,)), keras.layers.Dense(128, activation="relu"),
                             keras.layers.Dense(1, activation="relu")])
    whole = prune_low_magnitude(base)
    counts = lambda ws: sum(int(np.prod(w.shape)) for w in ws)  # noqa: E731
    assert (counts(whole.weights), counts(whole.trainable_weights),
            counts(whole.non_trainable_weights)) == (2949, 1537, 1412)
    first = keras.Sequential([
        prune_low_magnitude(keras.layers.Dense(128, activation="relu", input_shape=(10,))),
        keras.layers.Dense(1, activation="relu")])
    assert (counts(first.weights), counts(first.non_trainable_weights)) == (2819, 1282)


@pytest.mark.parametrize(
    "layer,kwargs,error,match",
    [
        (keras.layers.Dense(2), {"block_pooling_type": "MIN"}, ValueError, "Unsupported pooling type 'MIN'"),
        (keras.layers.Dense(2), {"block_size": (0, 2)}, ValueError, "block_size"),
        (keras.layers.Dense(2), {"sparsity_m_by_n": (4, 4)}, ValueError, "1 <= m < n"),
        (keras.layers.Dense(2), {"sparsity_m_by_n": (2, 4.0)}, ValueError, "including element 4.0"),
        (keras.layers.Dense(2), {"sparsity_m_by_n": 2}, ValueError, "tuple/list of 2 integers"),
        (keras.layers.Dense(2), {"pruning_schedule": 0.5}, TypeError, "PruningSchedule"),
        (object(), {}, ValueError, "can only prune an object"),
        (Opaque(), {}, ValueError, "not supported for pruning"),
    ],
)
def test_bad_arguments(layer, kwargs, error, match):
    with pytest.raises(error, match=match):
        prune_low_magnitude(layer, **kwargs)


def test_subclass_of_registered_layer_needs_registration():
    class MyDense(keras.layers.Dense):
        pass

    with pytest.raises(ValueError, match="register_prunable"):
        prune_low_magnitude(MyDense(2))
    prunekit.register_prunable(MyDense, ["kernel"])
    assert isinstance(prune_low_magnitude(MyDense(2)), PruneLowMagnitude)


def test_custom_prunable_layer_duck_typed():
    class Scale(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=shape[-1:], initializer="ones")

        def call(self, x):
            return x * self.w

        def get_prunable_weights(self):
            return [self.w]

    wrapper = prune_low_magnitude(Scale())
    keras.Sequential([keras.Input((6,)), wrapper])
    assert [tuple(m.shape) for m in wrapper.masks] == [(6,)]


def test_block_sparsity_on_conv_fails_at_build():
    wrapper = prune_low_magnitude(keras.layers.Conv2D(2, 3), block_size=(2, 2))
    with pytest.raises(ValueError, match="2-dimensional"):
        keras.Sequential([keras.Input((8, 8, 1)), wrapper])


@pytest.mark.parametrize(
    "layer,input_shape,mask_shapes",
    [
        (keras.layers.Dense(3), (4,), [(4, 3)]),
        (keras.layers.EinsumDense("ab,bc->ac", output_shape=3), (4,), [(4, 3)]),
        (keras.layers.Conv1D(2, 3), (8, 1), [(3, 1, 2)]),
        (keras.layers.Conv2D(2, 3), (8, 8, 1), [(3, 3, 1, 2)]),
        (keras.layers.Conv3D(2, 3), (5, 5, 5, 1), [(3, 3, 3, 1, 2)]),
        (keras.layers.Conv1DTranspose(2, 3), (8, 1), [(3, 2, 1)]),
        (keras.layers.Conv2DTranspose(2, 3), (8, 8, 1), [(3, 3, 2, 1)]),
        (keras.layers.Conv3DTranspose(2, 3), (5, 5, 5, 1), [(3, 3, 3, 2, 1)]),
        (keras.layers.SeparableConv1D(2, 3), (8, 3), [(1, 3, 2)]),
        (keras.layers.SeparableConv2D(2, 3), (8, 8, 3), [(1, 1, 3, 2)]),
        (keras.layers.DepthwiseConv1D(3), (8, 3), [(3, 3, 1)]),
        (keras.layers.DepthwiseConv2D(3), (8, 8, 3), [(3, 3, 3, 1)]),
        (keras.layers.Embedding(20, 4), (5,), [(20, 4)]),
        (keras.layers.BatchNormalization(), (4,), []),
        (keras.layers.Flatten(), (2, 2), []),
        (keras.layers.Dropout(0.1), (4,), []),
    ],
)
def test_layer_coverage_trains_and_strips(layer, input_shape, mask_shapes):
    dtype = "int32" if isinstance(layer, keras.layers.Embedding) else "float32"
    model = keras.Sequential([keras.Input(input_shape, dtype=dtype), layer])
    pruned = prune_low_magnitude(model, ConstantSparsity(0.5, 0, frequency=1))
    wrapper = pruned.layers[0]
    assert [tuple(m.shape) for m in wrapper.masks] == mask_shapes
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 20, (8,) + input_shape) if dtype == "int32"
         else rng.normal(size=(8,) + input_shape)).astype(dtype)
    y = np.asarray(model.predict(x, verbose=0))
    pruned.compile("sgd", "mse")
    pruned.fit(x, np.zeros_like(y), verbose=0, epochs=1,
               callbacks=[prunekit.UpdatePruningStep()])
    for weight in wrapper.prunable_weights:
        values = to_numpy(weight)
        assert (values == 0).mean() == pytest.approx(0.5, abs=0.5 / values.size + 1e-9)
    stripped = prunekit.strip_pruning(pruned)
    assert not any(isinstance(layer, PruneLowMagnitude) for layer in stripped.layers)
    np.testing.assert_array_equal(stripped.predict(x, verbose=0), pruned.predict(x, verbose=0))


def test_model_transforms_layer_counts_and_sharing():
    seq = dense_model(8, 5)
    pruned = prune_low_magnitude(seq)
    assert [type(layer) for layer in pruned.layers] == [PruneLowMagnitude] * 2
    assert getattr(pruned, "optimizer", None) is None  # must be compiled again
    assert pruned.layers[0].layer is seq.layers[0]  # weights shared with the original
    x = np.random.default_rng(0).normal(size=(4, 10)).astype("float32")
    np.testing.assert_array_equal(pruned.predict(x, verbose=0), seq.predict(x, verbose=0))

    inputs = keras.Input((10,))
    a, b = keras.layers.Dense(4)(inputs), keras.layers.Dense(4)(inputs)
    graph = keras.Model(inputs, keras.layers.Add()([a, b]))
    assert sum(isinstance(x, PruneLowMagnitude) for x in prune_low_magnitude(graph).layers) == 3

    shared = keras.layers.Dense(10)
    reuse = keras.Model(inputs, shared(shared(inputs)))
    wrapped = [x for x in prune_low_magnitude(reuse).layers if isinstance(x, PruneLowMagnitude)]
    assert len(wrapped) == 1

    nested = keras.Sequential([keras.Input((10,)), dense_model(4), keras.layers.Dense(2)])
    pruned_nested = prune_low_magnitude(nested)
    assert len(list(prunekit.iter_wrappers(pruned_nested))) == 2
    already = prune_low_magnitude(keras.Sequential([keras.Input((10,)), pruned.layers[0]]))
    assert already.layers[0] is pruned.layers[0]


def test_list_of_layers():
    wrapped = prune_low_magnitude([keras.layers.Dense(2), keras.layers.Dense(3)])
    assert [type(w) for w in wrapped] == [PruneLowMagnitude] * 2


def test_unsupported_layer_leaves_model_untouched():
    class Custom(keras.layers.Layer):
        def call(self, x):
            return x

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), Custom(name="odd")])
    before = [id(layer) for layer in model.layers]
    with pytest.raises(ValueError, match="'odd'"):
        prune_low_magnitude(model)
    assert [id(layer) for layer in model.layers] == before
    assert not any(isinstance(layer, PruneLowMagnitude) for layer in model.layers)


def test_strip_pruning_restores_architecture():
    base = keras.Sequential([keras.Input((10,)), keras.layers.Dense(8, name="a"),
                             keras.layers.BatchNormalization(name="bn"),
                             keras.layers.Dense(2, name="b")])
    pruned = prune_low_magnitude(base)
    assert len(pruned.weights) == 15
    stripped = prunekit.strip_pruning(pruned)
    assert stripped.get_config()["layers"] == base.get_config()["layers"]
    assert len(stripped.weights) == 8
    with pytest.raises(ValueError, match="keras.Model"):
        prunekit.strip_pruning(pruned.layers[0])


def test_config_round_trip_keeps_m_by_n():
    wrapper = prune_low_magnitude(keras.layers.Dense(4), PolynomialDecay(0.1, 0.6, 3, 30),
                                  sparsity_m_by_n=(2, 4))
    config = json.loads(json.dumps(wrapper.get_config()))
    assert config["criterion"]["class_name"] == "MByNCriterion"
    assert config["criterion"]["config"] == {"m": 2, "n": 4}
    again = PruneLowMagnitude.from_config(config)
    assert again.sparsity_m_by_n == (2, 4)
    assert again.pruning_schedule == wrapper.pruning_schedule
    assert again.name == wrapper.name


def test_tfmot_namespace():
    import prunekit as tfmot

    k = tfmot.sparsity.keras
    for name in ("prune_low_magnitude", "strip_pruning", "prune_scope", "PruningSchedule",
                 "ConstantSparsity", "PolynomialDecay", "UpdatePruningStep", "PruningSummaries",
                 "PrunableLayer"):
        assert getattr(k, name) is getattr(prunekit, name)
    with k.prune_scope():
        pass


def test_pruning_summaries_needs_log_dir():
    for bad in ("", None, object()):
        with pytest.raises(ValueError, match="non-empty string"):
            prunekit.PruningSummaries(log_dir=bad)
