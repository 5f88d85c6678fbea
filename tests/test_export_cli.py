"""``prunekit export`` / ``prunekit size`` through prunekit.export.cli.add_commands."""

from __future__ import annotations

import argparse
import json

import keras
import numpy as np
import pytest

from prunekit.export import load_compressed
from prunekit.export.cli import add_commands

BACKEND = keras.backend.backend()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunekit")
    add_commands(parser.add_subparsers(dest="command"))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


@pytest.fixture
def keras_file(tmp_path):
    model = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
    )
    kernel = np.asarray(keras.ops.convert_to_numpy(model.weights[0].value)).copy()
    kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.75)] = 0.0
    model.weights[0].assign(kernel)
    path = tmp_path / "model.keras"
    model.save(path)
    return path, model


def test_both_commands_take_backend_option():
    parser = _parser()
    for cmd in (["size", "m.keras"], ["export", "m.keras", "-o", "o.pkz"]):
        args = parser.parse_args([*cmd, "--backend", "torch"])
        assert args.backend == "torch" and callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["size", "m.keras", "--backend", "mxnet"])


def test_export_writes_loadable_file_and_respects_force(keras_file, tmp_path, capsys):
    src, model = keras_file
    out = tmp_path / "out.pkz"
    assert _run(["export", str(src), "--weights", "int8", "-o", str(out)]) == 0
    assert f"{out.stat().st_size:,} bytes" in capsys.readouterr().out
    back = load_compressed(out)
    kernel = np.asarray(keras.ops.convert_to_numpy(back.weights[0].value))
    original = np.asarray(keras.ops.convert_to_numpy(model.weights[0].value))
    assert np.array_equal(kernel == 0, original == 0)

    before = out.read_bytes()
    assert _run(["export", str(src), "--weights", "float32", "-o", str(out)]) == 2  # usage
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert _run(["export", str(src), "--weights", "float32", "-o", str(out), "--force"]) == 0
    assert out.read_bytes() != before


def test_export_rejects_bad_weights_mode():
    with pytest.raises(SystemExit):
        _parser().parse_args(["export", "m.keras", "--weights", "int4", "-o", "o.pkz"])


def test_export_missing_input_is_an_error(tmp_path, capsys):
    assert _run(["export", str(tmp_path / "nope.keras"), "-o", str(tmp_path / "o.pkz")]) == 2
    assert "No such model file" in capsys.readouterr().err
    assert not (tmp_path / "o.pkz").exists()


def test_size_prints_table_and_json(keras_file, tmp_path, capsys):
    src, model = keras_file
    out_json = tmp_path / "sizes.json"
    assert _run(["size", str(src), "--json", str(out_json), "--no-keras-int8"]) == 0
    text = capsys.readouterr().out
    for label in (".keras zipped", ".pkz float32", ".pkz float16", ".pkz int8", "parameters"):
        assert label in text
    figures = json.loads(out_json.read_text())
    assert figures["params"] == model.count_params()
    weights = [np.asarray(keras.ops.convert_to_numpy(w.value)) for w in model.weights]
    assert figures["nonzeros"] == sum(int(np.count_nonzero(w)) for w in weights)
    assert f"{figures['compressed']['int8']:,}" in text
    # the CLI's int8 figure is the size of the file `export` writes
    assert _run(["export", str(src), "--weights", "int8", "-o", str(tmp_path / "m.pkz")]) == 0
    assert (tmp_path / "m.pkz").stat().st_size == figures["compressed"]["int8"]


def test_deploy_format_through_cli(keras_file, tmp_path, capsys):
    src, _ = keras_file
    fmt, name = {
        "tensorflow": ("litert", "m.tflite"),
        "jax": ("tf_saved_model", "saved"),
        "torch": ("torch", "m.pt2"),
    }[BACKEND]
    assert _run(["export", str(src), "--format", fmt, "-o", str(tmp_path / name)]) == 0
    assert (tmp_path / name).exists()
    code = _run(["export", str(src), "--format", "onnx", "-o", str(tmp_path / "m.onnx")])
    if code == 1:  # the ONNX converters are not installed here: the error must say what to install
        assert "pip install" in capsys.readouterr().err
    else:
        assert code == 0 and (tmp_path / "m.onnx").exists()


def test_through_top_level_main(keras_file, tmp_path, monkeypatch, capsys):
    import prunekit.cli as top

    monkeypatch.setattr(top, "COMMAND_MODULES", ("prunekit.export.cli",))
    src, _ = keras_file
    out = tmp_path / "top.pkz"
    assert top.main(["export", str(src), "-o", str(out), "--weights", "float16"]) == 0
    assert top.main(["size", str(out), "--no-keras-int8"]) == 0
    assert ".pkz float16" in capsys.readouterr().out
