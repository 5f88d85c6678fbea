"""What ``prunekit prune`` works on: the user's model file and data file, checked before any work.

Data files hold inputs and one target:

* **CSV**: a header row of column names, then one row per sample; every value a finite number.
  ``target`` names the target column (default: the last one); the other columns are the
  model's inputs, in file order.
* **NPZ** (``numpy.savez``): an input array (``x``, or ``x_key``; any rank, first axis the
  samples) and a target array (``y``, or ``y_key``).

Inputs are passed to the model as they are (the model was trained on them, so nothing is
rescaled). Without a separate validation file, 20 % of the rows (seeded) are held out: the
sensitivity scan and the budget check use them, fine-tuning never sees them. Every problem is
a one-line :class:`AutoPruneError` naming the file, the column or array, and what was expected.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os

import numpy as np

from prunekit.lab.data import is_number

#: Fraction of the rows held out for the scan and the budget check when no validation file is given.
VAL_FRACTION = 0.2
#: Fewest rows each of the training and validation parts may have.
MIN_ROWS = 8


class AutoPruneError(ValueError):
    """A model, data file or argument ``prunekit prune`` cannot use; the message says why."""


@dataclasses.dataclass(frozen=True)
class PruneData:
    """Training rows (fine-tuning) and held-out validation rows (scan and budget check).

    Attributes:
        x_train: Inputs for fine-tuning, float32, shape ``(n_train, *input_shape)``.
        y_train: Targets for fine-tuning (float32 values or int class labels).
        x_val: Held-out inputs, shape ``(n_val, *input_shape)``.
        y_val: Held-out targets.
        description: One line saying where the rows come from.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    description: str = "arrays"


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    if values.size == 0:
        raise AutoPruneError(f"{what} is empty; expected at least one row of numbers.")
    if values.dtype.kind not in "biuf":
        raise AutoPruneError(f"{what} holds non-numeric values (dtype {values.dtype}); expected "
                             "finite numbers.")
    values = values.astype("float64")
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        raise AutoPruneError(f"{what} holds a NaN or infinite value (first at index "
                             f"{tuple(int(i) for i in bad[0])}); expected finite numbers.")
    return values


