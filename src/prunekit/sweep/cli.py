"""``prunekit sweep``: explore pruning parameters over a grid, in parallel, resumably.

Keras is imported lazily (inside functions) so that ``--backend`` takes effect.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from typing import Any

_EPILOG = """\
Grid flags take comma-separated lists; the sweep runs their cartesian product, plus one dense
(unpruned) reference run. Every combination is checked before anything trains.

layers: all | first | last | all-but-output | a layer name (hidden, output)
end-step -1: constant -> never stop; polynomial -> the last training step

examples:
  prunekit sweep --quick --sparsity 0.5,0.8,0.95 --schedule constant,polynomial
  prunekit sweep --config examples/sweep.toml --workers 2 --out sweeps/first
  prunekit sweep --data examples/houses.csv --target price --sparsity 0.5,0.9 \
                 --block-size 1x1,2x2 --layers first
  prunekit sweep --resume sweeps/first          # finish an interrupted sweep
  prunekit sweep --config examples/sweep.toml --ray auto  # runs as tasks on a Ray cluster
  prunekit sweep --quick --backend jax --distribution data-parallel  # each run on every device
"""

#: Flags that define the sweep (not allowed with --resume, which reads them from the folder).
_SPEC_FLAGS = ("dataset", "data", "target", "task", "epochs", "batch_size", "learning_rate",
               "seed", "schedule", "sparsity", "initial_sparsity", "begin_step", "end_step",
               "frequency", "power", "block_size", "pooling", "layers", "scope")


def add_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` sub-command to a ``prunekit`` sub-parsers object.

    Args:
        subparsers: The object returned by ``parser.add_subparsers()``.

    Returns:
        The ``sweep`` parser (its ``func`` default is :func:`sweep_command`).

    Example:
        >>> parser = argparse.ArgumentParser(prog="prunekit")
        >>> _ = add_commands(parser.add_subparsers())
        >>> parser.parse_args(["sweep", "--sparsity", "0.5,0.8"]).sparsity
        '0.5,0.8'
    """
    from prunekit.cli import add_backend_argument, add_distribution_argument
    from prunekit.lab.choices import DATASETS, TASKS
    from prunekit.sweep.results import SIZE_COLUMNS

    parser = subparsers.add_parser(
        "sweep", help="Sweep pruning parameters: trade-off plots, Pareto front, report.",
        description="Train the study's model under every combination of pruning parameters, "
                    "in parallel, and write results.csv/.json and a report.html with the "
                    "error/size trade-offs and their Pareto front.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--config", metavar="FILE.toml", help="sweep settings and [grid] in TOML "
                      "(Python 3.11+, or tomli); flags override the file.")
    data.add_argument("--dataset", choices=DATASETS,
                      help="bundled dataset (default friedman, the article's regression).")
    data.add_argument("--data", metavar="FILE", help="your own .csv (header row) or .npz data.")
    data.add_argument("--target", metavar="COLUMN",
                      help="target column/array of --data (default: last CSV column, NPZ 'y').")
    data.add_argument("--task", choices=TASKS,
                      help="what --data's target is (default regression).")
    grid = parser.add_argument_group("grid (comma-separated values)")
    grid.add_argument("--schedule", metavar="LIST", help="constant, polynomial (constant).")
    grid.add_argument("--sparsity", metavar="LIST", help="target sparsity in [0, 1) (0.5).")
    grid.add_argument("--initial-sparsity", metavar="LIST", help="polynomial start (0).")
    grid.add_argument("--begin-step", metavar="LIST", help="first mask update (0).")
    grid.add_argument("--end-step", metavar="LIST", help="last mask update (-1).")
    grid.add_argument("--frequency", metavar="LIST", help="steps between updates (100).")
    grid.add_argument("--power", metavar="LIST", help="polynomial exponent (3).")
    grid.add_argument("--block-size", metavar="LIST", help="HxW blocks, e.g. 1x1,2x2 (1x1).")
    grid.add_argument("--pooling", metavar="LIST", help="AVG, MAX: block pooling (AVG).")
    grid.add_argument("--layers", metavar="LIST", help="which layers to prune (all).")
    grid.add_argument("--scope", metavar="LIST", help="layer (per layer), global (layer).")
    grid.add_argument("--no-dense", action="store_true", help="skip the unpruned reference run.")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, help="epochs of every run (10).")
    train.add_argument("--quick", action="store_true", help="2 epochs per run: a smoke test.")
    train.add_argument("--batch-size", type=int, help="batch size (32).")
    train.add_argument("--learning-rate", type=float, help="Adam learning rate (0.001).")
    train.add_argument("--seed", type=int, help="base seed; each run's derives from it (0).")
    run = parser.add_argument_group("execution")
    run.add_argument("--out", metavar="DIR", help="sweep folder (default sweeps/<timestamp>); "
                     "an existing one is resumed.")
    run.add_argument("--resume", metavar="DIR", help="finish the sweep in DIR (its settings).")
    run.add_argument("--workers", type=int, help="parallel worker processes (default: cores; "
                     "0: run in this process).")
    run.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                     help="run on Ray: no value or 'local' starts a local instance, 'auto' "
                          "joins the running cluster, or give its address.")
    run.add_argument("--max-runs", type=int, metavar="N", help="run at most N missing runs.")
    run.add_argument("--pareto-size", choices=SIZE_COLUMNS,
                     default="gz_bytes", help="size of the Pareto front (gz_bytes).")
    run.add_argument("--dry-run", action="store_true", help="list the runs, train nothing.")
    run.add_argument("--quiet", action="store_true", help="no progress bar or table.")
    add_backend_argument(run)
    add_distribution_argument(run)
    parser.set_defaults(func=sweep_command)
    return parser


