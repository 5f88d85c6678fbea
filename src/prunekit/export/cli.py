"""``prunekit export`` and ``prunekit size``: thin command-line wrappers over prunekit.export.

Keras is imported inside the functions: the top-level CLI sets ``KERAS_BACKEND`` from
``--backend`` before anything imports Keras.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prunekit.cli import add_backend_argument, print_error

_WEIGHT_MODES = ("float32", "float16", "int8")
_FORMATS = ("pkz", "litert", "tf_saved_model", "onnx", "openvino", "torch")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``export`` and ``size`` sub-commands.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_commands(parser.add_subparsers())
        >>> parser.parse_args(["size", "m.keras"]).model
        'm.keras'
    """
    export = subparsers.add_parser(
        "export",
        help="Write a pruned model as a compressed .pkz file (or a deployment format).",
        description="Export a .keras model (pruning wrappers are stripped first) as a compressed "
        "sparse .pkz file, or through Keras's model.export for deployment.",
    )
    export.add_argument("model", help="input model (.keras)")
    export.add_argument("-o", "--output", required=True, help="output path")
    export.add_argument(
        "--weights", choices=_WEIGHT_MODES, default="float32", help="pkz value type"
    )
    export.add_argument(
        "--format", choices=_FORMATS, default="pkz", help="output format (default pkz)"
    )
    export.add_argument("--force", action="store_true", help="overwrite an existing output")
    add_backend_argument(export)
    export.set_defaults(func=run_export)

    size = subparsers.add_parser(
        "size",
        help="Print a model's sizes: .keras, zipped, .pkz per weight mode, entropy bound.",
        description="Size accounting for a .keras (or .pkz) model.",
    )
    size.add_argument("model", help="model file (.keras or .pkz)")
    size.add_argument("--json", dest="json_path", default=None, help="also write the figures here")
    size.add_argument(
        "--no-keras-int8", action="store_true", help="skip measuring Keras's own int8 quantization"
    )
    size.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    add_backend_argument(size)
    size.set_defaults(func=run_size)


class ModelFileError(ValueError):
    """A model file that does not exist or cannot be read as a model."""


def _load(path: str):
    """Load a ``.keras``/``.h5`` or ``.pkz`` model; pruning wrappers are stripped (with a note).

    Raises:
        ModelFileError: The file is not a readable model (one line: the file and why).
    """
    import keras

    import prunekit
    from prunekit.export import load_compressed
    from prunekit.export.format import pruning_wrappers

    try:
        model = (load_compressed(path) if path.endswith(".pkz")
                 else keras.saving.load_model(path, compile=False))
    except Exception as error:  # noqa: BLE001 - Keras raises KeyError, TypeError, OSError...
        raise ModelFileError(f"{path}: not a readable model file (corrupted, truncated or not "
                             f"a saved model): {type(error).__name__}: {error}") from None
    if not isinstance(model, keras.Model):
        raise ModelFileError(f"{path}: holds a {type(model).__name__}, not a model; expected a "
                             "model saved with model.save() or prunekit.export.save_compressed")
    if pruning_wrappers(model):
        print("note: the model has pruning wrappers; exporting prunekit.strip_pruning(model)")
        return model, prunekit.strip_pruning(model)
    return model, model


def _check_export_args(args: argparse.Namespace) -> None:
    """Check ``prunekit export``'s arguments before any work (raises on the first problem)."""
    from prunekit.export.deploy import check_deployable
    from prunekit.export.format import check_weights_mode
    from prunekit.export.io import check_output_path

    if args.format == "pkz":
        check_weights_mode(args.weights)
        check_output_path(args.output, args.force)
    else:
        check_deployable(args.format, args.output)
    _check_model_file(args.model)


_MODEL_SUFFIXES = (".keras", ".h5", ".hdf5", ".pkz")


def _check_model_file(path: str) -> None:
    """Refuse a model path that is missing, not a file, or of a kind that cannot be loaded."""
    import zipfile

    file = Path(path)
    if not file.exists():
        raise ModelFileError(f"No such model file: {path}")
    if not file.is_file():
        raise ModelFileError(f"{path} is a {'folder' if file.is_dir() else 'special file'}; "
                             f"expected a model file ({', '.join(_MODEL_SUFFIXES)})")
    if file.suffix.lower() not in _MODEL_SUFFIXES:
        raise ModelFileError(f"{path}: unknown model file type; expected a "
                             f"{', '.join(_MODEL_SUFFIXES)} file. Received: {file.suffix!r}")
    if file.suffix.lower() == ".keras" and not zipfile.is_zipfile(file):
        raise ModelFileError(f"{path}: not a .keras model: a .keras file is a zip archive and "
                             "this one is not (corrupted or truncated?)")


