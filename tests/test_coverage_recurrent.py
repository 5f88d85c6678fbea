"""Recurrent layers, their cells, Bidirectional, TimeDistributed and ConvLSTM are pruned."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import tfmot_keep_count, to_numpy

import prunekit
from prunekit import ConstantSparsity, PrunableLayer, UpdatePruningStep, prune_low_magnitude

L = keras.layers


def cells(layer):
    """The cells holding a recurrent layer's weights, found without prunekit."""
    if isinstance(layer, L.Bidirectional):
        return cells(layer.forward_layer) + cells(layer.backward_layer)
    if isinstance(layer, L.TimeDistributed):
        return [layer.layer]
    cell = layer.cell
    return list(cell.cells) if isinstance(cell, L.StackedRNNCells) else [cell]


def check_wrapped(model, expected):
    """Every layer is wrapped with masks for exactly its cells' kernels, in order."""
    pruned = prune_low_magnitude(model)
    wrappers = {w.layer.name: w for w in prunekit.iter_wrappers(pruned) if w.masks}
    assert set(wrappers) == set(expected)
    for name, shapes in expected.items():
        wrapper = wrappers[name]
        assert [tuple(m.shape) for m in wrapper.masks] == shapes, name
        kernels = [w for cell in cells(wrapper.layer)
                   for w in (cell.kernel, getattr(cell, "recurrent_kernel", None)) if w is not None]
        assert [id(w) for w in wrapper.prunable_weights] == [id(w) for w in kernels], name


def test_sequence_layers():
    inputs = keras.Input((4, 5))
    branches = [
        L.LSTM(3, name="lstm"), L.GRU(3, name="gru"), L.SimpleRNN(3, name="simple"),
        L.RNN(L.LSTMCell(3), name="rnn_cell"),
        L.RNN(L.StackedRNNCells([L.LSTMCell(3), L.GRUCell(2)]), name="stacked"),
        L.Bidirectional(L.LSTM(3), name="bi"),
    ]
    outputs = [branch(inputs) for branch in branches]
    outputs.append(L.Flatten()(L.TimeDistributed(L.Dense(3), name="td")(inputs)))
    check_wrapped(keras.Model(inputs, L.Concatenate()(outputs)), {
        "lstm": [(5, 12), (3, 12)], "gru": [(5, 9), (3, 9)], "simple": [(5, 3), (3, 3)],
        "rnn_cell": [(5, 12), (3, 12)], "stacked": [(5, 12), (3, 12), (3, 6), (2, 6)],
        "bi": [(5, 12), (3, 12), (5, 12), (3, 12)], "td": [(5, 3)],
    })


def test_conv_lstm_layers():
    shapes = {"c1": (3, 6, 1), "c2": (2, 5, 5, 1), "c3": (2, 4, 4, 4, 1)}
    layers = {"c1": L.ConvLSTM1D(2, 3, name="c1"), "c2": L.ConvLSTM2D(2, 3, name="c2"),
              "c3": L.ConvLSTM3D(2, 3, name="c3")}
    inputs = [keras.Input(shape) for shape in shapes.values()]
    outputs = [L.Flatten()(layers[name](i)) for name, i in zip(shapes, inputs)]
    check_wrapped(keras.Model(inputs, L.Concatenate()(outputs)), {
        "c1": [(3, 1, 8), (3, 2, 8)], "c2": [(3, 3, 1, 8), (3, 3, 2, 8)],
        "c3": [(3, 3, 3, 1, 8), (3, 3, 3, 2, 8)],
    })


