"""The sweep's data: a bundled dataset, or the user's own CSV or NPZ file.

A user file holds feature columns and one target column:

* **CSV**: a header row of column names, then one row per sample, every value numeric (a
  classification target may hold text labels). ``--target`` names the target column (default:
  the last one).
* **NPZ** (``numpy.savez``): either a 2-D array ``x`` (or ``X``) plus a 1-D target array
  (``--target``, default ``y``), or one 1-D array per column, the target among them.

The rows are split as the article's data (``train_test_split(test_size=0.33,
random_state=42)``) and the features standardised with the training rows' mean and standard
deviation. Every problem is reported before training, naming the file, the column or line, and
what was expected.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Any

import numpy as np

from prunekit.study.data import Dataset, load_dataset
from prunekit.sweep.grid import SweepError

#: Fewest rows a user file may have (train, validation and test splits all need some).
MIN_ROWS = 20


class DataError(SweepError):
    """The user's data file cannot be used; the message names the file and what is wrong."""


def _float(text: str, path: str, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        what = "an empty value" if not text.strip() else repr(text)
        raise DataError(f"{path}, line {line}, column {column!r}: {what} is not a finite "
                        "number (expected numeric feature values).")
    return value


def _read_csv(path: str, target: str | None, task: str) -> tuple[np.ndarray, np.ndarray, list]:
    with open(path, newline="", encoding="utf-8-sig") as file:
        rows = [row for row in csv.reader(file) if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"{path} is empty: expected a header row of column names, then data.")
    header = [name.strip() for name in rows[0]]
    if all(_is_number(name) for name in header):
        raise DataError(f"{path}: the first row ({', '.join(header[:4])}...) looks like data; "
                        "expected a header row of column names.")
    if len(header) < 2:
        raise DataError(f"{path} has {len(header)} column; expected feature column(s) and a "
                        "target column.")
    target = header[-1] if target is None else target
    if target not in header:
        raise DataError(f"{path} has no column {target!r} (--target). Columns: "
                        f"{', '.join(header)}.")
    t = header.index(target)
    features, labels = [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: {len(row)} values, expected {len(header)} "
                            f"(one per column of the header).")
        features.append([_float(v, path, line, header[i]) for i, v in enumerate(row) if i != t])
        label = row[t].strip()
        labels.append(label if task == "classification" else _float(label, path, line, target))
    names = [n for i, n in enumerate(header) if i != t]
    return np.asarray(features, dtype="float64").reshape(len(features), -1), np.asarray(labels), names


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_npz(path: str, target: str | None) -> tuple[np.ndarray, np.ndarray, list]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError) as error:
        raise DataError(f"{path}: not a readable .npz archive ({error}).") from None
    target = target or "y"
    if target not in arrays:
        raise DataError(f"{path} has no array {target!r} (--target). Arrays: "
                        f"{', '.join(arrays) or 'none'}.")
    y = arrays.pop(target)
    x_name = next((n for n in ("x", "X") if n in arrays), None)
    if x_name is not None:
        x, names = arrays[x_name], None
        if x.ndim != 2:
            raise DataError(f"{path}: array {x_name!r} has shape {x.shape}; expected 2-D "
                            "(rows, features).")
        names = [f"{x_name}[{i}]" for i in range(x.shape[1])]
    else:
        bad = [n for n, a in arrays.items() if a.ndim != 1]
        if bad or not arrays:
            raise DataError(f"{path}: expected a 2-D array 'x' or 1-D feature columns; "
                            f"found {', '.join(f'{n}{arrays[n].shape}' for n in arrays)}.")
        names = list(arrays)
        x = np.stack([arrays[n] for n in names], axis=1) if _same_length(arrays) else None
        if x is None:
            raise DataError(f"{path}: the column arrays have different lengths: "
                            + ", ".join(f"{n}={len(a)}" for n, a in arrays.items()) + ".")
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{path}: target {target!r} has shape {y.shape}; expected ({len(x)},), "
                        "one value per row of the features.")
    for name, values in zip(names, np.asarray(x).T):
        if values.dtype.kind not in "biuf" or not np.all(np.isfinite(values.astype("float64"))):
            raise DataError(f"{path}: feature {name!r} holds non-numeric or non-finite values "
                            f"(dtype {values.dtype}); expected finite numbers.")
    return np.asarray(x, dtype="float64"), y, names


