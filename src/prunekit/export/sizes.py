"""Honest size figures: what a model takes as ``.keras``, zipped, in each ``.pkz`` mode, and
how close the ``.pkz`` files come to an information-theoretic bound for what they store.

The article's "gzipped size" is measured by one function, :func:`gzipped_size`, which the study,
the sweep, ``prunekit size`` and ``prunekit demo`` all use, so their figures are comparable.

The bound for a weight mode counts, per tensor of ``n`` elements with ``k`` stored nonzeros,
``n * H(k / n)`` bits for the pattern (``H`` the binary entropy) plus ``k * b`` bits for the
values (``b`` = 32, 16 or 8 for the mode's value type) plus the int8 scales, plus the compressed
architecture section as written. It treats the pattern as i.i.d. and the values as
incompressible; a codec that finds structure in the values can beat it, which the order-0
variant (values at their empirical entropy) shows for int8.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np

from prunekit.export import tensor_table, tensors
from prunekit.export.format import (
    WEIGHT_MODES,
    check_weights_mode,
    encode_model,
    pruning_wrappers,
)


#: The file format the article's gzipped size saves (see :func:`gzipped_size`).
GZIP_FORMAT = ".h5"
#: How tables and reports name that figure.
GZIP_LABEL = f"gzipped {GZIP_FORMAT}"


def gzipped_size(model: keras.Model, model_path: str | os.PathLike | None = None,
                 zip_path: str | os.PathLike | None = None) -> int:
    """The article's ``get_gzipped_model_size``: save the model, deflate it, size of the zip.

    ``model.save(<name>.h5, include_optimizer=False)``, then a ``ZIP_DEFLATED`` archive holding
    that one file, named ``model.h5`` inside the archive whatever its name on disk (a zip
    stores the name twice, so the figure would otherwise depend on file names). HDF5, as the
    article: Keras 3 (checked with 3.15) passes
    ``include_optimizer`` on only to its HDF5 writer and saves the optimizer's state into a
    ``.keras`` file regardless, which would count Adam's two moments (twice the weights) in a
    compiled model's size. The model is only read: its weights, wrappers and compile state are
    unchanged.

    Args:
        model: The Keras model (pruned, stripped or plain; compiled or not).
        model_path: Where to keep the saved ``.h5`` file; ``None``: a temporary file.
        zip_path: Where to keep the zip; ``None``: a temporary file.

    Returns:
        Size of the zip in bytes.

    Example:
        >>> model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(128),
        ...                           keras.layers.Dense(1)])
        >>> 5000 < gzipped_size(model) < 9000
        True
    """
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(model_path or Path(tmp) / f"model{GZIP_FORMAT}")
        zip_path = Path(zip_path or Path(tmp) / "model.zip")
        if model_path.suffix != GZIP_FORMAT:
            raise ValueError(f"model_path must end in {GZIP_FORMAT!r} (the article's format). "
                             f"Received: model_path={str(model_path)!r}")
        absl = logging.getLogger("absl")
        level = absl.level
        absl.setLevel(logging.ERROR)  # Keras's "HDF5 is legacy" warning: HDF5 is wanted here.
        try:
            model.save(model_path, include_optimizer=False)
        finally:
            absl.setLevel(level)
        with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(model_path, arcname=f"model{GZIP_FORMAT}")
        return os.path.getsize(zip_path)


def binary_entropy(p: float) -> float:
    """``H(p) = -p log2 p - (1 - p) log2 (1 - p)`` in bits, with ``H(0) = H(1) = 0``.

    Example:
        >>> round(binary_entropy(0.25), 6)
        0.811278
    """
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1.0 - p) * math.log2(1.0 - p)


def empirical_entropy(values: np.ndarray) -> float:
    """Order-0 entropy of a sample in bits per symbol (``sum -f log2 f`` over symbol frequencies).

    Example:
        >>> empirical_entropy(np.array([1, 1, 2, 2]))
        1.0
    """
    if values.size == 0:
        return 0.0
    _, counts = np.unique(values, return_counts=True)
    freq = counts / values.size
    return float(-(freq * np.log2(freq)).sum())


def tensor_bound_bits(info: tensors.TensorInfo, order0: bool = False) -> float:
    """Bits needed for one stored tensor under the bound described in the module docstring.

    Args:
        info: what the encoder stored for the tensor.
        order0: count the values at their empirical order-0 entropy instead of full width.

    Example:
        >>> info = tensors.TensorInfo((8,), "f32", "bitmask", nnz=2, value_bits=32)
        >>> round(tensor_bound_bits(info), 3)  # 8 * H(0.25) + 2 * 32
        70.49
    """
    n = info.size
    if info.fmt == "raw":
        return float(n * info.value_bits)
    bits = n * binary_entropy(info.nnz / n) if n else 0.0
    value_bits = (
        empirical_entropy(info.values) if order0 and info.values is not None else info.value_bits
    )
    bits += info.nnz * value_bits + info.n_scales * info.scale_bits
    zeros = n - info.nnz
    if zeros and info.n_zero_negative:
        bits += zeros * binary_entropy(info.n_zero_negative / zeros)
    return bits


@dataclasses.dataclass
class ModelSizes:
    """Size figures of one model (all sizes in bytes). See :func:`model_sizes`."""

    params: int
    nonzeros: int
    keras_bytes: int
    keras_zip_bytes: int
    compressed: dict[str, int]
    bound: dict[str, float]
    bound_order0: dict[str, float]
    architecture_bytes: int
    keras_int8_bytes: int | None = None
    keras_int8_zip_bytes: int | None = None
    keras_int8_note: str = ""
    gzipped_bytes: int | None = None

    def ratio_to_bound(self, mode: str) -> float:
        """Achieved ``.pkz`` size over the bound for ``mode`` (1.0 = at the bound)."""
        return self.compressed[mode] / self.bound[mode]

    def times_smaller(self, mode: str) -> float:
        """How many times smaller the ``.pkz`` file is than the zipped ``.keras`` file."""
        return self.keras_zip_bytes / self.compressed[mode]

    def as_dict(self) -> dict:
        """All figures as a JSON-able dict, ratios included.

        Example:
            >>> s = ModelSizes(1, 1, 10, 9, {"int8": 3}, {"int8": 3.0}, {"int8": 2.0}, 1)
            >>> s.as_dict()["ratio_to_bound"]["int8"]
            1.0
        """
        out = dataclasses.asdict(self)
        out["ratio_to_bound"] = {m: self.ratio_to_bound(m) for m in self.compressed}
        out["ratio_to_bound_order0"] = {
            m: self.compressed[m] / self.bound_order0[m] for m in self.compressed
        }
        out["times_smaller_than_keras_zip"] = {m: self.times_smaller(m) for m in self.compressed}
        return out


def _without_optimizer(model: keras.Model) -> keras.Model:
    """A copy of a compiled model without its optimizer (the article's include_optimizer=False)."""
    if getattr(model, "optimizer", None) is None:
        return model
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)  # clone_model would compile the copy again
    clone = keras.saving.deserialize_keras_object(config)
    clone.set_weights(model.get_weights())
    return clone


