"""Pruning schedules: when to update the masks, and to what sparsity.

A schedule is a callable ``schedule(step) -> (should_prune, sparsity)``. ``should_prune`` is a
scalar bool tensor, ``sparsity`` a scalar float32 tensor giving the fraction of zeros (0.5 = half
of the weights are zero). Both are computed with ``keras.ops``, so a schedule traces under
``jax.jit``, ``tf.function`` and runs eagerly under PyTorch.

Semantics follow ``tfmot.sparsity.keras`` exactly (gating, float32 arithmetic, validation order
and messages, and the ``{'class_name': ..., 'config': {...}}`` form ``get_config`` returns).
Deliberate differences, all rejections of arguments tfmot accepts and then computes nonsense
with: ``PolynomialDecay`` with ``begin_step == end_step`` (tfmot: NaN) or a ``power`` that is
not a finite number > 0 (tfmot: sparsities outside [0, 1), NaN or a final sparsity never
reached), and steps beyond the int32 ``pruning_step`` counter.
"""

from __future__ import annotations

import abc
import math
import numbers
from typing import Any

import keras
from keras import ops

_PACKAGE = "prunekit"
INT32_MAX = 2**31 - 1  # The wrapper's pruning_step is an int32 counter.


def should_prune_in_step(step: Any, begin_step: int, end_step: int, frequency: int) -> Any:
    """Return whether a mask update is due at ``step`` (a bool tensor).

    True when ``begin_step <= step``, ``step <= end_step`` (or ``end_step`` is negative,
    meaning "forever") and ``(step - begin_step) % frequency == 0`` (floor-mod).

    Args:
        step: Integer scalar (Python int or tensor).
        begin_step: First step at which pruning may happen.
        end_step: Last step at which pruning may happen; negative means no end.
        frequency: Prune every ``frequency`` steps, counted from ``begin_step``.

    Returns:
        A scalar bool tensor.

    Example:
        >>> bool(should_prune_in_step(110, begin_step=100, end_step=200, frequency=10))
        True
    """
    step = ops.cast(step, "int32")
    is_due = ops.logical_and(
        ops.greater_equal(step, begin_step),
        ops.equal(ops.mod(step - begin_step, frequency), 0),
    )
    if end_step >= 0:
        is_due = ops.logical_and(is_due, ops.less_equal(step, end_step))
    return is_due


def _due_in_python(schedule: Any, owner: type, step: int) -> bool | None:
    """``should_prune_in_step`` in Python for a built-in schedule whose ``__call__`` is its own."""
    if type(schedule).__call__ is not owner.__call__:  # A subclass decides differently.
        return None
    begin, end = schedule.begin_step, schedule.end_step
    return begin <= step and (end < 0 or step <= end) and (step - begin) % schedule.frequency == 0


def _validate_step(begin_step: Any, end_step: Any, frequency: Any, allow_no_end: bool) -> None:
    """Check steps in tfmot's order, raising ValueError with tfmot's messages."""
    for name, value in (("begin_step", begin_step), ("end_step", end_step), ("frequency", frequency)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"`{name}` must be an integer. Received: {name}={value!r}")
        if value > INT32_MAX:
            raise ValueError(
                f"{name} must be <= {INT32_MAX} (2**31 - 1): the pruning step is an int32 "
                f"counter. Received: {name}={value}"
            )
    if begin_step < 0:
        raise ValueError(f"begin_step should be >= 0. Received: begin_step={begin_step}")
    if not allow_no_end and end_step == -1:
        raise ValueError("end_step cannot be -1. Received: end_step=-1")
    if end_step != -1:
        if end_step < 0:
            raise ValueError(f"end_step can be -1 or >= 0. Received: end_step={end_step}")
        if end_step < begin_step:
            raise ValueError(
                "begin_step should be <= end_step if end_step != -1. "
                f"Received: begin_step={begin_step}, end_step={end_step}"
            )
    if frequency <= 0:
        raise ValueError(f"frequency should be > 0. Received: frequency={frequency}")


