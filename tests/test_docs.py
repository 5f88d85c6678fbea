"""Every shell, Python and TOML block of README.md, docs/*.md and benchmarks/README.md works.

The blocks of each file run in order in a fresh folder (where the repository's ``examples/``
and ``benchmarks/`` are visible), Python blocks sharing one namespace, so that a command can use
the file an earlier block wrote (``pruned.keras``). How each shell command is checked:

* ``prunekit size``, ``export``, ``demo``, ``--help``: run in full through the real entry point
  (in this process; in a subprocess when the line asks for another backend).
* ``prunekit study`` and ``prunekit sweep`` train for minutes, so they are *checked*: parsed by
  the real parser and validated as the command validates them before training (the study's
  configuration; the sweep's settings, data and grid through ``--dry-run``). ``sweep --resume``
  is parsed only (its folder comes from a run that was not made).
* ``make`` targets must exist in the Makefile; ``source .venv/bin/activate`` is the set-up step;
  ``benchmarks/run.py`` arguments are parsed by its parser (the benchmarks take minutes).
* A TOML block must be the example file it names (``examples/sweep.toml``), and valid.
* Python blocks run in full, except one that starts a Ray cluster: it is compiled and its
  imports run; a block that sets a ``keras.distribution`` device mesh runs on JAX in a
  subprocess with 4 simulated CPU devices (reported as not run on other backends); a block importing ``keras_hub`` is reported as not run where keras-hub (the
  optional ``hub`` extra) is not installed.
* The files a reader brings along (their models ``model.keras``, ``houses.keras`` and
  ``classifier.keras``, data ``houses.csv``, ``train.npz``, ``val.npz``, calibration data
  ``cal.npz``, a text file ``notes.txt`` and a KerasHub preset folder ``./my_gpt2_preset``) are
  made in the folder first, as tiny stand-ins (:func:`user_files`).

A command of any other kind fails the test, so that a new one gets checked too. The examples in
``prunekit study --help`` and ``prunekit sweep --help`` are checked the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import keras
import pytest

import prunekit_cli
from prunekit.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
DOCS = ["README.md", "benchmarks/README.md",
        *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(document: str) -> list[tuple[str, str]]:
    """``(language, text)`` of each fenced block of a markdown file, in order."""
    return BLOCK.findall((ROOT / document).read_text(encoding="utf-8"))


def shell_lines(text: str) -> list[list[str]]:
    """The commands of a shell block: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def _run(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = prunekit_cli.run(argv)
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue() + err.getvalue()


def _backend_of(argv: list[str]) -> str | None:
    return argv[argv.index("--backend") + 1] if "--backend" in argv else None


def check_prunekit(argv: list[str]) -> str:
    """Run or check one ``prunekit ...`` command (see the module docstring); return how."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command == "study":
        from prunekit.study.cli import config_from_args

        config_from_args(build_parser().parse_args(argv))  # raises on an invalid combination
        return "checked"
    if command == "sweep" and "--resume" in argv:
        build_parser().parse_args(argv)
        return "parsed"
    if command == "sweep":
        argv = [*argv, "--dry-run"]
    wanted = _backend_of(argv)
    if wanted and wanted != keras.backend.backend():
        if importlib.util.find_spec(wanted) is None:
            pytest.skip(f"`prunekit {' '.join(argv)}` needs the {wanted} backend, not installed")
        done = subprocess.run([sys.executable, "-m", "prunekit_cli", *argv], capture_output=True,
                              text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(SRC)))
        code, output = done.returncode, done.stdout + done.stderr
    else:
        code, output = _run(argv)
    assert code == 0, f"`prunekit {' '.join(argv)}` exited {code}:\n{output}"
    return "ran"


def check_benchmarks(argv: list[str]) -> str:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build_parser().parse_args(argv)
    return "parsed"


def check_shell(words: list[str]) -> str:
    if words[0] == "prunekit":
        return check_prunekit(words[1:])
    if words[0] == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
        assert words[1] in targets, f"no make target {words[1]!r}"
        return "target exists"
    if words == ["source", ".venv/bin/activate"]:
        return "set-up"
    if words[0].endswith("python") and words[1] == "benchmarks/run.py":
        return check_benchmarks(words[2:])
    raise AssertionError(f"a documented command this test does not know how to check: {words}")


def check_python(text: str, namespace: dict) -> str:
    if "keras.distribution.DeviceMesh(" in text:
        return check_distributed(text)
    if "import keras_hub" in text and importlib.util.find_spec("keras_hub") is None:
        return "not run: keras-hub is not installed"
    if "ray.init(" in text:
        code = compile(text, "<docs block>", "exec")
        exec("\n".join(line for line in text.splitlines()  # noqa: S102 - the docs' own code
                       if line.startswith(("import ", "from "))), namespace)
        del code
        return "compiled, imports run"
    exec(compile(text, "<docs block>", "exec"), namespace)  # noqa: S102 - the docs' own code
    return "ran"


def check_distributed(text: str) -> str:
    """A block that sets a device mesh: run on JAX with 4 simulated CPU devices, in a subprocess
    (the distribution would otherwise stay set for the tests that follow)."""
    if keras.backend.backend() != "jax":
        return "not run: keras.distribution blocks run on JAX"
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(SRC),
               XLA_FLAGS="--xla_force_host_platform_device_count=4")
    done = subprocess.run([sys.executable, "-c", text], capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, f"distributed block failed:\n{done.stdout}{done.stderr}"
    return "ran on 4 simulated devices"


def check_toml(text: str) -> str:
    name = text.splitlines()[0].lstrip("# ").split()[0]
    shipped = ROOT / "examples" / name
    assert shipped.is_file(), f"the docs show {name}; ship it as examples/{name}"
    assert shipped.read_text(encoding="utf-8") == text, f"examples/{name} differs from the docs"
    check_prunekit(["sweep", "--config", str(shipped)])
    return "is examples/" + name


def user_files(folder: Path) -> None:
    """Tiny stand-ins for the files the docs assume a reader has."""
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(4)])
    model.save(folder / "model.keras")
    np.savez(folder / "cal.npz", x=np.random.default_rng(0).normal(size=(64, 8)).astype("f4"))
    (folder / "notes.txt").write_text("ab a ab c ab ba cab " * 4000, encoding="utf-8")
    houses = keras.Sequential([keras.Input((3,)), keras.layers.Dense(16, activation="relu"),
                               keras.layers.Dense(1)])
    houses.compile(optimizer="adam", loss="mse")
    houses.save(folder / "houses.keras")
    (folder / "houses.csv").write_bytes((ROOT / "examples" / "houses.csv").read_bytes())
    classifier = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"),
                                   keras.layers.Dense(3, activation="softmax")])
    classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                       metrics=["accuracy"])
    classifier.save(folder / "classifier.keras")
    rng = np.random.default_rng(1)
    for name, rows in (("train", 240), ("val", 60)):
        images = rng.normal(size=(rows, 8)).astype("float32")
        np.savez(folder / f"{name}.npz", images=images, labels=np.argmax(images[:, :3], axis=1))
    if importlib.util.find_spec("keras_hub") is None:
        return
    import keras_hub

    vocab = {"<|endoftext|>": 0, "a": 1, "b": 2, "c": 3, "\u0120": 4, "\u0120a": 5, "ab": 6}
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(vocab), num_layers=2, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=128)
    backbone.save_to_preset(str(folder / "my_gpt2_preset"))
    keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=["\u0120 a", "a b"]).save_to_preset(
        str(folder / "my_gpt2_preset"))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for name in ("examples", "benchmarks"):
        (tmp_path / name).symlink_to(ROOT / name)
    user_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    return tmp_path


@pytest.mark.parametrize("document", DOCS)
def test_documented_blocks_work_as_written(document, workdir, capsys):
    namespace: dict = {"__name__": "__docs__"}
    checked = []
    for language, text in blocks(document):
        if language == "python":
            checked.append(check_python(text, namespace))
        elif language in ("bash", "sh", "shell"):
            checked += [check_shell(words) for words in shell_lines(text)]
        elif language == "toml":
            checked.append(check_toml(text))
    assert checked, f"{document} has no block to check"
    with capsys.disabled():
        print(f"\n{document}: {len(checked)} checks: {', '.join(checked)}")


@pytest.mark.parametrize("command", ["study", "sweep"])
def test_help_examples_work(command, workdir):
    subparsers = next(a for a in build_parser()._actions
                      if isinstance(a, argparse._SubParsersAction))
    epilog = subparsers.choices[command].epilog
    commands = "\n".join(line for line in re.sub(r"\\\n\s*", " ", epilog).splitlines()
                         if line.strip().startswith("prunekit "))
    lines = shell_lines(commands)
    assert len(lines) >= 3
    for words in lines:
        check_prunekit(words[1:])


def test_shell_lines_join_continuations_and_drop_comments():
    text = "prunekit study --quick \\\n    --runs a   # two\n# only a comment\nmake run\n"
    assert shell_lines(text) == [["prunekit", "study", "--quick", "--runs", "a"],
                                 ["make", "run"]]
