"""The command line's error and status messages are whole lines, whatever the console width.

Every sub-command's usage errors go through the real entry point (``prunekit_cli.main``) with a
40-column console (``COLUMNS=40``) and paths under a folder with a 150-character name, so a
message that a console wrapped at its width would arrive split and fail here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import keras
import pytest

import prunekit_cli

NARROW = "40"


@pytest.fixture
def long_dir(tmp_path):
    folder = tmp_path / ("d" * 150)
    folder.mkdir()
    return folder


@pytest.fixture
def narrow(monkeypatch):
    monkeypatch.setenv("COLUMNS", NARROW)
    # prunekit_cli.main sets KERAS_BACKEND from --backend: restore it after each test.
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())


def _main(argv, monkeypatch, capsys):
    """Run ``prunekit ARGV`` in this process; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["prunekit", *argv])
    try:
        code = prunekit_cli.main()
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_error_line(err: str, command: str | None, fragment: str) -> None:
    prog = f"prunekit {command}" if command else "prunekit"
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    assert fragment in lines[0], err
    assert len(lines[0]) > int(NARROW)  # the point of the test: wider than the console


def _cases(d):
    """(argv, command, fragment of the one error line) for each usage error."""
    missing = str(d / "missing.keras")
    blocker = d / "a-file"
    full = d / "full"
    return [
        (["no-such-command"], None, "invalid choice: 'no-such-command'"),
        ([], None, "a command is required"),
        (["--backend", "nope", "demo"], None, "argument --backend: invalid choice: 'nope'"),
        (["study", "--epochs", "0", "--out", str(d / "s"), "--quiet"], "study",
         "--epochs must be > 0. Received: --epochs=0"),
        (["study", "--runs", "a", "--out", str(blocker / "run"), "--quiet"], "study",
         f"--out {blocker / 'run'}: {blocker} is a file"),
        (["study", "--dataset", "nope"], "study", "argument --dataset: invalid choice: 'nope'"),
        (["study", "--sparsity", "0.8", "--runs", "a", "--out", str(d / "s")], "study",
         "--sparsity only affect(s) the custom run"),
        (["sweep", "--resume", str(d)], "sweep", f"--resume {d}: no sweep.json there"),
        (["sweep", "--sparsity", "0.5,1.2", "--quick", "--out", str(d / "s")], "sweep",
         "--sparsity must be >= 0 and < 1"),
        (["sweep", "--data", str(d / "missing.csv"), "--quick"], "sweep",
         f"--data: no such file. Received: --data={str(d / 'missing.csv')!r}"),
        (["sweep", "--quick", "--out", str(full)], "sweep",
         f"--out {full} exists, is not empty and holds no sweep.json"),
        (["sweep", "--quick", "--out", str(blocker)], "sweep",
         f"--out {blocker}: {blocker} is a file"),
        (["sweep", "--workers", "-1"], "sweep", "--workers must be >= 0"),
        (["sweep", "--distribution", "model-parallel"], "sweep",
         "argument --distribution: invalid choice: 'model-parallel'"),
        (["study", "--distribution", "nope"], "study",
         "argument --distribution: invalid choice: 'nope'"),
        *([] if keras.backend.backend() == "jax" else [
            (["study", "--runs", "a", "--distribution", "data-parallel", "--out", str(d / "s")],
             "study", "--distribution data-parallel runs on JAX only. Received: backend "
             f"{keras.backend.backend()}"),
            (["sweep", "--quick", "--distribution", "data-parallel", "--out", str(d / "s")],
             "sweep", "--distribution data-parallel runs on JAX only. Received: backend "
             f"{keras.backend.backend()}")]),
        (["export", missing, "-o", str(d / "o.pkz")], "export", f"No such model file: {missing}"),
        (["export", str(blocker), "-o", str(blocker)], "export", f"{blocker} already exists"),
        (["export", missing], "export", "the following arguments are required: -o/--output"),
        (["export", missing, "-o", str(d / "o.pkz"), "--weights", "int4"], "export",
         "argument --weights: invalid choice: 'int4'"),
        (["size", missing], "size", f"No such model file: {missing}"),
        (["size"], "size", "the following arguments are required: model"),
        (["oneshot", missing, "--calibration", str(d / "c.npz"), "-o", str(d / "o.keras")],
         "oneshot", f"MODEL must be a .keras file or a KerasHub preset folder. Received: "
         f"model={missing!r}"),
        (["oneshot", str(d), "--n-m", "2-4", "--calibration", "c.npz", "-o", str(d / "o")],
         "oneshot", "--n-m must look like 2:4"),
        (["oneshot", str(d), "--calibration", "c.npz", "-o", str(blocker / "o")], "oneshot",
         f"--output {blocker}: {blocker} is a file"),
        (["oneshot", str(d), "--sparsity", "0.5", "--n-m", "2:4"], "oneshot",
         "argument --n-m: not allowed with argument --sparsity"),
        (["shrink", missing, "--sparsity", "0.5", "-o", str(d / "s.keras")], "shrink",
         f"No such model file: {missing}"),
        (["shrink", missing, "--sparsity", "0.5", "-o", str(blocker)], "shrink",
         "The output must be a .keras file"),
        (["shrink", missing, "--sparsity", "1.5", "-o", str(d / "s.keras")], "shrink",
         "Received: sparsity=1.5"),
        (["bench", missing], "bench", f"No such model file: {missing}"),
        (["demo", "--epochs", "0"], "demo", "--epochs must be >= 1. Received: --epochs=0"),
        (["demo", "--epochs", "many"], "demo", "argument --epochs: invalid int value: 'many'"),
    ]