def test_fit_prunes_and_strips_containers():
    sequence, frames = keras.Input((4, 5)), keras.Input((2, 5, 5, 1))
    h = L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi")(sequence)
    h = L.RNN(L.StackedRNNCells([L.GRUCell(3), L.SimpleRNNCell(2)]), return_sequences=True,
              name="stacked")(h)
    h = L.Flatten()(L.TimeDistributed(L.Dense(2), name="td")(h))
    c = L.Flatten()(L.ConvLSTM2D(2, 3, name="conv_lstm")(frames))
    model = keras.Model([sequence, frames], L.Concatenate()([h, c]))
    pruned = prune_low_magnitude(model, ConstantSparsity(0.5, 0, frequency=1))
    pruned.compile("sgd", "mse")
    rng = np.random.default_rng(3)
    x = [rng.normal(size=(8, 4, 5)), rng.normal(size=(8, 2, 5, 5, 1))]
    pruned.fit(x, rng.normal(size=(8, 26)), batch_size=4, verbose=0,
               callbacks=[UpdatePruningStep()])
    wrappers = [w for w in prunekit.iter_wrappers(pruned) if w.masks]
    assert sorted(w.layer.name for w in wrappers) == ["bi", "conv_lstm", "stacked", "td"]
    for wrapper in wrappers:
        assert int(to_numpy(wrapper.pruning_step)) == 2
        for weight in wrapper.prunable_weights:  # exactly half of each weight, at epoch end
            values = to_numpy(weight)
            assert int((values != 0).sum()) == tfmot_keep_count(values.size, 0.5), weight.path
    stripped = prunekit.strip_pruning(pruned)
    def configs(m):  # the same layers (the clone renames the inputs)
        return sorted((layer.name, str(layer.get_config())) for layer in m.layers
                      if not isinstance(layer, L.InputLayer))

    assert configs(stripped) == configs(model)
    np.testing.assert_allclose(stripped.predict(x, verbose=0), pruned.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_masking_reaches_the_wrapped_rnn():
    inputs = keras.Input((None, 3))
    wrapper = prune_low_magnitude(L.Bidirectional(L.GRU(4)))
    model = keras.Model(inputs, wrapper(L.Masking()(inputs)))
    x = np.random.default_rng(2).normal(size=(2, 5, 3)).astype("float32")
    x[:, 3:] = 0.0  # padding, masked out
    np.testing.assert_allclose(model.predict(x, verbose=0), model.predict(x[:, :3], verbose=0),
                               rtol=1e-5, atol=1e-6)


class Cell(L.Layer):
    """A minimal RNN cell without get_prunable_weights."""

    def __init__(self, units=2, **kwargs):
        super().__init__(**kwargs)
        self.units = self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent = self.add_weight(shape=(self.units, self.units), name="recurrent")

    def call(self, x, states):
        h = keras.ops.tanh(x @ self.kernel + states[0] @ self.recurrent)
        return h, [h]


class PrunableCell(Cell, PrunableLayer):
    def get_prunable_weights(self):
        return [self.kernel]


def test_custom_cell_error_names_the_cell_and_both_fixes():
    model = keras.Sequential([keras.Input((3, 4)), L.RNN(Cell(name="my_cell"), name="rnn")])
    with pytest.raises(ValueError) as error:
        prune_low_magnitude(model)
    message = str(error.value)
    assert "'rnn/my_cell'" in message and "of class Cell" in message
    assert "get_prunable_weights()" in message and "register_prunable(Cell" in message
    assert "skip_unsupported=True" in message


def test_custom_cell_with_prunable_weights():
    model = keras.Sequential([keras.Input((3, 4)), L.RNN(PrunableCell(), name="rnn")])
    wrapper = prune_low_magnitude(model).layers[0]
    assert [tuple(m.shape) for m in wrapper.masks] == [(4, 2)]


def test_registered_cell():
    class OtherCell(Cell):
        pass

    prunekit.register_prunable(OtherCell, ["kernel", "recurrent"])
    model = keras.Sequential([keras.Input((3, 4)), L.RNN(OtherCell(), name="rnn")])
    wrapper = prune_low_magnitude(model).layers[0]
    assert [tuple(m.shape) for m in wrapper.masks] == [(4, 2), (2, 2)]
