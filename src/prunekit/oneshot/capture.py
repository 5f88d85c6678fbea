"""Calibration capture: run a block and collect ``X^T X`` of one layer's inputs at a time.

A layer's ``call`` is temporarily replaced on the instance by a hook that accumulates the
layer's input rows (:mod:`prunekit.oneshot.layers`) into ``X^T X`` (float64) and then calls the
original. Only the *first* pending layer reached in the block is captured, together with the
pending layers called on the very same input tensor with the same row layout (attention's query,
key and value share one ``X^T X``); the forward pass is then cut short, so a block is run only as
far as needed. Memory: one ``(K, K)`` matrix, whatever the number of calibration batches.

:func:`capture_call` records the arguments a block is called with (the first block's inputs),
also cutting the model's forward pass short.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prunekit import _keras_compat
from prunekit.oneshot.layers import MatrixView


class _Stop(Exception):
    """Raised by a hook to end a forward pass once what is needed was seen."""


@dataclass
class Gram:
    """``X^T X`` of a layer's inputs over the calibration rows seen so far."""

    xtx: np.ndarray
    rows: int = 0

    @classmethod
    def empty(cls, size: int) -> Gram:
        return cls(np.zeros((size, size), np.float64))

    def add(self, rows: np.ndarray) -> None:
        self.xtx += (rows.T @ rows).astype(np.float64)
        self.rows += len(rows)

    @property
    def input_norm(self) -> np.ndarray:
        """``||X_i||_2`` of every input feature (Wanda's statistic)."""
        return np.sqrt(np.maximum(np.diag(self.xtx), 0.0))


def _hooked(layer: Any, hook: Callable[..., Any]) -> Any:
    """While open, ``layer``'s calls go through ``hook(original_call)``."""
    return _keras_compat.replaced_call(layer, hook(layer.call))


@dataclass
class _Group:
    views: list[MatrixView] = field(default_factory=list)
    gram: Gram | None = None
    last_input: Any = None
    closed: bool = False  # True once the first batch fixed the group


def capture_group(run: Callable[[int], Any], batches: int,
                  pending: Sequence[MatrixView]) -> tuple[list[MatrixView], Gram | None]:
    """Capture the first pending layer(s) reached by ``run(batch_index)``.

    Args:
        run: Runs the block (or model) on calibration batch ``i``.
        batches: Number of calibration batches.
        pending: Views of the layers still to prune, in any order.

    Returns:
        The captured views (sharing one input) and their :class:`Gram`; ``([], None)`` if no
        pending layer is called at all.
    """
    group = _Group()

    def hook_for(view: MatrixView) -> Callable[..., Any]:
        def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
            def hooked(inputs: Any, *args: Any, **kwargs: Any) -> Any:
                _record(group, view, inputs)
                return original(inputs, *args, **kwargs)
            return hooked
        return wrap

    with contextlib.ExitStack() as stack:
        for view in pending:
            stack.enter_context(_hooked(view.layer, hook_for(view)))
        for i in range(batches):
            group.last_input = None
            with contextlib.suppress(_Stop):
                run(i)
            group.closed = bool(group.views)
    return group.views, group.gram


def _record(group: _Group, view: MatrixView, inputs: Any) -> None:
    if any(v is view for v in group.views):
        if inputs is not group.last_input:  # a shared layer called again on new inputs
            group.gram.add(view.rows(inputs))
            group.last_input = inputs
        return
    joins = (not group.closed and group.views and inputs is group.last_input
             and view.key == group.views[0].key)
    if group.views and not joins:
        raise _Stop
    if not group.views:
        rows = view.rows(inputs)
        group.gram = Gram.empty(rows.shape[1])
        group.views.append(view)
        group.gram.add(rows)
        group.last_input = inputs
    else:
        group.views.append(view)


def capture_call(run: Callable[[], Any], layer: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The positional and keyword arguments ``layer`` is first called with by ``run()``.

    Raises:
        ValueError: If ``run()`` never calls ``layer``.
    """
    seen: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def hooked(*args: Any, **kwargs: Any) -> Any:
            seen.append((args, kwargs))
            raise _Stop
        return hooked

    with _hooked(layer, wrap), contextlib.suppress(_Stop):
        run()
    if not seen:
        raise ValueError(f"The model never calls block '{layer.name}' on the calibration data. "
                         f"Received: block={layer.name!r}")
    return seen[0]
