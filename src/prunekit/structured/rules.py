"""Per-layer-class rules: how channels flow through a layer and how the layer is rebuilt smaller.

A *channel map* describes the last axis of a tensor: one entry per position, the id of the
*atom* (one channel of some layer's output) it carries, or None for a position that cannot be
removed (a model input, an output of a layer the graph cannot follow). ``None`` instead of a
list means "opaque": nothing of that tensor can be removed.

A rule has two methods, used by :mod:`prunekit.structured.graph` and
:mod:`prunekit.structured.shrink`:

* ``trace(layer, ctx, inputs)`` gets the channel maps of the layer's inputs and returns the
  map of its output. Through ``ctx`` it declares the channels the layer *creates*
  (``ctx.space``), which weight axes carry which channels (``ctx.couple``; these axes are
  scored, zeroed and sliced), elementwise couplings (``ctx.union``) and channels that must stay
  (``ctx.fix``, with the reason).
* ``new_config(layer, config, kept)`` returns the layer's config with the smaller sizes
  (``kept`` maps a space kind -- ``"channels"``, ``"heads"`` -- to the number kept, and
  ``"input_width"`` to the new channel count of the first input). Weights
  are sliced along the coupled axes by the caller; the new layer infers its input sizes.

Custom layers register a rule with :func:`register_shrink_rule`. A layer without a rule is
left whole: its inputs' channels are fixed and its output is opaque.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import keras

from prunekit import _keras_compat, walk

Map = list  # list[int | None]; None for an opaque tensor


class TraceContext(Protocol):
    """What a rule may declare while the graph is traced (see the module docstring)."""

    node: Any

    def space(self, size: int, kind: str = "channels") -> list[int]: ...
    def couple(self, variable: Any, axis: int, atoms: Map, scored: bool = True) -> None: ...
    def union(self, maps: list[Map | None]) -> Map | None: ...
    def fix(self, channel_map: Map | None, reason: str) -> None: ...
    def width(self, tensor: Any) -> int: ...


class LayerRule:
    """Base rule: a layer that cannot be followed (inputs fixed, output opaque)."""

    reason = "no shrink rule for this layer class"

    def trace(self, layer: Any, ctx: TraceContext, inputs: list[Map | None]) -> Map | None:
        for channel_map in inputs:
            ctx.fix(channel_map, f"consumed by '{layer.name}' ({type(layer).__name__}): "
                                 f"{self.reason}")
        return None

    def new_config(self, layer: Any, config: dict[str, Any], kept: dict[str, int]
                   ) -> dict[str, Any]:
        return config


class Opaque(LayerRule):
    """A layer that mixes channels: its inputs stay whole (the reason is given)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class PassThrough(LayerRule):
    """Channel ``c`` in is channel ``c`` out (activations, dropout, pooling, padding...)."""

    def trace(self, layer, ctx, inputs):
        if len(inputs) != 1 or not _channels_last(layer):
            return super().trace(layer, ctx, inputs)
        return inputs[0]


class Elementwise(LayerRule):
    """Add, Subtract, Multiply, Average, Maximum, Minimum: channel ``c`` of every input is one."""

    def trace(self, layer, ctx, inputs):
        return ctx.union(inputs)


class Concatenate(LayerRule):
    """Concatenation: along the channel axis the maps are concatenated, otherwise united."""

    def trace(self, layer, ctx, inputs):
        rank = len(ctx.node.outputs[0].shape)
        axis = getattr(layer, "axis", -1)
        if axis not in (-1, rank - 1):
            return ctx.union(inputs)
        out = []
        for channel_map, tensor in zip(inputs, ctx.node.input_tensors):
            out.extend(channel_map if channel_map is not None else [None] * ctx.width(tensor))
        return out


class Flatten(LayerRule):
    """Flatten of a channels-last map: position ``p * C + c`` carries channel ``c``."""

    def trace(self, layer, ctx, inputs):
        if inputs[0] is None or not _channels_last(layer):
            return super().trace(layer, ctx, inputs) if inputs[0] is not None else None
        spatial = ctx.node.input_tensors[0].shape[1:-1]
        if any(d is None for d in spatial):
            return super().trace(layer, ctx, inputs)
        return list(inputs[0]) * math.prod(spatial)