def _number(text: str, path: str, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
        what = "an empty value" if not text.strip() else f"{text.strip()!r} (not a number)"
    else:
        what = repr(text.strip())
    if not math.isfinite(value):
        raise AutoPruneError(f"{path}, line {line}, column {column!r}: {what}; expected a "
                             "finite number in every cell.")
    return value


def read_csv(path: str, target: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and target of a CSV file with a header row (see the module docstring).

    Args:
        path: The file.
        target: The target column's name (default: the last column).

    Returns:
        ``(x, y)``: float64 arrays of shapes ``(rows, columns - 1)`` and ``(rows,)``.

    Raises:
        AutoPruneError: An empty file, no header, a missing target column, a ragged row or a
            cell that is not a finite number.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/d.csv"
        >>> _ = open(path, "w").write("a,price,b\\n1,10,2\\n3,30,4\\n")
        >>> x, y = read_csv(path, target="price")
        >>> x.tolist(), y.tolist()
        ([[1.0, 2.0], [3.0, 4.0]], [10.0, 30.0])
    """
    with open(path, newline="", encoding="utf-8-sig") as file:
        rows = [row for row in csv.reader(file) if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise AutoPruneError(f"{path} is empty{' but for its header' if rows else ''}: expected "
                             "a header row of column names, then one row per sample.")
    header = [name.strip() for name in rows[0]]
    if all(is_number(name) for name in header):
        raise AutoPruneError(f"{path}: the first row looks like data; expected a header row "
                             f"of column names. Received: {', '.join(header[:4])}")
    target = header[-1] if target is None else target
    if target not in header:
        raise AutoPruneError(f"{path} has no target column {target!r} (--target); expected "
                             f"one of its columns. Received columns: {', '.join(header)}")
    if len(header) < 2:
        raise AutoPruneError(f"{path} has only the target column; expected input columns too.")
    t = header.index(target)
    values = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise AutoPruneError(f"{path}, line {line}: {len(row)} values; expected "
                                 f"{len(header)}, one per column of the header.")
        values.append([_number(v, path, line, header[i]) for i, v in enumerate(row)])
    table = np.asarray(values, dtype="float64")
    return np.delete(table, t, axis=1), table[:, t]



def read_npz(path: str, x_key: str | None = None,
             y_key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Input and target arrays of an ``.npz`` file, checked to be finite numbers.

    Args:
        path: The file.
        x_key: The input array's name (default ``x``).
        y_key: The target array's name (default ``y``).

    Returns:
        ``(x, y)``: float64 inputs of any rank and the targets, the same number of rows.

    Raises:
        AutoPruneError: An unreadable file, a missing array, different row counts, or values
            that are not finite numbers.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/d.npz"
        >>> np.savez(path, images=np.zeros((4, 2, 2)), labels=np.arange(4))
        >>> [a.shape for a in read_npz(path, "images", "labels")]
        [(4, 2, 2), (4,)]
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError) as error:
        raise AutoPruneError(f"{path}: not a readable .npz archive ({error}).") from None
    found = {}
    for key, default, flag in ((x_key, "x", "--x-key"), (y_key, "y", "--y-key")):
        name = key or default
        if name not in arrays:
            raise AutoPruneError(f"{path} has no array {name!r} ({flag}); expected one of its "
                                 f"arrays. Received arrays: {', '.join(arrays) or 'none'}")
        found[default] = _finite(arrays[name], f"{path}: array {name!r}")
    x, y = found["x"], found["y"]
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if len(x) != len(y):
        raise AutoPruneError(f"{path}: the inputs have {len(x)} rows and the targets {len(y)}; "
                             "expected one target per input row.")
    return x, y


def read_data(path: str, target: str | None = None, x_key: str | None = None,
              y_key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a ``.csv`` or ``.npz`` file (see :func:`read_csv`, :func:`read_npz`).

    Raises:
        AutoPruneError: A missing or empty file, an unknown extension, or what the readers
            refuse.

    Example:
        >>> read_data("nothing.csv")
        Traceback (most recent call last):
        ...
        prunekit.auto.data.AutoPruneError: no such data file; expected a .csv or .npz file. ...
    """
    if not os.path.isfile(path):
        raise AutoPruneError(f"no such data file; expected a .csv or .npz file. Received: {path!r}")
    if os.path.getsize(path) == 0:
        raise AutoPruneError(f"{path} is empty (0 bytes); expected a .csv or .npz file of data.")
    extension = os.path.splitext(path)[1].lower()
    if extension == ".csv":
        if x_key or y_key:
            raise AutoPruneError(f"--x-key/--y-key name arrays of a .npz file; {path} is a CSV "
                                 "(use --target COLUMN).")
        return read_csv(path, target)
    if extension == ".npz":
        return read_npz(path, x_key, y_key or target)
    raise AutoPruneError(f"{path}: expected a .csv or .npz file. Received extension "
                         f"{extension or '(none)'!r}")


def split_data(x: np.ndarray, y: np.ndarray, val: tuple[np.ndarray, np.ndarray] | None = None,
               seed: int = 0, description: str = "arrays") -> PruneData:
    """Training and held-out rows: ``val`` if given, else a seeded 20 % of the rows.

    Args:
        x: Inputs, first axis the samples.
        y: Targets, one per row of ``x``.
        val: ``(x_val, y_val)`` from a separate file, or ``None``.
        seed: Seed of the split.
        description: Where the rows come from (for the report).

    Returns:
        The :class:`PruneData` (inputs as float32).

    Raises:
        AutoPruneError: Too few rows for both parts, or values that are not finite numbers.

    Example:
        >>> data = split_data(np.zeros((50, 3)), np.arange(50.0))
        >>> data.x_train.shape, data.x_val.shape
        ((40, 3), (10, 3))
    """
    x, y = _finite(np.asarray(x), "the inputs"), _finite(np.asarray(y), "the targets")
    if len(x) != len(y):
        raise AutoPruneError(f"the inputs have {len(x)} rows and the targets {len(y)}; expected "
                             "one target per input row.")
    if val is None:
        order = np.random.default_rng(seed).permutation(len(x))
        n_val = int(round(len(x) * VAL_FRACTION))
        val = (x[order[:n_val]], y[order[:n_val]])
        x, y = x[order[n_val:]], y[order[n_val:]]
        description += f"; {n_val} rows ({VAL_FRACTION:.0%}, seed {seed}) held out"
    x_val, y_val = (_finite(np.asarray(a), f"the validation {what}")
                    for a, what in zip(val, ("inputs", "targets")))
    for rows, part in ((len(x), "training"), (len(x_val), "validation")):
        if rows < MIN_ROWS:
            raise AutoPruneError(f"the {part} part has {rows} rows; expected at least "
                                 f"{MIN_ROWS} (give more data, or a --val file).")
    return PruneData(x.astype("float32"), y, x_val.astype("float32"), y_val, description)
