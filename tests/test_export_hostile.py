"""Hostile .pkz files: bit flips, truncations, crafted headers and decompression bombs.

Every input must either load as a model the writer could have produced or raise
``PkzFormatError`` (a ``ValueError``) naming the section, never another exception, within a
memory and time bound. Files are crafted here from the byte layout in docs/export.md, with a
framing helper independent of the library's writer. Memory is measured twice: the peak of
Python and NumPy allocations (``tracemalloc``, which also counts lazily-zeroed arrays) must stay
under ``MEMORY_LIMIT_MB``, and, where Linux lets a process reset its high-water mark, the growth
of peak RSS (which sees what a backend allocates too, and tracemalloc's own bookkeeping) under
``RSS_LIMIT_MB``, while files declaring gigabytes are rejected. The largest legitimate cost is
parsing an architecture of up to 4 MiB of JSON into Python objects (a list of a million floats).
"""

from __future__ import annotations

import json
import lzma
import re
import struct
import time
import tracemalloc
import zlib

import keras
import numpy as np
import pytest
import zstandard

from prunekit.export import PkzFormatError
from prunekit.export.format import decode_model, encode_model

MEMORY_LIMIT_MB = 64.0
RSS_LIMIT_MB = 256.0
TIME_LIMIT_S = 5.0
MAGIC = b"\x89PKZ\x01"
ARCH, TABLE, PATTERN, ZEROSIGN, F32, F16, I8, RAW = range(1, 9)
STATS = {"inputs": 0, "rejected": 0, "loaded": 0, "worst_mb": 0.0, "worst": "",
         "worst_rss_mb": 0.0, "worst_rss": ""}


# ------------------------------------------------------------------ measuring


def _rss_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


RSS_PEAK = _reset_rss_peak() and _rss_mb("VmHWM:") is not None


@pytest.fixture(scope="module", autouse=True)
def _tracing():
    tracemalloc.start()
    decode_model(encode_model(_model(), "int8").data)  # warm up imports and caches
    yield
    tracemalloc.stop()
    print(
        f"\nhostile .pkz inputs tried: {STATS['inputs']} ({STATS['rejected']} rejected, "
        f"{STATS['loaded']} loaded as valid models); worst traced peak "
        f"{STATS['worst_mb']:.1f} MB ({STATS['worst']}); worst RSS growth "
        f"{STATS['worst_rss_mb']:.1f} MB ({STATS['worst_rss']})"
    )


class _Peak:
    """Peak growth in MB over a ``with`` block: ``mb`` traced, ``rss_mb`` of RSS (0 if unknown)."""

    def __enter__(self) -> _Peak:
        self.rss_before = _rss_mb("VmRSS:") if RSS_PEAK and _reset_rss_peak() else None
        tracemalloc.reset_peak()
        self.before = tracemalloc.get_traced_memory()[0] / 2**20
        return self

    def __exit__(self, *exc) -> None:
        self.mb = tracemalloc.get_traced_memory()[1] / 2**20 - self.before
        self.rss_mb = 0.0 if self.rss_before is None else _rss_mb("VmHWM:") - self.rss_before


def _try(blob: bytes, label: str) -> keras.Model | PkzFormatError:
    """Decode under the memory and time limits; return the model or the PkzFormatError."""
    start = time.perf_counter()
    with _Peak() as measured:
        try:
            result = decode_model(blob)
        except PkzFormatError as err:
            result = err
    elapsed = time.perf_counter() - start
    STATS["inputs"] += 1
    STATS["rejected" if isinstance(result, PkzFormatError) else "loaded"] += 1
    if measured.mb > STATS["worst_mb"]:
        STATS["worst_mb"], STATS["worst"] = measured.mb, label
    if measured.rss_mb > STATS["worst_rss_mb"]:
        STATS["worst_rss_mb"], STATS["worst_rss"] = measured.rss_mb, label
    assert measured.mb < MEMORY_LIMIT_MB, f"{label}: traced peak {measured.mb:.0f} MB"
    assert measured.rss_mb < RSS_LIMIT_MB, f"{label}: RSS growth {measured.rss_mb:.0f} MB"
    assert elapsed < TIME_LIMIT_S, f"{label}: {elapsed:.1f} s"
    return result


