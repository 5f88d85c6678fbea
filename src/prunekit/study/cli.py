"""``prunekit study``: the article's pruning experiment end to end, with one command.

Keras is imported lazily (inside functions) so that ``--backend`` takes effect.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

_EPILOG = """\
runs (--runs, letters or names; default a,b,c,d,r,s):
  a baseline     the article's model, no pruning
  b whole        whole model pruned from scratch, ConstantSparsity(0.5, 0), 1x1 AVG
  c layer        first Dense only, PolynomialDecay(0.2 -> 0.8, steps 1000 -> 2000), 2x3 MAX
  d weights      baseline weights reloaded from .weights.h5, pruned with defaults, stripped
  r recommended  from the trained baseline, hidden layer only, 0 -> 80% then early stopping
  s structured   from the trained baseline, 0 -> 50% of the hidden units removed gradually
                 (prunekit.structured), then shrunk to a smaller dense model
  x custom       your pruning flags (defaults: run b's); added automatically when any
                 pruning flag is given

The pruning flags (--sparsity ... --from-baseline) only define the custom run x; runs a-d keep
the article's parameters. --epochs and --seed apply to every run.

examples:
  prunekit study --backend jax
  prunekit study --quick --runs a,b
  prunekit study --sparsity 0.8 --schedule polynomial --begin-step 0 --end-step 3000 \\
                 --prune-layers hidden --from-baseline
"""

#: Flags that define the custom run, with their defaults (None: "not given").
_PRUNING_FLAGS = ("sparsity", "schedule", "initial_sparsity", "begin_step", "end_step",
                  "frequency", "block_size", "pooling", "prune_layers", "from_baseline")


def add_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``study`` sub-command to a ``prunekit`` sub-parsers object.

    Args:
        subparsers: The object returned by ``parser.add_subparsers()``.

    Returns:
        The ``study`` parser (its ``func`` default is :func:`run_study_command`).

    Example:
        >>> parser = argparse.ArgumentParser(prog="prunekit")
        >>> _ = add_commands(parser.add_subparsers())
        >>> parser.parse_args(["study", "--quick"]).quick
        True
    """
    from prunekit.cli import add_backend_argument, add_distribution_argument
    from prunekit.lab.choices import DATASETS, POOLINGS, SCHEDULES
    from prunekit.study.config import PRUNE_LAYERS

    parser = subparsers.add_parser(
        "study", help="Run the pruning article's experiment end to end (report, sizes, logs).",
        description="Reproduce the pruning article: train, prune, strip and measure the models,\n"
                    "then write results.json/.csv, report.html and TensorBoard logs to a new "
                    "run folder.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    general = parser.add_argument_group("study")
    general.add_argument("--dataset", choices=DATASETS, default="friedman",
                         help="friedman: the article's regression (MSE); digits: load_digits "
                              "classification (accuracy). Default: friedman.")
    general.add_argument("--runs", default=None, metavar="LIST",
                         help="comma-separated runs to execute, e.g. a,b,r (default a,b,c,d,r,s).")
    general.add_argument("--epochs", type=int, default=None, metavar="N",
                         help="maximum epochs per run (default 300; 3 with --quick).")
    general.add_argument("--quick", action="store_true",
                         help="a fast smoke run: 3 epochs per run, same data.")
    general.add_argument("--seed", type=int, default=0, metavar="N",
                         help="random seed (default 0).")
    general.add_argument("--out", default=None, metavar="DIR",
                         help="run folder (default runs/<timestamp>); never overwritten: if it "
                              "exists, -2, -3... is appended.")
    general.add_argument("--quiet", action="store_true", help="no progress lines or table.")
    add_backend_argument(general)
    add_distribution_argument(general)
    pruning = parser.add_argument_group("custom run (x)")
    pruning.add_argument("--sparsity", type=float, metavar="S",
                         help="target sparsity in [0, 1) (0.5).")
    pruning.add_argument("--schedule", choices=SCHEDULES, type=str.lower,
                         help="ConstantSparsity or PolynomialDecay (constant).")
    pruning.add_argument("--initial-sparsity", type=float, metavar="S",
                         help="PolynomialDecay's initial sparsity (0.0).")
    pruning.add_argument("--begin-step", type=int, metavar="N", help="first pruning step (0).")
    pruning.add_argument("--end-step", type=int, metavar="N",
                         help="last pruning step (constant: -1 = never stop; polynomial: "
                              "begin + 1000).")
    pruning.add_argument("--frequency", type=int, metavar="N",
                         help="steps between mask updates (100).")
    pruning.add_argument("--block-size", metavar="HxW", help="pruned block, e.g. 2x3 (1x1).")
    pruning.add_argument("--pooling", choices=POOLINGS, type=str.upper,
                         help="block pooling (AVG).")
    pruning.add_argument("--prune-layers", choices=PRUNE_LAYERS,
                         help="all Dense layers, or the hidden one only (all).")
    pruning.add_argument("--from-baseline", action="store_true", default=None,
                         help="start from the trained baseline's weights (default: scratch).")
    parser.set_defaults(func=run_study_command)
    return parser


def config_from_args(args: argparse.Namespace) -> Any:
    """Turn parsed arguments into a validated ``StudyConfig``.

    Raises:
        StudyConfigError: For invalid values or combinations (the message names the flag).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> study = add_commands(parser.add_subparsers())
        >>> config_from_args(parser.parse_args(["study", "--sparsity", "0.8"])).runs[-1]
        'custom'
    """
    from prunekit.lab.choices import parse_block_size
    from prunekit.study.config import (DEFAULT_RUNS, FULL_EPOCHS, QUICK_EPOCHS, StudyConfigError,
                                       make_config)

    given = {k: getattr(args, k) for k in _PRUNING_FLAGS if getattr(args, k) is not None}
    if "block_size" in given:
        try:
            given["block_size"] = parse_block_size(given["block_size"])
        except ValueError as error:
            raise StudyConfigError(str(error)) from None
    if given.get("schedule") == "polynomial" and "end_step" not in given:
        given["end_step"] = given.get("begin_step", 0) + 1000
    if "initial_sparsity" in given and given.get("schedule") != "polynomial":
        raise StudyConfigError("--initial-sparsity only applies to --schedule polynomial")
    runs = args.runs
    if runs is None:
        runs = ",".join(DEFAULT_RUNS + (("custom",) if given else ()))
    elif given and not {"x", "custom"} & {r.strip().lower() for r in runs.split(",")}:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise StudyConfigError(f"{flags} only affect(s) the custom run; add x (custom) to --runs "
                               f"or drop the flag. Received: --runs={runs!r}")
    if given.get("from_baseline"):
        runs += ",baseline"
    epochs = args.epochs if args.epochs is not None else (
        QUICK_EPOCHS if args.quick else FULL_EPOCHS)
    return make_config(dataset=args.dataset, runs=runs, epochs=epochs, seed=args.seed,
                       quick=args.quick, custom=given)


def _check_backend(requested: str | None) -> None:
    """Keras picks its backend once, at import: refuse a ``--backend`` it did not get."""
    import keras

    from prunekit.study.config import StudyConfigError

    if requested and keras.backend.backend() != requested:
        raise StudyConfigError(
            f"--backend {requested}: Keras is already running on {keras.backend.backend()}; "
            f"run `prunekit study --backend {requested}` or set KERAS_BACKEND={requested} "
            "before Python starts"
        )


def run_study_command(args: argparse.Namespace) -> int:
    """Run ``prunekit study`` with parsed arguments; return the exit code.

    0: done; 2: invalid flags (nothing was trained).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> _ = add_commands(parser.add_subparsers())
        >>> run_study_command(parser.parse_args(["study", "--epochs", "0"]))  # doctest: +SKIP
        2
    """
    import keras

    from prunekit.cli import print_error, start_distribution
    from prunekit.export.io import check_folder_path
    from prunekit.lab.devices import check_distribution
    from prunekit.study.config import StudyConfigError

    try:
        _check_backend(getattr(args, "backend", None))
        config = config_from_args(args)
        if args.out is not None:
            check_folder_path(args.out)
        check_distribution(args.distribution, keras.backend.backend())
    except (StudyConfigError, ValueError) as error:
        print_error("study", error)
        return 2
    start_distribution("study", args.distribution)
    from rich.console import Console
    from rich.markup import escape

    from prunekit.study.execute import run_study
    from prunekit.study.table import ARTICLE_NOTE, rich_table

    # A pipe or file gets a wide console (the table has ten columns) unless COLUMNS says.
    wide = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    console = Console(quiet=args.quiet, width=160 if wide else None)
    # Status lines are soft-wrapped: never split at the console's width (users copy paths).
    console.print(f"[bold]prunekit study[/]: {', '.join(config.runs)} on {config.dataset}, "
                  f"up to {config.epochs} epochs per run, seed {config.seed}", soft_wrap=True)
    outcome = run_study(config, out=args.out, verbose=not args.quiet, console=console)
    console.print(rich_table(outcome.results, config.dataset, width=console.width))
    if config.dataset == "friedman":
        console.print(f"article MSE: {ARTICLE_NOTE}", soft_wrap=True, highlight=False, markup=False)
    for note in outcome.meta.get("notes", []):
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    console.print(f"run folder:  {outcome.folder}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"report:      {outcome.report}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"TensorBoard: tensorboard --logdir {outcome.meta['logdir']}", soft_wrap=True,
                  highlight=False, markup=False)
    return 0
