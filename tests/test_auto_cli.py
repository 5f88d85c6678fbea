"""``prunekit prune`` through its real entry point: refused inputs and an end-to-end run."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
from conftest import to_numpy

from prunekit import cli
from prunekit.export import load_compressed

FEATURES = 5


def _model(path, fit=False, lam=False):
    layers = [keras.Input((FEATURES,)), keras.layers.Dense(16, activation="relu", name="hidden")]
    if lam:
        layers.append(keras.layers.Lambda(lambda t: t * 2.0, name="double"))
    model = keras.Sequential([*layers, keras.layers.Dense(1, name="out")])
    model.compile("adam", "mse")
    if fit:  # saved with optimizer state
        x, y = _rows(200)
        model.fit(x, y, epochs=30, verbose=0)
    model.save(path)
    return model


def _rows(n, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, FEATURES)).astype("float32")
    return x, (x[:, 0] * 2 + x[:, 1]).astype("float32")


def _csv(path, n=120, header=None, cell=None):
    x, y = _rows(n)
    header = header or [*(f"f{i}" for i in range(FEATURES)), "price"]
    lines = [",".join(header)] + [",".join(f"{v:.6g}" for v in (*r, t)) for r, t in zip(x, y)]
    if cell is not None:
        lines[3] = cell
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _run(capsys, *argv):
    code = cli.main(["prune", *argv])
    return code, capsys.readouterr()


@pytest.fixture
def files(tmp_path):
    model = str(tmp_path / "m.keras")
    _model(model)
    return tmp_path, model, _csv(tmp_path / "d.csv")


def _refused(capsys, tmp_path, argv, expected):
    out = tmp_path / "out"
    code, captured = _run(capsys, *argv, "-o", str(out))
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1, captured.err
    assert lines[0].startswith("prunekit prune: error: ") and expected in lines[0], lines[0]
    assert not out.exists()  # refused before anything was written


def test_refuses_input_shape_mismatch(capsys, files):
    tmp, model, _ = files
    data = tmp / "wide.npz"
    np.savez(data, x=np.zeros((50, FEATURES + 2)), y=np.zeros(50))
    _refused(capsys, tmp, [model, "--data", str(data), "--max-drop", "1%"],
             f"the model takes inputs of shape (None, {FEATURES}); the data's rows have shape "
             f"({FEATURES + 2},)")


def test_refuses_missing_target(capsys, files):
    tmp, model, data = files
    _refused(capsys, tmp, [model, "--data", data, "--target", "cost", "--max-drop", "1%"],
             "has no target column 'cost' (--target)")
    npz = tmp / "noy.npz"
    np.savez(npz, x=np.zeros((50, FEATURES)), labels=np.zeros(50))
    _refused(capsys, tmp, [model, "--data", str(npz), "--max-drop", "1%"], "has no array 'y'")


@pytest.mark.parametrize("cell, expected", [
    ("1,2,abc,4,5,6", "line 4, column 'f2': 'abc' (not a number)"),
    ("1,2,3,nan,5,6", "line 4, column 'f3': 'nan'; expected a finite number"),
    ("1,2,3,4,5,", "line 4, column 'price': an empty value"),
])
def test_refuses_non_numeric_and_nan_csv(capsys, tmp_path, cell, expected):
    model = str(tmp_path / "m.keras")
    _model(model)
    data = _csv(tmp_path / "bad.csv", cell=cell)
    _refused(capsys, tmp_path, [model, "--data", data, "--max-drop", "1%"], expected)


def test_refuses_nan_npz_and_empty_files(capsys, files):
    tmp, model, _ = files
    npz = tmp / "nan.npz"
    x = np.zeros((50, FEATURES))
    x[7, 2] = np.nan
    np.savez(npz, x=x, y=np.zeros(50))
    _refused(capsys, tmp, [model, "--data", str(npz), "--max-drop", "1%"],
             "array 'x' holds a NaN or infinite value (first at index (7, 2))")
    (tmp / "empty.csv").write_text("")
    _refused(capsys, tmp, [model, "--data", str(tmp / "empty.csv"), "--max-drop", "1%"],
             "is empty (0 bytes)")
    (tmp / "header.csv").write_text("a,b,price\n")
    _refused(capsys, tmp, [model, "--data", str(tmp / "header.csv"), "--max-drop", "1%"],
             "is empty but for its header")


def test_refuses_lambda_without_unsafe(capsys, tmp_path):
    model = str(tmp_path / "lam.keras")
    _model(model, lam=True)
    data = _csv(tmp_path / "d.csv")
    _refused(capsys, tmp_path, [model, "--data", data, "--max-drop", "1%"],
             "holds a Lambda layer (Python code, which Keras's safe_mode refuses to load); "
             "pass --unsafe")


def test_refuses_bad_goal_and_classification_labels(capsys, files):
    tmp, model, data = files
    _refused(capsys, tmp, [model, "--data", data], "give exactly one of max_drop")
    _refused(capsys, tmp, [model, "--data", data, "--max-drop", "lots"], "--max-drop must be")
    _refused(capsys, tmp, [model, "--data", data, "--max-drop", "1%", "--metric", "accuracy"],
             "the training targets must be class labels 0..1")


CUSTOM = '''
import keras

class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
'''


def test_custom_objects_loaded_only_when_given(capsys, tmp_path):
    from prunekit.auto import model as model_io

    source = tmp_path / "objs.py"
    source.write_text(CUSTOM)
    objects = model_io.load_custom_objects(str(source))
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(4),
                              objects["Scale"](3.0), keras.layers.Dense(1)])
    path = str(tmp_path / "custom.keras")
    model.save(path)
    data = _csv(tmp_path / "d.csv")
    _refused(capsys, tmp_path, [path, "--data", data, "--max-drop", "1%"],
             "needs a custom object Keras cannot find; pass --custom-objects")
    loaded = model_io.load_model_file(path, model_io.load_custom_objects(str(source)))
    assert type(loaded.layers[1]).__name__ == "Scale" and loaded.layers[1].factor == 3.0


def test_end_to_end_run_on_a_saved_model(capsys, tmp_path):
    model_path = str(tmp_path / "m.keras")
    original = _model(model_path, fit=True)  # saved with Adam's state
    data = _csv(tmp_path / "d.csv", n=200)
    out = tmp_path / "out"
    code, captured = _run(capsys, model_path, "--data", data, "--target", "price",
                          "--max-drop", "20%", "--epochs", "2", "--max-trials", "2",
                          "--backend", keras.backend.backend(), "-o", str(out))
    assert code == 0, captured.err
    assert sorted(os.listdir(out)) == ["logs", "pruned.keras", "pruned.pkz", "report.html",
                                       "results.json"]
    results = json.loads((out / "results.json").read_text())
    pruned = keras.saving.load_model(out / "pruned.keras")
    kernels = {n: keras.ops.convert_to_numpy(pruned.get_layer(n).kernel) for n in ("hidden", "out")}
    for name, kernel in kernels.items():  # the report's sparsities are the file's
        assert results["sparsities"][name] == pytest.approx(np.mean(kernel == 0), abs=1e-6)
    assert results["mode"] == "budget" and results["metric"] == "mse"
    assert results["held"] is True and results["drop"] <= 0.20
    assert sum(np.sum(k == 0) for k in kernels.values()) > 0  # something was pruned
    restored = load_compressed(str(out / "pruned.pkz"))
    x = _rows(20, seed=5)[0]
    np.testing.assert_allclose(to_numpy(restored(x)), to_numpy(pruned(x)), rtol=1e-5,
                               atol=1e-5)
    page = (out / "report.html").read_text()
    assert 'id="plot-scan"' in page and "the budget holds" in page
    assert os.listdir(out / "logs") and "trial 1:" in captured.out
    weights = keras.saving.load_model(model_path).get_weights()
    for old, new in zip(weights, original.get_weights()):
        np.testing.assert_array_equal(old, new)
    code, captured = _run(capsys, model_path, "--data", data, "--sparsity", "0.5",
                          "--epochs", "1", "-o", str(out))
    assert code == 0 and (tmp_path / "out-2" / "results.json").exists()  # never overwritten
    assert json.loads((out / "results.json").read_text()) == results


def test_refuses_a_model_with_nothing_to_prune(capsys, tmp_path):
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dropout(0.1)])
    path = str(tmp_path / "none.keras")
    model.save(path)
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((50, FEATURES)), y=np.zeros((50, FEATURES)))
    _refused(capsys, tmp_path, [path, "--data", str(data), "--max-drop", "0.1", "--metric", "mse"],
             "the model has no layer prunekit can prune")
