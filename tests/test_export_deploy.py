"""Deployment export through Keras's model.export: predictions vs Keras, clear errors otherwise.

Which format works depends on the backend (see docs/export.md); each skip names its reason.
"""

from __future__ import annotations

import importlib.util

import keras
import numpy as np
import pytest

from prunekit.export import export_deployable
from prunekit.export.deploy import artifact_bytes

BACKEND = keras.backend.backend()
HAS = {
    name: importlib.util.find_spec(name) is not None
    for name in (
        "tensorflow",
        "litert_torch",
        "torch_xla",
        "onnx",
        "onnxscript",
        "tf2onnx",
        "jax2onnx",
    )
}


def sparse_model() -> keras.Model:
    model = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
    )
    for w in model.weights:
        a = np.asarray(keras.ops.convert_to_numpy(w.value)).copy()
        if a.ndim == 2:
            a[np.abs(a) < np.quantile(np.abs(a), 0.5)] = 0.0
        else:
            a = np.full(a.shape, 0.05, np.float32)
        w.assign(a)
    return model


def _x() -> np.ndarray:
    return np.random.default_rng(0).uniform(size=(4, 10)).astype(np.float32)


@pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="Keras exports LiteRT with tf.lite only on the "
    "TensorFlow backend (torch needs litert_torch, not installed; JAX unsupported)",
)
def test_litert_predictions_match_keras(tmp_path):
    import tensorflow as tf

    model, x = sparse_model(), _x()
    art = export_deployable(model, tmp_path / "m.tflite", "litert")
    assert art.bytes == (tmp_path / "m.tflite").stat().st_size > 0
    interpreter = tf.lite.Interpreter(model_path=art.path)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    got = []
    for row in x:  # the converted signature has a batch of 1
        interpreter.resize_tensor_input(inp["index"], [1, 10])
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], row[None])
        interpreter.invoke()
        got.append(interpreter.get_tensor(out["index"])[0])
    np.testing.assert_allclose(np.array(got), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(
    BACKEND not in ("tensorflow", "jax") or not HAS["tensorflow"],
    reason="tf_saved_model needs the TensorFlow or JAX backend (torch needs "
    "torch_xla, not installed) and TensorFlow installed",
)
def test_saved_model_predictions_match_keras(tmp_path):
    import tensorflow as tf

    model, x = sparse_model(), _x()
    art = export_deployable(model, tmp_path / "saved", "tf_saved_model")
    assert art.bytes == artifact_bytes(tmp_path / "saved") > 0
    reloaded = tf.saved_model.load(art.path)
    np.testing.assert_allclose(
        reloaded.serve(x).numpy(), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


@pytest.mark.skipif(
    BACKEND != "torch", reason="format='torch' (torch.export) needs the torch backend"
)
def test_torch_export_predictions_match_keras(tmp_path):
    import torch

    model, x = sparse_model(), _x()
    art = export_deployable(model, tmp_path / "m.pt2", "torch")
    assert art.bytes == (tmp_path / "m.pt2").stat().st_size > 0
    program = torch.export.load(art.path)
    # without an input_signature the exported program has a static batch of 1
    got = np.concatenate(
        [program.module()(torch.from_numpy(row[None])).detach().numpy() for row in x]
    )
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(BACKEND != "jax", reason="checks the JAX backend's refusal of LiteRT")
def test_litert_on_jax_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="litert.*jax backend.*tensorflow, torch"):
        export_deployable(sparse_model(), tmp_path / "m.tflite", "litert")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(
    BACKEND != "torch" or HAS["litert_torch"],
    reason="checks the missing-package error of LiteRT on torch (litert_torch absent)",
)
def test_litert_on_torch_names_missing_package(tmp_path):
    with pytest.raises(ImportError, match="pip install litert-torch"):
        export_deployable(sparse_model(), tmp_path / "m.tflite", "litert")


def test_onnx_missing_packages_are_named(tmp_path):
    needed = {
        "tensorflow": ("tf2onnx", "onnx"),
        "jax": ("jax2onnx", "onnx"),
        "torch": ("onnx", "onnxscript"),
    }[BACKEND]
    if all(HAS[n] for n in needed):
        pytest.skip(f"ONNX exporters ({', '.join(needed)}) are installed: no error to check")
    with pytest.raises(ImportError, match="pip install"):
        export_deployable(sparse_model(), tmp_path / "m.onnx", "onnx")
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_and_wrong_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"format='coreml'"):
        export_deployable(sparse_model(), tmp_path / "m.bin", "coreml")
    fmt = {"tensorflow": "litert", "jax": "tf_saved_model", "torch": "torch"}[BACKEND]
    if fmt != "tf_saved_model":
        with pytest.raises(ValueError, match="needs a path ending in"):
            export_deployable(sparse_model(), tmp_path / "m.bin", fmt)


def test_existing_output_not_overwritten(tmp_path):
    fmt, name = {
        "tensorflow": ("litert", "m.tflite"),
        "jax": ("tf_saved_model", "saved"),
        "torch": ("torch", "m.pt2"),
    }[BACKEND]
    target = tmp_path / name
    target.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_deployable(sparse_model(), target, fmt)
    assert target.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
