"""Entry point of the ``prunekit`` command.

It lives outside the ``prunekit`` package on purpose. ``prunekit/__init__.py`` (and the
``__init__`` of its sub-packages) import Keras, which takes seconds and fixes the backend for
the whole process. So while the parser is built, prunekit's packages are imported *without*
running their ``__init__`` (:class:`_DeferredInits`); the command modules then import only
what parsing needs (the lazy-import rule in :mod:`prunekit.cli`). Once the arguments are valid
and the backend is chosen, the deferred ``__init__`` modules run, parents first, and the
package is whole again before the command runs. ``--help``, ``--version`` and usage errors never
import Keras.

An interrupted command (Ctrl-C, SIGTERM) leaves through ``os._exit`` after its message: at
interpreter shutdown the backends' native threads can crash a process interrupted mid-step, and
everything a command keeps has been written (atomically) by then.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from typing import Any


class _DeferredInits(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import prunekit's packages without running their ``__init__`` until :meth:`finish`."""

    def __init__(self) -> None:
        self._pending: list[tuple[Any, str]] = []

    def find_spec(self, name: str, path: Sequence[str] | None, target: Any = None) -> Any:
        if name != "prunekit" and not name.startswith("prunekit."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.submodule_search_locations is None:
            return None  # a plain module: imported as usual
        self._pending.append((spec.loader, name))
        spec.loader = self
        return spec

    def create_module(self, spec: Any) -> None:
        return None  # the default module object

    def exec_module(self, module: Any) -> None:
        """Run nothing now: :meth:`finish` runs the package's ``__init__``."""

    def finish(self) -> None:
        """Stop deferring and run the deferred ``__init__`` modules, parents first."""
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for loader, name in self._pending:
            module = sys.modules[name]
            module.__loader__ = module.__spec__.loader = loader
            loader.exec_module(module)
        self._pending.clear()

    def abandon(self) -> None:
        """Stop deferring and forget the packages not run (a later import starts afresh).

        After :meth:`finish` there is nothing left to forget.
        """
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for _, name in self._pending:
            for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[module]
        self._pending.clear()


def run(argv: list[str] | None = None) -> int:
    """Run ``prunekit ARGV`` and return the exit code (argparse's exits raise ``SystemExit``).

    Example:
        >>> run(["demo", "--epochs", "0"])
        2
    """
    deferred = _DeferredInits()
    if "prunekit" not in sys.modules:  # else: already imported whole (a Python session)
        sys.meta_path.insert(0, deferred)
    try:
        from prunekit.cli import main as cli_main

        return cli_main(argv, before_run=deferred.finish)
    finally:
        deferred.abandon()  # --help, --version, usage errors: Keras stays unimported


def main() -> int:
    """The ``prunekit`` command: :func:`run` on ``sys.argv``; an interrupt ends the process.

    Example:
        >>> main()  # doctest: +SKIP
    """
    code = run()
    if code in (130, 143):  # interrupted: leave without the interpreter's shutdown
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