def _reject(blob: bytes, match: str, label: str) -> None:
    result = _try(blob, label)
    assert isinstance(result, PkzFormatError), f"{label}: loaded"
    assert isinstance(result, ValueError)
    assert re.search(match, str(result)), f"{label}: {result}"


# ------------------------------------------------------------------ crafting


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value >> 7 else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _frame(kind: int, payload: bytes, codec: int = 0, raw_len: int | None = None) -> bytes:
    head = bytes([kind, codec]) + _uvarint(len(payload) if raw_len is None else raw_len)
    body = head + _uvarint(len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body))


def _file(*frames: bytes, end: bytes | None = None) -> bytes:
    return MAGIC + b"".join(frames) + (_frame(0, b"") if end is None else end)


def _model() -> keras.Model:
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)]
    )
    for w in model.weights:
        a = np.asarray(keras.ops.convert_to_numpy(w.value))
        if a.ndim == 2:
            a = a * (np.abs(a) > np.quantile(np.abs(a), 0.5)) * -1.0  # zeros, -0.0 among them
        else:
            a = np.linspace(-1, 1, a.size, dtype=np.float32)
        w.assign(a.astype(np.float32))
    return model


def _arch(model: keras.Model | None = None) -> bytes:
    config = keras.saving.serialize_keras_object(model or _dense(4, 3))
    return json.dumps(config).encode()


def _dense(inputs: int, units: int) -> keras.Model:
    return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(units)])


def _dense_config(inputs: int, units: int) -> dict:
    """A Sequential config built by hand (no layer is built to write it)."""
    return {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer",
         "config": {"batch_shape": [None, inputs], "name": "x"}},
        {"module": "keras.layers", "class_name": "Dense",
         "config": {"units": units, "name": "d"}}]}}


def _record(fmt: int, shape: tuple[int, ...], layout: int = 0, extra: int = 0, nnz=None,
            dtype: bytes = b"", nm: tuple[int, int, int] | None = None) -> bytes:
    out = bytes([fmt << 2 | layout | extra, len(shape)]) + b"".join(_uvarint(d) for d in shape)
    if layout == 3:
        out += bytes(nm)  # n, m, split
    elif layout:
        out += _uvarint(nnz)
    if fmt == 3:
        out += bytes([len(dtype)]) + dtype
    return out


def _table(*records: bytes, count: int | None = None) -> bytes:
    return _uvarint(len(records) if count is None else count) + b"".join(records)


def _sections(blob: bytes) -> list[list]:
    """[kind, codec, raw bytes (still byte-shuffled)] of each section but the end one."""
    out, pos = [], 5
    while True:
        kind, codec = blob[pos], blob[pos + 1]
        values, pos = [], pos + 2
        for _ in range(2):
            value = shift = 0
            while True:
                byte = blob[pos]
                pos += 1
                value |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            values.append(value)
        payload, pos = blob[pos : pos + values[1]], pos + values[1] + 4
        if kind == 0:
            return out
        if codec & 0x0F == 1:
            payload = zstandard.ZstdDecompressor().decompress(payload)
        elif codec & 0x0F == 2:
            filters = [{"id": lzma.FILTER_LZMA2, "dict_size": 8 << 20}]
            payload = lzma.decompress(payload, lzma.FORMAT_RAW, filters=filters)
        out.append([kind, codec & 0xF0, bytes(payload)])


def _repack(sections: list[list]) -> bytes:
    return _file(*(_frame(kind, data, codec) for kind, codec, data in sections))


def _valid_parts() -> tuple[bytes, bytes]:
    """Architecture and a matching table for Dense(3) on 4 inputs, all zeros (no streams)."""
    return _arch(), _table(_record(0, (4, 3), 2, nnz=0), _record(0, (3,), 2, nnz=0))


def _dense_parts() -> tuple[bytes, bytes]:
    """The same with both tensors dense: the f32 stream must hold (12 + 3) * 4 = 60 bytes."""
    return _arch(), _table(_record(0, (4, 3)), _record(0, (3,)))


# ------------------------------------------------------------------ the bombs of the report


def test_crafted_all_zero_file_loads():
    arch, table = _valid_parts()
    model = _try(_file(_frame(ARCH, arch), _frame(TABLE, table)), "all-zero Dense")
    assert isinstance(model, keras.Model)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.weights[0]), np.zeros((4, 3)))


