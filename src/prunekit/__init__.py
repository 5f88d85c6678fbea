"""prunekit: magnitude pruning and real compression for Keras 3 (JAX, TensorFlow, PyTorch).

The API follows ``tfmot.sparsity.keras``, so ``import prunekit as tfmot`` keeps tfmot code
running: ``tfmot.sparsity.keras.prune_low_magnitude(...)`` and ``prunekit.prune_low_magnitude``
are the same function.

Example:
    >>> import keras, prunekit
    >>> model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    >>> pruned = prunekit.prune_low_magnitude(model, prunekit.ConstantSparsity(0.5, 0))
"""

from prunekit.auto.report import AutoPruneReport
from prunekit.auto.run import auto_prune
from prunekit.callbacks import PruningSummaries, UpdatePruningStep
from prunekit.criteria import (BlockMagnitudeCriterion, MagnitudeCriterion, MByNCriterion,
                               PruningCriterion)
from prunekit.masks import block_magnitude_mask, keep_count, m_by_n_mask, magnitude_mask
from prunekit.policy import PruneForLatencyOnXNNPack, PruningPolicy
from prunekit.prune import prune_low_magnitude, prune_scope, strip_pruning
from prunekit.registry import PrunableLayer, register_prunable
from prunekit.summary import PruningReport, SkippedLayer, pruning_report, pruning_summary
from prunekit.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule
from prunekit.walk import iter_wrappers
from prunekit.wrapper import MissingCallbackError, PruneLowMagnitude

from prunekit import sparsity  # noqa: E402  (tfmot-style namespace: prunekit.sparsity.keras)

from prunekit._version import __version__  # noqa: E402

__all__ = [
    "AutoPruneReport",
    "BlockMagnitudeCriterion",
    "ConstantSparsity",
    "MByNCriterion",
    "MagnitudeCriterion",
    "MissingCallbackError",
    "PolynomialDecay",
    "PrunableLayer",
    "PruneForLatencyOnXNNPack",
    "PruneLowMagnitude",
    "PruningCriterion",
    "PruningPolicy",
    "PruningReport",
    "PruningSchedule",
    "PruningSummaries",
    "SkippedLayer",
    "UpdatePruningStep",
    "auto_prune",
    "block_magnitude_mask",
    "iter_wrappers",
    "keep_count",
    "m_by_n_mask",
    "magnitude_mask",
    "prune_low_magnitude",
    "prune_scope",
    "pruning_report",
    "pruning_summary",
    "register_prunable",
    "sparsity",
    "strip_pruning",
]
