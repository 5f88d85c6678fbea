"""The block-by-block runner: :func:`prune_oneshot` prunes a plain Keras model in place.

Blocks are the model's Transformer layers when it has them (a KerasHub task model's
``backbone.transformer_layers``, or a backbone's), else the whole model is one block. Block
``i`` runs on the outputs of the already pruned blocks ``0..i-1``; inside a block, layers are
pruned in the order they are called, each on inputs that come from the already pruned layers
before it (one ``X^T X`` at a time, :mod:`prunekit.oneshot.capture`); then the block's outputs
are computed for block ``i + 1``. Held at once: one block's inputs and outputs over the
calibration batches, one layer's ``X^T X`` (float64, K x K) and one layer's weights.

Assumption for chains of blocks: block ``i + 1`` is called on block ``i``'s (first) output with
the same other arguments (padding masks) as block 0 -- true of KerasHub's GPT-2, Gemma,
Llama and BERT backbones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from keras import ops

from prunekit.criteria import MagnitudeCriterion, MByNCriterion
from prunekit.oneshot import layers as layer_views
from prunekit.oneshot.capture import Gram, capture_call, capture_group
from prunekit.oneshot.criteria import WandaCriterion, validate_n_m
from prunekit.oneshot.sparsegpt import reconstruction_error, sparsegpt

METHODS = ("magnitude", "wanda", "sparsegpt")


@dataclass
class LayerResult:
    """One pruned layer: its path, kernel shape, sparsity reached, error and time."""

    path: str
    block: int
    shape: tuple[int, ...]
    sparsity: float
    error: float
    seconds: float


@dataclass
class OneShotReport:
    """What :func:`prune_oneshot` did: per-layer results and the layers left alone."""

    method: str
    target: str
    layers: list[LayerResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"method": self.method, "target": self.target, "seconds": self.seconds,
                "layers": [asdict(r) for r in self.layers], "skipped": dict(self.skipped)}


def find_blocks(model: Any) -> list[Any]:
    """The stack of blocks of ``model``: its (backbone's) ``transformer_layers``, else ``[model]``.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> find_blocks(model) == [model]
        True
    """
    for owner in (getattr(model, "backbone", None), model):
        stack = getattr(owner, "transformer_layers", None)
        if stack:
            return list(stack)
    return [model]


def validate_options(method: str, sparsity: float, n_m: Any, layer_sparsity: Any,
                     damp: float, block_size: int) -> tuple[int, int] | None:
    """Check :func:`prune_oneshot`'s options; return ``n_m`` normalised (or None).

    Raises:
        ValueError: For any bad option, with the value received.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}. Received: method={method!r}")
    if n_m is not None:
        n_m = validate_n_m(n_m)
        if layer_sparsity:
            raise ValueError("layer_sparsity applies to unstructured pruning, not to n_m. "
                             f"Received: n_m={n_m}, layer_sparsity={layer_sparsity!r}")
        if block_size % n_m[1]:
            raise ValueError(f"block_size must be a multiple of m for n_m=(n, m). "
                             f"Received: block_size={block_size}, n_m={n_m}")
    values = [sparsity] + list((layer_sparsity or {}).values())
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"Sparsities must be numbers in [0, 1). Received: sparsity={value!r}")
    if not 0 <= damp or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"damp must be >= 0 and block_size a positive integer. "
                         f"Received: damp={damp!r}, block_size={block_size!r}")
    return n_m


def as_batches(calibration: Any) -> list[Any]:
    """Calibration data as a list of batches (one array or dict is one batch)."""
    if isinstance(calibration, (np.ndarray, Mapping)) or hasattr(calibration, "shape"):
        return [calibration]
    batches = list(calibration)
    if not batches:
        raise ValueError("calibration holds no batch. Received: calibration=[]")
    return batches


def plan_layers(blocks: Sequence[Any]) -> tuple[list[list[Any]], dict[str, str]]:
    """Matrix views of each block's prunable layers, and ``{path: reason}`` for the others."""
    plan, skipped, seen = [], {}, set()
    for block in blocks:
        views = []
        for layer in layer_views.sublayers(block):
            if id(layer) in seen or not layer_views.is_candidate(layer):
                continue
            seen.add(id(layer))
            try:
                views.append(layer_views.matrix_view(layer))
            except NotImplementedError as reason:
                skipped[layer.path] = str(reason)
        plan.append(views)
    return plan, skipped


def _layer_sparsity(view: Any, sparsity: float, table: Mapping[str, float]) -> float:
    layer = view.layer
    return table.get(layer.path, table.get(layer.name, sparsity))


def _check_table(table: Mapping[str, float], plan: list[list[Any]]) -> None:
    known = {n for views in plan for v in views for n in (v.layer.path, v.layer.name)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"layer_sparsity names layers that are not pruned here: {unknown}; "
                         f"expected layer names or paths such as {sorted(known)[:3]}. "
                         f"Received: layer_sparsity={dict(table)!r}")