def run_export(args: argparse.Namespace) -> int:
    """Run ``prunekit export``; returns the exit code.

    0: written; 2: invalid arguments or an unreadable model (nothing was written); 1: the
    export failed (a package it needs is missing, the model could not be converted or written).

    Example:
        >>> run_export(argparse.Namespace(model="m.keras", output="o.pkz", weights="int8",
        ...            format="pkz", force=False))  # doctest: +SKIP
        0
    """
    from prunekit.export import export_deployable, save_compressed

    try:
        _check_export_args(args)
        _, plain = _load(args.model)
    except ImportError as err:
        print_error("export", err)
        return 1
    except (ValueError, OSError) as err:
        print_error("export", err)
        return 2
    try:
        if args.format == "pkz":
            written = save_compressed(
                plain, args.output, weights=args.weights, overwrite=args.force
            )
            print(f"wrote {args.output}: {written:,} bytes ({args.weights} weights)")
        else:
            art = export_deployable(plain, args.output, args.format, overwrite=args.force)
            print(f"wrote {art.path}: {art.bytes:,} bytes ({art.format}, {art.backend} backend)")
    except (ValueError, ImportError, OSError) as err:
        print_error("export", err)
        return 1
    return 0


def format_sizes(sizes) -> str:
    """Render :class:`prunekit.export.ModelSizes` as a plain-text table.

    Example:
        >>> from prunekit.export.sizes import ModelSizes
        >>> s = ModelSizes(10, 5, 900, 800, {"int8": 80}, {"int8": 75.0}, {"int8": 70.0}, 40)
        >>> "int8" in format_sizes(s)
        True
    """
    from prunekit.export.sizes import GZIP_LABEL

    rows = [
        ("parameters", f"{sizes.params:,}", ""),
        ("nonzeros", f"{sizes.nonzeros:,}", f"{sizes.nonzeros / max(sizes.params, 1):.1%} dense"),
        (".keras file", f"{sizes.keras_bytes:,}", ""),
        (".keras zipped (deflate)", f"{sizes.keras_zip_bytes:,}", "1.00x"),
    ]
    if sizes.gzipped_bytes is not None:
        rows.append((f"{GZIP_LABEL} (article)", f"{sizes.gzipped_bytes:,}",
                     "save(include_optimizer=False), zipped"))
    if sizes.keras_int8_bytes is not None:
        rows.append((".keras after quantize('int8')", f"{sizes.keras_int8_bytes:,}", ""))
        rows.append(("  zipped", f"{sizes.keras_int8_zip_bytes:,}", ""))
    rows.append(("pkz architecture section", f"{sizes.architecture_bytes:,}", ""))
    for mode, size in sizes.compressed.items():
        note = (
            f"{sizes.times_smaller(mode):.2f}x smaller; bound {sizes.bound[mode]:,.0f} B "
            f"(achieved/bound {sizes.ratio_to_bound(mode):.3f})"
        )
        rows.append((f".pkz {mode}", f"{size:,}", note))
    width = max(len(r[0]) for r in rows)
    num = max(len(r[1]) for r in rows)
    lines = [f"{'what':<{width}}  {'bytes':>{num}}  notes", "-" * (width + num + 30)]
    lines += [f"{a:<{width}}  {b:>{num}}  {c}".rstrip() for a, b, c in rows]
    return "\n".join(lines)


def run_size(args: argparse.Namespace) -> int:
    """Run ``prunekit size``; returns the exit code.

    0: printed; 2: no such or unreadable model file, or a --json path that cannot be written
    (checked before any work); 1: the model could not be measured.

    Example:
        >>> run_size(argparse.Namespace(model="m.keras", json_path=None, force=False,
        ...          no_keras_int8=True))  # doctest: +SKIP
        0
    """
    from prunekit.export import model_sizes
    from prunekit.export.io import check_output_path, write_atomic

    force = getattr(args, "force", False)
    try:
        _check_model_file(args.model)
        if args.json_path:
            check_output_path(args.json_path, force)
        model, plain = _load(args.model)
    except (ValueError, OSError) as err:
        print_error("size", err)
        return 2
    try:
        sizes = model_sizes(model, stripped=plain, keras_int8=not args.no_keras_int8)
    except (ValueError, ImportError, OSError) as err:
        print_error("size", err)
        return 1
    print(format_sizes(sizes))
    if args.json_path:
        write_atomic(args.json_path, json.dumps(sizes.as_dict(), indent=2) + "\n",
                     overwrite=force)
    return 0
