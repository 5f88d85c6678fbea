"""``save_compressed`` / ``load_compressed``: the ``.pkz`` compressed sparse model format.

The file holds the model's architecture (compact Keras config JSON) and every weight tensor
as a nonzero pattern plus the nonzero values, each kind of bytes in its own checksummed,
compressed section. The byte layout is documented in docs/export.md.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import keras
import numpy as np

from prunekit.export import architecture_check, container, tensor_table, tensors
from prunekit.export.architecture import architecture_json
from prunekit.export.container import PkzFormatError
from prunekit.export.io import check_output_path, write_atomic

WEIGHT_MODES = ("float32", "float16", "int8")

SECTION_ARCH, SECTION_TENSORS = 1, 2
_STREAM_KINDS = {name: 3 + i for i, name in enumerate(tensors.STREAMS)}
SECTION_NAMES = {
    SECTION_ARCH: "architecture",
    SECTION_TENSORS: "tensor table",
    **{kind: f"{name} stream" for name, kind in _STREAM_KINDS.items()},
}
# Byte-shuffle element sizes tried per stream (0 = no shuffle).
_SHUFFLE = {"f32": (0, 4), "f16": (0, 2)}


@dataclasses.dataclass
class Encoded:
    """An encoded model: the file bytes and what each tensor and section became."""

    data: bytes
    arch_bytes: int
    tensors: list[tensors.TensorInfo]
    sections: dict[str, int]


def check_weights_mode(weights: str) -> None:
    """Raise ``ValueError`` unless ``weights`` is a known weight mode.

    Example:
        >>> check_weights_mode("int8")
    """
    if weights not in WEIGHT_MODES:
        raise ValueError(
            f"Unknown weights mode: expected one of {list(WEIGHT_MODES)}. Received: "
            f"weights={weights!r}"
        )


def pruning_wrappers(model: keras.layers.Layer) -> list[str]:
    """Names of the ``PruneLowMagnitude`` layers in a model, however deeply nested.

    Example:
        >>> pruning_wrappers(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
        []
    """
    from prunekit.walk import iter_wrappers

    return [wrapper.name for wrapper in iter_wrappers(model)]


def check_exportable(model: object) -> None:
    """Raise unless ``model`` is a plain, built Keras model (``TypeError`` for a non-model).

    A model still wrapped for pruning is refused, naming its wrappers (found with
    :func:`prunekit.walk.iter_wrappers`, at any depth).

    Example:
        >>> check_exportable(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected a keras.Model. Received: model={type(model).__name__}")
    wrapped = pruning_wrappers(model)
    if wrapped:
        raise ValueError(
            "The model still contains pruning wrappers (PruneLowMagnitude layers: "
            f"{', '.join(wrapped)}). Call `prunekit.strip_pruning(model)` first and export "
            "the stripped model."
        )
    if not model.built:
        raise ValueError(
            "The model is not built: call it on data or build it before exporting. "
            f"Received: model={model.name!r}"
        )


def _weight_arrays(model: keras.Model) -> list[np.ndarray]:
    return [np.asarray(keras.ops.convert_to_numpy(w.value)) for w in model.weights]


def encode_model(model: keras.Model, weights: str = "float32") -> Encoded:
    """Encode a model into the bytes of a ``.pkz`` file, without writing anything.

    Args:
        model: a built, plain Keras model (pruned weights are exact zeros).
        weights: ``"float32"`` (exact), ``"float16"`` or ``"int8"``.

    Returns:
        An :class:`Encoded` with the file bytes and per-tensor and per-section details.

    Raises:
        ValueError: on an unknown weight mode or a model that cannot be exported.

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> encode_model(model, "int8").data[:4]
        b'\\x89PKZ'
    """
    check_weights_mode(weights)
    check_exportable(model)
    arch = architecture_json(model)
    records, infos = [], []
    streams: dict[str, bytearray] = {name: bytearray() for name in tensors.STREAMS}
    for array in _weight_arrays(model):
        record, parts, info = tensors.encode_tensor(array, weights)
        records.append(record)
        infos.append(info)
        for name, part in parts.items():
            streams[name] += part
    table = container.write_uvarint(len(records)) + b"".join(records)
    body = [
        container.pack_section(SECTION_ARCH, arch),
        container.pack_section(SECTION_TENSORS, table),
    ]
    sizes = {
        "header": len(container.MAGIC) + 1,
        "architecture": len(body[0]),
        "tensor table": len(body[1]),
    }
    for name, data in streams.items():
        if data:
            section = container.pack_section(
                _STREAM_KINDS[name], bytes(data), _SHUFFLE.get(name, (0,))
            )
            body.append(section)
            sizes[f"{name} stream"] = len(section)
    body.append(container.end_section())
    sizes["end"] = len(body[-1])
    data = container.MAGIC + bytes([container.VERSION]) + b"".join(body)
    return Encoded(data, len(body[0]), infos, sizes)


def decode_model(data: bytes) -> keras.Model:
    """Rebuild a built Keras model from the bytes of a ``.pkz`` file; safe on any bytes.

    Every declared size is checked before anything is expanded or allocated, in this order:
    the section headers and checksums; the architecture (bounded JSON, an allow-list of what
    the writer produces, built shape-only); the tensor table against the architecture's
    weights; each stream's declared length against the table. Streams are then decompressed
    with their declared length as a cap and the tensors decoded straight into the variables,
    so loading takes memory proportional to the model the file describes.

    Raises:
        PkzFormatError: (a ``ValueError``) on a foreign, truncated, corrupted, oversized or
            unsupported file, or one whose tensors do not fit its architecture; the message
            names the section and the problem.

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> decode_model(encode_model(model).data).count_params()
        10
    """
    sections = container.read_sections(data, SECTION_NAMES, _SHUFFLE_BY_KIND)
    for kind in (SECTION_ARCH, SECTION_TENSORS):
        if kind not in sections:
            raise PkzFormatError(f"Corrupted file: the {SECTION_NAMES[kind]} section is missing.")
    arch = sections[SECTION_ARCH]
    if arch.raw_len > architecture_check.MAX_ARCHITECTURE_BYTES:
        raise PkzFormatError(
            f"Corrupted file: the architecture section declares {arch.raw_len} bytes; at most "
            f"{architecture_check.MAX_ARCHITECTURE_BYTES} are read."
        )
    config = architecture_check.parse_architecture(_expand(arch))
    model, created = architecture_check.build_shape_only(config)
    variables = model.weights
    table_section = sections[SECTION_TENSORS]
    most = 16 + _MAX_RECORD_BYTES * min(len(variables), tensor_table.MAX_TENSORS)
    if table_section.raw_len > most:
        raise PkzFormatError(
            f"Corrupted file: the tensor table declares {table_section.raw_len} bytes; "
            f"{len(variables)} weights take at most {most}."
        )
    records = tensor_table.read_table(_expand(table_section), len(variables))
    for variable, record in zip(variables, records):
        _check_fits(variable, record)
    needs = tensor_table.stream_lengths(records)
    reader = tensor_table.StreamReader(_expand_streams(sections, needs))
    filled = set()
    for variable, record in zip(variables, records):
        architecture_check.fill_variable(variable, tensor_table.read_tensor(record, reader))
        filled.add(id(variable))
    reader.check_consumed()
    architecture_check.initialize_rest([v for v in created if id(v) not in filled])
    return model


_MAX_RECORD_BYTES = 600  # flags, rank, 32 dimensions, nonzero count, dtype name
_SHUFFLE_BY_KIND = {_STREAM_KINDS[name]: sizes[1:] for name, sizes in _SHUFFLE.items()}


def _expand(section: container.Section) -> bytes:
    return container.decompress(section.codec, section.payload, section.raw_len, section.name)


def _check_fits(variable: keras.Variable, record: tensor_table.TensorRecord) -> None:
    """The record must have the variable's shape, and float32 formats only for float32."""
    dtype = keras.backend.standardize_dtype(variable.dtype)
    stored = "float32" if record.fmt != "raw" else record.dtype.name
    if (record.shape, stored) != (tuple(variable.shape), dtype):
        raise PkzFormatError(
            f"Corrupted file: the tensor for {variable.path!r} is {stored}{list(record.shape)}, "
            f"the architecture expects {dtype}{list(variable.shape)}."
        )


def _expand_streams(
    sections: dict[int, container.Section], needs: dict[str, tuple[int, int]]
) -> dict[str, bytes]:
    """Check each stream's declared length against what the table needs, then decompress it."""
    streams = {}
    for name, kind in _STREAM_KINDS.items():
        low, high = needs[name]
        section = sections.get(kind)
        declared = section.raw_len if section is not None else 0
        if not low <= declared <= high or (section is not None and declared == 0):
            expected = f"{low}" if low == high else f"{low} to {high}"
            raise PkzFormatError(
                f"Corrupted file: the {name} stream holds {declared} bytes, the tensor table "
                f"needs {expected}."
            )
        if section is not None:
            streams[name] = _expand(section)
    return streams


def save_compressed(
    model: keras.Model,
    path: str | os.PathLike,
    *,
    weights: str = "float32",
    overwrite: bool = False,
) -> int:
    """Save a (stripped, pruned) model as a compressed sparse ``.pkz`` file.

    Arguments are validated before anything is written; the file appears atomically (a temp
    file in the same directory, fsync, ``os.replace``), so a failure leaves no partial file.

    Args:
        model: a built Keras model whose pruned weights are exact zeros (after
            ``prunekit.strip_pruning``).
        path: the output file.
        weights: ``"float32"`` (bitwise exact), ``"float16"``, or ``"int8"`` (symmetric
            per-output-channel for kernels; vectors kept as float16).
        overwrite: replace an existing file.

    Returns:
        The number of bytes written.

    Raises:
        ValueError: unknown ``weights`` mode, or a model still wrapped for pruning.
        FileExistsError: ``path`` exists and ``overwrite`` is False.

    Example:
        >>> import os, tempfile
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> out = os.path.join(tempfile.mkdtemp(), "m.pkz")
        >>> save_compressed(model, out, weights="int8") > 0
        True
    """
    check_weights_mode(weights)
    check_exportable(model)
    target = check_output_path(path, overwrite)
    data = encode_model(model, weights).data
    write_atomic(target, data, overwrite)
    return len(data)


def load_compressed(path: str | os.PathLike) -> keras.Model:
    """Load a model saved by :func:`save_compressed`; the result is built and ready to predict.

    The file may come from anywhere: every malformed, truncated, oversized or hostile file
    raises :class:`PkzFormatError`, within memory proportional to the model it describes
    (see :func:`decode_model` and the limits in docs/export.md).

    Raises:
        PkzFormatError: (a ``ValueError``) bad magic, unsupported version, checksum mismatch in
            a section, a truncated, corrupted or oversized file, or an architecture outside
            what :func:`save_compressed` writes; the message names the section.
        OSError: the file cannot be read.

    Example:
        >>> import os, tempfile
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> out = os.path.join(tempfile.mkdtemp(), "m.pkz")
        >>> _ = save_compressed(model, out)
        >>> load_compressed(out).built
        True
    """
    return decode_model(Path(path).read_bytes())
