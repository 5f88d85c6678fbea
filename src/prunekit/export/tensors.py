"""Encoding of weight tensors: nonzero patterns (bitmask, index deltas or N:M) and value streams.

Every tensor becomes one record in the tensor table plus bytes appended to shared streams
(``pattern``, ``zerosign`` and one value stream per stored dtype), so that similar bytes are
compressed together. The record says how to read the tensor back; see docs/export.md.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from prunekit.export import nm_patterns, quantize
from prunekit.export.container import PkzFormatError, write_uvarint

LAYOUT_DENSE, LAYOUT_BITMASK, LAYOUT_DELTA, LAYOUT_NM = 0, 1, 2, 3
LAYOUT_NAMES = ("dense", "bitmask", "delta", "n:m")
FORMATS = ("f32", "f16", "i8", "raw")
_ZEROSIGN_FLAG, _F32_SCALES_FLAG, _OFFSETS_FLAG = 0x20, 0x40, 0x80
STREAMS = ("pattern", "zerosign", "f32", "f16", "i8", "raw")


@dataclasses.dataclass
class TensorInfo:
    """What was stored for one tensor (used for size accounting and error reports)."""

    shape: tuple[int, ...]
    fmt: str
    layout: str
    nnz: int
    n_zero_negative: int = 0
    n_scales: int = 0
    scale_bits: int = 0
    value_bits: int = 0
    values: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))


def varint_lengths(values: np.ndarray) -> np.ndarray:
    """Bytes each value takes as a LEB128 varint.

    Example:
        >>> varint_lengths(np.array([0, 127, 128, 16384])).tolist()
        [1, 1, 2, 3]
    """
    values = values.astype(np.uint64)
    lengths = np.ones(values.shape, np.int64)
    for k in range(1, 10):
        lengths += values >= np.uint64(1 << (7 * k))
    return lengths


def encode_varints(values: np.ndarray) -> bytes:
    """Encode non-negative integers as concatenated LEB128 varints (vectorized).

    Example:
        >>> encode_varints(np.array([1, 300])).hex()
        '01ac02'
    """
    values = values.astype(np.uint64)
    lengths = varint_lengths(values)
    out = np.empty(int(lengths.sum()), np.uint8)
    starts = np.cumsum(lengths) - lengths
    for k in range(int(lengths.max(initial=0))):
        sel = lengths > k
        byte = (values[sel] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (lengths[sel] > k + 1).astype(np.uint64) << np.uint64(7)
        out[starts[sel] + k] = (byte | more).astype(np.uint8)
    return out.tobytes()


def decode_varints(buf: np.ndarray, count: int) -> tuple[np.ndarray, int]:
    """Decode ``count`` varints (at most 9 bytes, 63 bits, each) from the start of a uint8 array.

    Returns:
        ``(values, bytes used)``.

    Raises:
        PkzFormatError: ``buf`` ends before ``count`` varints, or one is longer than 9 bytes.

    Example:
        >>> decode_varints(np.frombuffer(bytes.fromhex("01ac02"), np.uint8), 2)[0].tolist()
        [1, 300]
    """
    if count == 0:
        return np.zeros(0, np.uint64), 0
    ends = np.flatnonzero(buf < 0x80)[:count]
    if len(ends) < count:
        raise PkzFormatError("Corrupted file: the pattern stream ends inside an index list.")
    used = int(ends[-1]) + 1
    starts = np.concatenate(([0], ends[:-1] + 1))
    if int((ends - starts).max()) > 8:
        raise PkzFormatError("Corrupted file: an index in the pattern stream is too long.")
    group = np.repeat(np.arange(count), ends - starts + 1)
    offset = np.arange(used) - starts[group]
    parts = (buf[:used].astype(np.uint64) & np.uint64(0x7F)) << (
        np.uint64(7) * offset.astype(np.uint64)
    )
    return np.add.reduceat(parts, starts), used


def pattern_bytes(mask: np.ndarray) -> tuple[int, bytes]:
    """The smaller encoding of a flat boolean nonzero pattern: bitmask or index deltas.

    The bitmask is ``np.packbits`` (most significant bit first, ``ceil(n/8)`` bytes). The
    delta form lists, as varints, the gap before each nonzero: ``p0, p1 - p0 - 1, ...``.
    Ties go to the bitmask.

    Returns:
        ``(layout, bytes)`` with layout ``LAYOUT_BITMASK`` or ``LAYOUT_DELTA``.

    Example:
        >>> pattern_bytes(np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1] * 2, bool))
        (2, b'\\t\\t')
    """
    positions = np.flatnonzero(mask)
    gaps = np.diff(positions, prepend=-1) - 1
    if int(varint_lengths(gaps).sum()) < (mask.size + 7) // 8:
        return LAYOUT_DELTA, encode_varints(gaps)
    return LAYOUT_BITMASK, np.packbits(mask).tobytes()


def channel_major(array: np.ndarray) -> np.ndarray:
    """Flatten with the output channel (last axis) outermost; vectors are flattened as is.

    Example:
        >>> channel_major(np.array([[1, 2], [3, 4]])).tolist()
        [1, 3, 2, 4]
    """
    return np.moveaxis(array, -1, 0).reshape(-1) if array.ndim >= 2 else array.reshape(-1)


def from_channel_major(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Invert :func:`channel_major`.

    Example:
        >>> from_channel_major(np.array([1, 3, 2, 4]), (2, 2)).tolist()
        [[1, 2], [3, 4]]
    """
    if len(shape) < 2:
        return flat.reshape(shape)
    return np.moveaxis(flat.reshape(shape[-1], *shape[:-1]), 0, -1)