def _validate_power(power: Any) -> None:
    """Accept a finite power > 0: others make the sparsity leave [0, 1) or never reach the end.

    tfmot accepts any number; power -1 gives -0.4 at the midpoint and -inf at the end, power 0
    never leaves ``initial_sparsity``, NaN gives NaN and inf jumps to ``final_sparsity``.
    """
    if isinstance(power, bool) or not isinstance(power, numbers.Real):
        raise TypeError(f"power must be a number. Received: power={power!r}")
    if not (math.isfinite(power) and power > 0):
        raise ValueError(
            "power must be a finite number > 0 (a negative power makes the sparsity leave "
            "[0,1), 0 never leaves initial_sparsity, inf jumps to final_sparsity). "
            f"Received: power={power}"
        )


def constructor_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments in a schedule's config, in tfmot's form or a flat dict.

    tfmot's ``get_config()`` returns ``{'class_name': ..., 'config': {arguments}}``; schedules
    written for prunekit 0.1.0 return the arguments directly. Both are accepted everywhere.

    Example:
        >>> constructor_arguments({"class_name": "ConstantSparsity",
        ...                        "config": {"target_sparsity": 0.5, "begin_step": 0}})
        {'target_sparsity': 0.5, 'begin_step': 0}
    """
    if (isinstance(config, dict) and isinstance(config.get("config"), dict)
            and "class_name" in config
            and set(config) <= {"class_name", "config", "module", "registered_name"}):
        return dict(config["config"])
    return dict(config)


def _validate_sparsity(value: Any, name: str) -> None:
    """Accept only a real number in [0, 1), as tfmot does."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in range [0,1). Received: {name}={value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in range [0,1). Received: {name}={value}")


