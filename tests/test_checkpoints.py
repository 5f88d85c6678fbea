"""Checkpoints during pruning: exactly sparse files, and training resumes where it stopped."""

from __future__ import annotations

import os
import zipfile

import h5py
import keras
import numpy as np
import pytest
from conftest import tfmot_keep_count as keep, to_numpy

import prunekit
from prunekit import ConstantSparsity, PolynomialDecay, UpdatePruningStep, prune_low_magnitude

L = keras.layers
BATCHES = 5  # per epoch


def poly(step, initial=0.2, final=0.8, begin=0, end=15, power=3):
    p = np.clip(np.float32(step - begin) / np.float32(end - begin), 0, 1)
    return np.float32((initial - final) * (1 - p) ** power + final)


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(BATCHES * 4, 8)), rng.normal(size=(BATCHES * 4, 3))


def pruned_model(schedule):
    base = keras.Sequential([keras.Input((8,)), L.Dense(6, name="a"), L.Dense(3, name="b")])
    model = prune_low_magnitude(base, schedule)
    model.compile(keras.optimizers.SGD(0.05), "mse")
    return model


def kernels_in_file(path):
    """The two Dense kernels as stored in a .keras file, read with h5py (not via Keras)."""
    with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as f:
        with h5py.File(f, "r") as store:
            found = {}
            store.visititems(lambda name, obj: found.__setitem__(name, np.asarray(obj))
                             if isinstance(obj, h5py.Dataset) else None)
    # Each wrapper's inner layer stores [kernel, bias]: kernels are the rank-2 arrays there.
    return [value for name, value in sorted(found.items())
            if "/layer/vars/" in name and value.ndim == 2]


def test_checkpoint_listed_first_is_exactly_sparse(tmp_path):
    # ModelCheckpoint runs before UpdatePruningStep.on_epoch_end, and the learning rate moves
    # pruned weights after the last mask update: tfmot's checkpoints are not sparse (#206).
    model = pruned_model(ConstantSparsity(0.5, 0, frequency=2))
    pattern = os.path.join(tmp_path, "epoch{epoch}.keras")
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[
        keras.callbacks.ModelCheckpoint(pattern), UpdatePruningStep()])
    for epoch in (1, 2):
        stored = kernels_in_file(pattern.format(epoch=epoch))
        assert [int((k != 0).sum()) for k in stored] == [keep(48, 0.5), keep(18, 0.5)]


def test_checkpoint_every_n_batches_is_sparse_and_records_the_step(tmp_path):
    model = pruned_model(ConstantSparsity(0.5, 0, frequency=1))
    pattern = os.path.join(tmp_path, "b{batch}.keras")
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[
        keras.callbacks.ModelCheckpoint(pattern, save_freq=2), UpdatePruningStep()])
    for batch in (2, 4):
        path = pattern.format(batch=batch)
        assert [int((k != 0).sum()) for k in kernels_in_file(path)] == [24, 9]
        loaded = keras.saving.load_model(path)
        assert [int(to_numpy(w.pruning_step)) for w in prunekit.iter_wrappers(loaded)] == [
            batch, batch]


def test_weights_only_checkpoint_is_sparse(tmp_path):
    model = pruned_model(ConstantSparsity(0.5, 0, frequency=1))
    path = os.path.join(tmp_path, "w.weights.h5")
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[
        keras.callbacks.ModelCheckpoint(path, save_weights_only=True), UpdatePruningStep()])
    fresh = pruned_model(ConstantSparsity(0.5, 0, frequency=1))
    fresh.load_weights(path)
    kernels = [to_numpy(w.layer.kernel) for w in prunekit.iter_wrappers(fresh)]
    assert [int((k != 0).sum()) for k in kernels] == [24, 9]


def test_resume_from_checkpoint_continues_the_schedule(tmp_path):
    schedule = PolynomialDecay(0.2, 0.8, begin_step=0, end_step=15, frequency=1)
    model = pruned_model(schedule)
    pattern = os.path.join(tmp_path, "epoch{epoch}.keras")
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[
        keras.callbacks.ModelCheckpoint(pattern), UpdatePruningStep()])
    restored = keras.saving.load_model(pattern.format(epoch=2))
    originals = list(prunekit.iter_wrappers(model))
    wrappers = list(prunekit.iter_wrappers(restored))
    for before, after in zip(originals, wrappers):
        assert int(to_numpy(after.pruning_step)) == 2 * BATCHES
        np.testing.assert_array_equal(to_numpy(after.masks[0]), to_numpy(before.masks[0]))
        assert after.pruning_schedule == schedule
    # Step 10 pruned to poly(10): the masks keep exactly that many weights.
    assert [int(to_numpy(w.masks[0]).sum()) for w in wrappers] == [
        keep(48, poly(10)), keep(18, poly(10))]
    # Resuming counts on from step 10, so the next epoch reaches the end of the schedule.
    restored.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[UpdatePruningStep()])
    assert [int(to_numpy(w.pruning_step)) for w in wrappers] == [15, 15]
    assert [int((to_numpy(w.layer.kernel) != 0).sum()) for w in wrappers] == [
        keep(48, 0.8), keep(18, 0.8)]


def test_resumed_run_matches_uninterrupted_run(tmp_path):
    x, y = data()
    schedule = PolynomialDecay(0.2, 0.8, begin_step=0, end_step=15, frequency=1)
    path = os.path.join(tmp_path, "mid.keras")
    model = pruned_model(schedule)
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
              callbacks=[UpdatePruningStep(), keras.callbacks.ModelCheckpoint(path)])
    resumed = keras.saving.load_model(path)
    for m in (model, resumed):  # the same second epoch, continued in memory and from the file
        m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
              callbacks=[UpdatePruningStep()])
    for a, b in zip(prunekit.iter_wrappers(model), prunekit.iter_wrappers(resumed)):
        np.testing.assert_array_equal(to_numpy(a.masks[0]), to_numpy(b.masks[0]))
        np.testing.assert_allclose(to_numpy(a.layer.kernel), to_numpy(b.layer.kernel),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("order", ["checkpoint_first", "callback_first"])
def test_strip_after_loading_checkpoint(tmp_path, order):
    model = pruned_model(ConstantSparsity(0.5, 0, frequency=1))
    path = os.path.join(tmp_path, "last.keras")
    callbacks = [keras.callbacks.ModelCheckpoint(path), UpdatePruningStep()]
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=callbacks if order == "checkpoint_first" else callbacks[::-1])
    stripped = prunekit.strip_pruning(keras.saving.load_model(path))
    assert [int((to_numpy(layer.kernel) != 0).sum()) for layer in stripped.layers] == [24, 9]
