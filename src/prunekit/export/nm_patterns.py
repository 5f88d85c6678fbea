"""N:M sparsity patterns in a ``.pkz`` file: one code per group, packed in mixed radix.

A tensor is *N:M* along its input dimension when, seen as a matrix ``(K, O)`` with
``K = prod(shape[:split])`` (the kernel's leading, contracted axes: ``split=1`` for a Dense
kernel ``(in, out)``, ``split=3`` for a Conv2D kernel ``(kh, kw, in, out)``), every group of
``m`` consecutive entries of a column holds at most ``n`` nonzeros. Such a group is one of
``C(m, n)`` patterns (2:4: 6, 4:8: 70) instead of ``2^m`` bit strings, so it needs
``log2 C(m, n)`` bits (2:4: 2.585, not 4). Codes are packed in mixed radix: ``k`` codes make
a unit ``sum(code_i * C^i)`` of ``b`` bits, the bit length of ``C^k - 1``, with ``k`` chosen
for the fewest bits a code with ``b <= 64`` (:func:`unit`; 2:4: 17 codes in 44 bits, 2.588
bits a group; 4:8: 7 codes in 43 bits, 6.143 bits, against ``log2 70 = 6.129``). A last,
partial unit of ``r`` codes takes the bit length of ``C^r - 1``. Units follow each other in a
little-endian bit stream (bit ``i`` is bit ``i % 8`` of byte ``i // 8``), zero-padded to a
whole byte.

A group with fewer than ``n`` nonzeros (a kept weight that is exactly zero, or rounds to zero
in int8) keeps ``n`` *slots*: its first zero positions fill the rest, and their zero values
are stored like any other value. Groups are ordered column by column (``O`` outer), then
along ``K``. See docs/export.md, "N:M layout".
"""

from __future__ import annotations

import itertools
import math
from functools import cache

import numpy as np

from prunekit.export.container import PkzFormatError

GROUP_SIZES = (4, 8)  # the m of the patterns the writer uses and the reader accepts


@cache
def combinations(n: int, m: int) -> np.ndarray:
    """The ``C(m, n)`` patterns of ``n`` kept positions in a group of ``m``, as ``(C, m)`` bools.

    Code ``i`` is the ``i``-th of ``itertools.combinations(range(m), n)`` (lexicographic).

    Example:
        >>> combinations(2, 4).astype(int).tolist()[:3]
        [[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1]]
    """
    table = np.zeros((math.comb(m, n), m), bool)
    for code, kept in enumerate(itertools.combinations(range(m), n)):
        table[code, list(kept)] = True
    table.flags.writeable = False
    return table


@cache
def _codes_of_bits(n: int, m: int) -> np.ndarray:
    """``lookup[bits]`` = code of the group whose mask, read as an m-bit integer, is ``bits``."""
    lookup = np.full(1 << m, -1, np.int64)
    lookup[combinations(n, m) @ (1 << np.arange(m))] = np.arange(math.comb(m, n))
    return lookup


@cache
def unit(count: int) -> tuple[int, int]:
    """``(k, b)``: ``k`` codes of ``count`` values packed in ``b <= 64`` bits, fewest bits a code.

    ``b`` is the bit length of ``count^k - 1``; ties go to the smaller ``k``.

    Example:
        >>> unit(6), unit(70)  # 6^17 - 1 < 2^44; 70^7 - 1 < 2^43
        ((17, 44), (7, 43))
    """
    best = (1, (count - 1).bit_length())
    for k in range(2, 65):
        bits = (count**k - 1).bit_length()
        if bits > 64:
            break
        if bits * best[0] < best[1] * k:
            best = (k, bits)
    return best


def _bits(groups: int, count: int) -> tuple[int, int, int, int]:
    """``(full units, k, b, bits of the last, partial unit)`` for ``groups`` codes."""
    k, b = unit(count)
    r = groups % k
    return groups // k, k, b, (count**r - 1).bit_length() if r else 0


def packed_length(groups: int, count: int) -> int:
    """Bytes of ``groups`` codes of ``count`` values once packed.

    Example:
        >>> packed_length(512, 6)  # 30 units of 17 codes (44 bits), 2 codes in 6 bits: 1,326
        166
    """
    full, _, b, tail = _bits(groups, count)
    return (full * b + tail + 7) // 8


def pack_codes(codes: np.ndarray, count: int) -> bytes:
    """Pack codes in ``[0, count)`` (see the module docstring).

    Example:
        >>> pack_codes(np.array([1, 2]), 6).hex()  # 1 + 2 * 6 = 13 in 6 bits
        '0d'
    """
    full, k, b, tail = _bits(len(codes), count)
    weights = np.uint64(count) ** np.arange(k, dtype=np.uint64)
    units = (codes[: full * k].astype(np.uint64).reshape(-1, k) * weights).sum(
        1, dtype=np.uint64)
    last = sum(int(c) * count**i for i, c in enumerate(codes[full * k:]))
    bits = np.unpackbits(units.astype("<u8").view(np.uint8).reshape(-1, 8), axis=1,
                         bitorder="little")[:, :b].reshape(-1)
    last_bits = np.unpackbits(np.frombuffer(last.to_bytes(8, "little"), np.uint8),
                              bitorder="little")[:tail]
    return np.packbits(np.concatenate([bits, last_bits]), bitorder="little").tobytes()