def _same_length(arrays: dict[str, np.ndarray]) -> bool:
    return len({len(a) for a in arrays.values()}) == 1


def _targets(y: np.ndarray, task: str, path: str, target: str) -> tuple[np.ndarray, int]:
    if task == "classification":
        classes, labels = np.unique(y.astype(str) if y.dtype.kind in "OUS" else y,
                                    return_inverse=True)
        if len(classes) < 2:
            raise DataError(f"{path}: target {target!r} has {len(classes)} class; "
                            "classification needs at least 2.")
        return labels.astype("int32"), len(classes)
    if y.dtype.kind not in "biuf" or not np.all(np.isfinite(y.astype("float64"))):
        raise DataError(f"{path}: target {target!r} holds non-numeric or non-finite values "
                        f"(dtype {y.dtype}); expected finite numbers for a regression (or "
                        "--task classification for labels).")
    return y.astype("float32"), 0


def load_user_data(path: str, target: str | None = None, task: str = "regression") -> Dataset:
    """Load, validate, split and standardise the user's CSV or NPZ file.

    Args:
        path: A ``.csv`` or ``.npz`` file (layout in the module docstring).
        target: The target column or array (default: last CSV column, NPZ array ``y``).
        task: ``"regression"`` (float target, MSE) or ``"classification"`` (labels, accuracy).

    Returns:
        A :class:`~prunekit.study.data.Dataset` named after the file.

    Raises:
        DataError: Missing file, unknown extension, missing target, non-numeric values, too few
            rows -- naming the file, the column and what was expected.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/d.csv"
        >>> rows = "\\n".join(f"{i},{i % 3},{2 * i}" for i in range(30))
        >>> _ = open(path, "w").write("a,b,y\\n" + rows + "\\n")
        >>> data = load_user_data(path, target="y")
        >>> data.n_features, len(data.x_train) + len(data.x_test)
        (2, 30)
    """
    from sklearn.model_selection import train_test_split

    if not os.path.isfile(path):
        raise DataError(f"--data: no such file. Received: --data={path!r}")
    extension = os.path.splitext(path)[1].lower()
    if extension == ".csv":
        x, y, _ = _read_csv(path, target, task)
        target = target or "the last column"
    elif extension == ".npz":
        x, y, _ = _read_npz(path, target)
        target = target or "y"
    else:
        raise DataError(f"--data {path}: expected a .csv or .npz file. Received extension "
                        f"{extension or '(none)'!r}.")
    if len(x) < MIN_ROWS:
        raise DataError(f"{path} has {len(x)} rows; expected at least {MIN_ROWS} (the train, "
                        "validation and test splits each need some).")
    y, n_classes = _targets(y, task, path, target)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.33, random_state=42)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    x_train, x_test = ((a - mean) / std for a in (x_train, x_test))
    description = (f"{os.path.basename(path)}: {len(x)} rows, {x.shape[1]} features, target "
                   f"{target!r} ({task}); features standardised with the training rows' "
                   "mean and std")
    return Dataset(os.path.basename(path), task, x_train.astype("float32"), y_train,
                   x_test.astype("float32"), y_test, n_classes, description)


def load_data(spec: Any) -> Dataset:
    """The dataset a :class:`~prunekit.sweep.spec.SweepSpec` names (bundled or user file).

    Example:
        >>> from prunekit.sweep.spec import make_spec
        >>> load_data(make_spec(dataset="digits")).n_classes
        10
    """
    if spec.data:
        return load_user_data(spec.data, spec.target, spec.task)
    return load_dataset(spec.dataset)
