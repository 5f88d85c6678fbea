"""The .pkz format: round trips, pattern choice, corruption, atomic writes, validation.

Expected values come from NumPy or hand computation, never from the encoder's own output.
"""

from __future__ import annotations

import os
import struct
import zlib

import keras
import numpy as np
import pytest

from prunekit.export import load_compressed, save_compressed
from prunekit.export import tensor_table
from prunekit.export import tensors as T
from prunekit.export.format import decode_model, encode_model


def _np(variable) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable.value))


def _prune_half(model: keras.Model) -> keras.Model:
    """Zero the smaller half of each kernel by multiplying with a mask (so -0.0 appears)."""
    for w in model.weights:
        a = _np(w)
        if a.ndim >= 2:
            a = a * (np.abs(a) > np.quantile(np.abs(a), 0.5)).astype(np.float32)
        else:
            a = np.random.default_rng(0).normal(size=a.shape).astype(np.float32) * 0.1
        w.assign(a)
    return model


def friedman_like() -> keras.Model:
    model = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(1)]
    )
    return _prune_half(model)


def conv_functional() -> keras.Model:
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Flatten()(x)
    a = keras.layers.Dense(5)(x)
    b = keras.layers.Dense(5, use_bias=False)(x)
    model = keras.Model(inp, keras.layers.Add()([a, b]))
    return _prune_half(model)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("build", [friedman_like, conv_functional])
def test_float32_round_trip_is_bitwise_exact(tmp_path, build):
    model = build()
    path = tmp_path / "m.pkz"
    save_compressed(model, path)
    back = load_compressed(path)
    assert back.built
    assert len(back.weights) == len(model.weights)
    for a, b in zip(model.weights, back.weights):
        np.testing.assert_array_equal(_bits(_np(a)), _bits(_np(b)))  # -0.0 kept as -0.0
    x = np.random.default_rng(1).normal(size=(7, *model.input_shape[1:])).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), back.predict(x, verbose=0))


def test_negative_zeros_present_in_fixture():
    kernel = _np(friedman_like().weights[0])
    assert np.any((kernel == 0) & np.signbit(kernel)), "fixture should contain -0.0"


def test_float16_round_trip_equals_numpy_cast():
    model = friedman_like()
    back = decode_model(encode_model(model, "float16").data)
    for a, b in zip(model.weights, back.weights):
        expected = _np(a).astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(np.abs(_np(b)), np.abs(expected))


@pytest.mark.parametrize("build", [friedman_like, conv_functional])
def test_int8_zeros_preserved_and_error_within_half_scale(build):
    model = build()
    back = decode_model(encode_model(model, "int8").data)
    for a, b in zip(model.weights, back.weights):
        w, r = _np(a), _np(b)
        if w.ndim >= 2:
            # Independent per-output-channel scale; float16 storage may round it up by <= 2^-10.
            scale = np.abs(w.reshape(-1, w.shape[-1])).max(axis=0) / 127.0
            bound = scale * (1 + 2.0**-10) / 2 + 1e-7
            assert np.all(np.abs(w - r) <= bound)
            assert np.all(r[w == 0] == 0)
        else:  # vectors are kept as float16
            np.testing.assert_array_equal(r, w.astype(np.float16).astype(np.float32))


def test_int8_predictions_close_to_float():
    model = friedman_like()
    back = decode_model(encode_model(model, "int8").data)
    x = np.random.default_rng(2).uniform(size=(64, 10)).astype(np.float32)
    ref, got = model.predict(x, verbose=0), back.predict(x, verbose=0)
    assert np.max(np.abs(ref - got)) < 0.02 * np.max(np.abs(ref)) + 1e-3


def test_sequential_without_input_layer_is_built_after_load(tmp_path):
    model = keras.Sequential([keras.layers.Dense(3)])
    model.build((None, 5))
    save_compressed(model, tmp_path / "m.pkz")
    back = load_compressed(tmp_path / "m.pkz")
    assert back.built and [tuple(w.shape) for w in back.weights] == [(5, 3), (3,)]


def test_non_float32_tensor_stored_raw():
    arr = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    record, streams, info = T.encode_tensor(arr, "int8")
    assert info.fmt == "raw"
    np.testing.assert_array_equal(tensor_table.decode_tensors(record, 1, streams)[0], arr)