def unpack_codes(data: np.ndarray, groups: int, count: int) -> np.ndarray:
    """Invert :func:`pack_codes` on ``packed_length(groups, count)`` bytes (uint8 array).

    Raises:
        PkzFormatError: A unit holds a value the writer never produces (``>= count^k``), or
            the padding bits are not zero.

    Example:
        >>> unpack_codes(np.frombuffer(bytes([13]), np.uint8), 2, 6).tolist()
        [1, 2]
    """
    full, k, b, tail = _bits(groups, count)
    bits = np.unpackbits(data, bitorder="little")
    if bits[full * b + tail:].any():
        raise PkzFormatError("Corrupted file: the padding bits of N:M pattern codes are not 0.")
    padded = np.zeros((full, 64), np.uint8)
    padded[:, :b] = bits[: full * b].reshape(full, b)
    units = np.packbits(padded, axis=1, bitorder="little").view("<u8").reshape(-1)
    units = units.astype(np.uint64)
    last = int.from_bytes(np.packbits(bits[full * b: full * b + tail], bitorder="little")
                          .tobytes(), "little")
    bound = count**k  # below 2^64 unless k codes fill the 64 bits exactly
    if (bound < 1 << 64 and np.any(units >= np.uint64(bound))) or last >= count ** (groups % k):
        raise PkzFormatError("Corrupted file: an N:M pattern code is out of range.")
    codes = np.empty((full, k), np.int64)
    for i in range(k):
        units, codes[:, i] = np.divmod(units, np.uint64(count))
    rest = []
    for _ in range(groups % k):
        last, code = divmod(last, count)
        rest.append(code)
    return np.concatenate([codes.reshape(-1), np.asarray(rest, np.int64)])


def _groups(mask: np.ndarray, m: int, split: int) -> np.ndarray:
    """``mask`` as ``(O * K / m, m)`` groups, column by column (see the module docstring)."""
    k = math.prod(mask.shape[:split])
    return mask.reshape(k, -1).T.reshape(-1, m)


def _ungroup(groups: np.ndarray, shape: tuple[int, ...], split: int) -> np.ndarray:
    k = math.prod(shape[:split])
    return groups.reshape(-1, k).T.reshape(shape)


def fits(shape: tuple[int, ...], m: int, split: int) -> bool:
    """Whether a tensor of ``shape`` splits into groups of ``m`` along ``K`` (see above).

    Example:
        >>> fits((8, 3), 4, 1), fits((6, 3), 4, 1), fits((3, 3, 4, 2), 4, 3)
        (True, False, True)
    """
    return 1 <= split < len(shape) and math.prod(shape) > 0 and (
        math.prod(shape[:split]) % m == 0)


def most_per_group(nonzero: np.ndarray, m: int, split: int) -> int:
    """The largest number of nonzeros in a group (the smallest ``n`` the tensor is n:m for).

    Example:
        >>> most_per_group(np.array([[1, 0], [1, 1], [0, 0], [0, 1]], bool), 4, 1)
        2
    """
    return int(_groups(nonzero, m, split).sum(1).max())


def encode(nonzero: np.ndarray, n: int, m: int, split: int) -> tuple[np.ndarray, bytes]:
    """The kept slots (``nonzero`` padded to ``n`` per group) and their packed codes.

    Args:
        nonzero: The tensor's nonzero mask, in the tensor's shape; at most ``n`` per group.
        n, m: Keep ``n`` of every ``m``.
        split: ``K = prod(shape[:split])``.

    Returns:
        ``(slots, data)``: a boolean array of the tensor's shape with exactly ``n`` slots per
        group (every nonzero among them), and the packed codes.

    Example:
        >>> slots, data = encode(np.array([[1], [0], [0], [0]], bool), 2, 4, 1)
        >>> slots.ravel().astype(int).tolist(), data.hex()  # padded with the first zero
        ([1, 1, 0, 0], '00')
    """
    groups = _groups(nonzero, m, split).copy()
    missing = n - groups.sum(1)
    for j in range(m):
        fill = (missing > 0) & ~groups[:, j]
        groups[fill, j] = True
        missing -= fill
    codes = _codes_of_bits(n, m)[groups @ (1 << np.arange(m))]
    return _ungroup(groups, nonzero.shape, split), pack_codes(codes, math.comb(m, n))


def decode(data: np.ndarray, shape: tuple[int, ...], n: int, m: int, split: int) -> np.ndarray:
    """The kept slots, in the tensor's shape, from ``packed_length`` bytes (uint8 array).

    Raises:
        PkzFormatError: A code is out of range.

    Example:
        >>> decode(np.frombuffer(bytes([0]), np.uint8), (4, 1), 2, 4, 1).ravel().tolist()
        [True, True, False, False]
    """
    groups = math.prod(shape) // m
    codes = unpack_codes(data, groups, math.comb(m, n))
    return _ungroup(combinations(n, m)[codes], shape, split)
