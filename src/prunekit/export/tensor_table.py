"""Reading the tensor table of a ``.pkz`` file back, checking every field on the way.

:func:`read_table` parses the records (nothing is allocated for a tensor yet),
:func:`stream_lengths` says how many bytes each stream must then hold, and :func:`read_tensor`
rebuilds one tensor from a :class:`StreamReader`. Only what :func:`tensors.encode_tensor
<prunekit.export.tensors.encode_tensor>` produces is accepted; every other input raises
``PkzFormatError`` naming the record or stream. See docs/export.md for the layout.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from prunekit.export import nm_patterns, quantize
from prunekit.export.container import PkzFormatError, read_uvarint, write_uvarint
from prunekit.export.tensors import (
    _F32_SCALES_FLAG,
    _OFFSETS_FLAG,
    _ZEROSIGN_FLAG,
    FORMATS,
    LAYOUT_BITMASK,
    LAYOUT_DELTA,
    LAYOUT_DENSE,
    LAYOUT_NAMES,
    LAYOUT_NM,
    STREAMS,
    channel_major,
    decode_varints,
    from_channel_major,
)

_VALUE_DTYPES = {"f32": np.float32, "f16": np.float16, "i8": np.int8}
# Dtypes of the non-float32 variables stored byte for byte (those Keras variables can have).
RAW_DTYPES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float64", "float8_e4m3fn", "float8_e5m2", "complex64", "complex128",
)
MAX_TENSORS = 100_000  # records in one tensor table
MAX_ELEMENTS = 1 << 40  # elements in one tensor
MAX_RANK = 32


@dataclasses.dataclass(frozen=True)
class TensorRecord:
    """One parsed tensor-table record: what the streams hold for a tensor, before reading them."""

    flags: int
    fmt: str
    shape: tuple[int, ...]
    nnz: int  # values stored: nonzeros, or the slots of an N:M layout
    dtype: np.dtype
    n_m: tuple[int, int, int] | None = None  # (n, m, split) of an N:M layout

    @property
    def layout(self) -> int:
        """``LAYOUT_DENSE``, ``LAYOUT_BITMASK``, ``LAYOUT_DELTA`` or ``LAYOUT_NM``."""
        return self.flags & 0x03

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


def read_table(table: bytes, expected: int | None = None) -> list[TensorRecord]:
    """Parse the tensor table (``count`` then the records), checking every field.

    Only records the writer produces are accepted: a known layout and value format, flag bits
    only where they apply, int8 only for tensors of rank >= 2, a nonzero count below the size,
    an index-delta list only where it is smaller than a bitmask, N:M parameters with ``m`` in
    :data:`nm_patterns.GROUP_SIZES`, ``1 <= n < m`` and groups that tile the tensor, raw dtypes from
    :data:`RAW_DTYPES`, at most :data:`MAX_TENSORS` records and :data:`MAX_ELEMENTS` elements
    a tensor.

    Args:
        table: the decompressed tensor-table section.
        expected: the number of weights of the architecture, checked before any record is read.

    Returns:
        The records, in table order.

    Raises:
        PkzFormatError: naming the record and the problem.

    Example:
        >>> from prunekit.export.tensors import encode_tensor, write_uvarint
        >>> rec, _, _ = encode_tensor(np.eye(3, dtype=np.float32), "float32")
        >>> read_table(write_uvarint(1) + rec)[0].shape
        (3, 3)
    """
    count, pos = read_uvarint(table, 0, "the count of the tensor table")
    if count > MAX_TENSORS or 2 * count > len(table) - pos:
        raise PkzFormatError(
            f"Corrupted file: the tensor table declares {count} tensors in {len(table)} bytes "
            f"(at most {MAX_TENSORS}, two bytes each at least)."
        )
    if expected is not None and count != expected:
        raise PkzFormatError(
            f"Corrupted file: the file holds {count} tensors but its architecture has "
            f"{expected} weights."
        )
    records = []
    for index in range(count):
        record, pos = _parse_record(table, pos, index)
        records.append(record)
    if pos != len(table):
        raise PkzFormatError("Corrupted file: the tensor table has unread bytes.")
    return records


def _parse_record(table: bytes, pos: int, index: int) -> tuple[TensorRecord, int]:
    where = f"record {index} of the tensor table"
    if pos + 2 > len(table):
        raise PkzFormatError("Corrupted file: the tensor table is shorter than its count.")
    flags, ndim = table[pos], table[pos + 1]
    layout, fmt_id, extra = flags & 0x03, (flags >> 2) & 0x07, flags & 0xE0
    if fmt_id >= len(FORMATS):
        raise PkzFormatError(f"Corrupted file: {where} has bad flags {flags:#04x}.")
    if ndim > MAX_RANK:
        raise PkzFormatError(f"Corrupted file: {where} has rank {ndim} (at most {MAX_RANK}).")
    shape, pos = [], pos + 2
    for _ in range(ndim):
        dim, pos = read_uvarint(table, pos, f"the shape of {where}")
        shape.append(dim)
    size, fmt = math.prod(shape), FORMATS[fmt_id]
    if size > MAX_ELEMENTS:
        raise PkzFormatError(
            f"Corrupted file: {where} has shape {shape}, over {MAX_ELEMENTS} elements."
        )
    allowed = {"f32": _ZEROSIGN_FLAG, "f16": 0, "i8": _F32_SCALES_FLAG | _OFFSETS_FLAG, "raw": 0}
    sparse_only = _ZEROSIGN_FLAG | _OFFSETS_FLAG
    if (
        extra & ~allowed[fmt]
        or (layout == LAYOUT_DENSE and extra & sparse_only)
        or (fmt == "raw" and layout != LAYOUT_DENSE)
        or (fmt == "i8" and (ndim < 2 or size == 0))
    ):
        raise PkzFormatError(
            f"Corrupted file: {where} has flags {flags:#04x} for a {fmt} tensor of shape "
            f"{shape}, which the writer never produces."
        )
    nnz, dtype = size, np.dtype(_VALUE_DTYPES.get(fmt, np.uint8))
    if layout == LAYOUT_NM:
        n_m, pos = _parse_n_m(table, pos, shape, where)
        return TensorRecord(flags, fmt, tuple(shape), size // n_m[1] * n_m[0], dtype, n_m), pos
    if layout != LAYOUT_DENSE:
        nnz, pos = read_uvarint(table, pos, f"the nonzero count of {where}")
        limit = size if layout == LAYOUT_BITMASK else (size + 7) // 8
        if nnz >= limit:
            raise PkzFormatError(
                f"Corrupted file: {where} has {nnz} nonzeros for {size} elements in "
                f"{LAYOUT_NAMES[layout]} layout."
            )
    if fmt == "raw":
        dtype, pos = _parse_dtype(table, pos, where)
    return TensorRecord(flags, fmt, tuple(shape), nnz, dtype), pos


def _parse_n_m(table: bytes, pos: int, shape: list[int],
               where: str) -> tuple[tuple[int, int, int], int]:
    if pos + 3 > len(table):
        raise PkzFormatError(f"Corrupted file: the N:M parameters of {where} are cut short.")
    n, m, split = table[pos], table[pos + 1], table[pos + 2]
    if m not in nm_patterns.GROUP_SIZES or not 1 <= n < m or not nm_patterns.fits(
            tuple(shape), m, split):
        raise PkzFormatError(
            f"Corrupted file: {where} declares {n}:{m} groups along the first {split} axes of "
            f"shape {shape}; expected 1 <= n < m, m in {list(nm_patterns.GROUP_SIZES)} and "
            "groups that tile those axes."
        )
    return (n, m, split), pos + 3


def _parse_dtype(table: bytes, pos: int, where: str) -> tuple[np.dtype, int]:
    if pos >= len(table) or pos + 1 + table[pos] > len(table):
        raise PkzFormatError(f"Corrupted file: the dtype name of {where} is cut short.")
    raw = bytes(table[pos + 1 : pos + 1 + table[pos]])
    name = raw.decode("ascii", errors="replace")
    if name not in RAW_DTYPES:
        raise PkzFormatError(
            f"Corrupted file: {where} names dtype {name!r}; expected one of "
            f"{list(RAW_DTYPES)}."
        )
    return _numpy_dtype(name), pos + 1 + len(raw)


def stream_lengths(records: list[TensorRecord]) -> dict[str, tuple[int, int]]:
    """Bytes each stream must hold for these records: ``{stream: (least, most)}``.

    Exact for every stream except ``pattern``, where each index-delta list takes between one
    byte per nonzero and one byte less than the bitmask it replaces.

    Example:
        >>> from prunekit.export.tensors import encode_tensor, write_uvarint
        >>> rec, streams, _ = encode_tensor(np.eye(3, dtype=np.float32), "float32")
        >>> lengths = stream_lengths(read_table(write_uvarint(1) + rec))
        >>> lengths["pattern"], lengths["f32"]  # a 2-byte bitmask, 3 nonzeros of 4 bytes
        ((2, 2), (12, 12))
    """
    low, high = dict.fromkeys(STREAMS, 0), dict.fromkeys(STREAMS, 0)

    def add(stream: str, least: int, most: int | None = None) -> None:
        low[stream] += least
        high[stream] += least if most is None else most

    for r in records:
        if r.fmt == "i8":
            add("f32" if r.flags & _F32_SCALES_FLAG else "f16",
                r.shape[-1] * (4 if r.flags & _F32_SCALES_FLAG else 2))
        if r.layout == LAYOUT_BITMASK:
            add("pattern", (r.size + 7) // 8)
        elif r.layout == LAYOUT_DELTA:
            add("pattern", r.nnz, (r.size + 7) // 8 - 1)
        elif r.layout == LAYOUT_NM:
            n, m, _ = r.n_m
            add("pattern", nm_patterns.packed_length(r.size // m, math.comb(m, n)))
        if r.flags & _ZEROSIGN_FLAG:
            add("zerosign", (r.size - r.nnz + 7) // 8)
        if r.flags & _OFFSETS_FLAG:
            add("i8", r.shape[-1])
        add(r.fmt, r.nnz * r.dtype.itemsize)
    return {name: (low[name], high[name]) for name in STREAMS}


class StreamReader:
    """Sequential readers over the decoded streams, with clear errors on overrun."""

    def __init__(self, streams: dict[str, bytes]):
        self._data = {k: np.frombuffer(v, np.uint8) for k, v in streams.items()}
        self._pos = dict.fromkeys(self._data, 0)

    def take(self, name: str, nbytes: int) -> np.ndarray:
        data, pos = self._data.get(name, np.zeros(0, np.uint8)), self._pos.get(name, 0)
        if pos + nbytes > len(data):
            raise PkzFormatError(
                f"Corrupted file: stream {name!r} is shorter than the tensor table says."
            )
        self._pos[name] = pos + nbytes
        return data[pos : pos + nbytes]

    def take_varints(self, name: str, count: int, max_bytes: int) -> np.ndarray:
        data, pos = self._data.get(name, np.zeros(0, np.uint8)), self._pos.get(name, 0)
        values, used = decode_varints(data[pos : pos + max_bytes], count)
        self._pos[name] = pos + used
        return values

    def check_consumed(self) -> None:
        for name, data in self._data.items():
            if self._pos[name] != len(data):
                raise PkzFormatError(f"Corrupted file: stream {name!r} has unread bytes.")


def _unpack_bits(packed: np.ndarray, count: int, what: str) -> np.ndarray:
    """``count`` bits, most significant first; the padding bits must be zero as written."""
    bits = np.unpackbits(packed)
    if bits[count:].any():
        raise PkzFormatError(f"Corrupted file: the padding bits of a {what} are not zero.")
    return bits[:count].astype(bool)


def _read_pattern(streams: StreamReader, record: TensorRecord) -> np.ndarray:
    size, nnz = record.size, record.nnz
    if record.layout == LAYOUT_NM:
        n, m, split = record.n_m
        data = streams.take("pattern", nm_patterns.packed_length(size // m, math.comb(m, n)))
        return channel_major(nm_patterns.decode(data, record.shape, n, m, split))
    if record.layout == LAYOUT_BITMASK:
        bits = _unpack_bits(streams.take("pattern", (size + 7) // 8), size, "bitmask")
        if int(bits.sum()) != nnz:
            raise PkzFormatError("Corrupted file: a bitmask does not match its nonzero count.")
        return bits
    gaps = streams.take_varints("pattern", nnz, (size + 7) // 8 - 1)
    if nnz and int(gaps.max()) >= size:
        raise PkzFormatError("Corrupted file: an index list points past the end of its tensor.")
    positions = np.cumsum(gaps + np.uint64(1)) - np.uint64(1)  # each step <= size: a wrap shows
    if nnz and (positions[-1] >= size or np.any(positions[1:] <= positions[:-1])):
        raise PkzFormatError("Corrupted file: an index list points past the end of its tensor.")
    mask = np.zeros(size, bool)
    mask[positions.astype(np.int64)] = True
    return mask


def read_tensor(record: TensorRecord, streams: StreamReader) -> np.ndarray:
    """Read one tensor's bytes from the streams (in the documented order) and rebuild it.

    Example:
        >>> from prunekit.export.tensors import encode_tensor, write_uvarint
        >>> rec, streams, _ = encode_tensor(np.eye(2, dtype=np.float32), "float32")
        >>> read_tensor(read_table(write_uvarint(1) + rec)[0], StreamReader(streams)).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    shape, size, flags, fmt, dtype = (
        record.shape, record.size, record.flags, record.fmt, record.dtype
    )
    if fmt == "raw":
        raw = streams.take("raw", size * dtype.itemsize)
        if dtype == np.bool_ and np.any(raw > 1):
            raise PkzFormatError("Corrupted file: a bool tensor holds bytes other than 0 and 1.")
        return np.frombuffer(raw, dtype).reshape(shape).copy()
    scales = None
    if fmt == "i8":
        scale_type = np.dtype(np.float32 if flags & _F32_SCALES_FLAG else np.float16)
        stream = "f32" if flags & _F32_SCALES_FLAG else "f16"
        raw = streams.take(stream, shape[-1] * scale_type.itemsize)
        scales = np.frombuffer(raw, scale_type)
    if record.layout == LAYOUT_DENSE:
        flat = np.frombuffer(streams.take(fmt, size * dtype.itemsize), dtype)
    else:
        flat = _read_sparse(record, streams)
    if fmt == "i8" and np.any(flat == -128):
        raise PkzFormatError("Corrupted file: an int8 value is -128 (the writer uses -127..127).")
    out = quantize.from_storage(fmt, from_channel_major(flat, shape), scales)
    return out if out.flags.writeable else out.copy()  # never a view of the stream bytes


