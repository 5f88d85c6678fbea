"""``prunekit oneshot``: prune a ``.keras`` model or a KerasHub preset folder from calibration data.

Checks every input (model path, calibration file, output paths, numbers) before loading
anything; a problem prints one ``prunekit oneshot: error:`` line and exits with status 2.
Writes the pruned model (a ``.keras`` file or a preset folder) and a JSON report atomically,
never over an existing path (:mod:`prunekit.export.io`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from prunekit.cli import add_backend_argument, print_error
from prunekit.export.io import check_folder_path, json_safe, save_atomic, write_atomic

_METHODS = ("wanda", "sparsegpt", "magnitude")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``oneshot`` sub-command.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_commands(parser.add_subparsers())
        >>> parser.parse_args(["oneshot", "m.keras", "--calibration", "c.npz", "-o", "p.keras",
        ...                    "--n-m", "2:4"]).n_m
        '2:4'
    """
    cmd = subparsers.add_parser(
        "oneshot",
        help="Prune a trained model in one shot from calibration data (Wanda, SparseGPT).",
        description="One-shot pruning without retraining: magnitude, Wanda or SparseGPT, "
        "unstructured or N:M, block by block on calibration data.",
    )
    cmd.add_argument("model", help="a .keras file or a KerasHub preset folder")
    cmd.add_argument("--method", choices=_METHODS, default="wanda")
    target = cmd.add_mutually_exclusive_group()
    target.add_argument("--sparsity", type=float, default=None, help="fraction of zeros (0.5)")
    target.add_argument("--n-m", dest="n_m", default=None, help="N:M pattern, e.g. 2:4 or 4:8")
    cmd.add_argument("--calibration", required=True,
                     help="plain text (language models, tokenized by the preset's tokenizer) "
                     "or .npz arrays")
    cmd.add_argument("--samples", type=int, default=128, help="calibration samples (128)")
    cmd.add_argument("--seq-len", type=int, default=128, help="tokens per text sample (128)")
    cmd.add_argument("--batch-size", type=int, default=8, help="samples per forward pass (8)")
    cmd.add_argument("-o", "--output", required=True, help="new .keras file or preset folder")
    cmd.add_argument("--report", default=None, help="JSON report (default OUTPUT.oneshot.json)")
    add_backend_argument(cmd)
    cmd.set_defaults(func=run_oneshot)


def _parse_target(args: argparse.Namespace) -> tuple[float, tuple[int, int] | None]:
    if args.n_m is None:
        return (0.5 if args.sparsity is None else args.sparsity), None
    try:
        n, m = (int(v) for v in args.n_m.split(":"))
    except ValueError:
        raise ValueError(f"--n-m must look like 2:4 (keep 2 of every 4). "
                         f"Received: n_m={args.n_m!r}") from None
    return 0.5, (n, m)


def _check(args: argparse.Namespace) -> tuple[str, str, Path, float, Any]:
    from prunekit.oneshot.calibration import check_calibration
    from prunekit.oneshot.runner import validate_options

    model = Path(args.model)
    if model.is_dir():
        kind = "preset"
    elif model.is_file() and model.suffix == ".keras":
        kind = "keras"
    else:
        raise ValueError("MODEL must be a .keras file or a KerasHub preset folder. "
                         f"Received: model={args.model!r}")
    sparsity, n_m = _parse_target(args)
    validate_options(args.method, sparsity, n_m, None, 0.01, 128)
    for name in ("samples", "seq_len", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1. "
                             f"Received: {name}={getattr(args, name)}")
    if kind == "keras" and Path(args.output).suffix != ".keras":
        raise ValueError(f"The output of a .keras model must end in .keras. "
                         f"Received: output={args.output!r}")
    report = Path(args.report or f"{args.output}.oneshot.json")
    for flag, path in (("--output", Path(args.output)), ("--report", report)):
        check_folder_path(path.resolve().parent, flag)
        if not path.resolve().parent.is_dir():
            raise ValueError(f"{flag}'s folder does not exist; expected a path in an existing "
                             f"folder. Received: {flag}={str(path)!r}")
        if path.exists():
            raise ValueError(f"Refusing to overwrite an existing path; expected a new {flag}. "
                             f"Received: {flag}={str(path)!r}")
    if kind == "preset":
        try:
            import keras_hub  # noqa: F401
        except ImportError:
            raise ValueError("Preset folders need KerasHub: pip install 'prunekit[hub]'. "
                             f"Received: model={args.model!r}") from None
    calibration = check_calibration(args.calibration)
    if calibration == "text" and kind != "preset":
        raise ValueError("Text calibration needs a KerasHub preset folder (for its tokenizer); "
                         f"use a .npz file for a .keras model. Received: model={args.model!r}")
    return kind, calibration, report, sparsity, n_m


