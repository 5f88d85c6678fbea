"""Entry point of the ``prunekit`` command.

It lives outside the ``prunekit`` package on purpose: importing ``prunekit`` imports Keras, and
Keras fixes its backend when first imported, so ``--backend`` must be read before that.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    """Set KERAS_BACKEND from ``--backend``, then run ``prunekit.cli.main``.

    Example:
        >>> main()  # doctest: +SKIP
    """
    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        if arg == "--backend" and i + 1 < len(argv):
            os.environ["KERAS_BACKEND"] = argv[i + 1]
        elif arg.startswith("--backend="):
            os.environ["KERAS_BACKEND"] = arg.split("=", 1)[1]
    from prunekit.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
