"""Size accounting, the entropy bound, reconstruction errors and Keras's own int8 quantization.

Expected figures are computed here by hand or with NumPy/zipfile, independently of the code.
"""

from __future__ import annotations

import math
import warnings
import zipfile

import keras
import numpy as np
import pytest

from prunekit.export import binary_entropy, model_sizes, reconstruction_error, save_compressed
from prunekit.export.sizes import empirical_entropy, tensor_bound_bits
from prunekit.export.tensors import TensorInfo


def _np(variable) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable.value))


def tiny_model() -> keras.Model:
    """Dense(8 -> 1, no bias) with 2 of 8 kernel weights nonzero."""
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, use_bias=False)])
    kernel = np.zeros((8, 1), np.float32)
    kernel[1, 0], kernel[6, 0] = 0.75, -1.25
    model.weights[0].assign(kernel)
    return model


def sparse_mlp(sparsity: float = 0.8) -> keras.Model:
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(96, activation="relu"), keras.layers.Dense(10)]
    )
    rng = np.random.default_rng(0)
    for w in model.weights:
        a = rng.normal(size=w.shape).astype(np.float32) * 0.05
        if a.ndim == 2:
            a[np.abs(a) <= np.quantile(np.abs(a), sparsity)] = 0.0
        w.assign(a)
    return model


def test_binary_entropy_by_hand():
    assert binary_entropy(0.25) == pytest.approx(-(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)))
    assert binary_entropy(0.5) == 1.0
    assert binary_entropy(0.0) == binary_entropy(1.0) == 0.0


def test_bound_n8_two_nonzeros_by_hand():
    info = TensorInfo((8,), "f32", "bitmask", nnz=2, value_bits=32)
    hand = 8 * 0.8112781244591328 + 2 * 32  # 8 * H(1/4) + two float32 values
    assert tensor_bound_bits(info) == pytest.approx(hand)


def test_model_bound_matches_hand_computation():
    sizes = model_sizes(tiny_model(), keras_int8=False)
    h = binary_entropy(2 / 8)
    arch = sizes.architecture_bytes
    assert sizes.bound["float32"] == pytest.approx(arch + (8 * h + 2 * 32) / 8)
    assert sizes.bound["float16"] == pytest.approx(arch + (8 * h + 2 * 16) / 8)
    # int8: values 8 bits, plus one float16 scale for the single output channel
    assert sizes.bound["int8"] == pytest.approx(arch + (8 * h + 2 * 8 + 16) / 8)
    assert sizes.params == 8 and sizes.nonzeros == 2


def test_order0_bound_uses_empirical_value_entropy():
    assert empirical_entropy(np.array([3, 3, -7, -7], np.int8)) == 1.0
    values = np.array([5, 5, 5, -9], np.int8)
    info = TensorInfo(
        (16,), "i8", "bitmask", nnz=4, n_scales=1, scale_bits=16, value_bits=8, values=values
    )
    h_vals = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    expected = 16 * binary_entropy(4 / 16) + 4 * h_vals + 16
    assert tensor_bound_bits(info, order0=True) == pytest.approx(expected)


def test_keras_sizes_match_independent_measurement(tmp_path):
    model = sparse_mlp()
    sizes = model_sizes(model, keras_int8=False)
    path = tmp_path / "model.keras"
    model.save(path)
    with zipfile.ZipFile(tmp_path / "z.zip", "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.write(path, arcname="model.keras")
    # .keras files embed a timestamp, so allow a few bytes of difference
    assert abs(sizes.keras_bytes - path.stat().st_size) <= 16
    assert abs(sizes.keras_zip_bytes - (tmp_path / "z.zip").stat().st_size) <= 16
    arrays = [_np(w) for w in model.weights]
    assert sizes.params == sum(a.size for a in arrays) == model.count_params()
    assert sizes.nonzeros == sum(int(np.count_nonzero(a)) for a in arrays)
    for mode in ("float32", "float16", "int8"):  # the size of the file save_compressed writes
        save_compressed(model, tmp_path / f"{mode}.pkz", weights=mode)
        assert sizes.compressed[mode] == (tmp_path / f"{mode}.pkz").stat().st_size


def test_compression_beats_zip_and_stays_near_bound():
    sizes = model_sizes(sparse_mlp(0.8), keras_int8=False)
    assert sizes.compressed["int8"] < sizes.compressed["float16"] < sizes.compressed["float32"]
    assert sizes.compressed["float32"] < sizes.keras_zip_bytes
    d = sizes.as_dict()
    for mode in ("float32", "float16", "int8"):
        assert d["ratio_to_bound"][mode] == pytest.approx(
            sizes.compressed[mode] / sizes.bound[mode]
        )
        assert 0.5 < d["ratio_to_bound"][mode] < 1.1
    # the zipped .keras of the same sparse model already squeezes out much of the zeros
    assert d["times_smaller_than_keras_zip"]["int8"] > 2


def test_reconstruction_error_matches_numpy():
    model = sparse_mlp()
    report = reconstruction_error(model, "int8")
    assert [r["path"] for r in report] == [w.path for w in model.weights]
    for r, w in zip(report, model.weights):
        a = _np(w)
        assert r["zeros_preserved"]
        if a.ndim == 2:
            scale = np.abs(a).max(axis=0) / 127
            assert r["format"] == "i8"
            assert r["max_abs_error"] <= scale.max() * (1 + 2.0**-10) / 2 + 1e-7
            assert r["max_scale"] == pytest.approx(scale.max(), rel=2.0**-10)
            assert 0 < r["rel_rms_error"] < 0.05
        else:
            err = a.astype(np.float16).astype(np.float64) - a
            assert r["max_abs_error"] == pytest.approx(np.abs(err).max())
    for r in reconstruction_error(model, "float32"):
        assert r["max_abs_error"] == 0.0 and r["rel_rms_error"] == 0.0


def test_reconstruction_error_rejects_unknown_mode():
    with pytest.raises(ValueError, match="weights='int3'"):
        reconstruction_error(tiny_model(), "int3")


def test_keras_quantize_int8_keeps_pruned_zeros():
    model = sparse_mlp(0.7)
    kernels = [_np(layer.kernel) for layer in model.layers]
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clone.quantize("int8")
    for layer, kernel in zip(clone.layers, kernels):
        q = np.asarray(keras.ops.convert_to_numpy(layer._kernel))
        assert q.dtype == np.int8 and q.shape == kernel.shape
        assert np.all(q[kernel == 0] == 0)
    x = np.random.default_rng(3).normal(size=(16, 64)).astype(np.float32)
    ref, got = model.predict(x, verbose=0), clone.predict(x, verbose=0)
    assert np.max(np.abs(ref - got)) < 0.05 * np.max(np.abs(ref))


def test_keras_int8_size_reported():
    sizes = model_sizes(sparse_mlp(), keras_int8=True)
    assert sizes.keras_int8_bytes is not None and sizes.keras_int8_zip_bytes is not None
    assert sizes.keras_int8_zip_bytes < sizes.keras_zip_bytes
    assert "quantize" in sizes.keras_int8_note
