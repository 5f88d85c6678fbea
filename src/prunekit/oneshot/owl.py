"""Outlier-weighted layer sparsity (OWL): more zeros where a block has fewer outliers.

Yin et al. 2024, "Outlier Weighed Layerwise Sparsity (OWL)" (arXiv 2310.05175). On the dense
model, each block's outlier ratio ``D`` is the fraction of its Wanda scores ``|W_ij| ||X_i||_2``
(all its layers together) above ``threshold`` times their mean (the paper's ``M``, 5 by default).
The ratios are rescaled linearly to ``[0, 2 * lam]``, centred on the target density
``1 - sparsity``, and each block's layers get ``sparsity_b = 1 - (that density)``: the mean over
blocks stays at the target and blocks differ by at most ``2 * lam``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from prunekit.oneshot.capture import Gram
from prunekit.oneshot.runner import as_batches, find_blocks, plan_layers, walk_blocks


def owl_ratios(outlier_ratios: Sequence[float], sparsity: float, lam: float) -> list[float]:
    """Per-block sparsities from per-block outlier ratios (see the module docstring).

    Example:
        >>> owl_ratios([0.01, 0.03, 0.02], 0.5, 0.1)
        [0.6, 0.4, 0.5]
    """
    d = np.asarray(outlier_ratios, np.float64)
    span = d.max() - d.min()
    scaled = (d - d.min()) / span * 2 * lam if span > 0 else np.zeros_like(d)
    density = scaled - scaled.mean() + (1.0 - sparsity)
    return [round(float(s), 10) for s in np.clip(1.0 - density, 0.0, 0.99)]


def owl_sparsity(model: Any, calibration: Any, sparsity: float = 0.7, threshold: float = 5.0,
                 lam: float = 0.08, blocks: Sequence[Any] | None = None) -> dict[str, float]:
    """OWL's per-layer sparsities for ``model``, for ``prune_oneshot(layer_sparsity=...)``.

    Runs the dense model block by block on ``calibration`` (nothing is modified).

    Args:
        model: The model (see :func:`prunekit.oneshot.prune_oneshot`).
        calibration: Calibration batches.
        sparsity: The mean target sparsity.
        threshold: A score is an outlier above ``threshold`` times its block's mean score.
        lam: Half the largest difference between blocks' sparsities.
        blocks: The chain of blocks; default :func:`prunekit.oneshot.find_blocks`.

    Returns:
        ``{layer path: sparsity}`` for every prunable layer.

    Example:
        >>> import keras
        >>> model = keras.Sequential(name="seq", layers=[keras.Input((8,)),
        ...                                              keras.layers.Dense(4, name="d")])
        >>> x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
        >>> owl_sparsity(model, x, 0.5)  # one block: the target itself
        {'seq/d': 0.5}
    """
    blocks = find_blocks(model) if blocks is None else list(blocks)
    plan, skipped = plan_layers(blocks)
    ratios = np.zeros(len(blocks))
    scores: list[np.ndarray] = []
    paths: list[tuple[str, int]] = []

    def close_block() -> None:
        if scores:
            flat = np.concatenate(scores)
            ratios[paths[-1][1]] = np.mean(flat > threshold * flat.mean())
            scores.clear()

    def measure(view: Any, gram: Gram, index: int) -> None:
        if paths and paths[-1][1] != index:
            close_block()
        scores.append((np.abs(view.matrix()) * gram.input_norm[:, None]).ravel())
        paths.append((view.layer.path, index))

    walk_blocks(model, as_batches(calibration), blocks, plan, measure, skipped)
    close_block()
    per_block = owl_ratios(ratios, sparsity, lam)
    return {path: per_block[index] for path, index in paths}