class Reshape(LayerRule):
    """Reshape keeping the last axis passes channels; to one axis it flattens; else opaque."""

    reason = "Reshape mixes the channel axis with others"

    def trace(self, layer, ctx, inputs):
        before, after = ctx.node.input_tensors[0].shape, ctx.node.outputs[0].shape
        if inputs[0] is None:
            return None
        if before[-1] == after[-1] and before[-1] is not None:
            return inputs[0]
        if len(after) == 2:
            return Flatten().trace(layer, ctx, inputs)
        return super().trace(layer, ctx, inputs)

    def new_config(self, layer, config, kept):
        target = list(config["target_shape"])
        if len(target) == 1:
            return {**config, "target_shape": [-1]}  # A flatten: the size follows the input.
        if kept.get("input_width") and target[-1] not in (None, -1):
            target[-1] = kept["input_width"]
        return {**config, "target_shape": target}


class Dense(LayerRule):
    """Dense (and Conv*): kernel ``(..., in, out)``: input rows consume, output columns create."""

    size_key, in_axis, out_axis = "units", 0, 1

    def trace(self, layer, ctx, inputs):
        if not _channels_last(layer) or getattr(layer, "groups", 1) != 1:
            return LayerRule.trace(self, layer, ctx, inputs)
        if inputs[0] is not None:
            ctx.couple(layer.kernel, self.in_axis, inputs[0])
        out = ctx.space(getattr(layer, self.size_key))
        ctx.couple(layer.kernel, self.out_axis, out)
        if layer.use_bias:
            ctx.couple(layer.bias, 0, out)
        activation = getattr(getattr(layer, "activation", None), "__name__", "")
        if activation in ("softmax", "log_softmax"):
            ctx.fix(out, f"'{layer.name}' applies {activation} across its channels")
        return out

    def new_config(self, layer, config, kept):
        return {**config, self.size_key: kept["channels"]}


class Conv(Dense):
    """Conv1D/2D/3D: kernel ``(*kernel_size, in, filters)``."""

    size_key, in_axis, out_axis = "filters", -2, -1


class ConvTranspose(Dense):
    """Conv1D/2D/3DTranspose: kernel ``(*kernel_size, filters, in)``."""

    size_key, in_axis, out_axis = "filters", -1, -2


class Depthwise(LayerRule):
    """DepthwiseConv1D/2D: output channel ``c * m + j`` comes from input channel ``c``."""

    def trace(self, layer, ctx, inputs):
        if inputs[0] is None or not _channels_last(layer):
            return super().trace(layer, ctx, inputs) if inputs[0] is not None else None
        m = layer.depth_multiplier
        ctx.couple(layer.kernel, -2, inputs[0])
        out = [atom for atom in inputs[0] for _ in range(m)]
        if layer.use_bias:
            ctx.couple(layer.bias, 0, out)
        return out


class Separable(LayerRule):
    """SeparableConv1D/2D: depthwise kernel consumes, pointwise kernel creates ``filters``."""

    def trace(self, layer, ctx, inputs):
        if not _channels_last(layer):
            return super().trace(layer, ctx, inputs)
        if inputs[0] is not None:
            m = layer.depth_multiplier
            ctx.couple(layer.depthwise_kernel, -2, inputs[0])
            ctx.couple(layer.pointwise_kernel, -2, [a for a in inputs[0] for _ in range(m)])
        out = ctx.space(layer.filters)
        ctx.couple(layer.pointwise_kernel, -1, out)
        if layer.use_bias:
            ctx.couple(layer.bias, 0, out)
        return out

    def new_config(self, layer, config, kept):
        return {**config, "filters": kept["channels"]}


