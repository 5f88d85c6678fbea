"""The data the study and the sweep train on, and how predictions are scored.

Bundled datasets come from scikit-learn and need no download: the article's Friedman #1
regression and a digits classifier. A user's own file holds feature columns and one target
column:

* **CSV**: a header row of column names, then one row per sample, every value numeric (a
  classification target may hold text labels). ``target`` names the target column (default:
  the last one).
* **NPZ** (``numpy.savez``): either a 2-D array ``x`` (or ``X``) plus a 1-D target array
  (``target``, default ``y``), or one 1-D array per column, the target among them.

Every split is the article's: ``train_test_split(test_size=0.33, random_state=42)``. A user's
features are standardised with the training rows' mean and standard deviation. Every problem
with a user's file is reported before training, naming the file, the column or line, and what
was expected.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import zipfile

import numpy as np

from prunekit.lab.choices import DATASETS

#: (features, outputs) of each bundled dataset's model: what validation needs before loading.
DATASET_SHAPES = {"friedman": (10, 1), "digits": (64, 10)}
#: Fewest rows a user file may have (train, validation and test splits all need some).
MIN_ROWS = 20


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A train/test split plus what the study needs to know about the task.

    Attributes:
        name: ``"friedman"`` or ``"digits"``.
        task: ``"regression"`` or ``"classification"``.
        x_train: Training inputs, float32, shape ``(n_train, n_features)``.
        y_train: Training targets (float32 values or int class labels).
        x_test: Test inputs.
        y_test: Test targets.
        n_classes: Number of classes (0 for regression).
        description: One line saying where the data comes from.
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    description: str

    @property
    def n_features(self) -> int:
        """Number of input features."""
        return int(self.x_train.shape[1])

    @property
    def metric(self) -> str:
        """Name of the headline test metric: ``"mse"`` (lower is better) or ``"accuracy"``."""
        return "mse" if self.task == "regression" else "accuracy"


def load_dataset(name: str = "friedman") -> Dataset:
    """Build one of the study's datasets, split as in the article.

    ``friedman``: ``make_friedman1(n_samples=10000, n_features=10, random_state=0)``, no noise,
    no scaling (as the article) -> 6700 train / 3300 test rows.
    ``digits``: scikit-learn's bundled 8x8 ``load_digits`` (1797 images, 10 classes), pixels
    scaled to [0, 1] -> 1203 train / 594 test rows.

    Args:
        name: ``"friedman"`` or ``"digits"``.

    Returns:
        The :class:`Dataset`.

    Raises:
        ValueError: If ``name`` is not a known dataset.

    Example:
        >>> data = load_dataset("friedman")
        >>> data.x_test.shape
        (3300, 10)
    """
    from sklearn.model_selection import train_test_split

    if name == "friedman":
        from sklearn.datasets import make_friedman1

        x, y = make_friedman1(n_samples=10000, n_features=10, random_state=0)
        y = y.astype("float32")
        task, n_classes = "regression", 0
        description = "make_friedman1(n_samples=10000, n_features=10, random_state=0)"
    elif name == "digits":
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        x = x / 16.0
        y = y.astype("int32")
        task, n_classes = "classification", 10
        description = "load_digits() (8x8 images, 10 classes), pixels scaled to [0, 1]"
    else:
        raise ValueError(f"Unknown dataset: expected one of {DATASETS}. Received: name={name!r}")
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype("float32"), y, test_size=0.33, random_state=42
    )
    return Dataset(name, task, x_train, y_train, x_test, y_test, n_classes, description)


def score(data: Dataset, predictions: np.ndarray) -> float:
    """Score predictions on the test set the article's way.

    Regression: ``mean_squared_error(y_test, predictions.reshape(n_test,))``.
    Classification: accuracy of the arg-max class.

    Args:
        data: The dataset.
        predictions: Model outputs for ``data.x_test``.

    Returns:
        The metric named by ``data.metric``.

    Example:
        >>> data = load_dataset("friedman")
        >>> round(score(data, data.y_test), 6)
        0.0
    """
    predictions = np.asarray(predictions)
    if data.task == "regression":
        diff = data.y_test.astype("float64") - predictions.reshape(len(data.y_test))
        return float(np.mean(diff**2))
    return float(np.mean(np.argmax(predictions, axis=-1) == data.y_test))


class DataError(ValueError):
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


def _read_csv(path: str, target: str | None, task: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            rows = [row for row in csv.reader(file) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError:
        raise DataError(_not_utf8(path)) from None
    except csv.Error as error:
        raise DataError(f"{path}: not a readable CSV file ({error}).") from None
    if not rows:
        raise DataError(f"{path} is empty: expected a header row of column names, then data.")
    header = [name.strip() for name in rows[0]]
    if all(is_number(name) for name in header):
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
    if len(rows) < 2:
        raise DataError(f"{path} has a header row and no data; expected one row per sample "
                        "after the header.")
    features, labels = [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: {len(row)} values, expected {len(header)} "
                            f"(one per column of the header).")
        features.append([_float(v, path, line, header[i]) for i, v in enumerate(row) if i != t])
        label = row[t].strip()
        labels.append(label if task == "classification" else _float(label, path, line, target))
    names = [n for i, n in enumerate(header) if i != t]
    x = np.asarray(features, dtype="float64").reshape(len(features), -1)
    return x, np.asarray(labels), names


def _not_utf8(path: str) -> str:
    """Where a file stops being UTF-8 (the decoder's own offsets are per chunk read)."""
    with open(path, "rb") as file:
        raw = file.read()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        return (f"{path}, line {line}: not UTF-8 text (byte {raw[error.start]:#04x} at offset "
                f"{error.start}); expected a UTF-8 CSV file.")
    return f"{path}: not UTF-8 text; expected a UTF-8 CSV file."


def is_number(text: str) -> bool:
    """Whether a CSV cell reads as a number (a first row of numbers is data, not a header).

    Example:
        >>> is_number("1e-3"), is_number("price")
        (True, False)
    """
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_npz(path: str, target: str | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        reason = ("not a zip archive: corrupted or truncated?" if not zipfile.is_zipfile(path)
                  else f"{type(error).__name__}: {error}")
        raise DataError(f"{path}: not a readable .npz archive ({reason}); expected a file "
                        "written by numpy.savez (numeric arrays, no pickled objects).") from None
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
        A :class:`Dataset` named after the file.

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
