"""``prunekit shrink`` and ``prunekit bench``: outputs and one-line error paths (exit 2)."""

import keras
import numpy as np
import pytest

from prunekit.cli import main


@pytest.fixture()
def model_file(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, name="h"),
                              keras.layers.Dense(2, name="out")])
    path = tmp_path / "m.keras"
    model.save(str(path))
    return path


def test_shrink_writes_a_smaller_model(model_file, tmp_path, capsys):
    out = tmp_path / "small.keras"
    assert main(["shrink", str(model_file), "--sparsity", "0.5", "--importance", "l1",
                 "-o", str(out)]) == 0
    small = keras.saving.load_model(str(out))
    assert small.get_layer("h").units == 8
    assert "16->8" in capsys.readouterr().out
    assert main(["bench", str(model_file), str(out), "--repeats", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[0] == "1" and lines[2].split()[0] == "32"
    assert lines[1].endswith("x")


def _error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_never_overwrites_without_force(model_file, tmp_path, capsys):
    out = tmp_path / "small.keras"
    out.write_text("mine")
    assert main(["shrink", str(model_file), "--sparsity", "0.5", "-o", str(out)]) == 2
    assert "--force" in _error(capsys)
    assert out.read_text() == "mine"
    assert main(["shrink", str(model_file), "--sparsity", "0.5", "-o", str(out), "--force"]) == 0


@pytest.mark.parametrize("args,match", [
    (["--sparsity", "1.5"], "Received: sparsity=1.5"),
    (["--sparsity", "0.5", "--missing"], None),
])
def test_bad_arguments(model_file, tmp_path, capsys, args, match):
    argv = ["shrink", str(model_file), "-o", str(tmp_path / "s.keras"), *args]
    if match is None:
        with pytest.raises(SystemExit) as info:  # argparse's own usage error
            main(argv)
        assert info.value.code == 2
        return
    assert main(argv) == 2
    assert match in _error(capsys)


def test_missing_and_wrong_files(tmp_path, capsys):
    assert main(["shrink", str(tmp_path / "none.keras"), "--sparsity", "0.5",
                 "-o", str(tmp_path / "s.keras")]) == 2
    assert "No such model file" in _error(capsys)
    assert main(["bench", str(tmp_path / "none.keras")]) == 2
    assert "No such model file" in _error(capsys)
    bad = tmp_path / "bad.keras"
    bad.write_text("not a zip")
    assert main(["bench", str(bad)]) == 2
    _error(capsys)
    assert main(["shrink", str(bad), "--sparsity", "0.5", "-o", str(tmp_path / "s.txt")]) == 2
    assert "must be a .keras file" in _error(capsys)