class BatchNormalization(LayerRule):
    """BatchNormalization over the last axis: gamma and beta scored, moving statistics sliced."""

    def trace(self, layer, ctx, inputs):
        rank = len(ctx.node.input_tensors[0].shape)
        if inputs[0] is None:
            return None
        if layer.axis not in (-1, rank - 1):
            return super().trace(layer, ctx, inputs)
        if layer.scale:
            ctx.couple(layer.gamma, 0, inputs[0])
        if layer.center:
            ctx.couple(layer.beta, 0, inputs[0])
        ctx.couple(layer.moving_mean, 0, inputs[0], scored=False)
        ctx.couple(layer.moving_variance, 0, inputs[0], scored=False)
        return inputs[0]


class Embedding(LayerRule):
    """Embedding: the columns of the table are its output channels."""

    def trace(self, layer, ctx, inputs):
        out = ctx.space(layer.output_dim)
        ctx.couple(layer.embeddings, 1, out)
        return out

    def new_config(self, layer, config, kept):
        return {**config, "output_dim": kept["channels"]}


class Recurrent(LayerRule):
    """SimpleRNN, GRU, LSTM: unit ``j`` is one column per gate, a recurrent row and column."""

    def __init__(self, gates: int) -> None:
        self.gates = gates

    def trace(self, layer, ctx, inputs):
        if getattr(layer, "return_state", False) or getattr(layer, "stateful", False):
            return super().trace(layer, ctx, inputs)
        cell = layer.cell
        if inputs[0] is not None:
            ctx.couple(cell.kernel, 0, inputs[0])
        out = ctx.space(cell.units)
        ctx.couple(cell.kernel, 1, out * self.gates)
        ctx.couple(cell.recurrent_kernel, 0, out)
        ctx.couple(cell.recurrent_kernel, 1, out * self.gates)
        if cell.use_bias:
            ctx.couple(cell.bias, len(cell.bias.shape) - 1, out * self.gates)
        return out

    def new_config(self, layer, config, kept):
        return {**config, "units": kept["channels"]}


class MultiHeadAttention(LayerRule):
    """MultiHeadAttention: whole heads (query/key/value kernels and the output kernel)."""

    def trace(self, layer, ctx, inputs):
        import inspect

        args = inspect.signature(layer.call).bind_partial(
            *ctx.node.arguments.args, **ctx.node.arguments.kwargs).arguments
        by_id = {id(t): m for t, m in zip(ctx.node.input_tensors, inputs)}
        query = by_id.get(id(args.get("query")))
        value = by_id.get(id(args.get("value")))
        key = by_id.get(id(args.get("key")), value) if args.get("key") is not None else value
        heads = ctx.space(layer.num_heads, "heads")
        for dense, source in ((layer.query_dense, query), (layer.key_dense, key),
                              (layer.value_dense, value)):
            if source is not None:
                ctx.couple(dense.kernel, 0, source)
            ctx.couple(dense.kernel, 1, heads)
            if dense.bias is not None:
                ctx.couple(dense.bias, 0, heads)
        ctx.couple(layer.output_dense.kernel, 0, heads)
        return None  # The output projection is left whole.

    def new_config(self, layer, config, kept):
        output_shape = config.get("output_shape") or layer.output_dense.kernel.shape[2:]
        return {**config, "num_heads": kept["heads"], "output_shape": list(output_shape)}


def _channels_last(layer: Any) -> bool:
    return getattr(layer, "data_format", "channels_last") in ("channels_last", None)


# ------------------------------------------------------------------------------ the table
_MIXES = "it normalizes over channels: removing one changes the others"
RULES: dict[type, LayerRule] = {}
# Operation nodes that are not layers (``ops.maximum(x, y)``, ``ops.concatenate``, ``ops.relu``
# on symbolic tensors), by class name: Keras does not export their classes. ``x + y``,
# ``x - y`` and ``x * y`` are matched by class (``_keras_compat.ELEMENTWISE_OPS``).
_OP_RULES: dict[str, LayerRule] = {}