def test_every_usage_error_is_one_line_and_exits_2(long_dir, narrow, monkeypatch, capsys):
    (long_dir / "a-file").write_text("not a folder")
    (long_dir / "full").mkdir()
    (long_dir / "full" / "notes.txt").write_text("someone else's file")
    for argv, command, fragment in _cases(long_dir):
        code, _, err = _main(argv, monkeypatch, capsys)
        assert code == 2, (argv, err)
        _assert_one_error_line(err, command, fragment)
    assert (long_dir / "a-file").read_text() == "not a folder"  # nothing was overwritten
    assert sorted(p.name for p in (long_dir / "full").iterdir()) == ["notes.txt"]
    assert not (long_dir / "s").exists()  # refused before any folder was made


def test_status_lines_are_not_wrapped(narrow, monkeypatch, capsys):
    code, out, _ = _main(["sweep", "--quick", "--sparsity", "0.5,0.8", "--schedule",
                          "constant,polynomial", "--dry-run"], monkeypatch, capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[-1] == "5 runs"
    runs = lines[:-1]
    assert len(runs) == 5 and all(len(line) > int(NARROW) for line in runs[1:]), out
    for i, line in enumerate(runs, 1):
        assert re.fullmatch(rf"\s*{i}  [0-9a-f]{{16}}  (dense \(no pruning\)|(constant|"
                            r"polynomial) (50|80)% 1x1 all)", line), out


@pytest.mark.parametrize("columns", ["40", "200"])
def test_real_entry_point_in_a_subprocess(long_dir, columns):
    src = os.path.dirname(os.path.abspath(prunekit_cli.__file__))
    env = dict(os.environ, COLUMNS=columns, PYTHONPATH=src)
    command = "import sys, prunekit_cli; sys.exit(prunekit_cli.main())"
    done = subprocess.run([sys.executable, "-c", command, "sweep", "--resume", str(long_dir)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    _assert_one_error_line(done.stderr, "sweep", f"--resume {long_dir}: no sweep.json there; "
                           "expected a sweep folder.")


def test_distribution_refused_off_jax_through_the_entry_point(long_dir):
    src = os.path.dirname(os.path.abspath(prunekit_cli.__file__))
    env = dict(os.environ, COLUMNS=NARROW, PYTHONPATH=src, TF_CPP_MIN_LOG_LEVEL="3")
    command = "import sys, prunekit_cli; sys.exit(prunekit_cli.main())"
    done = subprocess.run([sys.executable, "-c", command, "sweep", "--backend", "torch",
                           "--quick", "--distribution", "data-parallel", "--out",
                           str(long_dir / "s")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    _assert_one_error_line(done.stderr, "sweep", "--distribution data-parallel runs on JAX "
                           "only. Received: backend torch")
    assert not (long_dir / "s").exists()
