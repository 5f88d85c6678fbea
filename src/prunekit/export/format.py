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

from prunekit.export import container, tensors
from prunekit.export.architecture import architecture_json, model_from_json_bytes
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
    """Rebuild a built Keras model from the bytes of a ``.pkz`` file.

    Raises:
        ValueError: on a foreign, truncated, corrupted or unsupported file, or one whose
            tensors do not fit its architecture.

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> decode_model(encode_model(model).data).count_params()
        10
    """
    sections = container.read_sections(data, SECTION_NAMES)
    for kind in (SECTION_ARCH, SECTION_TENSORS):
        if kind not in sections:
            raise ValueError(f"Corrupted file: the {SECTION_NAMES[kind]} section is missing.")
    table = sections[SECTION_TENSORS]
    count, pos = container.read_uvarint(table, 0, "the tensor count")
    streams = {name: sections.get(kind, b"") for name, kind in _STREAM_KINDS.items()}
    arrays = tensors.decode_tensors(table[pos:], count, streams)
    model = model_from_json_bytes(sections[SECTION_ARCH])
    variables = model.weights
    if len(variables) != len(arrays):
        raise ValueError(
            f"The file holds {len(arrays)} tensors but its architecture has {len(variables)} "
            "weights."
        )
    for variable, array in zip(variables, arrays):
        expected = (tuple(variable.shape), keras.backend.standardize_dtype(variable.dtype))
        if (array.shape, array.dtype.name) != expected:
            raise ValueError(
                f"Tensor for {variable.path!r} is {array.dtype.name}{list(array.shape)}, the "
                f"architecture expects {expected[1]}{list(expected[0])}."
            )
        variable.assign(array)
    return model


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

    Raises:
        ValueError: bad magic, unsupported version, checksum mismatch in a section, truncated
            or otherwise corrupted file.

    Example:
        >>> import os, tempfile
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> out = os.path.join(tempfile.mkdtemp(), "m.pkz")
        >>> _ = save_compressed(model, out)
        >>> load_compressed(out).built
        True
    """
    return decode_model(Path(path).read_bytes())
