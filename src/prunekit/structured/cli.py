"""``prunekit shrink`` and ``prunekit bench``: thin command-line wrappers over prunekit.structured.

Keras is imported inside the functions: the top-level CLI sets ``KERAS_BACKEND`` from
``--backend`` before anything imports Keras. Errors print one line
(``prunekit <command>: error: ...``) and exit with status 2; the model is written atomically
(``prunekit.export.io``), never over an existing file without ``--force``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from prunekit.cli import add_backend_argument, print_error

_IMPORTANCES = ("l1", "l2", "bn_scale")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``shrink`` and ``bench`` sub-commands.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_commands(parser.add_subparsers())
        >>> parser.parse_args(["shrink", "m.keras", "--sparsity", "0.5", "-o", "s.keras"]).sparsity
        0.5
    """
    shrink = subparsers.add_parser(
        "shrink",
        help="Remove whole channels, units and heads: write a smaller .keras model.",
        description="Structured pruning of a .keras model: remove the given fraction of every "
        "dependency group's channels (lowest importance first) and write the smaller model.",
    )
    shrink.add_argument("model", help="input model (.keras)")
    shrink.add_argument("-o", "--output", required=True, help="output model (.keras)")
    shrink.add_argument("--sparsity", type=float, default=None,
                        help="fraction removed, in [0, 1) (default: remove the zeroed units "
                        "of a model pruned with prune_structured)")
    shrink.add_argument("--importance", choices=_IMPORTANCES, default="l2")
    shrink.add_argument("--scope", choices=("uniform", "global"), default="uniform")
    shrink.add_argument("--force", action="store_true", help="overwrite an existing output")
    add_backend_argument(shrink)
    shrink.set_defaults(func=run_shrink)

    bench = subparsers.add_parser(
        "bench",
        help="Inference latency at batch 1 and 32 of one model, or two side by side.",
        description="Time inference (the backend's compiled forward pass), models alternated.",
    )
    bench.add_argument("model", help="model (.keras)")
    bench.add_argument("other", nargs="?", default=None, help="a second model to compare")
    bench.add_argument("--repeats", type=int, default=20, help="timed calls per figure")
    add_backend_argument(bench)
    bench.set_defaults(func=run_bench)


def _fail(command: str, err: BaseException) -> int:
    print_error(command, err)
    return 2


def _load(path: str):
    import keras

    if not Path(path).is_file():
        raise FileNotFoundError(f"No such model file: {path}")
    if not path.endswith(".keras"):
        raise ValueError(f"Expected a .keras model file. Received: model={path!r}")
    return keras.saving.load_model(path, compile=False)


def _keras_bytes(model) -> bytes:
    """The bytes of ``model.save(<name>.keras)`` (Keras writes only to a path ending .keras)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        return Path(path).read_bytes()


def run_shrink(args: argparse.Namespace) -> int:
    """Run ``prunekit shrink``; returns the exit code (2 on error)."""
    from prunekit.export.io import check_output_path, write_atomic
    from prunekit.structured import shrink
    from prunekit.structured.pruning import validate_ratio

    try:
        if args.sparsity is not None:
            validate_ratio(args.sparsity)
        if not args.output.endswith(".keras"):
            raise ValueError(f"The output must be a .keras file. Received: output={args.output!r}")
        check_output_path(args.output, args.force)
        model = _load(args.model)
        small, report = shrink(model, args.sparsity, args.importance, args.scope)
        write_atomic(args.output, _keras_bytes(small), overwrite=args.force)
    except (ValueError, OSError) as err:
        return _fail("shrink", err)
    print(report)
    print(f"wrote {args.output}")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    """Run ``prunekit bench``; returns the exit code (2 on error)."""
    from prunekit.structured import measure_latency

    try:
        models = [_load(args.model)] + ([_load(args.other)] if args.other else [])
        if len(models) == 2 and models[0].inputs[0].shape != models[1].inputs[0].shape:
            raise ValueError("The two models take different inputs. Received: "
                             f"{models[0].inputs[0].shape} and {models[1].inputs[0].shape}")
        times = measure_latency(models, (1, 32), repeats=args.repeats)
    except (ValueError, OSError) as err:
        return _fail("bench", err)
    names = [args.model] + ([args.other] if args.other else [])
    print(f"{'batch':>5}  " + "  ".join(f"{Path(n).name[:24]:>24}" for n in names)
          + ("  ratio" if args.other else ""))
    for batch in (1, 32):
        row = "  ".join(f"{1000 * t[batch]:>21.3f} ms" for t in times)
        ratio = f"  {times[0][batch] / times[1][batch]:.2f}x" if args.other else ""
        print(f"{batch:>5}  {row}{ratio}")
    return 0
