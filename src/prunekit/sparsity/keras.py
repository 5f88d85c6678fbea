"""``tfmot.sparsity.keras``'s public names, so ``import prunekit as tfmot`` keeps code running.

Example:
    >>> import prunekit as tfmot
    >>> schedule = tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0)
"""

from prunekit.callbacks import PruningSummaries, UpdatePruningStep
from prunekit.policy import PruneForLatencyOnXNNPack, PruningPolicy
from prunekit.prune import prune_low_magnitude, prune_scope, strip_pruning
from prunekit.registry import PrunableLayer
from prunekit.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule

__all__ = [
    "ConstantSparsity",
    "PolynomialDecay",
    "PrunableLayer",
    "PruneForLatencyOnXNNPack",
    "PruningPolicy",
    "PruningSchedule",
    "PruningSummaries",
    "UpdatePruningStep",
    "prune_low_magnitude",
    "prune_scope",
    "strip_pruning",
]
