""".pkz files store N:M-sparse tensors as one pattern code per group (prunekit.export.nm_patterns).

Codes and their packing are checked against a plain-Python reference written from the layout in
docs/export.md (``itertools.combinations`` order, base-``C`` digits in little-endian words);
byte counts are computed by hand. Files written before the N:M layout still load.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import keras
import numpy as np
import pytest

from prunekit.export import load_compressed, nm_patterns, tensors
from prunekit.export.format import decode_model, encode_model
from prunekit.export.tensor_table import decode_tensors

DATA = Path(__file__).parent / "data"
# Units of k codes in b bits, by hand: 6^17 = 1.69e13 lies between 2^43 = 8.8e12 and 2^44 =
# 1.76e13 (2.588 bits a code; no k up to 64 does better within 64 bits); 70^7 = 8.24e12 lies
# between 2^42 and 2^43 (6.143 bits a code).
UNITS = {6: (17, 44), 70: (7, 43)}


def _reference_codes(matrix: np.ndarray, n: int, m: int) -> list[int]:
    """Code of each group of m consecutive rows of each column of a (K, O) mask, column first."""
    order = list(itertools.combinations(range(m), n))
    return [order.index(tuple(np.flatnonzero(matrix[start:start + m, column])))
            for column in range(matrix.shape[1]) for start in range(0, matrix.shape[0], m)]


def _reference_pack(codes: list[int], count: int) -> bytes:
    """Units of k base-C digits, b bits each, in one little-endian integer (Python ints)."""
    k, b = UNITS[count]
    stream, shift = 0, 0
    for start in range(0, len(codes), k):
        chunk = codes[start:start + k]
        stream |= sum(code * count**i for i, code in enumerate(chunk)) << shift
        shift += b if len(chunk) == k else (count ** len(chunk) - 1).bit_length()
    return stream.to_bytes(math.ceil(shift / 8), "little")


def _n_m_mask(rng, k: int, o: int, n: int, m: int) -> np.ndarray:
    """A random (K, O) mask with exactly n of every m consecutive rows of each column."""
    scores = rng.random((o, k // m, m))
    keep = scores >= np.sort(scores, axis=-1)[..., m - n: m - n + 1]
    return keep.reshape(o, k).T


@pytest.mark.parametrize("n,m,k,o", [(2, 4, 64, 32), (4, 8, 80, 3), (1, 4, 8, 1), (3, 4, 4, 7)])
def test_codes_and_packing_match_the_reference(n, m, k, o):
    mask = _n_m_mask(np.random.default_rng(k), k, o, n, m)
    slots, data = nm_patterns.encode(mask, n, m, split=1)
    codes = _reference_codes(mask, n, m)
    count = math.comb(m, n)
    if count in UNITS:
        assert data == _reference_pack(codes, count)
    else:  # 1:4 and 3:4 (C = 4): 32 codes of 2 bits fill 64; here fewer, in one partial unit
        assert nm_patterns.unit(4) == (1, 2)
        assert int.from_bytes(data, "little") == sum(c * 4**i for i, c in enumerate(codes))
    np.testing.assert_array_equal(slots, mask)
    decoded = nm_patterns.decode(np.frombuffer(data, np.uint8), (k, o), n, m, split=1)
    np.testing.assert_array_equal(decoded, mask)


def test_a_conv_kernel_groups_along_its_flattened_inputs():
    # (kh, kw, in, out) = (3, 1, 4, 2): K = 12 runs over kh and in, like the im2col matrix.
    mask = _n_m_mask(np.random.default_rng(1), 12, 2, 2, 4).reshape(3, 1, 4, 2)
    slots, data = nm_patterns.encode(mask, 2, 4, split=3)
    assert data == _reference_pack(_reference_codes(mask.reshape(12, 2), 2, 4), 6)
    assert tensors.best_n_m(mask, budget=10**6, itemsize=4) == (2, 4, 3)


def test_groups_with_fewer_nonzeros_keep_slots_for_their_first_zeros():
    mask = np.array([[1, 0], [0, 0], [0, 0], [0, 1]], bool)  # columns: 1 and 1 nonzero of 4
    slots, data = nm_patterns.encode(mask, 2, 4, split=1)
    # Column 0 keeps rows 0, 1 (code 0); column 1 keeps rows 0, 3 (code 2): 0 + 2 * 6 = 12.
    assert slots.astype(int).tolist() == [[1, 1], [1, 0], [0, 0], [0, 1]]
    assert data == bytes([12])


def test_packed_lengths_by_hand():
    assert nm_patterns.unit(6) == UNITS[6] and nm_patterns.unit(70) == UNITS[70]
    assert nm_patterns.packed_length(512, 6) == 166  # 30 * 44 + 6 (6^2 - 1 < 2^6) = 1,326 bits
    assert nm_patterns.packed_length(48, 6) == 16    # 2 * 44 + 37 (6^14 = 7.8e10 < 2^37) bits
    assert nm_patterns.packed_length(25, 70) == 20   # 3 * 43 + 25 (70^4 = 2.4e7 < 2^25) bits


def _two_four_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32)])
    kernel = np.asarray(keras.ops.convert_to_numpy(model.layers[0].kernel))
    keep = _n_m_mask(np.random.default_rng(seed), 64, 32, 2, 4)
    model.layers[0].kernel.assign(kernel * keep)
    return model


def _pattern_stream(model: keras.Model, weights: str) -> bytes:
    """The raw pattern stream of the model's kernel, as the writer makes it."""
    _, streams, _ = tensors.encode_tensor(
        np.asarray(keras.ops.convert_to_numpy(model.weights[0])), weights)
    return streams.get("pattern", b"")


