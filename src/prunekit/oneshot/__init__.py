"""One-shot pruning of trained models from calibration data: magnitude, Wanda, SparseGPT.

No retraining: each prunable layer's kernel gets exact zeros (unstructured or N:M) from a few
calibration batches, block by block (:mod:`prunekit.oneshot.runner`). Fine-tune afterwards with
:class:`KeepZerosCriterion` to keep the zeros where they are.

Example:
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
    >>> prune_oneshot(model, x, method="wanda", sparsity=0.5).layers[0].sparsity
    0.5
"""

from prunekit.oneshot.criteria import KeepZerosCriterion, WandaCriterion
from prunekit.oneshot.owl import owl_sparsity
from prunekit.oneshot.runner import (METHODS, LayerResult, OneShotReport, find_blocks,
                                     prune_matrix, prune_oneshot)
from prunekit.oneshot.sparsegpt import reconstruction_error, sparsegpt

__all__ = [
    "KeepZerosCriterion",
    "LayerResult",
    "METHODS",
    "OneShotReport",
    "WandaCriterion",
    "find_blocks",
    "owl_sparsity",
    "prune_matrix",
    "prune_oneshot",
    "reconstruction_error",
    "sparsegpt",
]
