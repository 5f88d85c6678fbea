"""Dependency groups on hand-built graphs, with the shapes after shrinking worked out by hand."""

import keras
import numpy as np
import pytest
from keras import layers, ops

from prunekit.structured import DependencyGraph, PassThrough, register_shrink_rule, shrink
from prunekit.structured.pruning import apply_removal, zero_units

# Weights only need to be random: NumPy draws them (fast on every backend).
pytestmark = pytest.mark.usefixtures("numpy_initializers")


def _units(graph):
    return {tuple(g.layers): (len(g.units), len(g.prunable)) for g in graph.groups}


@pytest.mark.parametrize("use_layer", [True, False])
def test_residual_add_couples_branches(use_layer):
    i = keras.Input((8, 8, 3))
    a = layers.Conv2D(8, 3, padding="same", name="a")(i)
    b = layers.Conv2D(8, 1, name="b")(i)
    s = layers.Add()([a, b]) if use_layer else a + b
    s = layers.ReLU()(s)
    out = layers.Dense(2, name="out")(layers.GlobalAveragePooling2D()(s))
    model = keras.Model(i, out)
    graph = DependencyGraph(model)
    assert _units(graph) == {("a", "b"): (8, 8), ("out",): (2, 0)}
    small, report = shrink(model, sparsity=0.5)
    assert small.get_layer("a").kernel.shape == (3, 3, 3, 4)
    assert small.get_layer("b").kernel.shape == (1, 1, 3, 4)
    assert small.get_layer("out").kernel.shape == (4, 2)
    # Both branches lose the same channels: kept kernel columns match in the two convs.
    kept = [c for c in range(8) if any(np.allclose(
        small.get_layer("a").kernel.numpy()[..., j], model.get_layer("a").kernel.numpy()[..., c])
        for j in range(4))]
    kept_b = [c for c in range(8) if any(np.allclose(
        small.get_layer("b").kernel.numpy()[..., j], model.get_layer("b").kernel.numpy()[..., c])
        for j in range(4))]
    assert kept == kept_b and len(kept) == 4


@pytest.mark.parametrize("use_layer", [True, False])
def test_concatenate_slices_the_right_part(use_layer):
    i = keras.Input((6,))
    a = layers.Dense(4, name="a")(i)
    b = layers.Dense(6, name="b")(i)
    c = layers.Concatenate()([a, b]) if use_layer else ops.concatenate([a, b], axis=-1)
    out = layers.Dense(3, name="out")(c)
    model = keras.Model(i, out)
    graph = DependencyGraph(model)
    assert _units(graph) == {("a",): (4, 4), ("b",): (6, 6), ("out",): (3, 0)}
    small, _ = shrink(model, sparsity=0.5)
    # 2 of a's 4 and 3 of b's 6 stay: the consumer has 2 + 3 input rows.
    assert small.get_layer("out").kernel.shape == (5, 3)
    np.testing.assert_allclose(small.predict(np.ones((2, 6)), verbose=0).shape, (2, 3))


def test_flatten_of_a_conv_map_removes_every_position():
    i = keras.Input((3, 2, 1))
    c = layers.Conv2D(4, 1, name="c")(i)
    out = layers.Dense(5, name="out")(layers.Flatten()(c))
    model = keras.Model(i, out)
    small, _ = shrink(model, sparsity=0.5)
    # 3 * 2 positions * 2 channels kept = 12 input rows (of 24).
    assert small.get_layer("out").kernel.shape == (12, 5)
    x = np.random.default_rng(0).normal(size=(2, 3, 2, 1)).astype("float32")
    masked = _masked_like(model, small)
    np.testing.assert_allclose(small.predict(x, verbose=0), masked.predict(x, verbose=0),
                               atol=1e-5)