def _register_builtins() -> None:
    L = keras.layers
    for name in ("Dense",):
        RULES[getattr(L, name)] = Dense()
    for name in ("Conv1D", "Conv2D", "Conv3D"):
        RULES[getattr(L, name)] = Conv()
    for name in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        RULES[getattr(L, name)] = ConvTranspose()
    for name in ("DepthwiseConv1D", "DepthwiseConv2D"):
        RULES[getattr(L, name)] = Depthwise()
    for name in ("SeparableConv1D", "SeparableConv2D"):
        RULES[getattr(L, name)] = Separable()
    RULES[L.BatchNormalization] = BatchNormalization()
    RULES[L.Embedding] = Embedding()
    RULES[L.SimpleRNN], RULES[L.GRU], RULES[L.LSTM] = Recurrent(1), Recurrent(3), Recurrent(4)
    RULES[L.MultiHeadAttention] = MultiHeadAttention()
    for name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
        RULES[getattr(L, name)] = Elementwise()
    RULES[L.Concatenate] = Concatenate()
    RULES[L.Flatten] = Flatten()
    RULES[L.Reshape] = Reshape()
    for name in ("LayerNormalization", "GroupNormalization", "UnitNormalization",
                 "Softmax", "Masking"):
        RULES[getattr(L, name)] = Opaque(_MIXES if "Normal" in name else
                                         "it combines all channels of a position")
    passing = ["ReLU", "LeakyReLU", "ELU", "Dropout", "GaussianNoise", "GaussianDropout",
               "AlphaDropout", "Identity", "ActivityRegularization"]
    for dims in ("1D", "2D", "3D"):
        passing += [f"{kind}{dims}" for kind in (
            "MaxPooling", "AveragePooling", "GlobalMaxPooling", "GlobalAveragePooling",
            "ZeroPadding", "Cropping", "UpSampling", "SpatialDropout")]
    for name in passing:
        if hasattr(L, name):
            RULES[getattr(L, name)] = PassThrough()
    RULES[L.Activation] = _ActivationRule()
    for name in ("Maximum", "Minimum"):
        _OP_RULES[name] = Elementwise()
    _OP_RULES["Concatenate"] = Concatenate()
    for name in ("Relu", "Relu6", "Sigmoid", "Tanh", "Gelu", "Silu", "Swish", "Elu", "Selu",
                 "Softplus", "LeakyRelu", "HardSigmoid", "HardSilu", "HardSwish", "Mish",
                 "Abs", "Absolute", "Negative", "Square", "Cast", "Clip"):
        _OP_RULES[name] = PassThrough()


class _ActivationRule(PassThrough):
    def trace(self, layer, ctx, inputs):
        name = getattr(layer.activation, "__name__", "")
        if name in ("softmax", "log_softmax"):
            return Opaque(f"{name} combines all channels of a position").trace(layer, ctx, inputs)
        return super().trace(layer, ctx, inputs)


_register_builtins()
_ELEMENTWISE = Elementwise()


def register_shrink_rule(layer_class: type, rule: LayerRule) -> None:
    """Tell the dependency graph how channels flow through ``layer_class`` and how to shrink it.

    Args:
        layer_class: A ``keras.layers.Layer`` subclass (matched exactly, not its subclasses).
        rule: A :class:`LayerRule` (e.g. ``PassThrough()`` for a layer that maps channel ``c``
            to channel ``c`` and has no per-channel weights).

    Raises:
        ValueError: If ``layer_class`` is not a Layer class or ``rule`` not a LayerRule.

    Example:
        >>> class Scale(keras.layers.Layer):
        ...     def call(self, x):
        ...         return 2.0 * x
        >>> register_shrink_rule(Scale, PassThrough())
        >>> type(rule_for(Scale())).__name__
        'PassThrough'
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise ValueError(f"layer_class must be a keras.layers.Layer subclass. "
                         f"Received: layer_class={layer_class!r}")
    if not isinstance(rule, LayerRule):
        raise ValueError(f"rule must be a prunekit.structured.LayerRule. Received: rule={rule!r}")
    RULES[layer_class] = rule


def rule_for(operation: Any) -> LayerRule:
    """The rule of a layer or ``keras.ops`` operation (the base rule when there is none)."""
    rule = RULES.get(type(operation))
    if rule is not None:
        return rule
    if walk.is_operation_node(operation):
        if isinstance(operation, _keras_compat.ELEMENTWISE_OPS):
            return _ELEMENTWISE
        return _OP_RULES.get(type(operation).__name__, LayerRule())
    return LayerRule()
