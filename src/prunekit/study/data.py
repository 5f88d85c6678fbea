"""Datasets of the pruning study: the article's Friedman #1 regression and a digits classifier.

Both come from scikit-learn and need no download. The split is the article's:
``train_test_split(test_size=0.33, random_state=42)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

DATASETS = ("friedman", "digits")


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
