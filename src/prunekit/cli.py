"""Command line: ``prunekit <command> ...``.

Thin argument parsing over the library. Each command lives in its own module, which exposes
``add_commands(subparsers)``; every sub-parser it adds sets ``func`` (called with the parsed
arguments, returning an exit code). A new command adds its module to :data:`COMMAND_MODULES`.

**The lazy-import rule.** ``prunekit --help``, ``--version`` and usage errors must answer at
once, so building the parser must not import Keras (seconds) or a backend. A command module
therefore imports at its top only the standard library and this module; ``add_commands`` may
import light prunekit modules (choices, NumPy-only helpers); everything else -- Keras, prunekit's
model code, rich, matplotlib -- is imported inside the command's run function.
``tests/test_cli_startup.py`` checks that the parser builds without importing Keras.

The Keras backend is fixed when Keras is first imported. The ``prunekit`` entry point
(``prunekit_cli.py``, outside the package, so that ``prunekit/__init__``, which imports Keras,
is run only once a command runs) calls :func:`main`, which parses the arguments, then chooses the
backend (``--backend``, ``KERAS_BACKEND``, ``keras.json``, else the first installed of jax, torch,
tensorflow: see :mod:`prunekit._select_backend`) before the command's function runs.

Ctrl-C and SIGTERM end a command with one line (``prunekit <command>: interrupted``) and exit
code 130 (143 for SIGTERM), without a traceback; a command that has work to keep (``sweep``)
ends its workers and says how to resume (:func:`set_interrupt_note`).
"""

from __future__ import annotations

import _thread
import argparse
import importlib
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from prunekit._select_backend import BACKENDS, BackendError, choose_backend, installed_backends
from prunekit._version import __version__

# Modules that contribute sub-commands, in the order they appear in `prunekit --help`.
COMMAND_MODULES = (
    "prunekit.study.cli",
    "prunekit.sweep.cli",
    "prunekit.export.cli",
    "prunekit.auto.cli",
    "prunekit.oneshot.cli",
    "prunekit.structured.cli",
    "prunekit.demo",
)


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


