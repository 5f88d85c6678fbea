"""Deployment export: a stripped model through Keras's own ``model.export(path, format=...)``.

Keras does the conversion; this module checks up front that the backend supports the format
and that the converter packages are installed (so the user gets one clear message instead of
a deep traceback), writes atomically, refuses to overwrite by default and reports the size.

Which backend exports which format (Keras 3.15; "needs" lists the packages it imports):

============== ===================== ======================== ==========================
format         tensorflow            jax                      torch
============== ===================== ======================== ==========================
litert         yes (tf.lite)         no (Keras: TF or torch)  needs ``litert_torch``
tf_saved_model yes                   yes (jax2tf, needs TF)   needs ``torch_xla``
onnx           needs tf2onnx, onnx   needs jax2onnx, onnx     needs onnx, onnxscript
openvino       needs openvino        needs openvino           needs openvino
torch          no                    no                       yes (torch.export)
============== ===================== ======================== ==========================
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import keras

from prunekit.export.format import check_exportable

DEPLOY_FORMATS = ("litert", "tf_saved_model", "onnx", "openvino", "torch")

# (format, backend) -> import names of the packages the Keras exporter needs; absent = unsupported.
_REQUIRES: dict[tuple[str, str], tuple[str, ...]] = {
    ("litert", "tensorflow"): ("tensorflow",),
    ("litert", "torch"): ("litert_torch",),
    ("tf_saved_model", "tensorflow"): ("tensorflow",),
    ("tf_saved_model", "jax"): ("tensorflow",),
    ("tf_saved_model", "torch"): ("tensorflow", "torch_xla"),
    ("onnx", "tensorflow"): ("tf2onnx", "onnx"),
    ("onnx", "jax"): ("jax2onnx", "onnx"),
    ("onnx", "torch"): ("onnx", "onnxscript"),
    ("openvino", "tensorflow"): ("openvino",),
    ("openvino", "jax"): ("openvino",),
    ("openvino", "torch"): ("openvino",),
    ("torch", "torch"): (),
}
_PIP_NAMES = {
    "litert_torch": "litert-torch",
    "torch_xla": "torch-xla",
    "tensorflow": "tensorflow-cpu",
}
_SUFFIX = {"litert": ".tflite", "torch": ".pt2", "onnx": ".onnx"}


@dataclasses.dataclass
class DeployedArtifact:
    """Where a deployment export went and how big it is."""

    path: str
    format: str
    backend: str
    bytes: int


def missing_packages(format: str, backend: str | None = None) -> list[str]:
    """Import names the Keras exporter for ``format`` needs on ``backend`` but cannot find.

    Raises:
        ValueError: unknown format, or a format the backend cannot export at all.

    Example:
        >>> missing_packages("torch", "torch")
        []
    """
    backend = backend or keras.backend.backend()
    if format not in DEPLOY_FORMATS:
        raise ValueError(
            f"Unknown deployment format: expected one of {list(DEPLOY_FORMATS)}. "
            f"Received: format={format!r}"
        )
    if (format, backend) not in _REQUIRES:
        able = sorted(b for f, b in _REQUIRES if f == format)
        raise ValueError(
            f"Keras cannot export format={format!r} on the {backend} backend; it can on: "
            f"{', '.join(able)}. Set KERAS_BACKEND (or --backend) accordingly."
        )
    return [name for name in _REQUIRES[(format, backend)] if importlib.util.find_spec(name) is None]


def check_deployable(format: str, path: str | os.PathLike, backend: str | None = None) -> None:
    """Raise before any work if ``format`` cannot be exported here or ``path`` is unfit.

    Raises:
        ValueError: unknown or unsupported format/backend pair, or a wrong file suffix.
        ImportError: a package the exporter needs is not installed (the message says which).

    Example:
        >>> check_deployable("torch", "model.pt2", backend="torch")
    """
    missing = missing_packages(format, backend)
    if missing:
        pip = " ".join(_PIP_NAMES.get(m, m) for m in missing)
        raise ImportError(
            f"Exporting format={format!r} on the {backend or keras.backend.backend()} backend "
            f"needs {', '.join(missing)}, not installed here. Install with: "
            f"pip install {pip}"
        )
    suffix = _SUFFIX.get(format)
    if suffix and not str(path).endswith(suffix):
        raise ValueError(
            f"format={format!r} needs a path ending in {suffix!r}. Received: path={str(path)!r}"
        )


def artifact_bytes(path: str | os.PathLike) -> int:
    """Size of a file, or the total size of the files under a directory.

    Example:
        >>> artifact_bytes(__file__) > 0
        True
    """
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def export_deployable(
    model: keras.Model,
    path: str | os.PathLike,
    format: str = "litert",
    *,
    overwrite: bool = False,
    verbose: bool = False,
    **kwargs,
) -> DeployedArtifact:
    """Export a stripped model for inference with ``model.export`` and report the size.

    Args:
        model: a built, plain Keras model (after ``prunekit.strip_pruning``).
        path: output file (``.tflite`` for litert, ``.pt2`` for torch, ``.onnx`` for onnx) or
            directory (tf_saved_model, openvino).
        format: one of ``DEPLOY_FORMATS``; see the module docstring for backend support.
        overwrite: replace an existing file or directory.
        verbose: let Keras print its export messages.
        **kwargs: passed on to ``model.export`` (e.g. ``input_signature``, or LiteRT converter
            options such as ``optimizations``).

    Returns:
        A :class:`DeployedArtifact` with the path, format, backend and size in bytes.

    Raises:
        ValueError: unknown format, format not supported by the backend, wrong suffix, or a
            model still wrapped for pruning.
        ImportError: the exporter's packages are missing.
        FileExistsError: ``path`` exists and ``overwrite`` is False.

    Example:
        >>> import os, tempfile
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> out = os.path.join(tempfile.mkdtemp(), "m.tflite")
        >>> export_deployable(model, out, "litert").bytes > 0  # doctest: +SKIP
        True
    """
    backend = keras.backend.backend()
    check_exportable(model)
    check_deployable(format, path, backend)
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} already exists; pass overwrite=True (CLI: --force) to replace it."
        )
    if not target.parent.is_dir():
        raise FileNotFoundError(f"Output directory {target.parent} does not exist.")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        produced = staging / target.name
        model.export(str(produced), format=format, verbose=verbose, **kwargs)
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(produced, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DeployedArtifact(str(target), format, backend, artifact_bytes(target))
