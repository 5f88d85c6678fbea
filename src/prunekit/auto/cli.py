"""``prunekit prune``: a user's ``.keras`` model pruned to an error budget (or a fixed sparsity).

Everything is checked -- arguments, data, model, targets -- before the output folder is
created; the folder is always new (``OUT-2``, ``OUT-3``... if ``OUT`` exists) and holds::

    pruned.keras    the pruned model, stripped (a plain Keras model with exact zeros)
    pruned.pkz      the same in prunekit's compressed sparse format (float32, exact)
    shrunk.keras    with --structured: whole units removed, the model rebuilt smaller
    results.json    the report (budget, drops, per-layer sparsities and why, scan, trials)
    report.html     the same as a self-contained page, with the scan's plot
    logs/           TensorBoard logs of every fine-tuning trial (PruningSummaries)

Keras is imported inside the functions: ``--backend`` is applied before Keras loads.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

_EPILOG = """\
examples:
  prunekit prune model.keras --data houses.csv --target price --max-drop 1% -o pruned/
  prunekit prune model.keras --data train.npz --val val.npz --max-drop 0.005 -o out
  prunekit prune model.keras --data train.npz --sparsity 0.8 -o out
"""


def add_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``prune`` sub-command.

    Example:
        >>> parser = argparse.ArgumentParser(prog="prunekit")
        >>> _ = add_commands(parser.add_subparsers())
        >>> parser.parse_args(["prune", "m.keras", "--data", "d.csv", "--max-drop", "1%",
        ...                    "-o", "out"]).max_drop
        '1%'
    """
    from prunekit.cli import add_backend_argument

    parser = subparsers.add_parser(
        "prune", help="Prune your model to an error budget: scan, allocate, fine-tune, verify.",
        description="Prune a .keras model as far as an error budget on held-out data allows, "
                    "with per-layer sparsities from a sensitivity scan (or to a fixed "
                    "sparsity), fine-tuning on your data.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="the trained model (.keras)")
    parser.add_argument("-o", "--out", required=True, help="output folder (new; never reused)")
    data = parser.add_argument_group("data")
    data.add_argument("--data", required=True, metavar="FILE",
                      help="training rows: .csv with a header row, or .npz")
    data.add_argument("--target", metavar="COLUMN", help="CSV target column (default: last)")
    data.add_argument("--x-key", metavar="NAME", help="NPZ input array (default x)")
    data.add_argument("--y-key", metavar="NAME", help="NPZ target array (default y)")
    data.add_argument("--val", metavar="FILE", help="held-out rows for the scan and the budget "
                      "check (default: 20%% of --data, seeded)")
    data.add_argument("--test", metavar="FILE", help="rows never used for a decision, "
                      "measured for the report")
    goal = parser.add_argument_group("goal (one of)")
    goal.add_argument("--max-drop", metavar="DROP", help="error budget: 1%% (relative to the "
                      "baseline) or 0.01 (in metric units)")
    goal.add_argument("--sparsity", type=float, help="fixed sparsity of every prunable layer")
    goal.add_argument("--structured", action="store_true", help="with --sparsity: also remove "
                      "whole units and rebuild the model smaller (shrunk.keras, latency)")
    goal.add_argument("--metric", help="accuracy, mse or mae (default: the model's compiled "
                      "metric or loss)")
    tune = parser.add_argument_group("fine-tuning")
    tune.add_argument("--epochs", type=int, default=10, help="epochs per trial (10)")
    tune.add_argument("--batch-size", type=int, default=32, help="batch size (32)")
    tune.add_argument("--learning-rate", type=float, help="Adam's learning rate (default: the "
                      "model's compiled optimizer at a tenth of its rate, else Adam 1e-4)")
    tune.add_argument("--frequency", type=int, default=100, help="steps between mask updates "
                      "(100; lowered for small data)")
    tune.add_argument("--max-trials", type=int, default=6, help="most fine-tuning trials (6)")
    tune.add_argument("--seed", type=int, default=0, help="seed of the split and training")
    load = parser.add_argument_group("loading")
    load.add_argument("--custom-objects", metavar="FILE.py", help="Python file defining the "
                      "model's custom layers/functions (imported only when given)")
    load.add_argument("--unsafe", action="store_true", help="allow Lambda layers (runs the "
                      "Python code stored in the model file)")
    add_backend_argument(parser)
    parser.set_defaults(func=prune_command)
    return parser


def _check_numbers(args: argparse.Namespace) -> None:
    from prunekit.auto.data import AutoPruneError

    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size),
                        ("--frequency", args.frequency), ("--max-trials", args.max_trials)):
        if value < 1:
            raise AutoPruneError(f"{flag} must be >= 1. Received: {flag}={value}")
    if args.learning_rate is not None and not args.learning_rate > 0:
        raise AutoPruneError(f"--learning-rate must be > 0. Received: {args.learning_rate}")


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Read and check everything ``prune`` needs; nothing is written.

    Returns:
        Keyword arguments for :func:`prunekit.auto.run.auto_prune` plus ``model``.

    Raises:
        AutoPruneError: The first problem found (bad flags, data, model, targets).
    """
    from prunekit.auto import data as data_io
    from prunekit.auto import model as model_io
    from prunekit.auto.run import check_inputs
    from prunekit.export.io import check_folder_path

    _check_numbers(args)
    try:
        check_folder_path(args.out, "--out")
    except ValueError as error:
        raise data_io.AutoPruneError(str(error)) from None
    keys = {"target": args.target, "x_key": args.x_key, "y_key": args.y_key}
    x, y = data_io.read_data(args.data, **keys)
    val = data_io.read_data(args.val, **keys) if args.val else None
    test = data_io.read_data(args.test, **keys) if args.test else None
    described = os.path.basename(args.data) + (f" (validation: {os.path.basename(args.val)})"
                                                if args.val else "")
    split = data_io.split_data(x, y, val, args.seed, described)
    custom = model_io.load_custom_objects(args.custom_objects) if args.custom_objects else None
    model = model_io.load_model_file(args.model, custom, args.unsafe)
    check_inputs(model, split, args.metric, args.max_drop, args.sparsity, args.unsafe,
                 args.structured)
    if test is not None:
        model_io.check_model(model, test[0].astype("float32"), args.unsafe)
        test = (test[0].astype("float32"), test[1])
    return {"model": model, "data": split, "max_drop": args.max_drop, "sparsity": args.sparsity,
            "metric": args.metric, "epochs": args.epochs, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "frequency": args.frequency,
            "max_trials": args.max_trials, "unsafe": args.unsafe, "seed": args.seed,
            "test": test, "structured": args.structured}


def save_keras(model: Any, path: str) -> None:
    """Save ``model`` as ``.keras`` atomically, never over an existing file."""
    from prunekit.export.io import write_atomic

    with tempfile.TemporaryDirectory() as scratch:
        temporary = os.path.join(scratch, "model.keras")
        model.save(temporary)
        with open(temporary, "rb") as file:
            write_atomic(path, file.read(), overwrite=False)


def write_outputs(folder: str, model: Any, report: Any) -> None:
    """Write the pruned model (``.keras`` and ``.pkz``), results.json and report.html."""
    from prunekit.auto.report import report_html
    from prunekit.export import save_compressed
    from prunekit.export.io import write_atomic, write_json

    save_keras(model, os.path.join(folder, "pruned.keras"))
    report.files["model"] = "pruned.keras"
    if report.shrunk_model is not None:
        save_keras(report.shrunk_model, os.path.join(folder, "shrunk.keras"))
        report.files["shrunk"] = "shrunk.keras"
    try:
        save_compressed(model, os.path.join(folder, "pruned.pkz"), weights="float32")
        report.files["pkz"] = "pruned.pkz"
    except (ValueError, NotImplementedError) as error:
        report.notes.append(f"no .pkz written: {error}")
    report.files.update({"results": "results.json", "report": "report.html", "logs": "logs"})
    write_json(os.path.join(folder, "results.json"), report.as_dict())
    write_atomic(os.path.join(folder, "report.html"), report_html(report), overwrite=False)


def prune_command(args: argparse.Namespace) -> int:
    """Run ``prunekit prune``; returns the exit code (0 done, 2 refused before any work).

    Example:
        >>> prune_command(argparse.Namespace(model="m.keras", data="d.csv"))  # doctest: +SKIP
        0
    """
    from prunekit.auto.data import AutoPruneError
    from prunekit.auto.run import auto_prune
    from prunekit.cli import print_error
    from prunekit.export.io import make_new_folder

    try:
        kwargs = prepare(args)
    except (AutoPruneError, OSError) as error:
        print_error("prune", error)
        return 2
    folder = make_new_folder(args.out)
    print(f"output folder: {folder}")
    model = kwargs.pop("model")
    pruned, report = auto_prune(model, **kwargs, log_dir=os.path.join(folder, "logs"),
                                verbose=True)
    write_outputs(folder, pruned, report)
    print(report)
    written = [report.files[k] for k in ("model", "pkz", "shrunk") if k in report.files]
    print(f"wrote {folder}/: {', '.join(written)}, results.json, report.html, logs/")
    return 0
