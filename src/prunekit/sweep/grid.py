"""The sweep's grid: which pruning parameters vary, their cartesian product, and validation.

A grid maps each *axis* (``schedule``, ``sparsity``, ``block_size``...) to a list of values;
the runs are the cartesian product of those lists. Every run is checked before anything is
trained: a bad value or a bad combination (``end_step < begin_step``, ``sparsity >= 1``, a block
larger than the kernel it prunes...) raises :class:`SweepError` naming the flag or config key.

Parameters that cannot change a run are normalised, so that runs differing only in them are run
once: ``initial_sparsity`` and ``power`` mean nothing to a constant schedule, and AVG and MAX
pooling give the same mask for 1x1 blocks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Sequence
from typing import Any

from prunekit.lab.choices import POOLINGS, SCHEDULES, parse_block_size

SCOPES = ("layer", "global")
#: Named layer selections; a comma-free layer name (e.g. ``hidden``) is accepted as well.
LAYER_SELECTIONS = ("all", "first", "last", "all-but-output")

#: Axes in table order, with their defaults (one value each: one run unless a flag says more).
AXES: dict[str, tuple[Any, ...]] = {
    "schedule": ("constant",),
    "sparsity": (0.5,),
    "initial_sparsity": (0.0,),
    "begin_step": (0,),
    "end_step": (-1,),
    "frequency": (100,),
    "power": (3.0,),
    "block_size": ((1, 1),),
    "pooling": ("AVG",),
    "layers": ("all",),
    "scope": ("layer",),
}


class SweepError(ValueError):
    """An invalid sweep setting; the message names the flag or config key at fault."""


def flag(axis: str) -> str:
    """The command-line flag of an axis or setting.

    Example:
        >>> flag("begin_step")
        '--begin-step'
    """
    return "--" + axis.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class RunParams:
    """The pruning parameters of one run (``schedule="none"``: the dense reference run).

    Attributes:
        schedule: ``"constant"``, ``"polynomial"`` or ``"none"``.
        sparsity: Target (final) sparsity.
        initial_sparsity: PolynomialDecay's start (``None`` for other schedules).
        begin_step: First mask update.
        end_step: Last mask update (``-1``: never stops, constant only).
        frequency: Steps between mask updates.
        power: PolynomialDecay's exponent (``None`` for other schedules).
        block_size: ``"HxW"``.
        pooling: ``"AVG"`` or ``"MAX"``.
        layers: The layer selection as given (``all``, ``first``...).
        pruned_layers: The layers it selects, comma-separated (e.g. ``"hidden,output"``).
        scope: ``"layer"`` or ``"global"`` (one magnitude threshold across the pruned layers).

    Example:
        >>> RunParams("constant", 0.5, None, 0, -1, 100, None, "1x1", "AVG", "all",
        ...           "hidden,output", "layer").block_size
        '1x1'
    """

    schedule: str
    sparsity: float
    initial_sparsity: float | None
    begin_step: int
    end_step: int
    frequency: int
    power: float | None
    block_size: str
    pooling: str
    layers: str
    pruned_layers: str
    scope: str

    def as_dict(self) -> dict[str, Any]:
        """The parameters as a flat, JSON-able dict.

        Example:
            >>> dense_run().as_dict()["schedule"]
            'none'
        """
        return dataclasses.asdict(self)

    @property
    def block(self) -> tuple[int, int]:
        """The block size as ``(height, width)``.

        Example:
            >>> dense_run().block
            (1, 1)
        """
        height, width = self.block_size.split("x")
        return int(height), int(width)

    def key(self) -> str:
        """A stable 16-hex-digit hash of what the run computes (the label ``layers`` aside).

        Example:
            >>> dense_run().key() == dense_run().key()
            True
        """
        content = {k: v for k, v in self.as_dict().items() if k != "layers"}
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def dense_run() -> RunParams:
    """The reference run: the same model trained without pruning.

    Example:
        >>> dense_run().schedule
        'none'
    """
    return RunParams("none", 0.0, None, 0, -1, 0, None, "1x1", "AVG", "none", "", "layer")


def describe(run: RunParams | dict[str, Any]) -> str:
    """A short label of a run (or of its table row) for listings, progress and legends.

    Example:
        >>> describe(dense_run())
        'dense (no pruning)'
        >>> describe({"schedule": "polynomial", "sparsity": 0.8, "block_size": "2x2",
        ...           "pooling": "MAX", "layers": "all", "scope": "layer"})
        'polynomial 80% 2x2 MAX all'
    """
    row = run.as_dict() if isinstance(run, RunParams) else run
    if row["schedule"] == "none":
        return "dense (no pruning)"
    text = f"{row['schedule']} {row['sparsity']:.0%} {row['block_size']}"
    if row["block_size"] != "1x1":  # pooling means nothing to single weights
        text += f" {row['pooling']}"
    text += f" {row['layers']}"
    return text + (" global" if row["scope"] == "global" else "")


def run_seed(base_seed: int, params: RunParams) -> int:
    """The run's seed: ``(base_seed + int(params.key()[:8], 16)) mod 2**31``.

    Example:
        >>> run = dense_run()
        >>> run_seed(1, run) - run_seed(0, run)
        1
    """
    return (int(base_seed) + int(params.key()[:8], 16)) % 2**31


# -- parsing values -------------------------------------------------------------------------

def _block_size(value: Any, where: str) -> tuple[int, int]:
    try:
        return parse_block_size(value, where)
    except ValueError as error:
        raise SweepError(str(error)) from None


def _number(value: Any, kind: type, where: str) -> Any:
    name = "an integer" if kind is int else "a number"
    if isinstance(value, bool):
        raise SweepError(f"{where}: expected {name}. Received: {value!r}")
    try:
        return kind(value) if kind is float else int(str(value).strip())
    except (TypeError, ValueError):
        raise SweepError(f"{where}: expected {name}. Received: {value!r}") from None


def _choice(value: Any, choices: Sequence[str], where: str, upper: bool = False) -> str:
    text = str(value).strip()
    text = text.upper() if upper else text.lower()
    if text not in choices:
        raise SweepError(f"{where}: expected one of {', '.join(choices)}. Received: {value!r}")
    return text


def parse_axis(axis: str, values: Any, where: str | None = None) -> tuple[Any, ...]:
    """Parse one axis's values: a comma-separated string (a flag) or a scalar/list (TOML).

    Args:
        axis: One of :data:`AXES`.
        values: ``"0.5,0.8"``, ``[0.5, 0.8]`` or ``0.5``.
        where: The flag or config key, for error messages (default: the flag).

    Returns:
        The parsed values, duplicates removed, in the order given.

    Raises:
        SweepError: For an unknown axis, an empty list or a value of the wrong type.

    Example:
        >>> parse_axis("sparsity", "0.5, 0.8")
        (0.5, 0.8)
        >>> parse_axis("block_size", ["1x1", "2x2"])
        ((1, 1), (2, 2))
    """
    where = where or flag(axis)
    if axis not in AXES:
        raise SweepError(f"Unknown grid key {axis!r}: expected one of {', '.join(AXES)}.")
    if isinstance(values, str):
        items: list[Any] = [v.strip() for v in values.split(",") if v.strip()]
    elif isinstance(values, (list, tuple)) and not (axis == "block_size" and _is_pair(values)):
        items = list(values)
    else:
        items = [values]
    if not items:
        raise SweepError(f"{where}: give at least one value. Received: {values!r}")
    parsers = {
        "schedule": lambda v: _choice(v, SCHEDULES, where),
        "pooling": lambda v: _choice(v, POOLINGS, where, upper=True),
        "scope": lambda v: _choice(v, SCOPES, where),
        "layers": lambda v: str(v).strip().lower(),
        "block_size": lambda v: _block_size(v, where),
        "begin_step": lambda v: _number(v, int, where),
        "end_step": lambda v: _number(v, int, where),
        "frequency": lambda v: _number(v, int, where),
    }
    parse = parsers.get(axis, lambda v: _number(v, float, where))
    return tuple(dict.fromkeys(parse(v) for v in items))


def _is_pair(values: Any) -> bool:
    return len(values) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in values)


# -- layers ---------------------------------------------------------------------------------

def resolve_layers(selection: str, names: Sequence[str], where: str = "--layers") -> tuple[str, ...]:
    """The prunable layers a selection names, in model order.

    Args:
        selection: ``all``, ``first``, ``last``, ``all-but-output`` or a layer name.
        names: The model's prunable layers, input to output (the last is the output layer).
        where: The flag or key, for errors.

    Returns:
        The selected layer names.

    Raises:
        SweepError: For an unknown selection.

    Example:
        >>> resolve_layers("all-but-output", ["hidden", "output"])
        ('hidden',)
    """
    names = tuple(names)
    chosen = {"all": names, "first": names[:1], "last": names[-1:],
              "all-but-output": names[:-1]}.get(selection)
    if chosen is None and selection in names:
        chosen = (selection,)
    if chosen is None:
        raise SweepError(f"{where}: expected one of {', '.join(LAYER_SELECTIONS)} or a layer name "
                         f"({', '.join(names)}). Received: {selection!r}")
    if not chosen:
        raise SweepError(f"{where}: {selection!r} selects no layer of this model "
                         f"(prunable layers: {', '.join(names)}).")
    return chosen


# -- the product ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """What validation needs to know about the model and training length.

    Attributes:
        kernels: ``{layer name: (rows, cols)}`` of each prunable kernel, input to output.
        total_steps: Optimizer steps of one run (epochs x batches per epoch).

    Example:
        >>> ModelFacts({"hidden": (10, 128)}, total_steps=168).total_steps
        168
    """

    kernels: dict[str, tuple[int, int]]
    total_steps: int


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SweepError(message)


def _params(combo: dict[str, Any], facts: ModelFacts, where: dict[str, str]) -> RunParams:
    """Validate one combination and build its normalised :class:`RunParams`."""
    w = where
    s, begin, end, freq = combo["sparsity"], combo["begin_step"], combo["end_step"], combo["frequency"]
    _check(0 <= s < 1, f"{w['sparsity']} must be >= 0 and < 1. Received: {s}")
    _check(begin >= 0, f"{w['begin_step']} must be >= 0. Received: {begin}")
    _check(freq > 0, f"{w['frequency']} must be > 0. Received: {freq}")
    _check(begin < facts.total_steps,
           f"{w['begin_step']} {begin} is not before the end of training ({facts.total_steps} "
           "steps = epochs x batches per epoch): the run would never prune. Lower it or train "
           "longer (--epochs).")
    polynomial = combo["schedule"] == "polynomial"
    if polynomial:
        init, power = combo["initial_sparsity"], combo["power"]
        _check(0 <= init < 1, f"{w['initial_sparsity']} must be >= 0 and < 1. Received: {init}")
        _check(power > 0, f"{w['power']} must be > 0. Received: {power}")
        if end == -1:  # "until the end of training", on a mask update so the target is reached
            end = begin + (facts.total_steps - begin) // freq * freq
            _check(end > begin, f"{w['end_step']} -1 means the last training step, but "
                   f"{facts.total_steps} steps leave no room for a mask update every {freq} "
                   f"steps after {w['begin_step']} {begin}. Give an explicit end step.")
        _check(end > begin, f"{w['end_step']} ({end}) must be > {w['begin_step']} ({begin}) for "
               "a polynomial schedule.")
    else:
        init, power = None, None
        _check(end == -1 or end >= begin, f"{w['end_step']} ({end}) must be >= "
               f"{w['begin_step']} ({begin}), or -1 (never stop).")
    layers = resolve_layers(combo["layers"], list(facts.kernels), w["layers"])
    height, width = combo["block_size"]
    for name in layers:
        rows, cols = facts.kernels[name]
        _check(height <= rows and width <= cols,
               f"{w['block_size']} {height}x{width} is larger than the '{name}' kernel "
               f"({rows}x{cols}) selected by {w['layers']} {combo['layers']!r}.")
    _check(combo["scope"] == "layer" or (height, width) == (1, 1),
           f"{w['scope']} global ranks single weights across layers and cannot be combined "
           f"with {w['block_size']} {height}x{width} (blocks are per-tensor).")
    pooling = combo["pooling"] if (height, width) != (1, 1) else "AVG"
    return RunParams(combo["schedule"], float(s), None if init is None else float(init),
                     int(begin), int(end), int(freq), None if power is None else float(power),
                     f"{height}x{width}", pooling, combo["layers"], ",".join(layers),
                     combo["scope"])


def expand_grid(axes: dict[str, Sequence[Any]], facts: ModelFacts,
                where: dict[str, str] | None = None, dense: bool = True) -> list[RunParams]:
    """The runs of a grid: the cartesian product of its (parsed) axes, validated and deduplicated.

    Args:
        axes: Parsed values per axis (see :func:`parse_axis`); missing axes take :data:`AXES`.
        facts: Kernel shapes and training length of the model.
        where: Flag or config key of each axis, for error messages (default: the flags).
        dense: Put the unpruned reference run first.

    Returns:
        The runs, in product order (the last axis varies fastest), each once.

    Raises:
        SweepError: On the first invalid value or combination, before anything runs.

    Example:
        >>> facts = ModelFacts({"hidden": (10, 128), "output": (128, 1)}, total_steps=336)
        >>> runs = expand_grid({"sparsity": (0.5, 0.8), "schedule": ("constant",)}, facts)
        >>> [(r.schedule, r.sparsity) for r in runs]
        [('none', 0.0), ('constant', 0.5), ('constant', 0.8)]
    """
    names = {axis: flag(axis) for axis in AXES} | dict(where or {})
    unknown = set(axes) - set(AXES)
    _check(not unknown, f"Unknown grid key(s) {sorted(unknown)}: expected some of {list(AXES)}.")
    values = [tuple(axes.get(axis) or AXES[axis]) for axis in AXES]
    runs: dict[str, RunParams] = {}
    if dense:
        runs[dense_run().key()] = dense_run()
    for combo in itertools.product(*values):
        params = _params(dict(zip(AXES, combo)), facts, names)
        runs.setdefault(params.key(), params)
    return list(runs.values())


def grid_size(axes: dict[str, Sequence[Any]]) -> int:
    """Number of combinations before deduplication (the product of the axis lengths).

    Example:
        >>> grid_size({"sparsity": (0.5, 0.8), "block_size": ((1, 1), (2, 2), (4, 4))})
        6
    """
    size = 1
    for axis, default in AXES.items():
        size *= len(axes.get(axis) or default)
    return size
