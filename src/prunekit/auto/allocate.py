"""Per-layer sparsities that remove the most weights for a predicted drop: greedy on the scan.

The scan gives, for every unit ``i`` and ladder sparsity ``s``, the drop ``d_i(s)`` with only
that unit pruned (made non-decreasing in ``s``: ``d_i(s) = max over s' <= s``, clipped at 0).
Drops are assumed to add up across units, the working assumption of sensitivity-based
allocation (the sum is only a prediction: every allocation tried is fine-tuned and measured).

The greedy **path** starts with every unit dense; each step moves one unit up to a higher
sparsity of the ladder, choosing the move with the fewest predicted drop per weight removed,
``(d_i(s') - d_i(s)) / (n_i (s' - s))`` (ties: the move removing more weights). The path ends
with every unit at the top of the ladder. Along it the weights removed grow at every step, so a
budget picks a point on it (:func:`budget_index`) and backing off means stepping back along it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from prunekit.auto.scan import ScanResult


@dataclasses.dataclass(frozen=True)
class PathPoint:
    """One allocation on the greedy path.

    Attributes:
        sparsities: Target sparsity of every unit, by name.
        predicted_drop: Sum of the units' one-shot drops at these sparsities.
        removed: Weights removed (sum of ``n_i s_i``), over the prunable weights.
        moved: The unit moved to reach this point (``None`` for the dense start).
    """

    sparsities: dict[str, float]
    predicted_drop: float
    removed: int
    moved: str | None = None


def monotone_drops(drops: list[float]) -> np.ndarray:
    """Drops made non-decreasing and non-negative (a running maximum, from 0).

    Example:
        >>> monotone_drops([0.01, -0.02, 0.05, 0.03]).tolist()
        [0.01, 0.01, 0.05, 0.05]
    """
    return np.maximum.accumulate(np.maximum(np.asarray(drops, dtype="float64"), 0.0))


def greedy_path(scan: ScanResult) -> list[PathPoint]:
    """The greedy path from all-dense to every unit at the top of the ladder.

    Args:
        scan: The sensitivity scan.

    Returns:
        The points of the path, the dense start first.

    Example:
        >>> from prunekit.auto.scan import LayerCurve
        >>> scan = ScanResult("mse", 1.0, [0.5, 0.9], [
        ...     LayerCurve("fragile", 100, [0.5, 0.9], [0, 0], [0.2, 0.9]),
        ...     LayerCurve("robust", 100, [0.5, 0.9], [0, 0], [0.0, 0.01])])
        >>> for p in greedy_path(scan):
        ...     print(p.moved, p.sparsities["robust"], p.sparsities["fragile"])
        None 0.0 0.0
        robust 0.5 0.0
        robust 0.9 0.0
        fragile 0.9 0.5
        fragile 0.9 0.9
    """
    ladder = [0.0, *scan.ladder]
    curves = {c.name: (c.params, np.concatenate([[0.0], monotone_drops(c.drops)]))
              for c in scan.layers}
    level = {name: 0 for name in curves}
    path = [_point(level, ladder, curves, None)]
    while True:
        best, best_key = None, None
        for name, (params, drops) in curves.items():
            for rung in range(level[name] + 1, len(ladder)):
                gained = params * (ladder[rung] - ladder[level[name]])
                cost = drops[rung] - drops[level[name]]
                key = (cost / max(gained, 1e-12), -gained)
                if best_key is None or key < best_key:
                    best, best_key = (name, rung), key
        if best is None:
            return path
        level[best[0]] = best[1]
        path.append(_point(level, ladder, curves, best[0]))


def _point(level: dict[str, int], ladder: list[float], curves: dict[str, Any],
           moved: str | None) -> PathPoint:
    sparsities = {name: ladder[rung] for name, rung in sorted(level.items())}
    drop = float(sum(curves[name][1][rung] for name, rung in level.items()))
    removed = int(round(sum(curves[name][0] * ladder[rung] for name, rung in level.items())))
    return PathPoint(sparsities, round(drop, 12), removed, moved)


def budget_index(path: list[PathPoint], max_drop: float) -> int:
    """Index of the last point of ``path`` whose predicted drop is within ``max_drop``.

    Example:
        >>> budget_index([PathPoint({}, 0.0, 0), PathPoint({}, 0.01, 5), PathPoint({}, 0.3, 9)],
        ...              0.02)
        1
    """
    within = [i for i, point in enumerate(path) if point.predicted_drop <= max_drop]
    return within[-1] if within else 0


def uniform_point(scan: ScanResult, sparsity: float) -> PathPoint:
    """Every unit at ``sparsity`` (a fixed ``--sparsity`` target), its predicted drop from the
    scan where ``sparsity`` is on the ladder (else ``nan``).

    Example:
        >>> from prunekit.auto.scan import LayerCurve
        >>> scan = ScanResult("mse", 1.0, [0.5], [LayerCurve("a", 10, [0.5], [1.1], [0.1])])
        >>> uniform_point(scan, 0.5)
        PathPoint(sparsities={'a': 0.5}, predicted_drop=0.1, removed=5, moved=None)
    """
    drops = [c.drops[c.sparsities.index(sparsity)] if sparsity in c.sparsities else np.nan
             for c in scan.layers]
    removed = int(round(sum(c.params * sparsity for c in scan.layers)))
    return PathPoint({c.name: float(sparsity) for c in scan.layers},
                     float(np.sum(np.maximum(drops, 0.0))), removed)


def scaled_point(point: PathPoint, factor: float) -> PathPoint:
    """``point`` with every sparsity times ``factor`` (a back-off below the ladder).

    The predicted drop is unknown there (``nan``); the weights removed scale with it.

    Example:
        >>> scaled_point(PathPoint({"a": 0.3}, 0.1, 30), 0.5)
        PathPoint(sparsities={'a': 0.15}, predicted_drop=nan, removed=15, moved=None)
    """
    return PathPoint({name: round(s * factor, 6) for name, s in point.sparsities.items()},
                     float("nan"), int(round(point.removed * factor)))