def prune_matrix(method: str, weight: np.ndarray, gram: Gram, sparsity: float,
                 n_m: tuple[int, int] | None, damp: float = 0.01,
                 block_size: int = 128) -> np.ndarray:
    """Prune one ``(K, O)`` weight matrix given its inputs' :class:`Gram`; return the new matrix.

    Magnitude and Wanda go through their criteria (:class:`prunekit.MagnitudeCriterion` /
    :class:`prunekit.MByNCriterion`, :class:`WandaCriterion`); SparseGPT also updates the
    remaining weights (:func:`prunekit.oneshot.sparsegpt.sparsegpt`).

    Example:
        >>> g = Gram.empty(4); g.add(np.eye(4, dtype=np.float32) * [1, 2, 3, 4])
        >>> prune_matrix("wanda", np.ones((4, 1)), g, 0.5, None)[:, 0].tolist()
        [0.0, 0.0, 1.0, 1.0]
    """
    if method == "sparsegpt":
        return sparsegpt(weight, gram.xtx, sparsity, n_m, block_size, damp)[0]
    w = ops.convert_to_tensor(weight.astype(np.float32))
    if method == "wanda":
        mask, _ = WandaCriterion(n_m).compute_mask(w, sparsity, {"input_norm": gram.input_norm})
    elif n_m is not None:
        mask = MByNCriterion(n_m[1] - n_m[0], n_m[1]).compute_mask(w, 0.0)[0]
    else:
        mask = MagnitudeCriterion().compute_mask(w, sparsity)[0]
    return weight * np.asarray(ops.convert_to_numpy(mask), np.float64)


def prune_oneshot(
    model: Any,
    calibration: Any,
    method: str = "wanda",
    sparsity: float = 0.5,
    n_m: tuple[int, int] | None = None,
    layer_sparsity: Mapping[str, float] | None = None,
    blocks: Sequence[Any] | None = None,
    damp: float = 0.01,
    block_size: int = 128,
    progress: Callable[[int, int, str], None] | None = None,
) -> OneShotReport:
    """Prune ``model``'s Dense, EinsumDense and Conv1D/2D kernels in place, from calibration data.

    Exact zeros are written into the kernels of the plain model; nothing is wrapped.

    Args:
        model: A built Keras model (Functional, Sequential, KerasHub task model or backbone).
        calibration: What ``model`` accepts (an array or a dict of arrays, one batch), or a list
            of such batches.
        method: ``"magnitude"``, ``"wanda"`` or ``"sparsegpt"``.
        sparsity: Fraction of zeros per layer (unstructured).
        n_m: ``(n, m)`` -- keep ``n`` of every ``m`` consecutive inputs (2:4, 4:8); replaces
            ``sparsity``.
        layer_sparsity: Per-layer sparsity by layer name or path (others use ``sparsity``).
        blocks: The chain of blocks; default :func:`find_blocks`.
        damp: SparseGPT's dampening, a fraction of the mean diagonal of ``X^T X``.
        block_size: SparseGPT's columns per block.
        progress: Called as ``progress(block_index, n_blocks, block_name)`` after each block.

    Returns:
        An :class:`OneShotReport` (per-layer sparsity, ``||XW - XW'|| / ||XW||``, seconds).

    Raises:
        ValueError: For a bad argument or empty calibration, before anything is modified.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
        >>> x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
        >>> report = prune_oneshot(model, x, "sparsegpt", n_m=(2, 4))
        >>> report.layers[0].sparsity
        0.5
    """
    n_m = validate_options(method, sparsity, n_m, layer_sparsity, damp, block_size)
    batches = as_batches(calibration)
    blocks = find_blocks(model) if blocks is None else list(blocks)
    plan, skipped = plan_layers(blocks)
    table = dict(layer_sparsity or {})
    _check_table(table, plan)
    target = f"{n_m[0]}:{n_m[1]}" if n_m else f"{sparsity:g}"
    report = OneShotReport(method, target, skipped=skipped)
    start = time.perf_counter()

    def prune(view: Any, gram: Gram, index: int) -> None:
        report.layers.append(_prune_layer(view, gram, index, method,
                                          _layer_sparsity(view, sparsity, table), n_m, damp,
                                          block_size))

    walk_blocks(model, batches, blocks, plan, prune, report.skipped, progress)
    report.seconds = time.perf_counter() - start
    return report


def walk_blocks(model: Any, batches: list[Any], blocks: list[Any], plan: list[list[Any]],
                visit: Callable[[Any, Gram, int], None], skipped: dict[str, str],
                progress: Callable[[int, int, str], None] | None = None) -> None:
    """Call ``visit(view, gram, block_index)`` for every planned layer, block by block.

    Each layer's :class:`Gram` comes from inputs computed with whatever ``visit`` did to the
    layers before it (pruning them, or nothing). Layers never called are added to ``skipped``.
    """
    if blocks == [model]:
        calls = [((b,), {}) for b in batches]
    else:
        calls = [capture_call(lambda b=b: model(b), blocks[0]) for b in batches]
    for index, (block, views) in enumerate(zip(blocks, plan)):
        pending = list(views)
        while pending:
            group, gram = capture_group(
                lambda i: block(*calls[i][0], **calls[i][1]), len(calls), pending)
            if not group:
                for view in pending:
                    skipped[view.layer.path] = "not called on the calibration data"
                break
            for view in group:
                pending.remove(view)
                visit(view, gram, index)
        if index + 1 < len(blocks):
            calls = [((_first(block(*a, **k)),) + tuple(a[1:]), k) for a, k in calls]
        if progress is not None:
            progress(index, len(blocks), block.name)


def _first(outputs: Any) -> Any:
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def _prune_layer(view: Any, gram: Gram, block: int, method: str, sparsity: float,
                 n_m: tuple[int, int] | None, damp: float, block_size: int) -> LayerResult:
    start = time.perf_counter()
    old = view.matrix()
    new = prune_matrix(method, old, gram, sparsity, n_m, damp, block_size)
    view.assign(new)
    error = reconstruction_error(old, new, gram.xtx)
    zeros = float(np.mean(new == 0))
    return LayerResult(view.layer.path, block, tuple(int(d) for d in view.kernel.shape),
                       zeros, error, time.perf_counter() - start)
