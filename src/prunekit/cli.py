"""Command line: ``prunekit <command> ...``.

Thin argument parsing over the library. Each command lives in its own module, which exposes
``add_commands(subparsers)``; every sub-parser it adds sets ``func`` (called with the parsed
arguments, returning an exit code).

The Keras backend is chosen with ``--backend`` (or ``KERAS_BACKEND``) *before* Keras is imported,
so command modules import Keras lazily inside their functions.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Modules that contribute sub-commands, in the order they appear in `prunekit --help`.
_COMMAND_MODULES = (
    "prunekit.study.cli",
    "prunekit.sweep.cli",
    "prunekit.export.cli",
    "prunekit.structured.cli",
    "prunekit.demo",
)

BACKENDS = ("jax", "tensorflow", "torch")


def _select_backend(argv: list[str]) -> None:
    """Set KERAS_BACKEND from ``--backend`` before anything imports Keras."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend", choices=BACKENDS, default=None)
    known, _ = pre.parse_known_args(argv)
    if known.backend:
        os.environ["KERAS_BACKEND"] = known.backend


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every command registered.

    Example:
        >>> parser = build_parser()
        >>> parser.prog
        'prunekit'
    """
    parser = argparse.ArgumentParser(
        prog="prunekit",
        description="Prune and compress Keras 3 models on JAX, TensorFlow or PyTorch.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """Add the shared ``--backend`` option to a command's parser."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="Keras backend (default: $KERAS_BACKEND, else Keras's default).",
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``prunekit`` command.

    Example:
        >>> main(["--help"])  # doctest: +SKIP
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    _select_backend(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
