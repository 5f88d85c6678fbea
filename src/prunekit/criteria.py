"""Pruning criteria: which weights a wrapper zeroes, as small serializable objects.

A criterion turns one weight tensor into a 0/1 mask and a threshold for a target sparsity. The
``PruneLowMagnitude`` wrapper decides *when* (its schedule and step) and delegates *which* to
its criterion; global pruning ranks the scores of any criterion that scores single weights, like
``torch.nn.utils.prune.global_unstructured`` takes any pruning method.

What a criterion states about itself:

* ``granularity``: what it zeroes together -- ``"element"``, ``"block"`` or ``"m_by_n"`` (later
  ``"output_channel"``, ``"head"``);
* ``ranks_globally``: whether it yields one non-negative score per element (it implements
  ``scores``), so that ``pruning_scope="global"`` can rank its scores across a model;
* ``follows_schedule``: False for a criterion whose mask is computed once, at the first
  training step, with the schedule's sparsity ignored (tfmot's m-by-n behaviour).

Every method may take calibration statistics (``stats``, a mapping of names to tensors, e.g.
``{"input_norm": ||X_j||_2 per input feature}``), so that one-shot criteria such as Wanda
(score ``|W_ij| * ||X_j||_2``, Sun et al. 2023) fit the same interface; the built-ins ignore it.

Adding a criterion is one class plus a registration line: subclass :class:`PruningCriterion`,
implement :meth:`~PruningCriterion.scores` (element criteria) or
:meth:`~PruningCriterion.compute_mask` (structured ones), give it ``get_config`` if it has
arguments, and decorate it with ``keras.saving.register_keras_serializable``.

tfmot's wrapper arguments map onto the built-ins (:func:`resolve_criterion`):
``block_size=(1, 1)`` is :class:`MagnitudeCriterion`, another ``block_size`` is
:class:`BlockMagnitudeCriterion` with ``block_pooling_type``, ``sparsity_m_by_n=(m, n)`` is
:class:`MByNCriterion`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from prunekit import masks

GRANULARITIES = ("element", "block", "m_by_n", "output_channel", "head")
Stats = Mapping[str, Any] | None


class PruningCriterion:
    """Base class of pruning criteria (the default :meth:`compute_mask` keeps the top scores).

    A subclass that scores single weights implements :meth:`scores` only: the mask keeps the
    ``keep_count(size, sparsity)`` highest scores (tfmot's keep count; ties at the threshold
    are kept) and the threshold is the lowest kept score. Structured criteria override
    :meth:`compute_mask` and set ``granularity``; without :meth:`scores` they do not take part
    in global ranking (``ranks_globally`` is False).

    Example:
        >>> class InputNormMagnitude(PruningCriterion):  # Wanda's score: |W_ij| * ||X_j||_2
        ...     def scores(self, weight, stats=None):
        ...         return ops.abs(weight) * ops.expand_dims(stats["input_norm"], -1)
        >>> w = ops.convert_to_tensor([[1.0, 2.0], [3.0, 1.0]])
        >>> mask, t = InputNormMagnitude().compute_mask(
        ...     w, 0.5, stats={"input_norm": ops.convert_to_tensor([4.0, 1.0])})
        >>> ops.convert_to_numpy(mask).tolist(), float(t)
        ([[1.0, 1.0], [0.0, 0.0]], 4.0)
    """

    granularity: str = "element"
    follows_schedule: bool = True

    @property
    def ranks_globally(self) -> bool:
        """True when the criterion scores single weights (it implements :meth:`scores`)."""
        return type(self).scores is not PruningCriterion.scores

    def scores(self, weight: Any, stats: Stats = None) -> Any:
        """Non-negative importance of every element of ``weight`` (same shape); higher is kept.

        Raises:
            NotImplementedError: For criteria that do not score single weights.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not score single weights (granularity "
            f"'{self.granularity}'): it cannot rank weights across a model."
        )

    def compute_mask(self, weight: Any, sparsity: Any, stats: Stats = None) -> tuple[Any, Any]:
        """Return ``(mask, threshold)`` for ``weight`` at the target ``sparsity``.

        Args:
            weight: The weight tensor (in its storage dtype).
            sparsity: Target fraction of zeros, a float or scalar float32 tensor.
            stats: Optional calibration statistics (see the module docstring).

        Returns:
            The 0/1 mask (``weight``'s shape and dtype) and a scalar threshold in ``weight``'s
            dtype, whose meaning each criterion documents.
        """
        mask, threshold = masks.mask_from_scores(self.scores(weight, stats), sparsity)
        return ops.cast(mask, weight.dtype), ops.cast(threshold, weight.dtype)

    def check_weight(self, shape: tuple[int, ...], where: str) -> None:
        """Raise ``ValueError`` if a weight of ``shape`` cannot be pruned by this criterion.

        Args:
            shape: The weight's shape.
            where: Which weight, for the message (e.g. ``"layer 'd', weight 'kernel'"``).
        """

    def schedule_decision(self, schedule: Any, step: Any) -> tuple[Any, Any]:
        """``(should_prune, sparsity)`` at ``step``: the schedule's, or once at step 1.

        A criterion with ``follows_schedule = False`` updates its mask at the first training
        step only (step 1) and ignores the schedule's sparsity (it is reported as 0).
        """
        if self.follows_schedule:
            return schedule(step)
        return ops.equal(step, 1), ops.convert_to_tensor(0.0, "float32")

    def update_due(self, schedule: Any, step: int) -> bool | None:
        """Whether :meth:`schedule_decision` prunes at the concrete ``step``; None if unknown.

        None as well for a criterion that overrides :meth:`schedule_decision`.
        """
        if type(self).schedule_decision is not PruningCriterion.schedule_decision:
            return None
        return schedule.update_due(step) if self.follows_schedule else step == 1

    def tfmot_arguments(self) -> dict[str, Any]:
        """This criterion as tfmot's wrapper arguments (tfmot's defaults where it has none)."""
        return {"block_size": (1, 1), "block_pooling_type": "AVG", "sparsity_m_by_n": None}

    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PruningCriterion:
        """Rebuild a criterion from :meth:`get_config`."""
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="prunekit")
class MagnitudeCriterion(PruningCriterion):
    """Unstructured magnitude pruning (tfmot's default): keep the largest ``|w|``.

    The threshold is the ``keep_count``-th largest ``|w|`` (:func:`prunekit.magnitude_mask`).

    Example:
        >>> mask, t = MagnitudeCriterion().compute_mask(ops.convert_to_tensor([3.0, -1.0, 2.0]),
        ...                                             0.5)
        >>> ops.convert_to_numpy(mask).tolist(), float(t)
        ([1.0, 0.0, 1.0], 2.0)
    """

    def scores(self, weight: Any, stats: Stats = None) -> Any:
        return ops.abs(weight)

    def compute_mask(self, weight: Any, sparsity: Any, stats: Stats = None) -> tuple[Any, Any]:
        return masks.magnitude_mask(weight, sparsity)


