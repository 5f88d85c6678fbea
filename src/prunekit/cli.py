"""Command line: ``prunekit <command> ...``.

Thin argument parsing over the library. Each command lives in its own module, which exposes
``add_commands(subparsers)``; every sub-parser it adds sets ``func`` (called with the parsed
arguments, returning an exit code).

The Keras backend is fixed when Keras is first imported, and importing ``prunekit`` imports
Keras: so ``--backend`` (or ``KERAS_BACKEND``) is read by the ``prunekit`` entry point
(``prunekit_cli.py``, outside the package) before anything here runs. The option is declared
on each command (:func:`add_backend_argument`) so that it parses and shows in ``--help``.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

# Modules that contribute sub-commands, in the order they appear in `prunekit --help`.
_COMMAND_MODULES = (
    "prunekit.study.cli",
    "prunekit.sweep.cli",
    "prunekit.export.cli",
    "prunekit.auto.cli",
    "prunekit.oneshot.cli",
    "prunekit.structured.cli",
    "prunekit.demo",
)

BACKENDS = ("jax", "tensorflow", "torch")


def one_line(message: object) -> str:
    """``message`` as one line: line breaks inside it become single spaces.

    Example:
        >>> one_line("no sweep.json\\n  there")
        'no sweep.json there'
    """
    return re.sub(r"\s*\n\s*", " ", str(message)).strip()


def print_error(command: str | None, message: object) -> None:
    """Print ``prunekit <command>: error: <message>`` to stderr as one whole line.

    The format is argparse's, so usage errors read alike whichever part found them. A plain
    ``print`` on purpose: a rich console would wrap the line at the terminal's width, and users
    copy these lines and scripts grep them.

    Args:
        command: The sub-command (``study``, ``sweep``...), or ``None`` for ``prunekit`` itself.
        message: The error (an exception or text).

    Example:
        >>> import contextlib, io
        >>> buffer = io.StringIO()
        >>> with contextlib.redirect_stderr(buffer):
        ...     print_error("sweep", ValueError("--workers must be >= 0"))
        >>> buffer.getvalue()
        'prunekit sweep: error: --workers must be >= 0\\n'
    """
    prog = f"prunekit {command}" if command else "prunekit"
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr, flush=True)


def _check_backend(argv: list[str]) -> None:
    """Refuse an unknown ``--backend`` anywhere in ``argv`` with argparse's one-line error.

    The entry point has already put the value into KERAS_BACKEND; this only validates it, so a
    misspelt backend is reported as such rather than as an unknown command.
    """
    pre = argparse.ArgumentParser(prog="prunekit", add_help=False)
    pre.add_argument("--backend", choices=BACKENDS, default=None)
    pre.parse_known_args(argv)


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
    _check_backend(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        print_error(None, "a command is required: one of the commands listed above")
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