def test_huge_tensor_shape_is_checked_before_allocating():
    # A 1.4 GB tensor declared in a few bytes: the architecture has a (4, 3) kernel.
    arch, _ = _valid_parts()
    for shape, layout in (((20000, 20000), 0), ((20000, 20000), 2), ((1 << 62, 4), 2)):
        table = _table(_record(0, shape, layout, nnz=0), _record(0, (3,), 2, nnz=0))
        _reject(_file(_frame(ARCH, arch), _frame(TABLE, table)),
                r"tensor (for|table).*(expects|elements)", f"tensor shape {shape}")


def test_lzma_bomb_is_capped_at_the_declared_length():
    # 3,100 LZMA2 chunks of 2 MiB of zeros: 6.5 GB from about 1.2 MB.
    chunk = lzma.compress(bytes(2 << 20), lzma.FORMAT_RAW,
                          filters=[{"id": lzma.FILTER_LZMA2, "preset": 0, "dict_size": 8 << 20}])
    bomb = chunk[:-1] * 3100 + b"\x00"
    arch, table = _dense_parts()
    for kind, raw_len in ((ARCH, len(arch)), (F32, 60), (ARCH, 6_500_000_000),
                          (F32, 6_500_000_000)):
        frames = [_frame(ARCH, arch), _frame(TABLE, table)]
        frames.append(_frame(kind, bomb, codec=2, raw_len=raw_len))
        if kind == ARCH:
            frames = frames[1:]
        _reject(_file(*frames), r"(architecture|f32 stream)", f"lzma bomb {kind}/{raw_len}")


@pytest.fixture(scope="module")
def zstd_gib() -> bytes:
    compressor = zstandard.ZstdCompressor(level=1).compressobj(size=1 << 30)
    return b"".join(compressor.compress(bytes(1 << 20)) for _ in range(1024)) + compressor.flush()


def test_zstd_frame_stating_its_own_size(zstd_gib):
    assert zstandard.frame_content_size(zstd_gib) == 1 << 30
    lying = bytearray(zstd_gib)  # frame header: magic, descriptor 0x80, window, 4-byte size
    assert lying[4] == 0x80
    lying[6:10] = (60).to_bytes(4, "little")
    arch, table = _dense_parts()
    for payload in (zstd_gib, bytes(lying)):
        for kind in (ARCH, F32):
            frames = [_frame(TABLE, table), _frame(kind, payload, codec=1, raw_len=60)]
            if kind == F32:
                frames.insert(0, _frame(ARCH, arch))
            _reject(_file(*frames), r"architecture|f32 stream", f"zstd 1 GiB as {kind}")


def test_huge_dense_architecture_is_compared_before_building():
    # Dense(16384) on 16384 inputs: 1 GiB of weights the file does not hold.
    arch = json.dumps(_dense_config(16384, 16384)).encode()
    _, table = _valid_parts()
    _reject(_file(_frame(ARCH, arch), _frame(TABLE, table)), r"expects float32\[16384, 16384\]",
            "Dense(16384) on 16384")
    table = _table(_record(0, (16384, 16384)), _record(0, (16384,)))  # dense: 1 GiB of f32
    _reject(_file(_frame(ARCH, arch), _frame(TABLE, table), _frame(F32, b"\0" * 64)),
            r"f32 stream holds 64 bytes.*needs 1073807360", "Dense(16384), short stream")


def test_millions_of_tensor_records_rejected_quickly():
    records = b"\x00\x00" * 2_000_000
    payload = lzma.compress(_uvarint(2_000_000) + records, lzma.FORMAT_RAW,
                            filters=[{"id": lzma.FILTER_LZMA2, "preset": 6}])
    assert len(payload) < 2000
    arch, _ = _valid_parts()
    frame = _frame(TABLE, payload, codec=2, raw_len=len(records) + 3)
    _reject(_file(_frame(ARCH, arch), frame), r"tensor table", "2,000,000 records")
    arch = json.dumps(_dense_config(4, 3)).encode()
    many = _table(*[_record(0, ())] * 50_000)
    _reject(_file(_frame(ARCH, arch), _frame(TABLE, many)), r"tensor table declares",
            "50,000 records, 2 weights")


# ------------------------------------------------------------------ malformed fields


def _table_case(*records: bytes, streams: tuple = (), count: int | None = None) -> bytes:
    arch, _ = _valid_parts()
    return _file(_frame(ARCH, arch), _frame(TABLE, _table(*records, count=count)), *streams)


