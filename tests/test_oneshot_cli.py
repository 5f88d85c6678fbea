"""``prunekit oneshot``: bad inputs give one error line and exit 2; a run writes model + report."""

import json

import keras
import numpy as np
import pytest

from prunekit.cli import main
from prunekit.export.io import save_atomic


@pytest.fixture
def model_file(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, name="a"),
                              keras.layers.Dense(4, name="b")])
    path = tmp_path / "m.keras"
    model.save(path)
    return path


@pytest.fixture
def npz_file(tmp_path):
    path = tmp_path / "cal.npz"
    np.savez(path, x=np.random.default_rng(0).normal(size=(32, 8)).astype("float32"))
    return path


def _bad(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("name,content,message", [
    ("missing.npz", None, "not found"),
    ("bad.npz", b"not a zip", "Cannot read the .npz"),
    ("empty.txt", b"  \n", "empty"),
    ("binary.txt", b"\xff\xfe\x00\x81", "UTF-8"),
])
def test_bad_calibration_files(tmp_path, model_file, capsys, name, content, message):
    path = tmp_path / name if content is None else _bad(tmp_path, name, content)
    code = main(["oneshot", str(model_file), "--calibration", str(path),
                 "-o", str(tmp_path / "out.keras")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "Traceback" not in err
    assert err.startswith("prunekit oneshot: error: ") and len(err.splitlines()) == 1
    assert not (tmp_path / "out.keras").exists()


def test_text_calibration_needs_a_preset(tmp_path, model_file, capsys):
    text = _bad(tmp_path, "c.txt", b"some text")
    assert main(["oneshot", str(model_file), "--calibration", str(text),
                 "-o", str(tmp_path / "o.keras")]) == 2
    assert "preset" in capsys.readouterr().err


def test_run_writes_model_and_report_and_never_overwrites(tmp_path, model_file, npz_file,
                                                          capsys):
    out = tmp_path / "pruned.keras"
    args = ["oneshot", str(model_file), "--method", "sparsegpt", "--n-m", "2:4",
            "--calibration", str(npz_file), "--samples", "16", "-o", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "block 1/1" in printed and "  a  sparsity 0.500" in printed
    report = json.loads((tmp_path / "pruned.keras.oneshot.json").read_text())
    assert report["target"] == "2:4" and len(report["layers"]) == 2
    loaded = keras.saving.load_model(out)
    kernel = np.asarray(keras.ops.convert_to_numpy(loaded.get_layer("a").kernel))
    assert ((kernel != 0).reshape(2, 4, 16).sum(1) == 2).all()
    stamp = out.stat().st_mtime_ns
    assert main(args) == 2
    assert "overwrite" in capsys.readouterr().err and out.stat().st_mtime_ns == stamp


def test_bad_n_m(tmp_path, model_file, npz_file, capsys):
    assert main(["oneshot", str(model_file), "--n-m", "2-4", "--calibration", str(npz_file),
                 "-o", str(tmp_path / "o.keras")]) == 2
    assert "2:4" in capsys.readouterr().err


def test_bad_model_file_and_missing_output_folder(tmp_path, model_file, npz_file, capsys):
    broken = _bad(tmp_path, "broken.keras", b"not a zip file")
    assert main(["oneshot", str(broken), "--calibration", str(npz_file),
                 "-o", str(tmp_path / "o.keras")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunekit oneshot: error: Cannot load the model")
    assert len(err.splitlines()) == 1
    assert main(["oneshot", str(model_file), "--calibration", str(npz_file),
                 "-o", str(tmp_path / "no" / "o.keras")]) == 2
    assert "folder does not exist" in capsys.readouterr().err


def _write_folder(tmp):
    tmp.mkdir()
    (tmp / "config.json").write_text("{}")


def test_folders_are_saved_atomically_and_never_replace_one(tmp_path):
    save_atomic(tmp_path / "preset", _write_folder)
    assert [p.name for p in (tmp_path / "preset").iterdir()] == ["config.json"]
    (tmp_path / "empty").mkdir()  # os.rename would silently replace an empty folder
    with pytest.raises(FileExistsError, match="already exists"):
        save_atomic(tmp_path / "empty", _write_folder)
    assert list((tmp_path / "empty").iterdir()) == []

    def fails_half_way(tmp):
        _write_folder(tmp)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_atomic(tmp_path / "half", fails_half_way)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "preset"]  # no leftovers
