"""Bad input through the real entry point: one error line, exit 2, nothing written.

Each kind of bad input a user can hand the command line -- unreadable model files, non-UTF-8
or wrongly typed TOML/CSV/NPZ, output paths that cannot be written, options out of range, a
missing optional package -- is run through ``prunekit_cli.run`` (in this process, so Keras is
imported once) or, where the process itself matters (interrupts), through ``python -m
prunekit_cli`` in a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile

import keras
import numpy as np
import pytest

import prunekit_cli
from prunekit.export import save_compressed
from prunekit.export.io import write_atomic

SRC = os.path.dirname(os.path.abspath(prunekit_cli.__file__))


def _main(argv, capsys):
    """Run ``prunekit ARGV`` in this process; return (exit code, stdout, stderr)."""
    try:
        code = prunekit_cli.run(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_refused(argv, command, fragments, capsys):
    code, out, err = _main(argv, capsys)
    assert code == 2, (argv, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, (argv, err)
    assert lines[0].startswith(f"prunekit {command}: error: "), (argv, err)
    for fragment in fragments:
        assert fragment in lines[0], (argv, fragment, lines[0])
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def model_file(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    path = tmp_path / "good.keras"
    model.save(path)
    return path


def _bad_model_files(folder, good):
    data = good.read_bytes()
    files = {
        "truncated.keras": data[: len(data) // 2],
        "garbage.keras": b"this is not a zip archive",
        "empty.keras": b"",
        "flipped.pkz": b"PKZ\x00" + bytes(range(200)),
        "model.txt": data,
        "garbage.h5": b"\x89HDF garbage",
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    with zipfile.ZipFile(folder / "no-config.keras", "w") as archive:  # a zip, not a model
        archive.writestr("notes.txt", "hello")
    with zipfile.ZipFile(folder / "list-config.keras", "w") as archive:
        archive.writestr("config.json", "[1, 2]")
        archive.writestr("metadata.json", "{}")
    (folder / "folder.keras").mkdir()
    return {
        "truncated.keras": "not a .keras model: a .keras file is a zip archive",
        "garbage.keras": "not a .keras model",
        "empty.keras": "not a .keras model",
        "flipped.pkz": "not a readable model file",
        "model.txt": "unknown model file type; expected a .keras, .h5, .hdf5, .pkz file. "
                     "Received: '.txt'",
        "garbage.h5": "not a readable model file",
        "no-config.keras": "not a readable model file (corrupted, truncated or not a saved "
                           "model): KeyError",
        "list-config.keras": "not a readable model file (corrupted, truncated or not a saved "
                             "model): TypeError",
        "folder.keras": "is a folder; expected a model file",
    }


def test_unreadable_model_files_are_one_line_errors(model_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    for name, fragment in _bad_model_files(tmp_path, model_file).items():
        path = str(tmp_path / name)
        _assert_refused(["size", path], "size", [path, fragment], capsys)
        _assert_refused(["export", path, "-o", str(out / "m.pkz")], "export", [path, fragment],
                        capsys)
    assert list(out.iterdir()) == []  # nothing written


def test_size_json_is_checked_before_the_work_and_not_overwritten(model_file, tmp_path,
                                                                  capsys):
    existing = tmp_path / "sizes.json"
    existing.write_text("the user's file")
    line = _assert_refused(["size", str(model_file), "--json", str(existing), "--no-keras-int8"],
                           "size", [f"{existing} already exists", "--force"], capsys)
    assert existing.read_text() == "the user's file"
    missing = tmp_path / "no-such-folder" / "sizes.json"
    code, out, err = _main(["size", str(model_file), "--json", str(missing), "--no-keras-int8"],
                           capsys)
    assert code == 2 and out == "", (out, err)  # refused before the table was computed
    assert f"Output directory {missing.parent} does not exist" in err
    code, out, _ = _main(["size", str(model_file), "--json", str(existing), "--force",
                          "--no-keras-int8"], capsys)
    assert code == 0 and ".pkz float32" in out
    assert json.loads(existing.read_text())["params"] == 4 * 3 + 3 + 3 + 1, line


def test_export_to_a_folder_is_refused(model_file, tmp_path, capsys):
    _assert_refused(["export", str(model_file), "-o", str(tmp_path), "--force"], "export",
                    [f"{tmp_path} is a directory; expected a file path"], capsys)


def _write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


def test_bad_toml_values_are_one_line_errors(tmp_path, capsys):
    cases = {
        "latin1.toml": ("epochs = 2\n# caf\xe9\n".encode("latin-1"),
                        "not UTF-8 text (byte 0xe9 at offset 16)"),
        "rate.toml": ('learning_rate = "fast"\n',
                      "rate.toml: learning_rate must be a number > 0. Received: 'fast'"),
        "split.toml": ("validation_split = [0.2]\n",
                       "split.toml: validation_split must be a number > 0 and < 1"),
        "data.toml": ("data = 5\n", "data.toml: data must be a string. Received: 5"),
        "epochs.toml": ('epochs = "ten"\n', "epochs must be a positive integer"),
        "grid.toml": ('[grid]\nsparsity = "half"\n',
                      "grid.toml: grid.sparsity: expected a number. Received: 'half'"),
        "workers.toml": ('workers = "two"\n', "--workers must be >= 0 (an integer"),
        "ray.toml": ("ray = 1\n", "--ray must be 'local', 'auto' or a cluster address"),
        "syntax.toml": ("epochs = \n", "not valid TOML"),
    }
    for name, (content, fragment) in cases.items():
        path = _write(tmp_path / name, content)
        _assert_refused(["sweep", "--config", path, "--dry-run"], "sweep", [fragment], capsys)
    _assert_refused(["sweep", "--config", str(tmp_path / "none.toml")], "sweep",
                    ["--config: no such file"], capsys)


def test_bad_csv_and_npz_files_are_one_line_errors(tmp_path, capsys):
    rows = "".join(f"{i},{i % 3},{2 * i}\n" for i in range(30))
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}] * 30, dtype=object),
             y=np.arange(30))
    np.savez(tmp_path / "text.npz", x=np.array([["a", "b"]] * 30), y=np.arange(30))
    good_npz = (tmp_path / "objects.npz").read_bytes()
    cases = {
        "header.csv": ("a,b,y\n", "header.csv has a header row and no data"),
        "latin1.csv": (("a,b,y\n" + rows + "caf\xe9,1,2\n").encode("latin-1"),
                       "latin1.csv, line 32: not UTF-8 text (byte 0xe9"),
        "letters.csv": ("a,b,y\n" + rows + "1,x,2\n",
                        "letters.csv, line 32, column 'b': 'x' is not a finite number"),
        "empty.csv": ("", "empty.csv is empty"),
        "truncated.npz": (good_npz[:100], "truncated.npz: not a readable .npz archive (not a "
                                          "zip archive: corrupted or truncated?)"),
        "garbage.npz": ("not a zip", "garbage.npz: not a readable .npz archive"),
    }
    for name, (content, fragment) in cases.items():
        path = _write(tmp_path / name, content)
        _assert_refused(["sweep", "--data", path, "--dry-run"], "sweep", [fragment], capsys)
    for name, fragment in (("objects.npz", "no pickled objects"),
                           ("text.npz", "holds non-numeric or non-finite values (dtype <U1)")):
        _assert_refused(["sweep", "--data", str(tmp_path / name), "--dry-run"], "sweep",
                        [fragment], capsys)


def test_sweep_options_out_of_range_are_refused(tmp_path, capsys):
    for value in ("-1", "0"):
        _assert_refused(["sweep", "--quick", "--max-runs", value, "--out", str(tmp_path / "s")],
                        "sweep", [f"--max-runs must be >= 1 (leave it out to run every missing "
                                  f"run). Received: --max-runs={value}"], capsys)
    assert not (tmp_path / "s").exists()


def test_sweep_ray_without_ray_writes_nothing(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    out = tmp_path / "s"
    _assert_refused(["sweep", "--quick", "--ray", "--out", str(out)], "sweep",
                    ["--ray needs Ray, which is not installed: pip install 'prunekit[ray]'"],
                    capsys)
    assert not out.exists()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_honour_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_atomic(tmp_path / "a.txt", "x")
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        save_compressed(model, tmp_path / "m.pkz")
    finally:
        os.umask(previous)
    for name in ("a.txt", "m.pkz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def _group_alive(pgid: int) -> list[str]:
    done = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
    return done.stdout.split()


@pytest.mark.parametrize("signum,workers,code", [(signal.SIGINT, "2", 130),
                                                 (signal.SIGTERM, "0", 143)])
def test_interrupted_sweep_keeps_finished_runs_and_ends_its_workers(tmp_path, signum, workers,
                                                                    code):
    out = tmp_path / "sweep"
    env = dict(os.environ, PYTHONPATH=SRC, KERAS_BACKEND=keras.backend.backend())
    process = subprocess.Popen(
        [sys.executable, "-m", "prunekit_cli", "sweep", "--sparsity", "0.3,0.5,0.7,0.9",
         "--epochs", "30", "--workers", workers, "--out", str(out), "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)  # its own process group, as a terminal's Ctrl-C would reach
    records = out / "runs.jsonl"
    deadline = time.monotonic() + 240
    while not (records.exists() and records.stat().st_size) and process.poll() is None:
        assert time.monotonic() < deadline, "no run finished in time"
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()
    if signum == signal.SIGINT:
        os.killpg(process.pid, signum)  # Ctrl-C reaches every process of the group
    else:
        process.send_signal(signum)  # SIGTERM reaches the main process only
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert err.strip().splitlines()[-1] == (f"prunekit sweep: interrupted; finished runs are "
                                            f"kept; resume with `prunekit sweep --resume {out}`")
    deadline = time.monotonic() + 15
    while _group_alive(process.pid):  # workers (and multiprocessing's tracker) are gone
        assert time.monotonic() < deadline, _group_alive(process.pid)
        time.sleep(0.2)
    kept = [json.loads(line) for line in records.read_text().splitlines()]
    assert 1 <= len(kept) < 5 and all(r["test_metric"] >= 0 for r in kept)