def test_two_four_kernel_saves_the_expected_pattern_bytes(monkeypatch):
    model = _two_four_model()
    n_m = _pattern_stream(model, "float32")
    full = encode_model(model, "float32")
    monkeypatch.setattr(nm_patterns, "GROUP_SIZES", ())  # the plain sparse encoding
    plain = _pattern_stream(model, "float32")
    plain_file = encode_model(model, "float32")
    # (64, 32) kernel: 2,048 elements = 512 groups of 4. Bitmask: 2,048 bits = 256 bytes.
    # 2:4 codes: 512 = 30 units of 17 codes in 44 bits + 2 codes in 6 bits = 1,326 bits, 166
    # bytes, against the entropy 512 * log2(6) / 8 = 165.4 bytes.
    assert (len(plain), len(n_m)) == (256, 166)
    assert full.tensors[0].layout == "n:m" and plain_file.tensors[0].layout == "bitmask"
    saved = len(plain_file.data) - len(full.data)
    print(f"\n2:4 (64, 32) kernel: pattern 256 -> 166 bytes; file {len(plain_file.data)} -> "
          f"{len(full.data)} bytes ({saved} saved)")
    assert saved > 0


@pytest.mark.parametrize("weights", ["float32", "float16", "int8"])
def test_round_trip_is_what_the_plain_encoding_gives(weights, monkeypatch):
    model = _two_four_model(1)
    kernel = model.layers[0].kernel
    value = np.asarray(keras.ops.convert_to_numpy(kernel))
    value[0, 0], value[1, 0] = 0.0, -0.0  # two kept slots of a group holding zeros
    value[2, 0], value[3, 0] = 1.0, 1e-6  # int8: 1e-6 rounds to 0 in its channel (scale 1/127)
    value[4:8, 0] = [-0.0, 0.0, 0.0, 0.0]  # no nonzero: slots on rows 4, 5 keep -0.0 as a value
    kernel.assign(value)
    decoded = decode_model(encode_model(model, weights).data)
    monkeypatch.setattr(nm_patterns, "GROUP_SIZES", ())
    reference = decode_model(encode_model(model, weights).data)
    for got, want in zip(decoded.weights, reference.weights):  # -0.0 == 0.0 here: float16
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got),  # keeps a kept slot's
                                      keras.ops.convert_to_numpy(want))  # sign, plain does not
    if weights == "float32":  # bitwise, -0.0 included
        got = np.asarray(keras.ops.convert_to_numpy(decoded.weights[0]))
        np.testing.assert_array_equal(got.view(np.uint32), value.view(np.uint32))


def test_four_eight_and_bias_vectors_in_one_table():
    rng = np.random.default_rng(5)
    # 12 groups of 8 with 4 nonzeros: bitmask 12 + values 192 bytes; 4:8 codes: one unit of
    # 7 in 43 bits and 5 codes in 31 bits (70^5 = 1.7e9 < 2^31) = 10 + values 192 bytes.
    kernel = (rng.normal(size=(16, 6)) * _n_m_mask(rng, 16, 6, 4, 8)).astype(np.float32)
    bias = np.zeros(6, np.float32)
    records, streams, layouts = b"", {}, []
    for array in (kernel, bias):
        record, parts, info = tensors.encode_tensor(array, "float32")
        records += record
        layouts.append(info.layout)
        for name, part in parts.items():
            streams[name] = streams.get(name, b"") + part
    assert layouts == ["n:m", "delta"] and len(streams["pattern"]) == 10
    assert tensors.best_n_m(kernel != 0, 10**6, 4) == (4, 8, 1)
    out = decode_tensors(records, 2, streams)
    np.testing.assert_array_equal(out[0], kernel)
    np.testing.assert_array_equal(out[1], bias)


@pytest.mark.parametrize("weights", ["float32", "int8"])
def test_files_written_before_the_n_m_layout_still_load(weights):
    expected = np.load(DATA / "pkz-before-nm.npz")
    model = load_compressed(DATA / f"pkz-before-nm-{weights}.pkz")
    kernel = np.asarray(keras.ops.convert_to_numpy(model.weights[0]))
    np.testing.assert_array_equal(kernel == 0, expected["sequential.two_four.kernel"] == 0)
    tolerance = 0 if weights == "float32" else 0.05
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(_inputs())),
                               expected["predictions"], atol=tolerance + 1e-6)
    assert encode_model(model, weights).tensors[0].layout == "n:m"  # written anew: compact


def _inputs() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(5, 16)).astype("float32")


def test_a_one_shot_two_four_model_is_stored_n_m():
    from prunekit.oneshot import prune_oneshot

    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((3, 3, 4)), keras.layers.Conv2D(4, 3),
                              keras.layers.Flatten(), keras.layers.Dense(8)])
    x = np.random.default_rng(2).normal(size=(8, 3, 3, 4)).astype("float32")
    prune_oneshot(model, x, "wanda", n_m=(2, 4))
    encoded = encode_model(model, "int8")
    assert [info.layout for info in encoded.tensors] == ["n:m", "delta", "n:m", "delta"]
    back = decode_model(encoded.data)
    for got, want in zip(back.weights, model.weights):
        got, want = (np.asarray(keras.ops.convert_to_numpy(w)) for w in (got, want))
        assert ((got == 0) == (want == 0)).all()  # int8 keeps every kept weight nonzero here