def _version_text() -> str:
    installed = ", ".join(installed_backends()) or "none"
    return f"prunekit {__version__} (Keras backends installed: {installed})"


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every command registered (Keras is not imported).

    Example:
        >>> parser = build_parser()
        >>> parser.prog
        'prunekit'
    """
    parser = argparse.ArgumentParser(
        prog="prunekit",
        description="Prune and compress Keras 3 models on JAX, TensorFlow or PyTorch.",
    )
    parser.add_argument("--version", action="version", version=_version_text())
    # Accepted before the command too (`prunekit --backend jax demo`); SUPPRESS keeps the
    # command's own --backend from being reset to None when only this one is given.
    parser.add_argument("--backend", choices=BACKENDS, default=argparse.SUPPRESS,
                        help="Keras backend (also accepted after the command).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """Add the shared ``--backend`` option to a command's parser.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_backend_argument(parser)
        >>> parser.parse_args(["--backend", "torch"]).backend
        'torch'
    """
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=argparse.SUPPRESS,
        help="Keras backend (default: $KERAS_BACKEND, else keras.json's, else the first "
             "installed of jax, torch, tensorflow).",
    )


def add_distribution_argument(parser: Any) -> None:
    """Add the shared ``--distribution`` option (``study``, ``sweep``) to a parser or group.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_distribution_argument(parser)
        >>> parser.parse_args(["--distribution", "data-parallel"]).distribution
        'data-parallel'
    """
    from prunekit.lab.devices import DISTRIBUTIONS

    parser.add_argument(
        "--distribution", choices=DISTRIBUTIONS, default=None,
        help="train on every local device: data-parallel splits each batch over them "
             "(keras.distribution; JAX only).")


def start_distribution(command: str, name: str | None) -> None:
    """Set ``--distribution`` for the models this process builds; say on stderr over how many
    devices.

    Args:
        command: The sub-command, for the status line (``prunekit <command>: ...``).
        name: ``None`` (nothing is done) or one of ``prunekit.lab.devices.DISTRIBUTIONS``.

    Raises:
        ValueError: On a backend other than JAX (nothing is changed).

    Example:
        >>> start_distribution("study", None)
    """
    if name is None:
        return
    from prunekit.lab.devices import use_distribution

    devices = use_distribution(name)
    where = f"{devices} devices" if devices > 1 else "1 device (the only one: nothing is split)"
    print(f"prunekit {command}: --distribution {name} on {where}", file=sys.stderr, flush=True)


def _use_backend(args: argparse.Namespace) -> None:
    """Set ``KERAS_BACKEND`` for the command before Keras is imported; say so if picked here.

    Where Keras is already imported (a Python session calling :func:`main`), it is left alone.
    """
    if "keras" in sys.modules:
        return
    backend, note = choose_backend(args.backend)
    if backend:
        os.environ["KERAS_BACKEND"] = backend
    if note:
        print(f"prunekit: {note}", file=sys.stderr, flush=True)


#: Seconds an interrupted command has to end on its own before the process is ended.
GRACE_SECONDS = 10.0
#: What the running command adds to its "interrupted" line (see :func:`set_interrupt_note`).
_interrupt_note: list[str] = [""]


def set_interrupt_note(note: str) -> None:
    """Say what an interrupt of the running command keeps, e.g. how to resume.

    The note ends the command's one line, ``prunekit <command>: interrupted; <note>``, however
    the interrupt ends it (its own ``except KeyboardInterrupt``, or the process being ended).

    Example:
        >>> set_interrupt_note("finished runs are kept"); interrupted_line("sweep")
        'prunekit sweep: interrupted; finished runs are kept'
        >>> set_interrupt_note("")
    """
    _interrupt_note[0] = note


def interrupted_line(command: str) -> str:
    """The one line printed when ``command`` is interrupted.

    Example:
        >>> interrupted_line("study")
        'prunekit study: interrupted'
    """
    note = _interrupt_note[0]
    return f"prunekit {command}: interrupted" + (f"; {note}" if note else "")


class _Interrupts:
    """Ctrl-C and SIGTERM: raise ``KeyboardInterrupt`` once; end the process if it is lost.

    Python drops a ``KeyboardInterrupt`` raised while a garbage-collector callback runs
    ("Exception ignored in ..."), and backends may run long native steps; so a second signal,
    or :data:`GRACE_SECONDS` without the command ending, ends the process: child processes are
    terminated, the message printed, and ``os._exit`` called (what a command keeps is written
    atomically as it finishes, so nothing kept is half written).
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.timer: threading.Timer | None = None
        self.saved: dict[int, object] = {}
        self.redeliveries = 0
        self.previous_hook = sys.unraisablehook

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.saved[signum] = signal.signal(signum, self._handle)
            sys.unraisablehook = self._unraisable
        return self

    def __exit__(self, *exc: object) -> None:
        if self.timer is not None:
            self.timer.cancel()
        for signum, handler in self.saved.items():
            signal.signal(signum, handler)
        if self.saved:
            sys.unraisablehook = self.previous_hook

    def _unraisable(self, info: Any) -> None:
        """A lost interrupt (raised in a callback Python ignores): deliver it again."""
        interrupt = info.exc_value
        if not isinstance(interrupt, KeyboardInterrupt) or self.redeliveries >= 100:
            self.previous_hook(info)
            return
        self.redeliveries += 1
        signum = interrupt.args[0] if interrupt.args else signal.SIGINT
        # From another thread: the main thread runs _handle again once out of the callback.
        threading.Timer(0.05, _thread.interrupt_main, args=(signum,)).start()

    def _handle(self, signum: int, frame: object) -> None:
        if self.timer is not None and not self.redeliveries:  # a second signal
            self._end(signum)
        if self.timer is not None:  # redelivered
            raise KeyboardInterrupt(signum)
        self.timer = threading.Timer(GRACE_SECONDS, self._end, args=(signum,))
        self.timer.daemon = True
        self.timer.start()
        raise KeyboardInterrupt(signum)

    def _end(self, signum: int) -> None:
        import multiprocessing

        for child in multiprocessing.active_children():
            child.terminate()
        print(interrupted_line(self.command), file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(interrupt_code(KeyboardInterrupt(signum)))


def interrupt_code(interrupt: KeyboardInterrupt) -> int:
    """The exit code of an interrupted command: 143 for SIGTERM, else 130 (Ctrl-C).

    Example:
        >>> interrupt_code(KeyboardInterrupt())
        130
    """
    return 143 if interrupt.args == (signal.SIGTERM,) else 130


def main(argv: list[str] | None = None, before_run: Callable[[], None] | None = None) -> int:
    """Parse ``argv``, choose the backend, run the command; return its exit code.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).
        before_run: Called after the arguments are valid and the backend is chosen, before
            the command runs (the entry point finishes importing prunekit there).

    Returns:
        0 on success, 2 for a usage error (nothing was written), 130/143 when interrupted by
        Ctrl-C/SIGTERM, else the command's code.

    Example:
        >>> main(["demo", "--epochs", "0"])
        2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.backend = getattr(args, "backend", None)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        print_error(None, "a command is required: one of the commands listed above")
        return 2
    try:
        _use_backend(args)
    except BackendError as error:
        print_error(args.command, error)
        return 2
    with _Interrupts(args.command):
        try:
            if before_run is not None:
                before_run()
            return int(args.func(args) or 0)
        except KeyboardInterrupt as interrupt:
            print(interrupted_line(args.command), file=sys.stderr, flush=True)
            return interrupt_code(interrupt)
        finally:
            set_interrupt_note("")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
