"""PruningSummaries: tfmot's tags and cadence, read back with TensorBoard's own reader."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

import prunekit
from prunekit import ConstantSparsity, PruningSummaries, UpdatePruningStep, prune_low_magnitude

L = keras.layers


def read_scalars(directory):
    """{tag: [(step, value), ...]} from the event files in ``directory``."""
    events = EventAccumulator(directory, size_guidance={"tensors": 0})
    events.Reload()
    result = {}
    for tag in events.Tags()["tensors"]:
        result[tag] = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
                       for e in events.Tensors(tag)]
    return result


def fit(model, log_dir, batches=10, epochs=3, **summary_kwargs):
    rng = np.random.default_rng(0)
    model.compile(keras.optimizers.SGD(0.0), "mse")  # weights change only through masking
    x, y = rng.normal(size=(batches * 2, 6)), rng.normal(size=(batches * 2, 2))
    model.fit(x, y, batch_size=2, epochs=epochs, verbose=0, validation_data=(x[:4], y[:4]),
              callbacks=[UpdatePruningStep(), PruningSummaries(log_dir, **summary_kwargs)])


def dense_model():
    return keras.Sequential([keras.Input((6,)), L.Dense(4, name="d1"),
                             L.BatchNormalization(name="bn"), L.Dense(2, name="d2")])


def test_tags_steps_and_values_at_epoch_begin(tmp_path):
    log_dir = str(tmp_path)
    base = dense_model()
    kernels = {n: np.abs(keras.ops.convert_to_numpy(base.get_layer(n).kernel)).ravel()
               for n in ("d1", "d2")}
    pruned = prune_low_magnitude(base, ConstantSparsity(0.5, 0, frequency=1))
    fit(pruned, log_dir)
    scalars = read_scalars(os.path.join(log_dir, "metrics"))
    expected = {f"prune_low_magnitude_{n}/kernel/{kind}"
                for n in ("d1", "d2") for kind in ("sparsity", "threshold")}
    assert set(scalars) == expected | {"model/sparsity"}  # nothing for the BatchNormalization
    for tag, points in scalars.items():
        assert [step for step, _ in points] == [0, 10, 20], tag  # optimizer.iterations
    # Epoch 1 begins before any pruning; later epochs see exactly half of each kernel masked
    # (24 and 8 weights: keep counts 12 and 4, so the threshold is the 12th/4th largest |w|).
    for name, keep in (("d1", 12), ("d2", 4)):
        values = [v for _, v in scalars[f"prune_low_magnitude_{name}/kernel/sparsity"]]
        assert values == [0.0, 0.5, 0.5]
        thresholds = [v for _, v in scalars[f"prune_low_magnitude_{name}/kernel/threshold"]]
        expected = float(np.sort(kernels[name])[::-1][keep - 1])
        assert thresholds == pytest.approx([0.0, expected, expected], rel=1e-6)
    assert [v for _, v in scalars["model/sparsity"]] == [0.0, 0.5, 0.5]
    train = read_scalars(os.path.join(log_dir, "train"))
    assert [step for step, _ in train["epoch_loss"]] == [0, 1, 2]
    assert "epoch_loss" in read_scalars(os.path.join(log_dir, "validation"))


def test_model_sparsity_weights_layers_by_size(tmp_path):
    log_dir = str(tmp_path)
    d1 = prune_low_magnitude(L.Dense(4, name="d1"), ConstantSparsity(0.75, 0, frequency=1))
    model = keras.Sequential([keras.Input((6,)), d1, L.Dense(2, name="plain")])
    fit(model, log_dir, batches=2, epochs=2)
    scalars = read_scalars(os.path.join(log_dir, "metrics"))
    assert set(scalars) == {"prune_low_magnitude_d1/kernel/sparsity",
                            "prune_low_magnitude_d1/kernel/threshold", "model/sparsity"}
    # 24 weights, keep round(24 * 0.25) = 6: sparsity 18/24.
    assert [v for _, v in scalars["model/sparsity"]] == [0.0, 0.75]


def test_every_n_batches(tmp_path):
    log_dir = str(tmp_path)
    pruned = prune_low_magnitude(dense_model(), ConstantSparsity(0.5, 0, frequency=1))
    fit(pruned, log_dir, batches=4, epochs=2, update_freq=3)
    steps = [s for s, _ in read_scalars(os.path.join(log_dir, "metrics"))["model/sparsity"]]
    # Epoch begins at iterations 0 and 4; batches 3 and 6 (counted over the run) end at 3, 6.
    assert sorted(steps) == [0, 3, 4, 6]


def test_weight_names_are_unique_inside_containers(tmp_path):
    log_dir = str(tmp_path)
    inputs = keras.Input((3, 6))
    outputs = prune_low_magnitude(L.Bidirectional(L.LSTM(2), name="bi"),
                                  ConstantSparsity(0.5, 0, frequency=1))(inputs)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    model.compile("sgd", "mse")
    model.fit(rng.normal(size=(4, 3, 6)), rng.normal(size=(4, 4)), epochs=2, verbose=0,
              callbacks=[UpdatePruningStep(), PruningSummaries(log_dir)])
    tags = set(read_scalars(os.path.join(log_dir, "metrics")))
    sparsity_tags = sorted(t for t in tags if t.endswith("/sparsity") and t.startswith("prune"))
    assert len(sparsity_tags) == 4
    assert all(t.startswith("prune_low_magnitude_bi/") for t in sparsity_tags)
    assert {t.split("/")[-2] for t in sparsity_tags} == {"kernel", "recurrent_kernel"}
    assert any("forward" in t for t in sparsity_tags) and any("backward" in t for t in tags)


def test_log_dir_validation():
    for bad in ("", None, 3):
        with pytest.raises(ValueError, match="non-empty string"):
            PruningSummaries(bad)
    with pytest.raises(ValueError, match="update_freq"):
        PruningSummaries("logs", update_freq=0)


def test_tfmot_namespace():
    import prunekit as tfmot

    assert tfmot.sparsity.keras.PruningSummaries is prunekit.PruningSummaries
