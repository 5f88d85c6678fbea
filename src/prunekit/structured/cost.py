"""Parameters and multiply-accumulates (MACs) per layer, and the report of a shrink.

MACs count the multiplications of one example's forward pass in the layers that dominate it
(Dense, convolutions, recurrent layers, attention); elementwise layers count zero. Unknown
(None) sequence lengths count as 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import keras


def _prod(shape: Any) -> int:
    return math.prod(int(d) if d else 1 for d in shape)


def layer_macs(layer: Any, node: Any) -> int:
    """Multiply-accumulates of one call of ``layer`` (one example), from its node's shapes.

    Example:
        >>> i = keras.Input((5, 3))
        >>> layer = keras.layers.Dense(4)
        >>> _ = layer(i)
        >>> from prunekit._keras_compat import first_node
        >>> layer_macs(layer, first_node(layer))  # 5 positions * 3 * 4
        60
    """
    L = keras.layers
    inp, out = node.input_tensors[0].shape, node.outputs[0].shape
    if isinstance(layer, L.Dense):
        return _prod(out[1:-1]) * int(inp[-1]) * int(out[-1])
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        k = _prod(layer.kernel_size)
        mid = int(inp[-1]) * layer.depth_multiplier
        return _prod(out[1:-1]) * (k * mid + mid * int(out[-1]))
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        return _prod(out[1:-1]) * _prod(layer.kernel_size) * int(out[-1])
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        return _prod(inp[1:-1]) * _prod(layer.kernel_size) * int(inp[-1]) * int(out[-1])
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        per_group = int(inp[-1]) // getattr(layer, "groups", 1)
        return _prod(out[1:-1]) * _prod(layer.kernel_size) * per_group * int(out[-1])
    if isinstance(layer, (L.SimpleRNN, L.GRU, L.LSTM)):
        gates = {L.SimpleRNN: 1, L.GRU: 3, L.LSTM: 4}[type(layer)]
        units = layer.cell.units
        return _prod(inp[1:2]) * gates * units * (int(inp[-1]) + units)
    if isinstance(layer, L.MultiHeadAttention):
        q, k_kernel = layer.query_dense.kernel.shape, layer.key_dense.kernel.shape
        v, o = layer.value_dense.kernel.shape, layer.output_dense.kernel.shape
        tq = _prod(inp[1:-1])
        tv = _prod(node.input_tensors[1].shape[1:-1]) if len(node.input_tensors) > 1 else tq
        heads = q[1]
        return (tq * _prod(q) + tv * _prod(k_kernel) + tv * _prod(v)
                + heads * tq * tv * (q[2] + v[2]) + tq * _prod(o))
    return 0


@dataclass
class LayerChange:
    """One layer of a shrink: its units before/after, parameters and MACs."""

    name: str
    kind: str
    units_before: int | None
    units_after: int | None
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int


@dataclass
class ShrinkReport:
    """What :func:`prunekit.structured.shrink` removed, per layer, and what it left whole.

    ``left_whole`` lists ``(layer, reason)`` for layers the graph could not follow and for
    groups that stay whole (reaching a model output, feeding a LayerNormalization...).
    """

    layers: list[LayerChange] = field(default_factory=list)
    left_whole: list[tuple[str, str]] = field(default_factory=list)

    def total(self, key: str) -> int:
        """Sum of one column over all layers (e.g. ``"params_after"``)."""
        return sum(getattr(row, key) for row in self.layers)

    @property
    def params_ratio(self) -> float:
        """Parameters before / after."""
        return self.total("params_before") / max(1, self.total("params_after"))

    @property
    def macs_ratio(self) -> float:
        """MACs before / after."""
        return self.total("macs_before") / max(1, self.total("macs_after"))

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"layers": [vars(r) for r in self.layers],
                "left_whole": [list(x) for x in self.left_whole],
                "params_before": self.total("params_before"),
                "params_after": self.total("params_after"),
                "macs_before": self.total("macs_before"), "macs_after": self.total("macs_after")}

    def __str__(self) -> str:
        lines = [f"{'layer':<28} {'class':<20} {'units':>11} {'params':>21} {'MACs':>25}"]
        for r in self.layers:
            if r.units_before is None and r.params_before == r.params_after and not r.macs_before:
                continue
            units = "" if r.units_before is None else f"{r.units_before}->{r.units_after}"
            lines.append(f"{r.name[:28]:<28} {r.kind[:20]:<20} {units:>11} "
                         f"{r.params_before:>10}->{r.params_after:<10} "
                         f"{r.macs_before:>12}->{r.macs_after:<12}")
        lines.append(f"total: params {self.total('params_before')} -> "
                     f"{self.total('params_after')} ({self.params_ratio:.2f}x fewer), MACs "
                     f"{self.total('macs_before')} -> {self.total('macs_after')} "
                     f"({self.macs_ratio:.2f}x fewer)")
        for name, reason in self.left_whole:
            lines.append(f"left whole: {name}: {reason}")
        return "\n".join(lines)