def _read_sparse(record: TensorRecord, streams: StreamReader) -> np.ndarray:
    size, nnz, flags, shape = record.size, record.nnz, record.flags, record.shape
    mask = _read_pattern(streams, record)
    flat = np.zeros(size, record.dtype)
    if flags & _ZEROSIGN_FLAG:
        signs = _unpack_bits(streams.take("zerosign", (size - nnz + 7) // 8), size - nnz,
                             "zero-sign list")
        if not signs.any():
            raise PkzFormatError("Corrupted file: a zero-sign list has no negative zero.")
        flat[~mask] = np.where(signs, -0.0, 0.0)
    offsets = streams.take("i8", shape[-1]) if flags & _OFFSETS_FLAG else None
    values = np.frombuffer(streams.take(record.fmt, nnz * record.dtype.itemsize), record.dtype)
    if offsets is not None:
        channel = np.nonzero(mask.reshape(shape[-1], -1))[0]
        magnitude = np.abs(values.astype(np.int16)) + offsets[channel]
        if nnz and (magnitude.max() > 127 or np.any(values == 0)):
            raise PkzFormatError("Corrupted file: an int8 channel offset overflows.")
        values = (np.sign(values) * magnitude).astype(np.int8)
    flat[mask] = values
    return flat


def _numpy_dtype(name: str) -> np.dtype:
    try:
        return np.dtype(name)
    except TypeError:
        import ml_dtypes  # bfloat16 and friends; a dependency of Keras

        return np.dtype(getattr(ml_dtypes, name))


def decode_tensors(table: bytes, count: int, streams: dict[str, bytes]) -> list[np.ndarray]:
    """Decode ``count`` tensor records (without the count prefix), reading the streams in order.

    The checked reader for records and streams made by
    :func:`~prunekit.export.tensors.encode_tensor`.

    Raises:
        PkzFormatError: the records or streams are not what the writer produces.

    Example:
        >>> from prunekit.export.tensors import encode_tensor
        >>> rec, s, _ = encode_tensor(np.eye(3, dtype=np.float32), "float32")
        >>> decode_tensors(rec, 1, s)[0].tolist()
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    records = read_table(write_uvarint(count) + bytes(table), count)
    reader = StreamReader(streams)
    out = [read_tensor(record, reader) for record in records]
    reader.check_consumed()
    return out