# ---------------------------------------------------------------- patterns


def test_varints_by_hand():
    assert T.encode_varints(np.array([0, 127, 128, 300])) == bytes([0, 127, 0x80, 0x01, 0xAC, 0x02])
    values, used = T.decode_varints(np.frombuffer(bytes([0xAC, 0x02, 0x05]), np.uint8), 2)
    assert values.tolist() == [300, 5] and used == 3


def test_sparse_pattern_uses_index_deltas():
    mask = np.zeros(1000, bool)
    mask[[5, 500, 999]] = True
    layout, data = T.pattern_bytes(mask)
    # gaps 5, 494, 498 -> 0x05 | 0xEE 0x03 | 0xF2 0x03: 5 bytes < ceil(1000/8) = 125
    assert layout == T.LAYOUT_DELTA
    assert data == bytes([0x05, 0xEE, 0x03, 0xF2, 0x03])


def test_half_dense_pattern_uses_bitmask():
    mask = np.array([1, 0] * 8, bool)
    layout, data = T.pattern_bytes(mask)
    assert layout == T.LAYOUT_BITMASK and data == bytes([0xAA, 0xAA])


def test_tie_goes_to_bitmask():
    mask = np.zeros(8, bool)
    mask[0] = True  # bitmask: 1 byte; deltas: one gap of 0 -> 1 byte
    assert T.pattern_bytes(mask) == (T.LAYOUT_BITMASK, bytes([0x80]))


def test_dense_tensor_stored_as_is():
    arr = np.arange(1, 25, dtype=np.float32).reshape(2, 3, 4)  # no zeros
    _, streams, info = T.encode_tensor(arr, "float32")
    assert info.layout == "dense" and "pattern" not in streams
    # output-channel-major order: the last axis outermost
    assert streams["f32"] == np.ascontiguousarray(np.transpose(arr, (2, 0, 1))).tobytes()


def test_channel_offsets_round_trip_and_pay():
    # Channel c keeps magnitudes lo_c..lo_c+7 (and one 127 that fixes the scale), as magnitude
    # pruning leaves a per-channel gap below a threshold. Scale 2^-7 is exact in float16.
    rng = np.random.default_rng(5)
    lows = 10 + 12 * np.arange(8)
    q = rng.integers(0, 8, size=(400, 8)) + lows
    q[0] = 127
    q = q * rng.choice([-1, 1], size=q.shape) * (rng.uniform(size=q.shape) < 0.5)
    q[0] = 127
    w = (q * 2.0**-7).astype(np.float32)
    record, streams, info = T.encode_tensor(w, "int8")
    assert info.layout == "bitmask" and record[0] & 0x80, "offsets should be used"
    assert list(streams["i8"][:8]) == list(lows - 1)  # offsets = min |q| - 1 per channel
    back = tensor_table.decode_tensors(record, 1, streams)[0]
    np.testing.assert_array_equal(back, w)  # every value is on the int8 grid


def test_layout_choice_inside_a_model():
    model = keras.Sequential([keras.Input((100,)), keras.layers.Dense(10, use_bias=False)])
    kernel = np.zeros((100, 10), np.float32)
    kernel[3, 4] = kernel[77, 1] = 1.5
    model.weights[0].assign(kernel)
    encoded = encode_model(model, "float32")
    assert [(i.layout, i.nnz) for i in encoded.tensors] == [("delta", 2)]
    np.testing.assert_array_equal(_np(decode_model(encoded.data).weights[0]), kernel)


# ---------------------------------------------------------------- corruption


