"""A sweep's specification: data, training settings and grid, from flags or a TOML file.

TOML layout (every key optional; grid values may be a scalar or a list)::

    dataset = "friedman"          # or: data = "my.csv", target = "y", task = "regression"
    epochs = 5
    seed = 0
    [grid]
    schedule = ["constant", "polynomial"]
    sparsity = [0.5, 0.7, 0.9]
    block_size = ["1x1", "2x2"]
    layers = ["all", "all-but-output"]

Reading TOML needs Python 3.11 (``tomllib``) or the ``tomli`` package on 3.10.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any

from prunekit.lab.choices import DATASETS, TASKS
from prunekit.sweep.grid import AXES, SweepError, flag, parse_axis
DEFAULT_EPOCHS = 10
QUICK_EPOCHS = 2

#: Settings that change what a run computes: a folder's runs are only reused if these match.
RESULT_SETTINGS = ("dataset", "data", "target", "task", "epochs", "batch_size",
                   "validation_split", "learning_rate", "seed")


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """Everything a sweep needs except where and how to run it.

    Attributes:
        dataset: A bundled dataset (``friedman`` or ``digits``); ignored when ``data`` is set.
        data: Path of the user's CSV or NPZ file, or ``None``.
        target: The target column (CSV) or array (NPZ) of ``data`` (``None``: the last column,
            or array ``y``).
        task: ``regression`` (MSE) or ``classification`` (accuracy), for ``data``.
        epochs: Epochs of every run (no early stopping: every run trains as long).
        batch_size: Keras batch size.
        validation_split: Fraction of training rows held out for ``val_loss``.
        learning_rate: Adam's learning rate.
        seed: Base seed; each run's seed is derived from it and the run's parameters.
        dense: Add the unpruned reference run.
        axes: Parsed grid values per axis (see :mod:`prunekit.sweep.grid`).
        where: Flag or config key of each axis given, for error messages.

    Example:
        >>> SweepSpec(epochs=3).epochs
        3
    """

    dataset: str = "friedman"
    data: str | None = None
    target: str | None = None
    task: str = "regression"
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 32
    validation_split: float = 0.2
    learning_rate: float = 1e-3
    seed: int = 0
    dense: bool = True
    axes: dict[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    where: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (block sizes as ``"HxW"``), read back by :func:`spec_from_dict`.

        Example:
            >>> make_spec(block_size="2x2").to_dict()["axes"]
            {'block_size': ['2x2']}
        """
        document = dataclasses.asdict(self)
        document["axes"] = {k: [_plain(v) for v in values] for k, values in self.axes.items()}
        return document


def _plain(value: Any) -> Any:
    return f"{value[0]}x{value[1]}" if isinstance(value, tuple) else value


def spec_from_dict(document: dict[str, Any]) -> SweepSpec:
    """Inverse of :meth:`SweepSpec.to_dict`.

    Example:
        >>> spec = make_spec(sparsity="0.5,0.8", block_size="2x2")
        >>> spec_from_dict(spec.to_dict()) == spec
        True
    """
    document = dict(document)
    axes = {k: parse_axis(k, v) for k, v in document.pop("axes", {}).items()}
    return make_spec(**document, axes=axes)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SweepError(message)


def make_spec(axes: dict[str, Any] | None = None, where: dict[str, str] | None = None,
              **settings: Any) -> SweepSpec:
    """Build and validate a :class:`SweepSpec`.

    Args:
        axes: Grid values per axis (strings like ``"0.5,0.8"``, lists or parsed tuples).
        where: Flag or config key of each setting and axis, for error messages.
        **settings: :class:`SweepSpec` fields; grid axes may also be passed here.

    Returns:
        The validated specification.

    Raises:
        SweepError: For a bad setting or grid value (combinations are checked later, by
            :func:`prunekit.sweep.grid.expand_grid`, once the data's shape is known).

    Example:
        >>> make_spec(sparsity="0.5,0.8", epochs=2).axes["sparsity"]
        (0.5, 0.8)
    """
    where = dict(where or {})
    axes = dict(axes or {})
    for name in list(settings):
        if name in AXES:
            axes[name] = settings.pop(name)
    fields = {f.name for f in dataclasses.fields(SweepSpec)}
    unknown = sorted(set(settings) - fields)
    _check(not unknown, f"Unknown setting(s) {unknown}: expected some of "
                        f"{sorted(fields - {'axes', 'where'})} or a grid key {list(AXES)}.")
    parsed = {k: parse_axis(k, v, where.get(k)) for k, v in axes.items() if v is not None}
    if settings.get("data"):  # absolute, so that workers started elsewhere find it
        settings["data"] = os.path.abspath(settings["data"])
    spec = SweepSpec(**settings, axes=parsed, where={k: where[k] for k in parsed if k in where})
    _validate_settings(spec, where)
    return spec


