"""The byte container of the ``.pkz`` format: header, checksummed sections, codecs.

A file is ``MAGIC | version (u8) | section* | end section``. Each section is

    kind (u8) | codec (u8) | raw_len (uvarint) | stored_len (uvarint) | payload | crc32 (u32 LE)

where the crc32 covers the section's header bytes and payload. ``codec`` packs the compression
codec in its low nibble and the byte-shuffle element size in its high nibble (0 = no shuffle).
The end section (kind 0) has no payload; a file without it is truncated. See docs/export.md.
"""

from __future__ import annotations

import lzma
import struct
import zlib

import numpy as np
import zstandard

MAGIC = b"\x89PKZ"
VERSION = 1

CODEC_STORED = 0
CODEC_ZSTD = 1
CODEC_LZMA = 2
CODEC_NAMES = {CODEC_STORED: "stored", CODEC_ZSTD: "zstd", CODEC_LZMA: "lzma"}

# Raw LZMA2 stream (no .xz container: the section header already records the lengths and a crc).
_LZMA_DICT = 8 << 20
_LZMA_PRESET = 6 | lzma.PRESET_EXTREME
# Two encoder settings, one decoder: LZMA2 chunks carry their own lc/lp/pb properties.
# lc=lp=pb=0 (no literal context) suits near-i.i.d. bytes such as quantized values.
_LZMA_ENCODERS = (
    [{"id": lzma.FILTER_LZMA2, "preset": _LZMA_PRESET, "dict_size": _LZMA_DICT}],
    [
        {
            "id": lzma.FILTER_LZMA2,
            "preset": _LZMA_PRESET,
            "dict_size": _LZMA_DICT,
            "lc": 0,
            "lp": 0,
            "pb": 0,
        }
    ],
)
_LZMA_DECODE = [{"id": lzma.FILTER_LZMA2, "dict_size": _LZMA_DICT}]
_ZSTD_LEVEL = 19

SECTION_END = 0


def write_uvarint(value: int) -> bytes:
    """Encode a non-negative integer as LEB128 (7 bits a byte, low bits first).

    Example:
        >>> write_uvarint(300).hex()
        'ac02'
    """
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_uvarint(buf: bytes | memoryview, pos: int, what: str) -> tuple[int, int]:
    """Decode a LEB128 integer at ``pos``; return ``(value, next_pos)``.

    Example:
        >>> read_uvarint(bytes.fromhex("ac02"), 0, "x")
        (300, 2)
    """
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError(f"Truncated file: ran out of bytes while reading {what}.")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError(f"Corrupted file: integer too long while reading {what}.")


def shuffle(data: bytes, itemsize: int) -> bytes:
    """Group byte ``k`` of every ``itemsize``-byte element together (a tail is left as is).

    Example:
        >>> shuffle(bytes([1, 2, 3, 4, 5]), 2)
        b'\\x01\\x03\\x02\\x04\\x05'
    """
    if itemsize <= 1:
        return data
    body = len(data) - len(data) % itemsize
    planes = np.frombuffer(data[:body], np.uint8).reshape(-1, itemsize).T
    return planes.tobytes() + data[body:]


def unshuffle(data: bytes, itemsize: int) -> bytes:
    """Invert :func:`shuffle`.

    Example:
        >>> unshuffle(shuffle(b"abcdefg", 3), 3)
        b'abcdefg'
    """
    if itemsize <= 1:
        return data
    body = len(data) - len(data) % itemsize
    planes = np.frombuffer(data[:body], np.uint8).reshape(itemsize, -1).T
    return planes.tobytes() + data[body:]


def compress_best(data: bytes, shuffle_sizes: tuple[int, ...] = (0,)) -> tuple[int, bytes]:
    """Compress with every codec (and each shuffle option); return the smallest.

    Returns:
        ``(codec_byte, payload)``: codec in the low nibble, shuffle element size in the high.

    Example:
        >>> codec, payload = compress_best(b"a" * 1000)
        >>> len(payload) < 50
        True
    """
    best = (CODEC_STORED, data)
    zstd = zstandard.ZstdCompressor(level=_ZSTD_LEVEL, write_checksum=False)
    for size in shuffle_sizes:
        src = shuffle(data, size) if size > 1 else data
        tag = (size if size > 1 else 0) << 4
        outputs = [(CODEC_ZSTD, zstd.compress(src))]
        outputs += [
            (CODEC_LZMA, lzma.compress(src, lzma.FORMAT_RAW, filters=f)) for f in _LZMA_ENCODERS
        ]
        for codec, out in outputs:
            if len(out) < len(best[1]):
                best = (tag | codec, out)
    return best