def _sections(blob: bytes) -> list[tuple[int, int, int]]:
    """(kind, start, payload_end) of each section, parsed from the documented layout."""

    def uvarint(pos):
        value = shift = 0
        while True:
            byte = blob[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, pos

    out, pos = [], 5
    while pos < len(blob):
        kind = blob[pos]
        _, p = uvarint(pos + 2)
        stored, p = uvarint(p)
        assert struct.unpack_from("<I", blob, p + stored)[0] == zlib.crc32(blob[pos : p + stored])
        out.append((kind, p, p + stored))
        pos = p + stored + 4
    return out


SECTION_LABELS = {
    1: "architecture",
    2: "tensor table",
    3: "pattern stream",
    6: "f16 stream",
    7: "i8 stream",
    4: "zerosign stream",
    5: "f32 stream",
}


@pytest.mark.parametrize("mode", ["float32", "int8"])
def test_flipped_byte_in_each_section_is_a_checksum_error(mode):
    blob = encode_model(friedman_like(), mode).data
    assert blob[:5] == b"\x89PKZ\x01"
    sections = _sections(blob)
    assert sections[-1][0] == 0  # end marker
    for kind, start, stop in sections[:-1]:
        for offset in {start, (start + stop) // 2, stop - 1}:
            bad = bytearray(blob)
            bad[offset] ^= 0x40
            with pytest.raises(
                ValueError, match=f"Checksum mismatch in section '{SECTION_LABELS[kind]}'"
            ):
                decode_model(bytes(bad))


def test_every_truncation_raises():
    blob = encode_model(friedman_like(), "int8").data
    for cut in range(len(blob)):
        with pytest.raises(ValueError, match="Truncated|Not a prunekit"):
            decode_model(blob[:cut])


def test_crc_byte_and_header_corruption_raise():
    blob = encode_model(friedman_like(), "int8").data
    for offset in range(5, len(blob)):
        bad = bytearray(blob)
        bad[offset] ^= 0x01
        with pytest.raises(ValueError):
            decode_model(bytes(bad))


def test_foreign_file_bad_magic(tmp_path):
    model = friedman_like()
    model.save(tmp_path / "m.keras")  # a zip file
    with pytest.raises(ValueError, match="bad magic"):
        load_compressed(tmp_path / "m.keras")


def test_future_version_rejected():
    blob = bytearray(encode_model(friedman_like(), "int8").data)
    blob[4] = 2
    with pytest.raises(ValueError, match="Unsupported format version 2"):
        decode_model(bytes(blob))


def test_trailing_bytes_rejected():
    blob = encode_model(friedman_like(), "int8").data
    with pytest.raises(ValueError, match="after the end section"):
        decode_model(blob + b"\x00")


# ---------------------------------------------------------------- writing


def _listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


def test_existing_file_untouched_without_overwrite(tmp_path):
    path = tmp_path / "m.pkz"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_compressed(friedman_like(), path, weights="int8")
    assert path.read_bytes() == b"precious"
    assert _listing(tmp_path) == ["m.pkz"]
    save_compressed(friedman_like(), path, weights="int8", overwrite=True)
    assert path.read_bytes()[:4] == b"\x89PKZ"


def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    def broken_fsync(fd):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk on fire"):
        save_compressed(friedman_like(), tmp_path / "m.pkz")
    assert _listing(tmp_path) == []


def test_unknown_weights_mode_rejected_before_writing(tmp_path):
    with pytest.raises(ValueError, match=r"\['float32', 'float16', 'int8'\].*weights='int4'"):
        save_compressed(friedman_like(), tmp_path / "m.pkz", weights="int4")
    assert _listing(tmp_path) == []


def test_pruning_wrapper_refused(tmp_path):
    import prunekit

    model = prunekit.prune_low_magnitude(
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="strip_pruning"):
        save_compressed(model, tmp_path / "m.pkz")
    assert _listing(tmp_path) == []


def test_real_pruned_model_after_strip(tmp_path):
    import prunekit

    base = keras.Sequential([keras.Input((10,)), keras.layers.Dense(16), keras.layers.Dense(1)])
    pruned = prunekit.prune_low_magnitude(base, pruning_schedule=prunekit.ConstantSparsity(0.5, 0))
    with pytest.raises(ValueError, match="strip_pruning"):
        save_compressed(pruned, tmp_path / "w.pkz")
    pruned.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32)
    pruned.fit(x, x[:, :1], epochs=1, verbose=0, callbacks=[prunekit.UpdatePruningStep()])
    stripped = prunekit.strip_pruning(pruned)
    save_compressed(stripped, tmp_path / "s.pkz")
    back = load_compressed(tmp_path / "s.pkz")
    np.testing.assert_array_equal(stripped.predict(x, verbose=0), back.predict(x, verbose=0))


def test_model_that_cannot_be_rebuilt_is_refused_at_save(tmp_path):
    class Opaque(keras.Model):  # subclassed, no get_config: Keras cannot rebuild it
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Opaque()
    model(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="cannot be rebuilt"):
        save_compressed(model, tmp_path / "m.pkz")
    assert _listing(tmp_path) == []