def _load(kind: str, path: str, calibration: str) -> tuple[Any, Any]:
    import keras

    if kind == "keras":
        return keras.saving.load_model(path), None
    import keras_hub

    tokenizer = None
    if calibration == "text" or (Path(path) / "tokenizer.json").exists():
        tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(path)
    return keras_hub.models.Backbone.from_preset(path), tokenizer


def _batches(args: argparse.Namespace, calibration: str, tokenizer: Any) -> list[Any]:
    from prunekit.oneshot import calibration as cal

    if calibration == "npz":
        return cal.npz_batches(cal.load_npz(args.calibration), args.samples, args.batch_size)
    text = Path(args.calibration).read_text(encoding="utf-8")
    return cal.text_batches(text, tokenizer, args.samples, args.seq_len, args.batch_size)


def _save(kind: str, model: Any, tokenizer: Any, output: Path) -> None:
    def save(tmp: Path) -> None:
        if kind == "keras":
            model.save(tmp)
            return
        model.save_to_preset(str(tmp))
        if tokenizer is not None:
            tokenizer.save_to_preset(str(tmp))

    save_atomic(output, save)


def run_oneshot(args: argparse.Namespace) -> int:
    """Run ``prunekit oneshot``; return the exit code (2 for bad input)."""
    try:
        kind, calibration, report_path, sparsity, n_m = _check(args)
    except ValueError as exc:
        print_error("oneshot", exc)
        return 2
    from prunekit.oneshot.runner import prune_oneshot

    try:
        model, tokenizer = _load(kind, args.model, calibration)
    except Exception as exc:  # a corrupt or foreign file: report it, no traceback
        first = str(exc).splitlines()[0] if str(exc) else ""
        print_error("oneshot", f"Cannot load the model ({type(exc).__name__}: {first}); "
                    "expected a Keras model file or a KerasHub preset folder. "
                    f"Received: model={args.model!r}")
        return 2
    try:
        batches = _batches(args, calibration, tokenizer)
    except ValueError as exc:
        print_error("oneshot", exc)
        return 2
    start = time.perf_counter()

    def progress(index: int, total: int, name: str) -> None:
        print(f"block {index + 1}/{total} {name}: {time.perf_counter() - start:.1f} s", flush=True)

    report = prune_oneshot(model, batches, args.method, sparsity, n_m, progress=progress)
    for row in report.layers:
        print(f"  {row.path}  sparsity {row.sparsity:.3f}  error {row.error:.4f}  "
              f"{row.seconds:.2f} s")
    for path, reason in report.skipped.items():
        print(f"  skipped {path}: {reason}")
    try:
        _save(kind, model, tokenizer, Path(args.output))
        write_atomic(report_path, json.dumps(json_safe(report.to_dict()), indent=2) + "\n",
                     overwrite=False)
    except OSError as exc:  # the path was taken or the disk refused while pruning ran
        print_error("oneshot", exc)
        return 1
    print(f"{args.method} {report.target}: {len(report.layers)} layers in {report.seconds:.1f} s"
          f" -> {args.output} (report {report_path})")
    return 0