BIAS = _record(0, (3,), 2, nnz=0)
TABLE_CASES = {
    "unknown dtype name": (_record(3, (4, 3), dtype=b"object"), BIAS),
    "dtype name float32 for raw": (_record(3, (4, 3), dtype=b"float32"), BIAS),
    "non-ASCII dtype name": (_record(3, (4, 3), dtype=b"\xff\xfe"), BIAS),
    "rank-0 int8 record": (_record(2, ()), BIAS),
    "rank-1 int8 record": (_record(2, (3,)), BIAS),
    "empty int8 record": (_record(2, (0, 3)), BIAS),
    "dimension of 2^64": (_record(0, (1 << 64, 3)), BIAS),
    "dimension of 2^63": (_record(0, (1 << 63, 3), 2, nnz=0), BIAS),
    "N:M without its parameters": (bytes([3, 2, 4, 3]), BIAS),
    "N:M with m = 3": (_record(0, (4, 3), 3, nm=(1, 3, 1)), BIAS),
    "N:M with m = 16": (_record(0, (4, 3), 3, nm=(2, 16, 1)), BIAS),
    "N:M with n = 0": (_record(0, (4, 3), 3, nm=(0, 4, 1)), BIAS),
    "N:M with n = m": (_record(0, (4, 3), 3, nm=(4, 4, 1)), BIAS),
    "N:M split 0": (_record(0, (4, 3), 3, nm=(2, 4, 0)), BIAS),
    "N:M split past the axes": (_record(0, (4, 3), 3, nm=(2, 4, 2)), BIAS),
    "N:M groups not tiling K": (_record(0, (4, 3), 3, nm=(2, 8, 1)), BIAS),
    "N:M on a raw tensor": (_record(3, (4, 3), 3, nm=(2, 4, 1), dtype=b"int32"), BIAS),
    "N:M on a vector": (_record(0, (4, 3), 2, nnz=0), _record(0, (3,), 3, nm=(1, 4, 0))),
    "format 5": (bytes([5 << 2, 2, 4, 3]), BIAS),
    "zerosign on a dense tensor": (_record(0, (4, 3), extra=0x20), BIAS),
    "offsets on f16": (_record(1, (4, 3), 1, extra=0x80, nnz=1), BIAS),
    "sparse raw tensor": (_record(3, (4, 3), 1, nnz=1, dtype=b"int32"), BIAS),
    "nnz above size": (_record(0, (4, 3), 1, nnz=13), BIAS),
    "delta list longer than a bitmask": (_record(0, (4, 3), 2, nnz=2), BIAS),
    "rank 200": (bytes([0, 200]) + b"\x01" * 200, BIAS),
}


@pytest.mark.parametrize("label", sorted(TABLE_CASES))
def test_malformed_tensor_records(label):
    _reject(_table_case(*TABLE_CASES[label]), r"tensor table", label)


def test_cut_tables_and_counts():
    full = _table(_record(0, (4, 3), 2, nnz=0), BIAS)
    arch, _ = _valid_parts()
    for cut in range(len(full)):
        _reject(_file(_frame(ARCH, arch), _frame(TABLE, full[:cut])),
                r"tensor table", f"table cut at {cut}")
    _reject(_table_case(_record(0, (4, 3), 2, nnz=0), BIAS, count=3), r"holds 3 tensors",
            "count 3 of 2")


def test_index_deltas_that_wrap_or_overflow():
    # A (40, 30) kernel with 2 nonzeros: 1,200 elements, so at most 149 bytes of deltas.
    two_nnz = _record(0, (40, 30), 2, nnz=2)
    bias = _record(0, (30,), 2, nnz=0)
    arch = json.dumps(_dense_config(40, 30)).encode()
    values = _frame(F32, np.ones(2, np.float32).tobytes())
    for label, pattern in {
        "delta 2^63 - 1": _uvarint(5) + _uvarint((1 << 63) - 1),
        "delta 2^63": _uvarint(5) + _uvarint(1 << 63),
        "deltas wrapping past 2^64": _uvarint(5) + _uvarint((1 << 64) - 3),
        "delta past the end": _uvarint(5) + _uvarint(1194),
        "deltas ending early": _uvarint(5),
    }.items():
        blob = _file(_frame(ARCH, arch), _frame(TABLE, _table(two_nnz, bias)),
                     _frame(PATTERN, pattern), values)
        _reject(blob, r"index|pattern|integer", label)


