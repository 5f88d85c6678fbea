"""Global magnitude pruning: one threshold ranked across every pruned weight of a model.

With ``prune_low_magnitude(model, pruning_scope="global")`` the wrappers of a model keep the
``keep_count(N, s)`` largest ``|w|`` among *all* their pruned weights together (``N`` weights in
total, the same tfmot keep-count rule as for one tensor), instead of that fraction of each
tensor. Per-layer sparsities then differ -- layers with small weights lose more -- while the
model-level sparsity meets the target. Like PyTorch's ``global_unstructured``; tfmot has no
such option.

Design:

* The global wrappers of a model form a :class:`GlobalPruningGroup`, a plain Python object (not
  tracked or saved by Keras). ``prune_low_magnitude`` and ``UpdatePruningStep.on_train_begin``
  build it, so a model restored by ``keras.saving.load_model`` is grouped again when training
  resumes. The scope itself (``pruning_scope="global"``) is in each wrapper's config.
* Every wrapper increments its own step and asks the shared schedule (all members must have
  equal schedules); at a mask-update step each wrapper computes the same global threshold from
  the current ``|w|`` of all members -- deterministic and order-free: nothing depends on which
  wrapper runs first, and no state is passed between wrappers inside a traced step. Under JAX
  the trainer maps every model variable, so reading other wrappers' weights is traced state.
  The cost is one sort of all pruned weights per wrapper, only at mask-update steps.
* Only unstructured pruning is global: block and m-by-n masks are per tensor by nature.

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

SCOPES = ("layer", "global")


def validate_pruning_scope(scope: Any, block_size: tuple[int, int],
                           sparsity_m_by_n: tuple[int, int] | None) -> str:
    """Check ``pruning_scope`` against the mask kind; return it.

    Example:
        >>> validate_pruning_scope("global", (1, 1), None)
        'global'
    """
    if scope not in SCOPES:
        raise ValueError(
            "pruning_scope must be 'layer' (each weight pruned to the target on its own) or "
            f"'global' (one threshold across the model). Received: pruning_scope={scope!r}"
        )
    if scope == "global" and (tuple(block_size) != (1, 1) or sparsity_m_by_n):
        raise ValueError(
            "pruning_scope='global' ranks single weights across the model; it cannot be "
            "combined with block_size or sparsity_m_by_n, which are per-tensor patterns. "
            f"Received: block_size={tuple(block_size)}, sparsity_m_by_n={sparsity_m_by_n}"
        )
    return scope


class GlobalPruningGroup:
    """The wrappers of one model that share a global magnitude threshold.

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

    def threshold(self, sparsity: Any) -> Any:
        """The ``keep_count(N, sparsity)``-th largest ``|w|`` over all N pruned weights.

        Returns:
            A scalar float32 tensor (traceable: run inside the wrappers' ``call``).
        """
        weights = self.weights()
        scores = ops.concatenate([
            ops.reshape(ops.abs(ops.cast(full_precision(w), "float32")), (-1,))
            for w in weights])
        size = sum(math.prod(w.shape) for w in weights)
        return masks.threshold_for_keep_count(scores, masks.keep_count(size, sparsity))

    def masks_for(self, weights: list[Any], sparsity: Any) -> list[tuple[Any, Any]]:
        """``(mask, threshold)`` for some of the group's weights, at the global threshold."""
        threshold = self.threshold(sparsity)
        result = []
        for weight in weights:
            magnitude = ops.abs(ops.cast(full_precision(weight), "float32"))
            mask = ops.cast(ops.greater_equal(magnitude, threshold), weight.dtype)
            result.append((mask, ops.cast(threshold, weight.dtype)))
        return result


def link_global_wrappers(wrappers: Iterable[Any]) -> GlobalPruningGroup | None:
    """Group the wrappers whose scope is ``"global"``; return the group (None if there are none).

    Raises:
        ValueError: If the global wrappers do not share one schedule.

    Example:
        >>> link_global_wrappers([]) is None
        True
    """
    members = [w for w in wrappers if getattr(w, "pruning_scope", "layer") == "global"]
    if not members:
        return None
    schedules = {repr(w.pruning_schedule) for w in members}
    if len(schedules) > 1:
        raise ValueError(
            "Global pruning ranks all weights against one schedule, but the wrappers with "
            "pruning_scope='global' have different schedules: "
            + "; ".join(f"'{w.name}': {w.pruning_schedule!r}" for w in members)
            + ". Give them the same pruning_schedule."
        )
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