def _validate_settings(spec: SweepSpec, where: dict[str, str]) -> None:
    def name(key: str) -> str:
        return where.get(key, flag(key))

    if spec.data is None:
        _check(spec.dataset in DATASETS, f"{name('dataset')} must be one of "
               f"{', '.join(DATASETS)} (or give your own file with --data). "
               f"Received: {spec.dataset!r}")
    _check(spec.task in TASKS, f"{name('task')} must be one of {', '.join(TASKS)}. "
           f"Received: {spec.task!r}")
    for key in ("epochs", "batch_size"):
        value = getattr(spec, key)
        _check(isinstance(value, int) and not isinstance(value, bool) and value > 0,
               f"{name(key)} must be a positive integer. Received: {value!r}")
    _check(isinstance(spec.seed, int) and spec.seed >= 0,
           f"{name('seed')} must be an integer >= 0. Received: {spec.seed!r}")
    _check(_is_real(spec.validation_split) and 0 < spec.validation_split < 1,
           f"{name('validation_split')} must be a number > 0 and < 1. "
           f"Received: {spec.validation_split!r}")
    _check(_is_real(spec.learning_rate) and spec.learning_rate > 0,
           f"{name('learning_rate')} must be a number > 0. Received: {spec.learning_rate!r}")


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_toml(path: str) -> dict[str, Any]:
    """Read a TOML file (``tomllib`` on Python 3.11+, else the ``tomli`` package).

    Raises:
        SweepError: If the file is missing, unreadable as TOML, or no TOML reader exists.

    Example:
        >>> load_toml("sweep.toml")["grid"]["sparsity"]  # doctest: +SKIP
        [0.5, 0.8]
    """
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise SweepError("--config: reading TOML needs Python 3.11+ or `pip install tomli`. "
                             f"Received: --config={path!r}") from None
    if not os.path.isfile(path):
        raise SweepError(f"--config: no such file. Received: --config={path!r}")
    with open(path, "rb") as file:
        try:
            return tomllib.load(file)
        except tomllib.TOMLDecodeError as error:
            raise SweepError(f"--config {path}: not valid TOML: {error}") from None
        except UnicodeDecodeError as error:
            raise SweepError(f"--config {path}: not UTF-8 text (byte "
                             f"{error.object[error.start]:#04x} at offset {error.start}); TOML "
                             "files are UTF-8.") from None


def spec_from_toml(path: str, overrides: dict[str, Any] | None = None) -> SweepSpec:
    """A :class:`SweepSpec` from a TOML file; ``overrides`` (flags given) win over the file.

    Errors name the file and key, e.g. ``sweep.toml: grid.sparsity``.

    Args:
        path: The TOML file (layout in the module docstring).
        overrides: Settings and axes from the command line (``None`` values are ignored).

    Returns:
        The validated specification.

    Example:
        >>> spec_from_toml("sweep.toml", {"epochs": 2}).epochs  # doctest: +SKIP
        2
    """
    document = load_toml(path)
    base = os.path.basename(path)
    grid = document.pop("grid", {})
    _check(isinstance(grid, dict), f"{base}: 'grid' must be a table ([grid]).")
    where = {k: f"{base}: grid.{k}" for k in grid}
    where.update({k: f"{base}: {k}" for k in document})
    for key in ("data", "target", "dataset", "task", "out"):
        _check(not isinstance(document.get(key), (int, float, bool, list, dict)),
               f"{where[key] if key in where else key} must be a string. "
               f"Received: {document.get(key)!r}")
    settings: dict[str, Any] = {**document, "axes": dict(grid)}
    if document.get("data") and not os.path.isabs(document["data"]):  # relative to the file
        settings["data"] = os.path.join(os.path.dirname(os.path.abspath(path)), document["data"])
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key in AXES:
            settings["axes"][key] = value
        else:
            settings[key] = value
        where[key] = flag(key)
    for key in ("workers", "out", "ray"):  # run options may live in the file too
        settings.pop(key, None)
    return make_spec(where=where, **settings)


def run_options_from_toml(path: str) -> dict[str, Any]:
    """The run options (``workers``, ``out``, ``ray``) a TOML file gives, if any.

    Example:
        >>> run_options_from_toml("sweep.toml")  # doctest: +SKIP
        {'workers': 2}
    """
    document = load_toml(path)
    return {k: document[k] for k in ("workers", "out", "ray") if k in document}


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes (identifies the user's data in a sweep folder).

    Example:
        >>> file_sha256(__file__) == file_sha256(__file__)
        True
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_data(spec: SweepSpec) -> Any:
    """The dataset a :class:`SweepSpec` names: a bundled one, or the user's file.

    Raises:
        SweepError: For an unusable user file (the message says why; the cause is the
            :class:`prunekit.lab.data.DataError`).

    Example:
        >>> load_data(make_spec(dataset="digits")).n_classes
        10
    """
    from prunekit.lab.data import DataError, load_dataset, load_user_data

    if not spec.data:
        return load_dataset(spec.dataset)
    try:
        return load_user_data(spec.data, spec.target, spec.task)
    except DataError as error:
        raise SweepError(str(error)) from error