# 2:4 codes of a (4, 3) kernel, one group per column, in itertools.combinations order:
# 0 (rows 0, 1), 5 (rows 2, 3), 2 (rows 0, 3); packed as 0 + 5 * 6 + 2 * 36 = 102 in one byte
# (6^3 - 1 = 215 < 2^8). Six slots, read in output-channel-major order.
TWO_FOUR = _record(0, (4, 3), 3, nm=(2, 4, 1))


def test_crafted_two_four_file_loads():
    values = np.arange(1, 7, dtype=np.float32)
    blob = _table_case(TWO_FOUR, BIAS, streams=(_frame(PATTERN, bytes([102])),
                                                _frame(F32, values.tobytes())))
    model = _try(blob, "crafted 2:4 kernel")
    expected = np.array([[1, 0, 5], [2, 0, 0], [0, 3, 0], [0, 4, 6]], np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.weights[0]), expected)


def test_hostile_two_four_streams():
    six = _frame(F32, np.ones(6, np.float32).tobytes())
    int8_two_four = _record(2, (4, 3), 3, extra=0x80, nm=(2, 4, 1))  # with channel offsets
    for label, (record, streams, match) in {
        "code 216 (6^3)": (TWO_FOUR, (_frame(PATTERN, bytes([216])), six), "out of range"),
        "code 255": (TWO_FOUR, (_frame(PATTERN, bytes([255])), six), "out of range"),
        "two pattern bytes": (TWO_FOUR, (_frame(PATTERN, bytes([102, 0])), six),
                              "pattern stream holds 2 bytes"),
        "no pattern stream": (TWO_FOUR, (six,), "pattern stream holds 0 bytes"),
        "five values for six slots": (
            TWO_FOUR, (_frame(PATTERN, bytes([102])), _frame(F32, bytes(20))), "f32 stream"),
        "int8 offsets over a zero slot": (
            int8_two_four, (_frame(PATTERN, bytes([102])), _frame(F16, bytes(6)),
                            _frame(I8, bytes([0, 0, 0, 1, 0, 1, 1, 1, 1]))), "offset"),
    }.items():
        _reject(_table_case(record, BIAS, streams=streams), match, label)


def test_end_section_must_be_empty():
    arch, table = _valid_parts()
    for end in (_frame(0, b"x"), _frame(0, b"", codec=1), _frame(0, b"", raw_len=5)):
        _reject(_file(_frame(ARCH, arch), _frame(TABLE, table), end=end), "end section",
                "end section with a payload")


def test_codec_bytes_the_writer_never_uses():
    arch, table = _valid_parts()
    for codec in (3, 0x0F, 0x30, 0x40):  # unknown codec; shuffle on the architecture
        _reject(_file(_frame(ARCH, arch, codec=codec), _frame(TABLE, table)), "codec byte",
                f"codec {codec:#x}")
    _reject(_file(_frame(ARCH, arch, raw_len=len(arch) + 1), _frame(TABLE, table)),
            "stored section", "stored length mismatch")


def test_streams_must_have_the_length_the_table_needs():
    arch, table = _valid_parts()
    for label, extra in {"unneeded stream": _frame(F16, b"\0\0"),
                         "empty stream": _frame(F32, b"")}.items():
        _reject(_file(_frame(ARCH, arch), _frame(TABLE, table), extra), "stream", label)


# ------------------------------------------------------------------ hostile architectures


def _arch_case(config) -> bytes:
    data = config if isinstance(config, bytes) else json.dumps(config).encode()
    _, table = _valid_parts()
    return _file(_frame(ARCH, data), _frame(TABLE, table))


def _with_activation(activation) -> dict:
    config = _dense_config(4, 3)
    config["config"]["layers"][1]["config"]["activation"] = activation
    return config


def _fn(module: str, name: str) -> dict:
    return {"module": module, "class_name": "function", "config": name, "registered_name": name}


@keras.saving.register_keras_serializable(package="pkz_hostile_test")
def double(x):
    return 2 * x


