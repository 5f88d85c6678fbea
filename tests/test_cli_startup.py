"""The first seconds of ``prunekit``: help, version and usage errors without Keras; the backend.

``prunekit --help`` must answer at once, so building the parser must not import Keras or a
backend (the lazy-import rule in ``prunekit/cli.py``). Each case runs the real entry point in a
fresh interpreter through a small ``-c`` wrapper that then lists the heavy modules imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

import prunekit_cli
from prunekit import _select_backend
from prunekit._select_backend import BackendError, choose_backend
from prunekit._version import __version__

SRC = os.path.dirname(os.path.abspath(prunekit_cli.__file__))
HEAVY = ("keras", "jax", "torch", "tensorflow", "matplotlib", "sklearn", "rich")

_WRAPPER = """
import importlib.util, json, sys
hidden = set(sys.argv[1].split(",")) - {""}
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name in hidden else real(name, *a)
import prunekit_cli
try:
    code = prunekit_cli.run(sys.argv[2:])
except SystemExit as exit_:
    code = exit_.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in %r)
keras = sys.modules.get("keras")
print(json.dumps({"code": code, "heavy": sorted({m.split(".")[0] for m in heavy}),
                  "backend": keras.backend.backend() if keras else None}), file=sys.stderr)
""" % (HEAVY,)


def _prunekit(*argv, hide=(), env=None):
    """Run the entry point in a new interpreter.

    Returns:
        (exit code, stdout, stderr lines, heavy top-level modules imported, Keras's backend).
    """
    environment = dict(os.environ, PYTHONPATH=SRC, **(env or {}))
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name)
    done = subprocess.run([sys.executable, "-c", _WRAPPER, ",".join(hide), *argv],
                          env=environment, capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    report = json.loads(lines[-1])
    return report["code"], done.stdout, lines[:-1], report["heavy"], report["backend"]


@pytest.mark.parametrize("argv,code,text", [
    (["--help"], 0, "usage: prunekit"),
    (["--version"], 0, f"prunekit {__version__} (Keras backends installed: "),
    (["study", "--help"], 0, "usage: prunekit study"),
    (["sweep", "--help"], 0, "usage: prunekit sweep"),
    (["export", "--help"], 0, "usage: prunekit export"),
    (["study", "--epochs", "many"], 2, "prunekit study: error: argument --epochs: invalid int"),
    (["nope"], 2, "prunekit: error: argument COMMAND: invalid choice: 'nope'"),
])
def test_help_version_and_usage_errors_do_not_import_keras(argv, code, text):
    got, out, err, heavy, backend = _prunekit(*argv)
    assert got == code, err
    assert text in out + "\n".join(err)
    assert heavy == [] and backend is None, heavy


def test_a_backend_that_is_not_installed_names_its_extra():
    code, _, err, heavy, _ = _prunekit("size", "m.keras", "--backend", "torch", hide=["torch"])
    assert code == 2
    assert err == ["prunekit size: error: the torch backend is not installed; install it with "
                   "pip install 'prunekit[torch]' or choose an installed one (jax, tensorflow). "
                   "Received: --backend=torch"]
    assert heavy == []  # refused before Keras was imported
    code, _, err, _, _ = _prunekit("demo", hide=["tensorflow"],
                                   env={"KERAS_BACKEND": "tensorflow"})
    assert code == 2 and err[0].endswith("Received: KERAS_BACKEND=tensorflow")


def test_without_a_choice_an_installed_backend_is_picked_and_named(tmp_path):
    env = {"KERAS_BACKEND": None, "KERAS_HOME": str(tmp_path)}
    code, _, err, _, backend = _prunekit("size", str(tmp_path / "missing.keras"), hide=["jax"],
                                         env=env)
    assert code == 2
    assert err[0].startswith("prunekit: KERAS_BACKEND is not set; using the torch backend "
                             "(others: --backend jax|tensorflow")
    assert err[-1] == f"prunekit size: error: No such model file: {tmp_path / 'missing.keras'}"
    assert backend == "torch"


def _choose(monkeypatch, tmp_path, installed, env=None, keras_json=None, requested=None):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        real("json") if name in installed else None) if name in _select_backend.BACKENDS
        else real(name, *a))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "keras.json").unlink(missing_ok=True)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    if env:
        monkeypatch.setenv("KERAS_BACKEND", env)
    if keras_json is not None:
        (tmp_path / "keras.json").write_text(json.dumps(keras_json))
    return choose_backend(requested)


def test_choice_order_flag_environment_keras_json_then_preference(monkeypatch, tmp_path):
    everything = ("jax", "torch", "tensorflow")
    assert _choose(monkeypatch, tmp_path, everything, env="torch", requested="tensorflow") == (
        "tensorflow", None)
    assert _choose(monkeypatch, tmp_path, everything, env="torch",
                   keras_json={"backend": "jax"}) == ("torch", None)
    assert _choose(monkeypatch, tmp_path, everything,
                   keras_json={"backend": "tensorflow"}) == ("tensorflow", None)
    assert _choose(monkeypatch, tmp_path, everything, env="numpy") == (None, None)  # Keras's
    backend, note = _choose(monkeypatch, tmp_path, {"tensorflow", "torch"})  # torch first
    assert backend == "torch" and note.startswith("KERAS_BACKEND is not set; using the torch")
    backend, note = _choose(monkeypatch, tmp_path, ("jax",), keras_json={"backend": "tensorflow"})
    assert backend == "jax"
    assert note.startswith(f"{tmp_path / 'keras.json'} names tensorflow, which is not installed")
    with pytest.raises(BackendError, match=r"no Keras backend is installed; install one with "
                                           r"pip install 'prunekit\[jax\]'"):
        _choose(monkeypatch, tmp_path, ())
    with pytest.raises(BackendError, match=r"Received: KERAS_BACKEND=jax"):
        _choose(monkeypatch, tmp_path, ("torch",), env="jax")
