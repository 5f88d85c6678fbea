"""Pruning schedules: when to update the masks, and to what sparsity.

A schedule is a callable ``schedule(step) -> (should_prune, sparsity)``. ``should_prune`` is a
scalar bool tensor, ``sparsity`` a scalar float32 tensor giving the fraction of zeros (0.5 = half
of the weights are zero). Both are computed with ``keras.ops``, so a schedule traces under
``jax.jit``, ``tf.function`` and runs eagerly under PyTorch.

Semantics follow ``tfmot.sparsity.keras`` exactly (gating, float32 arithmetic, validation order
and messages), with one deliberate difference: ``PolynomialDecay`` with ``begin_step ==
end_step`` is rejected instead of returning NaN.
"""

from __future__ import annotations

import abc
import numbers
from typing import Any

import keras
from keras import ops

_PACKAGE = "prunekit"


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


def _validate_step(begin_step: Any, end_step: Any, frequency: Any, allow_no_end: bool) -> None:
    """Check steps in tfmot's order, raising ValueError with tfmot's messages."""
    for name, value in (("begin_step", begin_step), ("end_step", end_step), ("frequency", frequency)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"`{name}` must be an integer. Received: {name}={value!r}")
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


def _validate_sparsity(value: Any, name: str) -> None:
    """Accept only a real number in [0, 1), as tfmot does."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in range [0,1). Received: {name}={value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in range [0,1). Received: {name}={value}")


class PruningSchedule(abc.ABC):
    """Base class of pruning schedules.

    Subclasses implement ``__call__(step) -> (should_prune, sparsity)`` with ``keras.ops`` and
    ``get_config()``; ``from_config`` calls ``cls(**config)``. Register a custom schedule with
    ``keras.saving.register_keras_serializable`` so pruned models using it load without
    ``custom_objects``.

    Example:
        >>> @keras.saving.register_keras_serializable(package="my_project")
        ... class EveryStep(PruningSchedule):
        ...     def __init__(self, sparsity):
        ...         self.sparsity = sparsity
        ...     def __call__(self, step):
        ...         return ops.greater_equal(step, 0), ops.convert_to_tensor(self.sparsity, "float32")
        ...     def get_config(self):
        ...         return {"sparsity": self.sparsity}
        >>> float(EveryStep(0.3)(5)[1])
        0.30000001192092896
    """

    @abc.abstractmethod
    def __call__(self, step: Any) -> tuple[Any, Any]:
        """Return ``(should_prune, sparsity)`` for ``step``."""

    @abc.abstractmethod
    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments as a JSON-able dict."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PruningSchedule:
        """Re-create a schedule from ``get_config()``'s output."""
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))


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

    def __call__(self, step: Any) -> tuple[Any, Any]:
        should_prune = should_prune_in_step(step, self.begin_step, self.end_step, self.frequency)
        return should_prune, ops.convert_to_tensor(self.target_sparsity, dtype="float32")

    def get_config(self) -> dict[str, Any]:
        return {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }


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
        ValueError: For steps or sparsities out of range, ``end_step == -1`` or
            ``begin_step == end_step`` (tfmot returns NaN there).

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
        if isinstance(power, bool) or not isinstance(power, numbers.Real):
            raise TypeError(f"power must be a number. Received: power={power!r}")
        self.initial_sparsity = float(initial_sparsity)
        self.final_sparsity = float(final_sparsity)
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.power = power
        self.frequency = int(frequency)

    def __call__(self, step: Any) -> tuple[Any, Any]:
        should_prune = should_prune_in_step(step, self.begin_step, self.end_step, self.frequency)
        elapsed = ops.cast(ops.cast(step, "int32") - self.begin_step, "float32")
        p = ops.clip(elapsed / float(self.end_step - self.begin_step), 0.0, 1.0)
        decay = ops.power(1.0 - p, ops.cast(self.power, "float32"))
        span = ops.cast(self.initial_sparsity - self.final_sparsity, "float32")
        sparsity = span * decay + ops.cast(self.final_sparsity, "float32")
        return should_prune, ops.cast(sparsity, "float32")

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "power": self.power,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }


def serialize_schedule(schedule: PruningSchedule) -> dict[str, Any]:
    """Serialize a schedule to Keras's ``{"class_name", "config", ...}`` form.

    Example:
        >>> serialize_schedule(ConstantSparsity(0.5, 0))["class_name"]
        'ConstantSparsity'
    """
    return keras.saving.serialize_keras_object(schedule)


def deserialize_schedule(config: Any) -> PruningSchedule:
    """Inverse of :func:`serialize_schedule`; also accepts a schedule instance.

    Example:
        >>> deserialize_schedule(serialize_schedule(ConstantSparsity(0.5, 0)))
        ConstantSparsity(target_sparsity=0.5, begin_step=0, end_step=-1, frequency=100)
    """
    if isinstance(config, PruningSchedule):
        return config
    if isinstance(config, dict) and config.get("class_name") in _BUILTIN:
        if "registered_name" not in config and "module" not in config:
            return _BUILTIN[config["class_name"]].from_config(config["config"])
    schedule = keras.saving.deserialize_keras_object(config)
    if not isinstance(schedule, PruningSchedule):
        raise TypeError(
            "pruning_schedule must deserialize to a PruningSchedule. "
            f"Received: {type(schedule).__name__}"
        )
    return schedule


_BUILTIN = {"ConstantSparsity": ConstantSparsity, "PolynomialDecay": PolynomialDecay}