@keras.saving.register_keras_serializable(package="prunekit")
class BlockMagnitudeCriterion(PruningCriterion):
    """Block-sparse magnitude pruning of rank-2 weights (tfmot's ``block_size``).

    ``|w|`` is pooled over ``block_size`` blocks (``"AVG"`` or ``"MAX"``) and whole blocks are
    kept by pooled magnitude (:func:`prunekit.block_magnitude_mask`). The threshold is the
    ``keep_count``-th largest pooled value.

    Args:
        block_size: ``(height, width)`` of the blocks.
        pooling: ``"AVG"`` or ``"MAX"``.

    Example:
        >>> criterion = BlockMagnitudeCriterion((2, 2), "MAX")
        >>> mask, t = criterion.compute_mask(ops.convert_to_tensor(
        ...     [[.1, 0., .2, 0.], [0., -.1, 0., -.2], [.3, 0., .4, 0.], [0., -.3, 0., -.4]]), 0.5)
        >>> ops.convert_to_numpy(mask)[:, 0].tolist(), round(float(t), 6)
        ([0.0, 0.0, 1.0, 1.0], 0.3)
    """

    granularity = "block"

    def __init__(self, block_size: tuple[int, int] = (2, 2), pooling: str = "AVG") -> None:
        self.block_size = validate_block_args(block_size, pooling)
        self.pooling = pooling

    def compute_mask(self, weight: Any, sparsity: Any, stats: Stats = None) -> tuple[Any, Any]:
        return masks.block_magnitude_mask(weight, sparsity, self.block_size, self.pooling)

    def check_weight(self, shape: tuple[int, ...], where: str) -> None:
        if len(shape) != 2:
            raise ValueError(
                "Block Sparsity can only be used for layers which have 2-dimensional weights. "
                f"{where} has shape {tuple(shape)}. Received: block_size={self.block_size}"
            )

    def tfmot_arguments(self) -> dict[str, Any]:
        return {"block_size": self.block_size, "block_pooling_type": self.pooling,
                "sparsity_m_by_n": None}

    def get_config(self) -> dict[str, Any]:
        return {"block_size": list(self.block_size), "pooling": self.pooling}


