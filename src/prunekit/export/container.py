"""The byte container of the ``.pkz`` format: header, checksummed sections, codecs.

A file is ``MAGIC | version (u8) | section* | end section``. Each section is

    kind (u8) | codec (u8) | raw_len (uvarint) | stored_len (uvarint) | payload | crc32 (u32 LE)

where the crc32 covers the section's header bytes and payload. ``codec`` packs the compression
codec in its low nibble and the byte-shuffle element size in its high nibble (0 = no shuffle).
The end section (kind 0) has no payload; a file without it is truncated. See docs/export.md.

Reading never trusts a length: sections are checksummed and listed first, then each is
expanded with its declared ``raw_len`` as a hard cap on the decoder's output, and every
failure is a :class:`PkzFormatError`.
"""

from __future__ import annotations

import dataclasses
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
# Input fed to the zstd decoder per call: bounds how far one call can run past the declared
# length (a zstd block of 128 KiB can take 4 bytes) before the reader stops it.
_ZSTD_FEED = 64
_ZSTD_MAX_WINDOW = 1 << 23  # level 19 uses at most an 8 MiB window


class PkzFormatError(ValueError):
    """A ``.pkz`` file that this version of prunekit did not write, or not intact.

    Raised for every foreign, truncated, corrupted, oversized or hostile file, with a message
    naming the section and what is wrong with it. It is a ``ValueError``.

    Example:
        >>> issubclass(PkzFormatError, ValueError)
        True
    """


@dataclasses.dataclass(frozen=True)
class Section:
    """One checksummed section, not yet decompressed."""

    kind: int
    name: str
    codec: int
    raw_len: int
    payload: memoryview


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
    """Decode a LEB128 integer of at most 63 bits at ``pos``; return ``(value, next_pos)``.

    Raises:
        PkzFormatError: the bytes end inside the integer, or it does not fit 63 bits.

    Example:
        >>> read_uvarint(bytes.fromhex("ac02"), 0, "x")
        (300, 2)
    """
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise PkzFormatError(f"Truncated file: ran out of bytes while reading {what}.")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 56:
            raise PkzFormatError(f"Corrupted file: integer too long while reading {what}.")
    return value, pos


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


def decompress(codec_byte: int, payload: bytes | memoryview, raw_len: int, section: str) -> bytes:
    """Invert :func:`compress_best`, producing at most ``raw_len`` bytes whatever the payload.

    The output is capped at the declared length while decoding (a payload that would expand
    further is refused without being expanded), and the payload must end where its stream ends.

    Raises:
        PkzFormatError: naming ``section``, on an unknown codec, a payload that does not
            decode, or one that decodes to another length than ``raw_len``.

    Example:
        >>> decompress(*compress_best(b"xyz" * 9), 27, "demo")
        b'xyzxyzxyzxyzxyzxyzxyzxyzxyz'
    """
    codec, size = codec_byte & 0x0F, codec_byte >> 4
    try:
        if codec == CODEC_STORED:
            out = bytes(payload[: raw_len + 1])
        elif codec == CODEC_ZSTD:
            out = _unzstd(payload, raw_len, section)
        elif codec == CODEC_LZMA:
            out = _unlzma(payload, raw_len, section)
        else:
            raise PkzFormatError(f"Corrupted file: section {section!r} has unknown codec {codec}.")
    except (zstandard.ZstdError, lzma.LZMAError) as err:
        raise PkzFormatError(
            f"Corrupted file: section {section!r} does not decompress ({err})."
        ) from err
    if len(out) != raw_len:
        raise PkzFormatError(
            f"Corrupted file: section {section!r} decompresses to "
            f"{'more than ' if len(out) > raw_len else ''}{len(out)} bytes, expected {raw_len}."
        )
    return unshuffle(out, size)


def _unzstd(payload: memoryview | bytes, raw_len: int, section: str) -> bytes:
    """One zstd frame, decoded in small steps so the output never exceeds ``raw_len + 1``."""
    if zstandard.frame_content_size(bytes(payload[:18])) != raw_len:
        raise PkzFormatError(
            f"Corrupted file: the zstd frame of section {section!r} does not state its length "
            f"as {raw_len} bytes."
        )
    decoder = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW).decompressobj()
    out, produced, fed = [], 0, 0
    while fed < len(payload) and produced <= raw_len and not decoder.eof:
        chunk = decoder.decompress(bytes(payload[fed : fed + _ZSTD_FEED]))
        fed += _ZSTD_FEED
        out.append(chunk)
        produced += len(chunk)
    complete = decoder.eof and not decoder.unused_data and fed >= len(payload)
    if produced <= raw_len and not complete:
        raise PkzFormatError(
            f"Corrupted file: the zstd frame of section {section!r} is cut short or followed "
            "by extra bytes."
        )
    return b"".join(out)