def _masked_like(model, small):
    """The model with the units shrink removed zeroed (zero_units must then find them)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    graph = DependencyGraph(copy)
    from prunekit.structured.pruning import select_units
    from prunekit.structured.importance import L2Importance
    removed = select_units(graph, 0.5, L2Importance())
    apply_removal(graph, removed)
    assert zero_units(graph) == removed
    return copy


def test_batchnorm_and_depthwise_pass_channels():
    i = keras.Input((6, 6, 2))
    x = layers.Conv2D(6, 1, name="expand")(i)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    out = layers.Conv2D(4, 1, name="project")(x)
    model = keras.Model(i, out)
    graph = DependencyGraph(model)
    assert _units(graph) == {("expand",): (6, 6), ("project",): (4, 0)}
    small, _ = shrink(model, sparsity=0.5)
    assert small.get_layer("expand").kernel.shape == (1, 1, 2, 3)
    assert small.get_layer("bn").gamma.shape == (3,)
    assert small.get_layer("dw").kernel.shape == (3, 3, 3, 2)
    assert small.get_layer("bn2").moving_mean.shape == (6,)
    assert small.get_layer("project").kernel.shape == (1, 1, 6, 4)


def test_attention_prunes_whole_heads():
    i = keras.Input((5, 8))
    h = layers.Dense(12, name="h")(i)
    att = layers.MultiHeadAttention(4, 3, name="mha")(h, h)
    model = keras.Model(i, att)
    graph = DependencyGraph(model)
    assert _units(graph) == {("h",): (12, 12), ("mha",): (4, 4)}
    assert [g.granularity for g in graph.groups] == ["output_channel", "head"]
    small, report = shrink(model, sparsity=0.5)
    mha = small.get_layer("mha")
    assert mha.num_heads == 2
    assert tuple(mha.query_dense.kernel.shape) == (6, 2, 3)
    assert tuple(mha.output_dense.kernel.shape) == (2, 3, 12)  # output width unchanged
    assert small.output.shape == (None, 5, 12)


def test_outputs_layernorm_and_unknown_layers_stay_whole():
    class Custom(layers.Layer):
        def call(self, x):
            return x * 3.0

    i = keras.Input((4,))
    a = layers.Dense(6, name="a")(i)
    b = layers.Dense(6, name="b")(layers.LayerNormalization(name="ln")(a))
    c = layers.Dense(6, name="c")(Custom(name="custom")(b))
    model = keras.Model(i, layers.Dense(2, name="out")(c))
    graph = DependencyGraph(model)
    assert _units(graph) == {("a",): (6, 0), ("b",): (6, 0), ("c",): (6, 6), ("out",): (2, 0)}
    names = dict(graph.left_whole)
    assert "normalizes over channels" in names["ln"]
    assert "register_shrink_rule" in names["custom"]
    register_shrink_rule(Custom, PassThrough())
    try:
        assert _units(DependencyGraph(model))[("b",)] == (6, 6)
    finally:
        from prunekit.structured import rules
        rules.RULES.pop(Custom)


def test_recurrent_units_couple_gates():
    i = keras.Input((3, 4))
    x = layers.LSTM(6, return_sequences=True, name="lstm")(i)
    x = layers.GRU(4, name="gru")(x)
    model = keras.Model(i, layers.Dense(1, name="out")(x))
    small, _ = shrink(model, sparsity=0.5)
    assert small.get_layer("lstm").cell.kernel.shape == (4, 12)
    assert small.get_layer("lstm").cell.recurrent_kernel.shape == (3, 12)
    assert small.get_layer("gru").cell.kernel.shape == (3, 6)
    assert small.get_layer("gru").cell.recurrent_kernel.shape == (2, 6)


def test_embedding_feeding_dense():
    i = keras.Input((5,), dtype="int32")
    e = layers.Embedding(10, 8, name="emb")(i)
    model = keras.Model(i, layers.Dense(2, name="out")(layers.Dense(4, name="d")(e)))
    small, _ = shrink(model, sparsity=0.25)
    assert small.get_layer("emb").embeddings.shape == (10, 6)
    assert small.get_layer("d").kernel.shape == (6, 3)


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.ones((1, 3)))
    with pytest.raises(ValueError, match="Functional or Sequential.*keras.Model\\(inputs"):
        DependencyGraph(net)


def test_separable_transpose_and_conv1d_shapes_and_predictions():
    keras.utils.set_random_seed(0)
    i = keras.Input((6, 6, 2))
    x = layers.SeparableConv2D(8, 3, padding="same", depth_multiplier=2, name="sep")(i)
    x = layers.Conv2DTranspose(6, 2, strides=2, name="up")(x)
    x = layers.Reshape((144, 6))(x)  # keeps the channel axis: channels pass
    x = layers.Conv1D(4, 3, name="c1d")(x)
    model = keras.Model(i, layers.Dense(2, name="out")(layers.GlobalMaxPooling1D()(x)))
    small, _ = shrink(model, sparsity=0.5)
    assert small.get_layer("sep").pointwise_kernel.shape == (1, 1, 4, 4)
    assert small.get_layer("up").kernel.shape == (2, 2, 3, 4)  # (k, k, filters, in)
    assert small.get_layer("c1d").kernel.shape == (3, 3, 2)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype("float32")
    masked = _masked_like(model, small)
    np.testing.assert_allclose(small.predict(x, verbose=0), masked.predict(x, verbose=0),
                               atol=1e-5)