@keras.saving.register_keras_serializable(package="prunekit")
class MByNCriterion(PruningCriterion):
    """Structured m-by-n sparsity (tfmot's ``sparsity_m_by_n``): ``m`` zeros in every ``n``.

    Groups run along the input dimension of rank-2 (Dense) and rank-4 (Conv2D) weights
    (:func:`prunekit.m_by_n_mask`). As in tfmot the mask is computed once, at the first training
    step, and the schedule is ignored (``follows_schedule = False``). The threshold is the
    **largest pruned magnitude** (0 when nothing is pruned): no zeroed weight was larger.
    tfmot stores the sentinel 999.0 instead (files saved by prunekit 0.1.0 do too).

    Args:
        m: Zeros per group, ``1 <= m < n``.
        n: Group size.

    Example:
        >>> w = ops.convert_to_tensor([[.74, .68], [-.89, -.45], [-1.68, 1.24], [.31, -.6]])
        >>> mask, t = MByNCriterion(2, 4).compute_mask(w, 0.0)
        >>> ops.convert_to_numpy(mask).astype(int).tolist(), round(float(t), 6)
        ([[0, 1], [1, 0], [1, 1], [0, 0]], 0.74)
    """

    granularity = "m_by_n"
    follows_schedule = False

    def __init__(self, m: int = 2, n: int = 4) -> None:
        self.m, self.n = validate_m_by_n((m, n))

    def compute_mask(self, weight: Any, sparsity: Any, stats: Stats = None) -> tuple[Any, Any]:
        mask = masks.m_by_n_mask(weight, self.m, self.n)
        pruned = ops.multiply(ops.abs(weight), ops.subtract(ops.cast(1, weight.dtype), mask))
        return mask, ops.cast(ops.max(pruned), weight.dtype)

    def check_weight(self, shape: tuple[int, ...], where: str) -> None:
        if len(shape) not in (2, 4):
            raise ValueError(
                f"weight tensor with shape: {tuple(shape)} is not supported: sparsity_m_by_n "
                f"needs rank-2 or rank-4 weights ({where}). "
                f"Received: sparsity_m_by_n={(self.m, self.n)}"
            )

    def tfmot_arguments(self) -> dict[str, Any]:
        return {"block_size": (1, 1), "block_pooling_type": "AVG",
                "sparsity_m_by_n": (self.m, self.n)}

    def get_config(self) -> dict[str, Any]:
        return {"m": self.m, "n": self.n}


def validate_block_args(block_size: Any, block_pooling_type: Any) -> tuple[int, int]:
    """Check tfmot's ``block_size`` and ``block_pooling_type``; return the block size as a tuple.

    Raises:
        ValueError: For a pooling type other than AVG/MAX or a block size that is not two
            positive integers.

    Example:
        >>> validate_block_args([2, 3], "MAX")
        (2, 3)
    """
    if block_pooling_type not in masks.POOLING_TYPES:
        raise ValueError(
            f"Unsupported pooling type '{block_pooling_type}'. Should be 'AVG' or 'MAX'. "
            f"Received: block_pooling_type={block_pooling_type!r}"
        )
    try:
        size = tuple(block_size)
    except TypeError:
        size = ()
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                 for v in size):
        raise ValueError(
            "block_size must be a tuple of 2 positive integers (height, width). "
            f"Received: block_size={block_size!r}"
        )
    return size


