"""Lean masks: one byte per pruned weight in memory and in .keras files; old float masks load."""

from __future__ import annotations

import os
import zipfile

import h5py
import keras
import numpy as np
import pytest
from conftest import tfmot_keep_count, to_numpy

import prunekit
from prunekit import ConstantSparsity, UpdatePruningStep, prune_low_magnitude

L = keras.layers
DATA = os.path.join(os.path.dirname(__file__), "data")


def _trained_pruned_model():
    model = keras.Sequential([keras.Input((12,)), L.Dense(10, name="a"), L.Dense(3, name="b")])
    pruned = prune_low_magnitude(model, ConstantSparsity(0.75, 0, frequency=1))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 12)).astype("float32")
    pruned.compile(keras.optimizers.SGD(0.01), "mse")
    pruned.fit(x, rng.normal(size=(16, 3)), batch_size=8, verbose=0,
               callbacks=[UpdatePruningStep()])
    return pruned, x


def _numpy_forward(pruned, x):
    """The masked MLP computed in NumPy from the variables: x @ (w * mask) + b, twice."""
    for wrapper in pruned.layers:
        kernel = to_numpy(wrapper.layer.kernel) * to_numpy(wrapper.masks[0]).astype("float32")
        x = x @ kernel + to_numpy(wrapper.layer.bias)
    return x


def _wrapper_masks_in_file(path):
    """The masks stored in a .keras file, in the model's layer order, read with h5py.

    Keras stores a wrapper's own variables as ``layers/prune_low_magnitude[_<n>]/vars/<i>``
    (the n-th wrapper, named after the class): mask (0), threshold (1), pruning_step (2).
    """
    def order(key):
        return int(key.rsplit("_", 1)[1]) if key[-1].isdigit() else 0

    with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as weights:
        with h5py.File(weights, "r") as f:
            keys = sorted((k for k in f["layers"] if k.startswith("prune_low_magnitude")),
                          key=order)
            return [np.asarray(f["layers"][k]["vars/0"]) for k in keys]


def test_masks_take_one_byte_per_weight_in_memory():
    pruned, _ = _trained_pruned_model()
    for wrapper in pruned.layers:
        mask = wrapper.masks[0]
        assert mask.dtype == "uint8"
        values = to_numpy(mask)
        assert values.dtype == np.uint8 and values.nbytes == values.size
        assert values.nbytes * 4 == to_numpy(wrapper.layer.kernel).nbytes
        assert set(np.unique(values)) <= {0, 1}
    # The keep counts of tfmot's rule: 120 -> 30, 30 -> 8 (7.5 rounds half to even).
    assert [int(to_numpy(w.masks[0]).sum()) for w in pruned.layers] == [
        tfmot_keep_count(120, 0.75), tfmot_keep_count(30, 0.75)] == [30, 8]


def test_predictions_are_the_masked_weights_forward_pass():
    pruned, x = _trained_pruned_model()
    np.testing.assert_allclose(pruned.predict(x, verbose=0), _numpy_forward(pruned, x),
                               rtol=1e-5, atol=1e-5)


def test_saved_file_holds_uint8_masks_and_loads_identically(tmp_path):
    pruned, x = _trained_pruned_model()
    path = os.path.join(tmp_path, "lean.keras")
    pruned.save(path)
    stored = _wrapper_masks_in_file(path)
    assert [(v.dtype, v.shape) for v in stored] == [(np.uint8, (12, 10)), (np.uint8, (10, 3))]
    loaded = keras.saving.load_model(path)
    for before, after, in_file in zip(pruned.layers, loaded.layers, stored):
        assert after.masks[0].dtype == "uint8"
        np.testing.assert_array_equal(to_numpy(after.masks[0]), to_numpy(before.masks[0]))
        np.testing.assert_array_equal(in_file, to_numpy(before.masks[0]))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), pruned.predict(x, verbose=0))


@pytest.mark.parametrize("name", ["prunekit-0.1.0.keras", "prunekit-0.1.0-schedules.keras"])
def test_float_masks_of_old_files_load_as_uint8(name, tmp_path):
    path = os.path.join(DATA, name)
    old = _wrapper_masks_in_file(path)
    assert old and all(v.dtype == np.float32 for v in old)  # Written with float masks.
    custom = {}
    if "schedules" in name:
        from test_tfmot_compat import EveryStep, TfmotStyle
        custom = {"EveryStep": EveryStep, "TfmotStyle": TfmotStyle}
    model = keras.saving.load_model(path, custom_objects=custom)
    wrappers = [w for w in prunekit.iter_wrappers(model) if w.masks]
    assert len(wrappers) == len(old)
    for wrapper, mask in zip(wrappers, old):
        loaded = to_numpy(wrapper.masks[0])
        assert loaded.dtype == np.uint8
        np.testing.assert_array_equal(loaded.astype("float32"), mask)
    # Saved again, the file holds one byte per mask element.
    again = os.path.join(tmp_path, "again.keras")
    model.save(again)
    assert [v.dtype for v in _wrapper_masks_in_file(again)] == [np.uint8] * len(old)
