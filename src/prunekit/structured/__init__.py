"""Structured pruning: remove whole channels, units and heads, and make the model smaller.

Three parts kept apart (Torch-Pruning's design): :mod:`~prunekit.structured.graph` finds the
channels that must go together (dependency groups), :mod:`~prunekit.structured.importance`
scores them (criteria), :mod:`~prunekit.structured.rules` says per layer class how channels
flow and how the layer is rebuilt, and :mod:`~prunekit.structured.shrink` does the surgery.

Example:
    >>> import keras
    >>> from prunekit.structured import shrink
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16),
    ...                           keras.layers.Dense(2)])
    >>> small, report = shrink(model, sparsity=0.5, importance="l1")
    >>> small.count_params(), model.count_params()
    (90, 178)
"""

from prunekit.structured.cost import LayerChange, ShrinkReport, layer_macs
from prunekit.structured.graph import DependencyGraph, Group
from prunekit.structured.importance import (BatchNormScale, GroupCriterion, L1Importance,
                                            L2Importance, TaylorImportance, get_importance)
from prunekit.structured.latency import measure_latency
from prunekit.structured.pruning import StructuredPruning, prune_structured, select_units
from prunekit.structured.rules import (LayerRule, Opaque, PassThrough, register_shrink_rule)
from prunekit.structured.shrink import prune_groups, shrink

__all__ = [
    "BatchNormScale", "DependencyGraph", "Group", "GroupCriterion", "L1Importance",
    "L2Importance", "LayerChange", "LayerRule", "Opaque", "PassThrough", "ShrinkReport",
    "StructuredPruning", "TaylorImportance", "get_importance", "layer_macs", "measure_latency",
    "prune_groups", "prune_structured", "register_shrink_rule", "select_units", "shrink",
]