def decompress(codec_byte: int, payload: bytes, raw_len: int, section: str) -> bytes:
    """Invert :func:`compress_best`; raise ``ValueError`` naming ``section`` on any failure.

    Example:
        >>> decompress(*compress_best(b"xyz" * 9), 27, "demo")
        b'xyzxyzxyzxyzxyzxyzxyzxyzxyz'
    """
    codec, size = codec_byte & 0x0F, codec_byte >> 4
    try:
        if codec == CODEC_STORED:
            out = bytes(payload)
        elif codec == CODEC_ZSTD:
            out = zstandard.ZstdDecompressor().decompress(payload, max_output_size=raw_len)
        elif codec == CODEC_LZMA:
            out = lzma.decompress(payload, lzma.FORMAT_RAW, filters=_LZMA_DECODE)
        else:
            raise ValueError(f"unknown codec id {codec}")
    except (zstandard.ZstdError, lzma.LZMAError) as err:
        raise ValueError(
            f"Corrupted file: section {section!r} does not decompress ({err})."
        ) from err
    if len(out) != raw_len:
        raise ValueError(
            f"Corrupted file: section {section!r} decompressed to {len(out)} bytes, "
            f"expected {raw_len}."
        )
    return unshuffle(out, size)


def pack_section(kind: int, data: bytes, shuffle_sizes: tuple[int, ...] = (0,)) -> bytes:
    """Compress ``data`` with the best codec and frame it as a checksummed section.

    Example:
        >>> len(pack_section(3, b""))
        8
    """
    codec, payload = compress_best(data, shuffle_sizes)
    head = bytes([kind, codec]) + write_uvarint(len(data)) + write_uvarint(len(payload))
    body = head + payload
    return body + struct.pack("<I", zlib.crc32(body))


def end_section() -> bytes:
    """The end-of-file marker section.

    Example:
        >>> end_section()[:2]
        b'\\x00\\x00'
    """
    return pack_section(SECTION_END, b"")


def read_sections(blob: bytes, names: dict[int, str]) -> dict[int, bytes]:
    """Check magic, version and every checksum; return ``{kind: decompressed payload}``.

    Args:
        blob: the whole file.
        names: readable names of the section kinds this version knows (for messages).

    Raises:
        ValueError: on a foreign file, an unsupported version, a truncated file, a checksum
            mismatch, an unknown or repeated section, or data after the end section.

    Example:
        >>> read_sections(MAGIC + bytes([VERSION]) + end_section(), {})
        {}
    """
    if len(blob) < len(MAGIC) + 1:
        if MAGIC.startswith(blob[: len(MAGIC)]):
            raise ValueError(f"Truncated file: only {len(blob)} bytes, no complete header.")
        raise ValueError("Not a prunekit compressed file: bad magic bytes.")
    if blob[: len(MAGIC)] != MAGIC:
        raise ValueError(
            f"Not a prunekit compressed file: bad magic bytes {blob[:4]!r}, expected {MAGIC!r}."
        )
    version = blob[len(MAGIC)]
    if version != VERSION:
        raise ValueError(
            f"Unsupported format version {version}: this prunekit reads version {VERSION}."
        )
    pos, sections = len(MAGIC) + 1, {}
    view = memoryview(blob)
    while True:
        if pos + 2 > len(blob):
            raise ValueError("Truncated file: the end-of-file section is missing.")
        start, kind, codec = pos, blob[pos], blob[pos + 1]
        name = "end" if kind == SECTION_END else names.get(kind, f"#{kind}")
        raw_len, pos = read_uvarint(view, pos + 2, f"the header of section {name!r}")
        stored_len, pos = read_uvarint(view, pos, f"the header of section {name!r}")
        stop = pos + stored_len
        if stop + 4 > len(blob):
            raise ValueError(f"Truncated file: section {name!r} is cut short.")
        (crc,) = struct.unpack_from("<I", blob, stop)
        if zlib.crc32(view[start:stop]) != crc:
            raise ValueError(f"Checksum mismatch in section {name!r}: the file is corrupted.")
        pos = stop + 4
        if kind == SECTION_END:
            break
        if kind not in names:
            raise ValueError(f"Corrupted file: unknown section kind {kind}.")
        if kind in sections:
            raise ValueError(f"Corrupted file: section {name!r} appears twice.")
        sections[kind] = decompress(codec, view[stop - stored_len : stop], raw_len, name)
    if pos != len(blob):
        raise ValueError(
            f"Corrupted file: {len(blob) - pos} unexpected bytes after the end section."
        )
    return sections

