"""One-shot criteria on the :mod:`prunekit.criteria` seam: Wanda and "keep the existing zeros".

Both work on a kernel seen as a ``(K, O)`` matrix (inputs by outputs, a Dense kernel's layout;
see :mod:`prunekit.oneshot.layers`).

* :class:`WandaCriterion` (Sun et al. 2023, "A Simple and Effective Pruning Approach for Large
  Language Models", arXiv 2306.11695): score ``|W_ij| * ||X_i||_2``, where ``||X_i||_2`` is the
  L2 norm of input feature ``i`` over all calibration tokens (``stats["input_norm"]``). Scores are
  compared within each output (each column here, each row of the paper's ``(out, in)`` layout):
  every output keeps the same number of inputs. With ``n_m=(n, m)`` every group of ``m``
  consecutive inputs of an output keeps its ``n`` best scores (:func:`prunekit.m_by_n_mask`).
* :class:`KeepZerosCriterion`: the mask is ``w != 0`` at the first training step and never
  changes, so ``prune_low_magnitude(model, criterion=KeepZerosCriterion())`` + ``fit`` fine-tunes
  a one-shot-pruned model without moving its zeros.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from prunekit import masks
from prunekit.criteria import PruningCriterion, Stats, validate_m_by_n


def pruned_per_output(inputs: int, sparsity: float) -> int:
    """Number of weights each output loses at ``sparsity``: ``round(inputs * sparsity)``.

    Example:
        >>> pruned_per_output(10, 0.5), pruned_per_output(7, 0.5)
        (5, 4)
    """
    return int(round(inputs * float(sparsity)))


def output_group_mask(scores: Any, sparsity: float) -> Any:
    """0/1 mask that zeroes the ``round(K * sparsity)`` lowest scores of every column.

    Ties go to the lower index (the earlier input is pruned first).

    Example:
        >>> s = ops.convert_to_tensor([[1.0, 4.0], [3.0, 2.0], [2.0, 3.0], [4.0, 1.0]])
        >>> ops.convert_to_numpy(output_group_mask(s, 0.5)).astype(int).T.tolist()
        [[0, 1, 0, 1], [1, 0, 1, 0]]
    """
    pruned = pruned_per_output(scores.shape[0], sparsity)
    rank = ops.argsort(ops.argsort(scores, axis=0), axis=0)  # 0 = lowest score of its column
    return ops.cast(ops.greater_equal(rank, pruned), "float32")


@keras.saving.register_keras_serializable(package="prunekit")
class WandaCriterion(PruningCriterion):
    """Wanda: keep the largest ``|W_ij| * ||X_i||_2`` of every output (see the module docstring).

    Args:
        n_m: Optional ``(n, m)``: keep ``n`` of every ``m`` consecutive inputs (2:4 is
            ``(2, 4)``); the sparsity argument of :meth:`compute_mask` is then ignored.

    Example:
        >>> w = ops.convert_to_tensor([[1.0, -2.0], [3.0, 1.0]])
        >>> mask, _ = WandaCriterion().compute_mask(
        ...     w, 0.5, stats={"input_norm": ops.convert_to_tensor([4.0, 1.0])})
        >>> ops.convert_to_numpy(mask).tolist()
        [[1.0, 1.0], [0.0, 0.0]]
    """

    def __init__(self, n_m: tuple[int, int] | list[int] | None = None) -> None:
        self.n_m = None if n_m is None else tuple(validate_n_m(n_m))
        self.granularity = "element" if self.n_m is None else "m_by_n"

    def scores(self, weight: Any, stats: Stats = None) -> Any:
        if not stats or "input_norm" not in stats:
            raise ValueError(
                "WandaCriterion needs calibration statistics: stats={'input_norm': ||X_i||_2 "
                f"per input}}. Received: stats={stats!r}")
        norm = ops.cast(ops.convert_to_tensor(stats["input_norm"]), weight.dtype)
        return ops.multiply(ops.abs(weight), ops.reshape(norm, (-1,) + (1,) * (weight.ndim - 1)))

    def compute_mask(self, weight: Any, sparsity: Any, stats: Stats = None) -> tuple[Any, Any]:
        scores = self.scores(weight, stats)
        if self.n_m is not None:
            n, m = self.n_m
            mask = masks.m_by_n_mask(scores, m - n, m)
        else:
            mask = output_group_mask(ops.reshape(scores, (scores.shape[0], -1)), float(sparsity))
            mask = ops.reshape(mask, weight.shape)
        mask = ops.cast(mask, weight.dtype)
        pruned = ops.multiply(scores, ops.subtract(ops.cast(1, weight.dtype), mask))
        return mask, ops.cast(ops.max(pruned), weight.dtype)

    def get_config(self) -> dict[str, Any]:
        return {"n_m": None if self.n_m is None else list(self.n_m)}


@keras.saving.register_keras_serializable(package="prunekit")
class KeepZerosCriterion(PruningCriterion):
    """Keep the zeros a weight has at the first training step; the mask never changes.

    For fine-tuning a one-shot-pruned model: the wrapper computes ``w != 0`` once (step 1,
    ``follows_schedule = False``, the schedule's sparsity is ignored) and trains the other
    weights. The threshold is 0.

    Example:
        >>> mask, t = KeepZerosCriterion().compute_mask(ops.convert_to_tensor([0.0, -1.0, 2.0]),
        ...                                             0.9)
        >>> ops.convert_to_numpy(mask).tolist(), float(t)
        ([0.0, 1.0, 1.0], 0.0)
    """

    follows_schedule = False

    def compute_mask(self, weight: Any, sparsity: Any, stats: Stats = None) -> tuple[Any, Any]:
        mask = ops.cast(ops.not_equal(weight, ops.cast(0, weight.dtype)), weight.dtype)
        return mask, ops.convert_to_tensor(0, weight.dtype)


def validate_n_m(n_m: Any) -> tuple[int, int]:
    """Check an N:M pattern ``(n, m)`` -- keep ``n`` of every ``m`` -- with ``1 <= n < m``.

    Raises:
        ValueError: If it is not two integers with ``1 <= n < m``.

    Example:
        >>> validate_n_m((2, 4))
        (2, 4)
    """
    try:
        n, m = validate_m_by_n(n_m)
    except ValueError:
        raise ValueError(
            "n_m must be two integers (n, m) with 1 <= n < m: keep n weights in every m "
            f"(2:4 is (2, 4)). Received: n_m={n_m!r}") from None
    return n, m