ARCH_CASES = {
    "set_floatx behind a registered name": _with_activation(
        {"module": "keras.config", "class_name": "function", "config": "set_floatx",
         "registered_name": "pkz_hostile_test>double"}),
    "not UTF-8": b'{"a": "\xff"}',
    "not JSON": b'{"module": ',
    "deeply nested JSON": b"[" * 100_000 + b"]" * 100_000,
    "nested 70 levels": _dense_config(4, 3) | {"config": {
        "name": "s", "layers": [], "extra": json.loads("[" * 70 + "]" * 70)}},
    "a JSON number": b"3",
    "a list of layers": json.dumps(_dense_config(4, 3)["config"]["layers"]).encode(),
    "a single Dense layer": json.dumps(_dense_config(4, 3)["config"]["layers"][1]).encode(),
    "activation keras.config.set_floatx": _with_activation(_fn("keras.config", "set_floatx")),
    "activation keras.utils.set_random_seed": _with_activation(
        _fn("keras.utils", "set_random_seed")),
    "activation os.system": _with_activation(_fn("os", "system")),
    "activation string set_floatx": _with_activation("set_floatx"),
    "Lambda layer": _dense_config(4, 3) | {"config": {"name": "s", "layers": [
        {"module": "keras.layers", "class_name": "Lambda", "config": {"function": "relu"}}]}},
    "TFSMLayer": _dense_config(4, 3) | {"config": {"name": "s", "layers": [
        {"module": "keras.layers", "class_name": "TFSMLayer", "config": {"filepath": "/"}}]}},
    "a class from os": _dense_config(4, 3) | {"module": "os", "class_name": "system"},
    "a keras.src module": _dense_config(4, 3) | {"module": "keras.src.saving.saving_api",
                                                 "class_name": "load_model"},
    "a pruned subclassed model with attribute paths": {
        "module": "prunekit.subclassed", "class_name": "PrunedModel",
        "registered_name": "prunekit>PrunedModel", "config": {
            "model": _dense_config(4, 3), "replacements": [
                {"paths": [[["attr", "__dict__"], ["key", "layers"]]],
                 "layer": _dense_config(4, 3)["config"]["layers"][1]}]}},
    "a pruning wrapper": _dense_config(4, 3) | {"config": {"name": "s", "layers": [
        {"module": "prunekit.wrapper", "class_name": "PruneLowMagnitude",
         "registered_name": "prunekit>PruneLowMagnitude", "config": {}}]}},
    "a lambda object": _with_activation({"class_name": "__lambda__", "config": {"value": "x"}}),
    "unexpected object key": _dense_config(4, 3) | {"exec": "x"},
    "Dense with units -1": json.loads(json.dumps(_dense_config(4, 3)).replace('"units": 3',
                                                                              '"units": -1')),
    "Dense with units text": json.loads(json.dumps(_dense_config(4, 3)).replace(
        '"units": 3', '"units": "three"')),
    "input of 2^64": _dense_config(1 << 64, 3),
    "input of -5": _dense_config(-5, 3),
    "Conv2D without filters": _dense_config(4, 3) | {"config": {"name": "s", "layers": [
        {"module": "keras.layers", "class_name": "Conv2D", "config": {"kernel_size": 3}}]}},
    "numpy array of objects": _with_activation(
        {"class_name": "__numpy__", "config": {"value": [1], "dtype": "object"}}),
    "4 MiB of floats": b"[" + b"1.5," * ((1 << 20) - 2) + b"0]",
    "4 MiB of strings": b"[" + b'"a",' * ((1 << 20) - 2) + b"0]",
    "200,001 empty objects": b"[" + b"{}," * 200_000 + b"{}]",
    "too many objects": _dense_config(4, 3) | {"config": {"name": "s", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer",
         "config": {"batch_shape": [None, 4], "name": "x"}}],
        "junk": [{"class_name": "__ellipsis__", "config": {}}] * 60_000}},
}


@pytest.mark.parametrize("label", sorted(ARCH_CASES))
def test_hostile_architectures(label):
    _reject(_arch_case(ARCH_CASES[label]), r"architecture", label)


def test_dtype_policy_and_initializers_from_keras_still_load():
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(3, activation=keras.activations.gelu, kernel_initializer="he_normal",
                           kernel_regularizer="l2", dtype="mixed_float16"),
    ])
    back = _try(encode_model(model).data, "mixed_float16 model")
    assert isinstance(back, keras.Model)
    assert back.layers[-1].dtype_policy.name == "mixed_float16"
    assert back.layers[-1].activation is keras.activations.gelu