def _unlzma(payload: memoryview | bytes, raw_len: int, section: str) -> bytes:
    """A raw LZMA2 stream, decoded to at most ``raw_len + 1`` bytes."""
    decoder = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=_LZMA_DECODE)
    out = decoder.decompress(payload, max_length=raw_len + 1)
    if len(out) <= raw_len and (not decoder.eof or decoder.unused_data):
        raise PkzFormatError(
            f"Corrupted file: the LZMA2 stream of section {section!r} is cut short or followed "
            "by extra bytes."
        )
    return out


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


def read_sections(
    blob: bytes, names: dict[int, str], shuffles: dict[int, tuple[int, ...]] | None = None
) -> dict[int, Section]:
    """Check magic, version, every section header and checksum; return ``{kind: Section}``.

    Nothing is decompressed here, so a caller can check each declared length against what
    the file describes before expanding it (:func:`decompress` then caps the output).

    Args:
        blob: the whole file.
        names: readable names of the section kinds this version knows (for messages).
        shuffles: byte-shuffle element sizes the writer may use per kind (default: none).

    Raises:
        PkzFormatError: on a foreign file, an unsupported version, a truncated file, a checksum
            mismatch, an unknown, repeated or malformed section, or data after the end section.

    Example:
        >>> read_sections(MAGIC + bytes([VERSION]) + end_section(), {})
        {}
    """
    if len(blob) < len(MAGIC) + 1:
        if MAGIC.startswith(bytes(blob[: len(MAGIC)])):
            raise PkzFormatError(f"Truncated file: only {len(blob)} bytes, no complete header.")
        raise PkzFormatError("Not a prunekit compressed file: bad magic bytes.")
    if blob[: len(MAGIC)] != MAGIC:
        raise PkzFormatError(
            f"Not a prunekit compressed file: bad magic bytes {bytes(blob[:4])!r}, expected "
            f"{MAGIC!r}."
        )
    version = blob[len(MAGIC)]
    if version != VERSION:
        raise PkzFormatError(
            f"Unsupported format version {version}: this prunekit reads version {VERSION}."
        )
    pos, sections = len(MAGIC) + 1, {}
    view = memoryview(blob)
    while True:
        section, pos = _read_section(view, pos, names)
        if section.kind == SECTION_END:
            break
        _check_header(section, (shuffles or {}).get(section.kind, ()))
        if section.kind in sections:
            raise PkzFormatError(f"Corrupted file: section {section.name!r} appears twice.")
        sections[section.kind] = section
    if pos != len(blob):
        raise PkzFormatError(
            f"Corrupted file: {len(blob) - pos} unexpected bytes after the end section."
        )
    return sections


def _read_section(view: memoryview, pos: int, names: dict[int, str]) -> tuple[Section, int]:
    """Parse and checksum the section at ``pos``; return it and the position after it."""
    if pos + 2 > len(view):
        raise PkzFormatError("Truncated file: the end-of-file section is missing.")
    start, kind, codec = pos, view[pos], view[pos + 1]
    name = "end" if kind == SECTION_END else names.get(kind, f"#{kind}")
    raw_len, pos = read_uvarint(view, pos + 2, f"the header of section {name!r}")
    stored_len, pos = read_uvarint(view, pos, f"the header of section {name!r}")
    stop = pos + stored_len
    if stop + 4 > len(view):
        raise PkzFormatError(f"Truncated file: section {name!r} is cut short.")
    (crc,) = struct.unpack_from("<I", view, stop)
    if zlib.crc32(view[start:stop]) != crc:
        raise PkzFormatError(f"Checksum mismatch in section {name!r}: the file is corrupted.")
    if kind == SECTION_END and (codec, raw_len, stored_len) != (CODEC_STORED, 0, 0):
        raise PkzFormatError(
            "Corrupted file: the end section must be empty (codec 0, no payload). Received: "
            f"codec={codec}, raw_len={raw_len}, stored_len={stored_len}"
        )
    if kind != SECTION_END and kind not in names:
        raise PkzFormatError(f"Corrupted file: unknown section kind {kind}.")
    return Section(kind, name, codec, raw_len, view[pos:stop]), stop + 4


def _check_header(section: Section, shuffles: tuple[int, ...]) -> None:
    """Refuse codec bytes and lengths that the writer never produces."""
    codec, size = section.codec & 0x0F, section.codec >> 4
    if codec not in CODEC_NAMES or (size and size not in shuffles):
        raise PkzFormatError(
            f"Corrupted file: section {section.name!r} has codec byte {section.codec:#04x}; "
            f"expected a codec in {sorted(CODEC_NAMES)} and a shuffle size in "
            f"{[0, *shuffles]}."
        )
    if codec == CODEC_STORED and section.raw_len != len(section.payload):
        raise PkzFormatError(
            f"Corrupted file: stored section {section.name!r} declares {section.raw_len} bytes "
            f"but holds {len(section.payload)}."
        )