def validate_m_by_n(sparsity_m_by_n: Any) -> tuple[int, int] | None:
    """Normalise tfmot's ``sparsity_m_by_n`` to ``(m, n)`` with ``1 <= m < n``, or None.

    Raises:
        ValueError: If it is not two integers with ``1 <= m < n``.

    Example:
        >>> validate_m_by_n([2, 4])
        (2, 4)
    """
    if sparsity_m_by_n is None:
        return None
    try:
        values = tuple(sparsity_m_by_n)
    except TypeError:
        values = None
    if values is None or len(values) != 2:
        raise ValueError(
            "The sparsity_m_by_n argument must be a tuple/list of 2 integers. "
            f"Received: sparsity_m_by_n={sparsity_m_by_n!r}"
        )
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(
                "The sparsity_m_by_n argument must be a tuple/list of 2 integers. "
                f"Received: sparsity_m_by_n={sparsity_m_by_n!r}, including element {v!r} "
                f"of type {type(v)}"
            )
    m, n = values
    if not 1 <= m < n:
        raise ValueError(
            "sparsity_m_by_n=(m, n) needs 1 <= m < n (m zeros in every group of n). "
            f"Received: sparsity_m_by_n={values}"
        )
    return values


def resolve_criterion(
    criterion: PruningCriterion | dict[str, Any] | None = None,
    block_size: Any = (1, 1),
    block_pooling_type: Any = "AVG",
    sparsity_m_by_n: Any = None,
) -> PruningCriterion:
    """The criterion of a wrapper: ``criterion``, or the one tfmot's arguments describe.

    This is the one place where tfmot's ``block_size``, ``block_pooling_type`` and
    ``sparsity_m_by_n`` are validated and mapped (see the module docstring).

    Args:
        criterion: A :class:`PruningCriterion`, its serialized form
            (``keras.saving.serialize_keras_object``), or None to use tfmot's arguments.
        block_size: tfmot's ``block_size``.
        block_pooling_type: tfmot's ``block_pooling_type``.
        sparsity_m_by_n: tfmot's ``sparsity_m_by_n``.

    Returns:
        A :class:`PruningCriterion`.

    Raises:
        ValueError: For an invalid tfmot argument, for both ``block_size`` and
            ``sparsity_m_by_n``, for a ``criterion`` given with non-default tfmot arguments,
            or for a ``criterion`` that is not a criterion.

    Example:
        >>> resolve_criterion(block_size=(2, 2), block_pooling_type="MAX")
        BlockMagnitudeCriterion(block_size=[2, 2], pooling='MAX')
        >>> resolve_criterion(sparsity_m_by_n=(2, 4))
        MByNCriterion(m=2, n=4)
    """
    block_size = validate_block_args(block_size, block_pooling_type)
    m_by_n = validate_m_by_n(sparsity_m_by_n)
    if m_by_n and block_size != (1, 1):
        raise ValueError(
            "Use either block_size or sparsity_m_by_n, not both. "
            f"Received: block_size={block_size}, sparsity_m_by_n={m_by_n}"
        )
    if criterion is not None:
        given = {"block_size": block_size, "block_pooling_type": block_pooling_type,
                 "sparsity_m_by_n": m_by_n}
        defaults = PruningCriterion().tfmot_arguments()
        extra = {k: v for k, v in given.items() if v != defaults[k]}
        if extra:
            raise ValueError(
                "Give either criterion or tfmot's block_size/block_pooling_type/"
                "sparsity_m_by_n arguments, not both. Received: criterion="
                f"{criterion!r}, " + ", ".join(f"{k}={v!r}" for k, v in extra.items())
            )
        return _as_criterion(criterion)
    if m_by_n:
        return MByNCriterion(*m_by_n)
    if block_size != (1, 1):
        return BlockMagnitudeCriterion(block_size, block_pooling_type)
    return MagnitudeCriterion()


def _as_criterion(criterion: Any) -> PruningCriterion:
    if isinstance(criterion, dict):
        criterion = keras.saving.deserialize_keras_object(criterion)
    if not isinstance(criterion, PruningCriterion):
        raise ValueError(
            "criterion must be a prunekit.criteria.PruningCriterion (e.g. MagnitudeCriterion()) "
            f"or its serialized config. Received: criterion={criterion!r}"
        )
    return criterion