def order0_bits(values: np.ndarray) -> float:
    """Total order-0 entropy of a sample in bits (``len * H``).

    Example:
        >>> order0_bits(np.array([1, 1, 2, 2]))
        4.0
    """
    if values.size == 0:
        return 0.0
    counts = np.unique(values, return_counts=True)[1]
    return float(-(counts * np.log2(counts / values.size)).sum())


def offset_by_channel(values: np.ndarray, channel: np.ndarray, channels: int) -> np.ndarray:
    """Per-channel offsets ``min |q| - 1`` over each channel's nonzero int8 values (0 if empty).

    Storing ``sign(q) * (|q| - offset[c])`` instead of ``q`` moves every channel's smallest
    magnitude to 1: magnitude pruning leaves a gap below a threshold whose size in int8 units
    differs per channel, and removing it makes the values cheaper to compress.

    Example:
        >>> offset_by_channel(np.array([50, -60, 3], np.int8), np.array([0, 0, 1]), 2).tolist()
        [49, 2]
    """
    qmin = np.full(channels, 128, np.int16)
    np.minimum.at(qmin, channel, np.abs(values.astype(np.int16)))
    return np.where(qmin == 128, 0, qmin - 1).astype(np.uint8)


def encode_tensor(array: np.ndarray, mode: str) -> tuple[bytes, dict[str, bytes], TensorInfo]:
    """Encode one weight tensor for a weight mode.

    Args:
        array: the variable's value as a NumPy array.
        mode: ``"float32"``, ``"float16"`` or ``"int8"``.

    Returns:
        ``(record, streams, info)``: the tensor-table record, the bytes to append to each
        stream, and a description of what was stored.

    Example:
        >>> rec, streams, info = encode_tensor(np.zeros((4, 4), np.float32), "float32")
        >>> info.layout, info.nnz
        ('delta', 0)
    """
    shape_bytes = bytes([array.ndim]) + b"".join(write_uvarint(d) for d in array.shape)
    if array.dtype != np.float32:
        name = array.dtype.name.encode("ascii")
        record = bytes([FORMATS.index("raw") << 2]) + shape_bytes + bytes([len(name)]) + name
        info = TensorInfo(array.shape, "raw", "dense", int(np.count_nonzero(array)))
        info.value_bits = array.dtype.itemsize * 8
        return record, {"raw": np.ascontiguousarray(array).tobytes()}, info
    fmt, stored, scales = quantize.to_storage(array, mode)
    flat = channel_major(stored)
    kept = flat != 0  # the positions whose values are stored
    nnz = int(np.count_nonzero(kept))
    itemsize = flat.dtype.itemsize
    layout, pattern = pattern_bytes(kept)
    n_m = best_n_m(stored != 0, len(pattern) + nnz * itemsize, itemsize)
    if n_m is not None:
        slots, pattern = nm_patterns.encode(stored != 0, *n_m)
        layout, kept = LAYOUT_NM, channel_major(slots)
    negzero = np.signbit(flat[~kept]) if fmt == "f32" else np.zeros(0, bool)
    sign_bytes = (len(negzero) + 7) // 8 if negzero.any() else 0
    streams: dict[str, bytes] = {}
    flags = FORMATS.index(fmt) << 2
    info = TensorInfo(array.shape, fmt, LAYOUT_NAMES[layout], nnz, int(negzero.sum()))
    info.value_bits = itemsize * 8
    if scales is not None:
        streams["f16" if scales.dtype == np.float16 else "f32"] = scales.tobytes()
        flags |= _F32_SCALES_FLAG if scales.dtype == np.float32 else 0
        info.n_scales, info.scale_bits = scales.size, scales.dtype.itemsize * 8
    if len(pattern) + sign_bytes + int(kept.sum()) * itemsize < flat.size * itemsize:
        flags |= layout
        streams["pattern"] = pattern
        if sign_bytes:
            flags |= _ZEROSIGN_FLAG
            streams["zerosign"] = np.packbits(negzero).tobytes()
        values = flat[kept]
        if fmt == "i8" and values.all():  # an N:M slot may hold a zero: no offsets then
            flags, values = _maybe_offset(flags, values, kept, stored.shape[-1], streams)
    else:
        layout, info.layout, values = LAYOUT_DENSE, "dense", flat
    streams[fmt] = streams.get(fmt, b"") + values.tobytes()
    info.values = flat[flat != 0]
    record = bytes([flags]) + shape_bytes
    if layout == LAYOUT_NM:
        record += bytes(n_m)
    elif layout != LAYOUT_DENSE:
        record += write_uvarint(nnz)
    return record, streams, info