def keras_file_sizes(model: keras.Model) -> tuple[int, int]:
    """Bytes of ``model.save("model.keras")`` and of a ZIP_DEFLATED archive of that file.

    The second figure is that file in a ``ZIP_DEFLATED`` archive (the article's own "gzipped
    size" saves HDF5 instead: :func:`gzipped_size`). The optimizer state is left out, as the
    article's ``include_optimizer=False`` did: a compiled model is measured through an
    uncompiled copy.

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> raw, zipped = keras_file_sizes(model)
        >>> zipped < raw
        True
    """
    model = _without_optimizer(model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        zipped = Path(tmp) / "model.zip"
        with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(path, arcname=path.name)
        return os.path.getsize(path), os.path.getsize(zipped)


def keras_int8_sizes(model: keras.Model) -> tuple[int | None, int | None, str]:
    """``.keras`` sizes (raw, zipped) of a copy of ``model`` after Keras's ``quantize("int8")``.

    Returns:
        ``(bytes, zipped bytes, note)``; sizes are None with the reason in ``note`` when Keras
        cannot quantize this model.

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> keras_int8_sizes(model)[0] > 0
        True
    """
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    try:
        with warnings.catch_warnings():  # Keras warns once per layer it leaves alone (InputLayer)
            warnings.simplefilter("ignore", UserWarning)
            clone.quantize("int8")
    except (NotImplementedError, ValueError) as err:
        return None, None, f"keras quantize('int8') failed: {err}"
    raw, zipped = keras_file_sizes(clone)
    return raw, zipped, "keras model.quantize('int8') (int8 kernels, float32 scales)"


def _plain_model(model: keras.Model, stripped: keras.Model | None) -> keras.Model:
    if stripped is not None:
        return stripped
    if pruning_wrappers(model):
        from prunekit import prune  # the pruning core; only needed for a wrapped model

        return prune.strip_pruning(model)
    return model


def model_sizes(
    model: keras.Model,
    *,
    stripped: keras.Model | None = None,
    keras_int8: bool = True,
) -> ModelSizes:
    """Size accounting: ``.keras``, zipped ``.keras``, the article's gzipped size, ``.pkz``.

    Args:
        model: the model as trained; its ``.keras`` sizes are measured as is (a model still
            wrapped for pruning gives the "without stripping" figure).
        stripped: the plain model to compress; by default ``model`` itself, or
            ``prunekit.strip_pruning(model)`` when ``model`` still has pruning wrappers.
        keras_int8: also measure the ``.keras`` file of Keras's own int8 quantization.

    Returns:
        A :class:`ModelSizes`; ``.as_dict()`` adds achieved/bound ratios.

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> sizes = model_sizes(model, keras_int8=False)
        >>> sizes.params, sorted(sizes.compressed)
        (10, ['float16', 'float32', 'int8'])
    """
    plain = _plain_model(model, stripped)
    keras_bytes, keras_zip = keras_file_sizes(model)
    compressed, bound, order0, arch = {}, {}, {}, 0
    for mode in WEIGHT_MODES:
        encoded = encode_model(plain, mode)
        arch = encoded.sections["architecture"]
        compressed[mode] = len(encoded.data)
        bound[mode] = arch + sum(tensor_bound_bits(i) for i in encoded.tensors) / 8
        order0[mode] = arch + sum(tensor_bound_bits(i, order0=True) for i in encoded.tensors) / 8
    arrays = [keras.ops.convert_to_numpy(w.value) for w in plain.weights]
    sizes = ModelSizes(
        params=int(sum(a.size for a in arrays)),
        nonzeros=int(sum(np.count_nonzero(a) for a in arrays)),
        keras_bytes=keras_bytes,
        keras_zip_bytes=keras_zip,
        compressed=compressed,
        bound=bound,
        bound_order0=order0,
        architecture_bytes=arch,
        gzipped_bytes=gzipped_size(model),
    )
    if keras_int8:
        raw, zipped, note = keras_int8_sizes(plain)
        sizes.keras_int8_bytes, sizes.keras_int8_zip_bytes, sizes.keras_int8_note = (
            raw,
            zipped,
            note,
        )
    return sizes


def reconstruction_error(model: keras.Model, weights: str = "int8") -> list[dict]:
    """Per-tensor error of storing ``model``'s weights in a ``.pkz`` weight mode.

    Each tensor goes through the same encoder and decoder as :func:`save_compressed`.

    Args:
        model: a built, plain Keras model.
        weights: ``"float32"``, ``"float16"`` or ``"int8"``.

    Returns:
        One dict per weight: ``path``, ``shape``, ``format`` (``f32``/``f16``/``i8``/``raw``),
        ``max_abs_error``, ``rel_rms_error`` (RMS of the error over RMS of the weights, 0 for an
        all-zero tensor), ``max_scale`` (int8 only, else None) and ``zeros_preserved``.

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> [e["max_abs_error"] for e in reconstruction_error(model, "float32")]
        [0.0, 0.0]
    """
    check_weights_mode(weights)
    report = []
    for variable in model.weights:
        array = np.asarray(keras.ops.convert_to_numpy(variable.value))
        record, streams, info = tensors.encode_tensor(array, weights)
        back = tensor_table.decode_tensors(record, 1, streams)[0]
        if info.fmt == "raw":
            err = np.zeros(array.shape)
        else:
            err = back.astype(np.float64) - array.astype(np.float64)
        rms = float(np.sqrt(np.mean(np.square(array, dtype=np.float64)))) if array.size else 0.0
        scales = streams.get("f16" if info.scale_bits == 16 else "f32", b"")
        scale_dtype = np.float16 if info.scale_bits == 16 else np.float32
        report.append(
            {
                "path": variable.path,
                "shape": tuple(array.shape),
                "format": info.fmt,
                "max_abs_error": float(np.max(np.abs(err))) if err.size else 0.0,
                "rel_rms_error": float(np.sqrt(np.mean(err**2)) / rms) if rms else 0.0,
                "max_scale": float(np.frombuffer(scales, scale_dtype).max())
                if info.n_scales
                else None,
                "zeros_preserved": bool(np.all(back[array == 0] == 0)),
            }
        )
    return report
