"""pruning_summary: the per-weight table of a pruned or stripped model."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import prunekit
from prunekit import ConstantSparsity, UpdatePruningStep, prune_low_magnitude, pruning_summary

L = keras.layers


def base_model():
    inner = keras.Sequential([keras.Input((4,)), L.Dense(3, name="a")], name="inner_seq")
    inputs = keras.Input((4,))
    x = L.BatchNormalization(name="bn")(inner(inputs))
    return keras.Model(inputs, L.Dense(2, name="b")(x), name="net")


def kth_largest(values, k):
    return float(np.sort(np.abs(values).ravel())[::-1][k - 1])


def trained(model, scope="layer"):
    pruned = prune_low_magnitude(model, ConstantSparsity(0.5, 0, frequency=1),
                                 pruning_scope=scope)
    pruned.compile(keras.optimizers.SGD(0.0), "mse")  # weights change only through masks
    rng = np.random.default_rng(0)
    pruned.fit(rng.normal(size=(4, 4)), rng.normal(size=(4, 2)), verbose=0,
               callbacks=[UpdatePruningStep()])
    return pruned


def test_rows_of_a_pruned_model():
    model = base_model()
    a, b = (keras.ops.convert_to_numpy(model.get_layer(n).kernel) if n == "b" else
            keras.ops.convert_to_numpy(model.get_layer("inner_seq").get_layer(n).kernel)
            for n in ("a", "b"))
    printed = []
    rows = pruning_summary(trained(model), print_fn=printed.append)
    schedule = "ConstantSparsity(target_sparsity=0.5, begin_step=0, end_step=-1, frequency=1)"
    assert rows == [
        {"path": "inner_seq/prune_low_magnitude_a", "weight": "kernel", "shape": (4, 3),
         "parameters": 12, "zeros": 6, "sparsity": 0.5,
         "threshold": pytest.approx(kth_largest(a, 6)), "schedule": schedule},
        {"path": "prune_low_magnitude_b", "weight": "kernel", "shape": (3, 2),
         "parameters": 6, "zeros": 3, "sparsity": 0.5,
         "threshold": pytest.approx(kth_largest(b, 3)), "schedule": schedule},
    ]
    (text,) = printed
    lines = text.splitlines()
    assert lines[0] == 'Pruning summary: "net"'
    assert lines[2].split() == ["Layer", "(path)", "Weight", "Shape", "Params", "Zeros",
                                "Sparsity", "Threshold", "Schedule"]
    assert lines[4].split()[:6] == ["inner_seq/prune_low_magnitude_a", "kernel", "(4,", "3)",
                                    "12", "6"]
    assert " Prunable parameters: 18" in lines and " Zeros: 9" in lines
    assert " Sparsity: 50.00%" in lines


def test_stripped_and_plain_models_count_zeros_in_weights(capsys):
    pruned = trained(base_model())
    rows = pruning_summary(prunekit.strip_pruning(pruned))
    assert [(r["path"], r["zeros"], r["threshold"], r["schedule"]) for r in rows] == [
        ("inner_seq/a", 6, None, None), ("b", 3, None, None)]
    assert "Sparsity: 50.00%" in capsys.readouterr().out
    plain = pruning_summary(base_model(), print_fn=lambda text: None)
    assert [(r["parameters"], r["zeros"]) for r in plain] == [(12, 0), (6, 0)]


def test_container_weights_are_labelled():
    inputs = keras.Input((3, 4))
    x = L.Bidirectional(L.LSTM(2), name="bi")(inputs)
    q = L.MultiHeadAttention(1, 2, name="mha")(inputs, inputs)
    model = keras.Model(inputs, [x, q])
    rows = pruning_summary(prune_low_magnitude(model), print_fn=lambda text: None)
    labels = [(r["path"], r["weight"]) for r in rows]
    assert labels == [
        ("prune_low_magnitude_bi", "forward_lstm/lstm_cell/kernel"),
        ("prune_low_magnitude_bi", "forward_lstm/lstm_cell/recurrent_kernel"),
        ("prune_low_magnitude_bi", "backward_lstm/lstm_cell/kernel"),
        ("prune_low_magnitude_bi", "backward_lstm/lstm_cell/recurrent_kernel"),
        ("prune_low_magnitude_mha", "query/kernel"), ("prune_low_magnitude_mha", "key/kernel"),
        ("prune_low_magnitude_mha", "value/kernel"),
        ("prune_low_magnitude_mha", "attention_output/kernel"),
    ]
    assert [r["shape"] for r in rows[:2]] == [(4, 8), (2, 8)]


def test_global_scope_is_shown():
    rows = pruning_summary(trained(base_model(), scope="global"), print_fn=lambda text: None)
    assert all(r["schedule"].endswith("[global]") for r in rows)
    assert sum(r["zeros"] for r in rows) == 9  # keep round(18 * 0.5) over both kernels


def test_subclassed_model_rows():
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.body = L.Dense(3, name="body")
            self.top = L.Dense(1, name="top")

        def call(self, x, training=None):
            return self.top(self.body(x, training=training), training=training)

    model = Net()
    model(np.ones((1, 5)))
    rows = pruning_summary(prune_low_magnitude(model), print_fn=lambda text: None)
    assert [(r["path"], r["parameters"]) for r in rows] == [
        ("prune_low_magnitude_body", 15), ("prune_low_magnitude_top", 3)]


def test_pruning_report_of_plain_pruned_and_stripped_models():
    model = base_model()
    assert prunekit.pruning_report(model) == prunekit.PruningReport((), ())
    pruned = prune_low_magnitude(model)
    # The BatchNormalization is wrapped too (tfmot's rule) but has nothing to prune.
    assert prunekit.pruning_report(pruned).pruned == ("inner_seq/a", "b")
    assert prunekit.pruning_report(prunekit.strip_pruning(pruned)) == prunekit.PruningReport()
    with pytest.raises(TypeError, match="keras.Model. Received: model of type Dense"):
        prunekit.pruning_report(L.Dense(2))
