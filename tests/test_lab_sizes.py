"""The article's gzipped size: one measure for the study, the sweep, ``prunekit size`` and the demo.

The expected figure is computed here the article's way, by hand: ``model.save(model.h5,
include_optimizer=False)``, then a ``ZIP_DEFLATED`` archive of that file, then its size.
"""

from __future__ import annotations

import os
import zipfile

import keras
import numpy as np
import pytest

import prunekit
from prunekit.export import model_sizes
from prunekit.export.sizes import GZIP_FORMAT, GZIP_LABEL, gzipped_size
from prunekit.lab import models
from prunekit.lab.data import load_dataset
from prunekit.study.execute import measure_run
from prunekit.study.results import RunResult
from prunekit.sweep.grid import RunParams
from prunekit.sweep.run import build_run_model, measure

RUN = RunParams("constant", 0.5, None, 0, -1, 10, None, "1x1", "AVG", "all", "hidden,output",
                "layer")


def _by_hand(model, folder, name):
    """The article's get_gzipped_model_size, written out (the file is model.h5 in the zip)."""
    os.makedirs(os.path.join(folder, name))
    h5 = os.path.join(folder, name, "model.h5")
    model.save(h5, include_optimizer=False)
    zipped = os.path.join(folder, name, "model.zip")
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(h5, arcname="model.h5")
    return os.path.getsize(zipped)


def _snapshot(model):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.variables]


@pytest.fixture(scope="module")
def data():
    return load_dataset("friedman")


@pytest.fixture
def trained(data):
    """The sweep's pruned model for RUN, compiled and trained (Adam has state to leave out)."""
    model = models.compile_model(build_run_model(RUN, data), data)
    model.fit(data.x_train[:640], data.y_train[:640], epochs=2, batch_size=32, verbose=0,
              callbacks=[prunekit.UpdatePruningStep()])
    return model


def test_study_sweep_size_and_demo_report_the_same_gzipped_size(data, trained, tmp_path):
    model = trained
    stripped = prunekit.strip_pruning(model)
    expected = _by_hand(stripped, str(tmp_path), "stripped")
    expected_unstripped = _by_hand(model, str(tmp_path), "pruned")
    assert expected < expected_unstripped  # the masks are part of the pruned model's file

    sweep = measure(model, RUN)
    folder = tmp_path / "study"
    for sub in ("summaries", "pictures", "models"):
        (folder / sub).mkdir(parents=True)
    result = RunResult("whole", "b", "Whole", "", pruning={"schedule": "constant"})
    result.steps = 40
    study, _ = measure_run(model, result, data, str(folder))
    assert sweep["gz_bytes"] == study.gz_size == expected
    assert study.gz_unstripped == expected_unstripped
    assert model_sizes(stripped, keras_int8=False).gzipped_bytes == expected  # prunekit size
    assert gzipped_size(stripped) == expected  # prunekit demo
    # The study keeps the files it measured, under its usual names.
    assert os.path.getsize(folder / "models" / "whole-stripped.zip") == expected
    assert (folder / "models" / f"whole-stripped{GZIP_FORMAT}").is_file()


def test_measuring_does_not_change_the_model(data, trained, tmp_path):
    model = trained
    before = _snapshot(model)
    iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    gzipped_size(model)
    measure(model, RUN)
    for got, want in zip(_snapshot(model), before):
        np.testing.assert_array_equal(got, want)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == iterations
    assert model.compiled and any(True for _ in prunekit.iter_wrappers(model))


def test_the_optimizer_state_is_left_out(data, tmp_path):
    model = models.build_model(data)
    weights = model.get_weights()
    plain = gzipped_size(model)
    assert plain == _by_hand(model, str(tmp_path), "plain")
    model.save(tmp_path / "plain.keras")
    models.compile_model(model, data)
    model.fit(data.x_train[:64], data.y_train[:64], epochs=1, verbose=0)
    model.set_weights(weights)  # the same weights again; now Adam has state
    assert gzipped_size(model) == plain
    # Why HDF5: Keras 3 keeps Adam's two moments in a .keras file, include_optimizer or not.
    model.save(tmp_path / "compiled.keras", include_optimizer=False)
    extra = os.path.getsize(tmp_path / "compiled.keras") - os.path.getsize(tmp_path / "plain.keras")
    assert extra > 4 * model.count_params()


def test_the_format_is_named_and_checked(tmp_path):
    assert GZIP_LABEL == "gzipped .h5"
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"model_path must end in '.h5'.*m.keras"):
        gzipped_size(model, tmp_path / "m.keras", tmp_path / "m.zip")
    assert not (tmp_path / "m.keras").exists()