class PruningSchedule(abc.ABC):
    """Base class of pruning schedules.

    Subclasses implement ``__call__(step) -> (should_prune, sparsity)`` with ``keras.ops`` and
    ``get_config()``. As in tfmot, ``get_config()`` returns ``{'class_name': ..., 'config':
    {constructor arguments}}`` (a flat dict of the arguments, prunekit 0.1.0's form, is
    accepted too) and ``from_config`` calls ``cls(**arguments)``. A pruned model using a custom
    schedule loads with ``keras.saving.load_model(path, custom_objects={"MySchedule":
    MySchedule})``, or with no ``custom_objects`` once the class is registered with
    ``keras.saving.register_keras_serializable``.

    Example:
        >>> class EveryStep(PruningSchedule):
        ...     def __init__(self, sparsity):
        ...         self.sparsity = sparsity
        ...     def __call__(self, step):
        ...         return ops.greater_equal(step, 0), ops.convert_to_tensor(self.sparsity, "float32")
        ...     def get_config(self):
        ...         return {"class_name": "EveryStep", "config": {"sparsity": self.sparsity}}
        >>> float(EveryStep(0.3)(5)[1])
        0.30000001192092896
        >>> EveryStep.from_config(EveryStep(0.3).get_config()).sparsity
        0.3
    """

    @abc.abstractmethod
    def __call__(self, step: Any) -> tuple[Any, Any]:
        """Return ``(should_prune, sparsity)`` for ``step``."""

    @abc.abstractmethod
    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments as a JSON-able dict."""

    def update_due(self, step: int) -> bool | None:
        """Whether ``__call__`` says "prune" at the concrete ``step``, answered without tensors.

        Eager backends (PyTorch) ask this first and skip the schedule's and the masks'
        computation between updates. None (the default) means "unknown: call the schedule".
        """
        return None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PruningSchedule:
        """Re-create a schedule from ``get_config()``'s output (either form)."""
        return cls(**constructor_arguments(config))

    def _arguments(self) -> dict[str, Any]:
        return constructor_arguments(self.get_config())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._arguments().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._arguments() == other._arguments()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self._arguments().items()))))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConstantSparsity(PruningSchedule):
    """Prune to a constant sparsity every ``frequency`` steps.

    ``sparsity(step) = target_sparsity``; ``should_prune(step)`` is true when
    ``begin_step <= step <= end_step`` (no upper bound if ``end_step == -1``) and
    ``(step - begin_step) % frequency == 0``.

    Args:
        target_sparsity: Fraction of zeros, in [0, 1).
        begin_step: First step at which to prune (>= 0).
        end_step: Last step at which to prune, or -1 to keep pruning.
        frequency: Steps between mask updates (> 0).

    Example:
        >>> schedule = ConstantSparsity(0.5, begin_step=0)
        >>> [bool(schedule(s)[0]) for s in (0, 1, 100)]
        [True, False, True]
    """

    def __init__(
        self, target_sparsity: float, begin_step: int, end_step: int = -1, frequency: int = 100
    ) -> None:
        _validate_step(begin_step, end_step, frequency, allow_no_end=True)
        _validate_sparsity(target_sparsity, "target_sparsity")
        self.target_sparsity = float(target_sparsity)
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.frequency = int(frequency)

    def update_due(self, step: int) -> bool | None:
        return _due_in_python(self, ConstantSparsity, step)

    def __call__(self, step: Any) -> tuple[Any, Any]:
        should_prune = should_prune_in_step(step, self.begin_step, self.end_step, self.frequency)
        return should_prune, ops.convert_to_tensor(self.target_sparsity, dtype="float32")

    def get_config(self) -> dict[str, Any]:
        return {"class_name": type(self).__name__, "config": {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PolynomialDecay(PruningSchedule):
    """Raise sparsity from ``initial_sparsity`` to ``final_sparsity`` along a polynomial.

    In float32, with ``p = clip((step - begin_step) / (end_step - begin_step), 0, 1)``::

        sparsity(step) = (initial_sparsity - final_sparsity) * (1 - p) ** power + final_sparsity

    Masks are updated when ``begin_step <= step <= end_step`` and
    ``(step - begin_step) % frequency == 0``.

    Args:
        initial_sparsity: Sparsity at ``begin_step``, in [0, 1).
        final_sparsity: Sparsity from ``end_step`` on, in [0, 1).
        begin_step: First step at which to prune (>= 0).
        end_step: Step at which ``final_sparsity`` is reached (> ``begin_step``).
        power: Exponent of the polynomial (3 gives fast early pruning, then a gentle approach).
        frequency: Steps between mask updates (> 0).

    Raises:
        ValueError: For steps or sparsities out of range, ``end_step == -1``,
            ``begin_step == end_step`` (tfmot returns NaN there) or a ``power`` that is not a
            finite number > 0.

    Example:
        >>> schedule = PolynomialDecay(0.2, 0.8, begin_step=1000, end_step=2000)
        >>> round(float(schedule(1500)[1]), 4)
        0.725
    """

    def __init__(
        self,
        initial_sparsity: float,
        final_sparsity: float,
        begin_step: int,
        end_step: int,
        power: float = 3,
        frequency: int = 100,
    ) -> None:
        _validate_step(begin_step, end_step, frequency, allow_no_end=False)
        _validate_sparsity(initial_sparsity, "initial_sparsity")
        _validate_sparsity(final_sparsity, "final_sparsity")
        if begin_step == end_step:
            raise ValueError(
                "PolynomialDecay needs end_step > begin_step: with begin_step == end_step the "
                "decay is 0/0 at that step. Use ConstantSparsity(final_sparsity, begin_step, "
                f"end_step) instead. Received: begin_step={begin_step}, end_step={end_step}"
            )
        _validate_power(power)
        self.initial_sparsity = float(initial_sparsity)
        self.final_sparsity = float(final_sparsity)
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.power = power
        self.frequency = int(frequency)

    def update_due(self, step: int) -> bool | None:
        return _due_in_python(self, PolynomialDecay, step)

    def __call__(self, step: Any) -> tuple[Any, Any]:
        should_prune = should_prune_in_step(step, self.begin_step, self.end_step, self.frequency)
        elapsed = ops.cast(ops.cast(step, "int32") - self.begin_step, "float32")
        p = ops.clip(elapsed / float(self.end_step - self.begin_step), 0.0, 1.0)
        decay = ops.power(1.0 - p, ops.cast(self.power, "float32"))
        span = ops.cast(self.initial_sparsity - self.final_sparsity, "float32")
        sparsity = span * decay + ops.cast(self.final_sparsity, "float32")
        return should_prune, ops.cast(sparsity, "float32")

    def get_config(self) -> dict[str, Any]:
        return {"class_name": type(self).__name__, "config": {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "power": self.power,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }}


def shortfall(schedule: PruningSchedule, step: int) -> str | None:
    """Why ``schedule`` has not reached its target after ``step`` training steps, or None.

    Training steps are 1, 2, ..., ``step`` (the first training batch is step 1, as in tfmot).
    The target is ``target_sparsity`` or ``final_sparsity``; schedules without those
    attributes and ``begin_step``/``end_step``/``frequency`` are not judged (None).

    Example:
        >>> shortfall(ConstantSparsity(0.5, 0), 12)[:50]
        'no mask update happened: the first is at step 100 '
        >>> shortfall(ConstantSparsity(0.5, 0), 100) is None
        True
    """
    target = getattr(schedule, "target_sparsity", getattr(schedule, "final_sparsity", None))
    try:
        begin, end, frequency = (int(schedule.begin_step), int(schedule.end_step),
                                 int(schedule.frequency))
    except (AttributeError, TypeError, ValueError):
        return None
    if target is None:
        return None
    start = max(begin, 1)  # Step 0 is never a training step.
    first = start + (-(start - begin)) % frequency
    if 0 <= end < first:
        return (f"it never prunes: no step in 1..end_step={end} is an update step "
                f"(begin_step={begin} + k * frequency={frequency})")
    if step < first:
        return (f"no mask update happened: the first is at step {first} (begin_step={begin}, "
                f"frequency={frequency}) and training ran {step} step(s)")
    last = begin + ((min(step, end) if end >= 0 else step) - begin) // frequency * frequency
    reached = float(ops.convert_to_numpy(schedule(last)[1]))
    if reached >= target - 1e-3:  # Within a tenth of a percent: rounding, not a shortfall.
        return None
    following = last + frequency
    if 0 <= end < following:
        return (f"its last update step, {last}, gives {reached:.1%}: end_step={end} is not "
                f"begin_step={begin} + a multiple of frequency={frequency}")
    return (f"the last mask update, at step {last}, gave {reached:.1%}; the target comes at "
            f"end_step={end} and training ran {step} step(s)")


def serialize_schedule(schedule: PruningSchedule) -> dict[str, Any]:
    """Serialize a schedule to Keras's ``{"module", "class_name", "config", ...}`` form.

    ``config`` holds the constructor arguments, whichever form the schedule's ``get_config``
    returns, so that ``keras.saving.deserialize_keras_object`` re-creates it with
    ``from_config`` -- also for custom schedules written to tfmot's contract.

    Example:
        >>> serialize_schedule(ConstantSparsity(0.5, 0))["config"]["target_sparsity"]
        0.5
    """
    config = keras.saving.serialize_keras_object(schedule)
    config["config"] = constructor_arguments(config["config"])
    return config


def deserialize_schedule(config: Any, custom_objects: dict[str, Any] | None = None
                         ) -> PruningSchedule:
    """Inverse of :func:`serialize_schedule`; also reads tfmot's form and schedule instances.

    Args:
        config: A schedule, Keras's serialized form or tfmot's ``{'class_name', 'config'}``.
        custom_objects: Custom schedule classes by name (the two built-ins are always known).

    Returns:
        The schedule.

    Raises:
        TypeError: If ``config`` does not describe a :class:`PruningSchedule`.

    Example:
        >>> deserialize_schedule(ConstantSparsity(0.5, 0).get_config())
        ConstantSparsity(target_sparsity=0.5, begin_step=0, end_step=-1, frequency=100)
    """
    if isinstance(config, PruningSchedule):
        return config
    known = {**_BUILTIN, **(custom_objects or {})}
    schedule = keras.saving.deserialize_keras_object(config, custom_objects=known)
    if not isinstance(schedule, PruningSchedule):
        raise TypeError(
            "pruning_schedule must deserialize to a PruningSchedule (a custom schedule class "
            "must be passed in custom_objects). "
            f"Received: pruning_schedule={config!r}"
        )
    return schedule


_BUILTIN = {"ConstantSparsity": ConstantSparsity, "PolynomialDecay": PolynomialDecay}
