"""Global pruning: one threshold ranked across every pruned weight of a model.

With ``prune_low_magnitude(model, pruning_scope="global")`` the wrappers of a model keep the
``keep_count(N, s)`` highest scores among *all* their pruned weights together (``N`` weights in
total, the same tfmot keep-count rule as for one tensor), instead of that fraction of each
tensor. The scores are their criterion's (``|w|`` for the default
:class:`~prunekit.MagnitudeCriterion`): any criterion that scores single weights can be ranked
globally, like PyTorch's ``global_unstructured`` takes any pruning method; block and m-by-n
criteria, whose patterns are per tensor, are refused. Per-layer sparsities then differ --
layers with small weights lose more -- while the model-level sparsity meets the target. tfmot
has no such option.

Design:

* The global wrappers of a model form a :class:`GlobalPruningGroup`, a plain Python object (not
  tracked or saved by Keras). ``prune_low_magnitude`` and ``UpdatePruningStep.on_train_begin``
  build it, so a model restored by ``keras.saving.load_model`` is grouped again when training
  resumes. The scope itself (``pruning_scope="global"``) is in each wrapper's config.
* Every wrapper increments its own step and asks the shared schedule (all members must have
  equal schedules and equal criteria); at a mask-update step each wrapper computes the same
  global threshold from the current scores of all members -- deterministic and order-free:
  nothing depends on which wrapper runs first, and no state is passed between wrappers inside
  a traced step. Under JAX the trainer maps every model variable, so reading other wrappers'
  weights is traced state. The threshold is an exact selection of the k-th largest score
  (:func:`prunekit.masks.threshold_for_keep_count`, a bisection over float32 bit patterns, no
  sort), computed by each wrapper at mask-update steps only.

Example:
    >>> import keras, prunekit
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
    ...                           keras.layers.Dense(2)])
    >>> pruned = prunekit.prune_low_magnitude(model, pruning_scope="global")
    >>> len(group_of(pruned.layers[0]).wrappers)
    2
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from keras import ops

from prunekit import masks
from prunekit._backend import full_precision
from prunekit.criteria import PruningCriterion

SCOPES = ("layer", "global")


def validate_pruning_scope(scope: Any, criterion: PruningCriterion) -> str:
    """Check ``pruning_scope`` against the criterion; return it.

    Raises:
        ValueError: For a scope other than "layer" and "global", or for "global" with a
            criterion that does not score single weights.

    Example:
        >>> from prunekit.criteria import MagnitudeCriterion
        >>> validate_pruning_scope("global", MagnitudeCriterion())
        'global'
    """
    if scope not in SCOPES:
        raise ValueError(
            "pruning_scope must be 'layer' (each weight pruned to the target on its own) or "
            f"'global' (one threshold across the model). Received: pruning_scope={scope!r}"
        )
    if scope == "global" and not criterion.ranks_globally:
        raise ValueError(
            "pruning_scope='global' ranks single weights across the model and needs a "
            f"criterion that scores them (implements scores()); {type(criterion).__name__} "
            f"prunes by '{criterion.granularity}', a per-tensor pattern (as tfmot's block_size "
            "and sparsity_m_by_n are). "
            f"Received: criterion={criterion!r}"
        )
    return scope


class GlobalPruningGroup:
    """The wrappers of one model that share a global threshold on their criterion's scores.

    Args:
        wrappers: The ``PruneLowMagnitude`` wrappers with ``pruning_scope="global"``.

    Example:
        >>> GlobalPruningGroup([]).wrappers
        ()
    """

    def __init__(self, wrappers: Iterable[Any]) -> None:
        self.wrappers = tuple(wrappers)

    def weights(self) -> list[Any]:
        """Every pruned weight of the group, each once, in wrapper order."""
        seen: dict[int, Any] = {}
        for wrapper in self.wrappers:
            for weight in wrapper.prunable_weights:
                seen.setdefault(id(weight), weight)
        return list(seen.values())

    def _scores(self, weight: Any) -> Any:
        """The shared criterion's float32 scores of ``weight`` (its stored values)."""
        return ops.cast(self.wrappers[0].criterion.scores(full_precision(weight)), "float32")

    def threshold(self, sparsity: Any) -> Any:
        """The ``keep_count(N, sparsity)``-th largest score over all N pruned weights.

        Returns:
            A scalar float32 tensor (traceable: run inside the wrappers' ``call``).
        """
        weights = self.weights()
        scores = ops.concatenate([ops.reshape(self._scores(w), (-1,)) for w in weights])
        size = sum(math.prod(w.shape) for w in weights)
        return masks.threshold_for_keep_count(scores, masks.keep_count(size, sparsity))

    def masks_for(self, weights: list[Any], sparsity: Any) -> list[tuple[Any, Any]]:
        """``(mask, threshold)`` for some of the group's weights, at the global threshold."""
        threshold = self.threshold(sparsity)
        result = []
        for weight in weights:
            mask = ops.cast(ops.greater_equal(self._scores(weight), threshold), weight.dtype)
            result.append((mask, ops.cast(threshold, weight.dtype)))
        return result


def _require_shared(members: list[Any], attribute: str, ranking: str, plural: str) -> None:
    """Raise unless every global wrapper has the same ``attribute`` (compared by repr)."""
    if len({repr(getattr(w, attribute)) for w in members}) > 1:
        raise ValueError(
            f"Global pruning ranks all weights {ranking}, but the wrappers with "
            f"pruning_scope='global' have different {plural}: "
            + "; ".join(f"'{w.name}': {getattr(w, attribute)!r}" for w in members)
            + f". Give them the same {attribute}."
        )


def link_global_wrappers(wrappers: Iterable[Any]) -> GlobalPruningGroup | None:
    """Group the wrappers whose scope is ``"global"``; return the group (None if there are none).

    Raises:
        ValueError: If the global wrappers do not share one schedule and one criterion.

    Example:
        >>> link_global_wrappers([]) is None
        True
    """
    members = [w for w in wrappers if getattr(w, "pruning_scope", "layer") == "global"]
    if not members:
        return None
    _require_shared(members, "pruning_schedule", "against one schedule", "schedules")
    _require_shared(members, "criterion", "by one criterion's scores", "criteria")
    group = GlobalPruningGroup(members)
    for wrapper in members:
        wrapper._global_group = group
    return group


def group_of(wrapper: Any) -> GlobalPruningGroup:
    """The group of a global wrapper.

    Raises:
        RuntimeError: If the wrapper was never grouped with the rest of its model.

    Example:
        >>> import keras, prunekit
        >>> model = prunekit.prune_low_magnitude(
        ...     keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]),
        ...     pruning_scope="global")
        >>> group_of(model.layers[0]).wrappers[0] is model.layers[0]
        True
    """
    group = getattr(wrapper, "_global_group", None)
    if group is None:
        raise RuntimeError(
            f"Wrapper '{wrapper.name}' prunes with pruning_scope='global' but does not know the "
            "other wrappers of its model. Train with the `UpdatePruningStep` callback (its "
            "on_train_begin groups them; call it by hand in a custom loop), or call "
            "`prunekit.global_pruning.link_global_wrappers(prunekit.iter_wrappers(model))`."
        )
    return group