def best_n_m(nonzero: np.ndarray, budget: int, itemsize: int) -> tuple[int, int, int] | None:
    """The cheapest N:M layout of a tensor, if one costs fewer bytes than ``budget``.

    Tries every split of the axes into ``K`` and ``O`` and every group size in
    :data:`nm_patterns.GROUP_SIZES`, with the smallest ``n`` that holds (at least 1, below ``m``),
    and counts the packed codes plus the stored values (``n`` per group).

    Args:
        nonzero: The tensor's nonzero mask, in its shape.
        budget: Bytes of the other sparse layout (pattern and values), to beat.
        itemsize: Bytes per stored value.

    Returns:
        ``(n, m, split)``, or None when no N:M layout is cheaper.

    Example:
        >>> mask = np.tile([[1], [1], [0], [0]], (2, 3)).astype(bool)  # (8, 3), 2:4 on axis 0
        >>> best_n_m(mask, budget=3 + 12 * 4, itemsize=4)
        (2, 4, 1)
    """
    best = None
    for split in range(1, nonzero.ndim):
        for m in nm_patterns.GROUP_SIZES:
            if not nm_patterns.fits(nonzero.shape, m, split):
                continue
            n = max(nm_patterns.most_per_group(nonzero, m, split), 1)
            if n >= m:
                continue
            groups = nonzero.size // m
            cost = nm_patterns.packed_length(groups, math.comb(m, n)) + groups * n * itemsize
            if cost < budget:
                best, budget = (n, m, split), cost
    return best


def _maybe_offset(
    flags: int, values: np.ndarray, nonzero: np.ndarray, channels: int, streams: dict[str, bytes]
) -> tuple[int, np.ndarray]:
    """Apply the per-channel offset transform where it pays (order-0 estimate, offsets counted)."""
    channel = np.nonzero(nonzero.reshape(channels, -1))[0]
    offsets = offset_by_channel(values, channel, channels)
    magnitude = np.abs(values.astype(np.int16)) - offsets[channel]
    shifted = (np.sign(values) * magnitude).astype(np.int8)
    if order0_bits(shifted) + 8 * channels >= order0_bits(values):
        return flags, values
    streams["i8"] = offsets.tobytes()
    return flags | _OFFSETS_FLAG, shifted
