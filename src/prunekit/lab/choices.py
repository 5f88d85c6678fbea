"""The choices the study and the sweep offer, and the parser of a block size.

Each command validates against these and raises its own error type (naming its flag or config
key); the values themselves live once, here.
"""

from __future__ import annotations

from typing import Any

#: Bundled datasets (see :func:`prunekit.lab.data.load_dataset`).
DATASETS = ("friedman", "digits")
#: What a user's data file's target is.
TASKS = ("regression", "classification")
#: Pruning schedules: ConstantSparsity, PolynomialDecay.
SCHEDULES = ("constant", "polynomial")
#: How a block's magnitudes are pooled.
POOLINGS = ("AVG", "MAX")


def parse_block_size(value: Any, where: str = "--block-size") -> tuple[int, int]:
    """``"2x3"`` (or ``"2,3"``, ``"2*3"``), ``[2, 3]`` or ``2`` (square) as ``(2, 3)``.

    Args:
        value: The block size as given on the command line or in a config file.
        where: The flag or config key that gave it, for the message.

    Returns:
        ``(height, width)``, both positive.

    Raises:
        ValueError: If ``value`` is not two positive integers.

    Example:
        >>> parse_block_size("2x3")
        (2, 3)
        >>> parse_block_size([4, 1])
        (4, 1)
    """
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").replace("*", "x").split("x")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value, value]
    try:
        height, width = (int(p) for p in parts)
        valid = height > 0 and width > 0 and all(float(p) == int(p) for p in parts)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"{where} must be HEIGHTxWIDTH with positive integers, e.g. 2x3. "
                         f"Received: {where}={value!r}")
    return height, width