def _spec(args: argparse.Namespace) -> tuple[Any, str | None]:
    """The SweepSpec and --out the arguments describe."""
    from prunekit.sweep.folder import load_spec
    from prunekit.sweep.grid import SweepError
    from prunekit.sweep.spec import QUICK_EPOCHS, make_spec, run_options_from_toml, spec_from_toml

    given = {k: getattr(args, k) for k in _SPEC_FLAGS if getattr(args, k) is not None}
    if args.quick and args.epochs is None:
        given["epochs"] = QUICK_EPOCHS
    if args.no_dense:
        given["dense"] = False
    if args.resume:
        if given or args.config or args.out:
            extra = ", ".join(f"--{k.replace('_', '-')}" for k in given) or "--config/--out"
            raise SweepError(f"--resume takes every setting from {args.resume}/sweep.json; "
                             f"drop {extra} (or start a new sweep with --out).")
        return load_spec(args.resume), args.resume
    if args.config:
        options = run_options_from_toml(args.config)
        for key in ("workers", "ray"):  # the file's run options, unless a flag gives one
            if getattr(args, key) is None and key in options:
                setattr(args, key, options[key])
        return spec_from_toml(args.config, given), args.out or options.get("out")
    return make_spec(**given), args.out


def _check_run_options(args: argparse.Namespace) -> None:
    """Refuse invalid --workers, --ray and --max-runs (flags or the TOML file's run options)."""
    from prunekit.sweep.grid import SweepError

    workers = args.workers
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool)
                                or workers < 0):
        raise SweepError(f"--workers must be >= 0 (an integer; 0: no worker processes). "
                         f"Received: --workers={workers!r}")
    if args.ray is not None and not isinstance(args.ray, str):
        raise SweepError(f"--ray must be 'local', 'auto' or a cluster address. "
                         f"Received: --ray={args.ray!r}")
    if args.max_runs is not None and args.max_runs < 1:
        raise SweepError(f"--max-runs must be >= 1 (leave it out to run every missing run). "
                         f"Received: --max-runs={args.max_runs}")


def _print_runs(runs: list[Any], console: Any) -> None:
    from prunekit.sweep.grid import describe

    for i, run in enumerate(runs, 1):
        console.print(f"{i:4d}  {run.key()}  {describe(run)}", soft_wrap=True, markup=False)


def _print_front(outcome: Any, console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from prunekit.export.sizes import GZIP_LABEL
    from prunekit.sweep.grid import describe

    table = Table(title="Pareto front (error vs size)")
    for column in ("run", "metric", "sparsity", f"{GZIP_LABEL} (B)", "int8 .pkz (B)"):
        table.add_column(column, justify="left" if column == "run" else "right")
    with open(outcome.files["json"], encoding="utf-8") as file:
        import json

        rows = [r for r in json.load(file)["runs"] if r["pareto"]]
    for r in rows:
        table.add_row(escape(describe(r)), f"{r['test_metric']:.4g}",
                      f"{r['achieved_sparsity']:.3f}",
                      f"{r['gz_bytes']:,}", "" if r["int8_bytes"] is None
                      else f"{r['int8_bytes']:,}")
    console.print(table)


def sweep_command(args: argparse.Namespace) -> int:
    """Run ``prunekit sweep``; return the exit code (2: usage error, 1: failed runs).

    Example:
        >>> parser = argparse.ArgumentParser(prog="prunekit")
        >>> _ = add_commands(parser.add_subparsers())
        >>> sweep_command(parser.parse_args(["sweep", "--sparsity", "1.5"]))  # doctest: +SKIP
        2
    """
    from rich.console import Console

    import keras

    from prunekit.cli import one_line, print_error, set_interrupt_note, start_distribution
    from prunekit.lab.devices import check_distribution
    from prunekit.sweep.execute import plan_sweep, run_sweep
    from prunekit.sweep.grid import SweepError

    console = Console(quiet=args.quiet)
    out = args.resume or args.out
    try:
        _check_run_options(args)
        spec, out = _spec(args)
        _check_run_options(args)  # again: the TOML file may have given --workers or --ray
        try:
            check_distribution(args.distribution, keras.backend.backend())
        except ValueError as error:
            raise SweepError(str(error)) from None
        if args.dry_run:
            _, runs = plan_sweep(spec)
            _print_runs(runs, Console())
            print(f"{len(runs)} runs")
            return 0
        out = out or os.path.join("sweeps", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
        set_interrupt_note(f"finished runs are kept; resume with `prunekit sweep --resume {out}`")
        start_distribution("sweep", args.distribution)
        outcome = run_sweep(spec, out, workers=args.workers, ray=args.ray,
                            max_runs=args.max_runs, pareto_size=args.pareto_size,
                            verbose=not args.quiet, console=console,
                            distribution=args.distribution)
        set_interrupt_note("")  # Finished: an interrupt now has nothing to resume.
    except SweepError as error:
        set_interrupt_note("")
        print_error("sweep", error)
        return 2

    if not args.quiet:
        _print_front(outcome, console)
    # Status lines are soft-wrapped: never split at the console's width (users copy paths).
    console.print(f"{outcome.ran} runs now, {outcome.skipped} already done, "
                  f"{len(outcome.failed)} failed, {outcome.pending} missing", soft_wrap=True)
    for path in outcome.files.values():
        console.print(f"  {path}", soft_wrap=True, highlight=False, markup=False)
    for params, error in outcome.failed:
        print(f"failed: {params.key()}: {one_line(error)}", file=sys.stderr)
    if outcome.pending:
        console.print(f"resume with `prunekit sweep --resume {outcome.folder}`", soft_wrap=True,
                      highlight=False, markup=False)
    return 1 if outcome.failed else 0