@keras.saving.register_keras_serializable(package="pkz_hostile_test")
class Scale(keras.layers.Layer):
    """A registered custom layer: the program's own code, so the reader accepts it."""

    def build(self, input_shape):
        self.factor = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.factor


def test_registered_layer_and_ops_nodes_still_load():
    inp = keras.Input((4,))
    x = keras.layers.Dense(3)(inp)
    x = keras.layers.Dense(3, activation=double)(x)  # a registered function
    out = Scale()(keras.ops.relu(x) + x)  # keras.ops nodes in the Functional graph
    model = keras.Model(inp, out)
    model.weights[-1].assign(np.array([1.0, 2.0, 3.0], np.float32))
    back = _try(encode_model(model).data, "registered layer and ops nodes")
    assert isinstance(back, keras.Model)
    assert back.layers[2].activation is double
    x = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), back.predict(x, verbose=0))


def test_loading_takes_memory_proportional_to_the_model():
    """A 16 MB float32 model (dense, stored uncompressed) loads within a few times its size."""
    weights = np.random.default_rng(4).normal(size=(2000, 2000)).astype(np.float32)
    bias = np.arange(2000, dtype=np.float32)
    table = _table(_record(0, (2000, 2000)), _record(0, (2000,)))
    values = weights.T.tobytes() + bias.tobytes()  # output-channel-major order
    blob = _file(_frame(ARCH, _arch(_dense(2000, 2000))), _frame(TABLE, table),
                 _frame(F32, values))
    model_mb = (weights.nbytes + bias.nbytes) / 2**20
    with _Peak() as measured:
        back = decode_model(blob)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(back.weights[0]), weights)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(back.weights[1]), bias)
    print(f"\nloading a {model_mb:.0f} MB model: traced peak {measured.mb:.0f} MB, RSS growth "
          f"{measured.rss_mb:.0f} MB")
    assert measured.mb < 3 * model_mb + 4, f"traced peak {measured.mb:.0f} MB"
    assert measured.rss_mb < 5 * model_mb + 32, f"RSS growth {measured.rss_mb:.0f} MB"


# ------------------------------------------------------------------ fuzzing


def _two_four_model() -> keras.Model:
    """Dense(8) on 8 inputs with a 2:4 kernel (stored in the N:M layout), then Dense(2)."""
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8), keras.layers.Dense(2)])
    kernel = np.asarray(keras.ops.convert_to_numpy(model.weights[0]))
    kernel.reshape(2, 4, 8)[:, :2] = 0.0  # rows 0, 1 and 4, 5 of every column
    model.weights[0].assign(kernel)
    assert encode_model(model).tensors[0].layout == "n:m"
    return model


@pytest.fixture(scope="module", params=["float32", "int8", "int8 2:4"])
def valid_file(request) -> bytes:
    if request.param == "int8 2:4":
        return encode_model(_two_four_model(), "int8").data
    return encode_model(_model(), request.param).data


def test_every_truncation(valid_file):
    for cut in range(len(valid_file)):
        _reject(valid_file[:cut], r"Truncated|Not a prunekit", f"truncated at {cut}")


def test_random_bit_flips_in_the_file(valid_file):
    rng = np.random.default_rng(11)
    for position, bit in zip(rng.integers(0, len(valid_file), 150), rng.integers(0, 8, 150)):
        bad = bytearray(valid_file)
        bad[position] ^= 1 << bit
        _reject(bytes(bad), r"Checksum|Truncated|Corrupted|Not a prunekit|Unsupported",
                f"flip {position}.{bit}")


def test_random_bit_flips_behind_valid_checksums(valid_file):
    """Flip bits in the decompressed sections and re-frame them with correct checksums."""
    sections = _sections(valid_file)
    reference = decode_model(valid_file)
    rng = np.random.default_rng(12)
    for _ in range(80):
        index = int(rng.integers(len(sections)))
        kind, codec, data = sections[index]
        if not data:
            continue
        bad = bytearray(data)
        position, bit = int(rng.integers(len(bad))), int(rng.integers(8))
        bad[position] ^= 1 << bit
        changed = [list(s) for s in sections]
        changed[index][2] = bytes(bad)
        result = _try(_repack(changed), f"section {kind} flip {position}.{bit}")
        if not isinstance(result, PkzFormatError):  # a value or a name changed: still a model
            assert [tuple(w.shape) for w in result.weights] == [
                tuple(w.shape) for w in reference.weights]
