"""One traversal of models: pruning wrappers, graph nodes, nested layers and attributes.

Everything in prunekit that looks inside a model walks it through this module:

* :func:`iter_wrappers` -- every ``PruneLowMagnitude`` wrapper, however deeply nested
  (callbacks, export, the study, the summary);
* :func:`iter_layers` -- ``(path, layer)`` for every layer, entering nested models and custom
  blocks (the summary and the report);
* :func:`all_layers` -- every layer at any depth, built-in layers' parts included (one-shot
  pruning, which prunes attention's projections inside ``MultiHeadAttention``);
* :func:`attribute_children` -- the layers a layer holds in its attributes, with the attribute
  path to each (in-place pruning of subclassed models);
* :func:`producers` / :func:`consumers` -- neighbours in a Functional graph, where Keras
  Operation nodes (``x + y``, ``ops.concatenate`` on symbolic tensors: not layers) are nodes
  like any other (model-level policies).

In a Functional graph, an Operation node that is not a layer (see :func:`is_operation_node`)
has no weights: every walk passes through it, and cloning keeps it as it is.

Example:
    >>> import keras
    >>> inputs = keras.Input((4,), name="x")
    >>> hidden = keras.layers.Dense(4, name="hidden")(inputs)
    >>> model = keras.Model(inputs, keras.layers.Dense(1, name="out")(hidden + inputs))
    >>> [path for path, _ in iter_layers(model)]
    ['x', 'hidden', 'out']
    >>> [type(op).__name__ for op in producers(model.get_layer("out"))]
    ['Add']
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import keras

from prunekit import _keras_compat, registry
from prunekit.wrapper import PruneLowMagnitude

Step = tuple[str, Any]  # ("attr", name) | ("item", index) | ("key", key)

is_graph_model = _keras_compat.is_graph_model


def is_operation_node(node: Any) -> bool:
    """Whether ``node`` is a Keras Operation in a graph that is not a layer (e.g. ``x + y``).

    Example:
        >>> x = keras.Input((2,))
        >>> model = keras.Model(x, keras.layers.Dense(2)(x + x))
        >>> [is_operation_node(node) for node in model.operations]
        [False, True, False]
    """
    return isinstance(node, keras.Operation) and not isinstance(node, keras.layers.Layer)


def unwrap(layer: Any) -> Any:
    """The layer a pruning wrapper holds; any other layer or operation itself.

    Example:
        >>> dense = keras.layers.Dense(2)
        >>> unwrap(PruneLowMagnitude(dense)) is dense
        True
    """
    return layer.layer if isinstance(layer, PruneLowMagnitude) else layer


def iter_wrappers(model: Any) -> Iterator[PruneLowMagnitude]:
    """Yield every ``PruneLowMagnitude`` wrapper in ``model``, however deeply nested.

    Args:
        model: A model or layer (a wrapper yields itself).

    Yields:
        Each wrapper once, in Keras's layer order.

    Example:
        >>> import prunekit
        >>> pruned = prunekit.prune_low_magnitude(keras.Sequential([keras.Input((3,)),
        ...                                                         keras.layers.Dense(2)]))
        >>> len(list(iter_wrappers(pruned)))
        1
    """
    if isinstance(model, PruneLowMagnitude):
        yield model
    seen = set()
    for layer in _keras_compat.all_sub_layers(model):
        if isinstance(layer, PruneLowMagnitude) and id(layer) not in seen:
            seen.add(id(layer))
            yield layer


def has_wrappers(model: Any) -> bool:
    """Whether ``model`` holds at least one pruning wrapper.

    Example:
        >>> has_wrappers(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
        False
    """
    return any(True for _ in iter_wrappers(model))


def iter_layers(layer: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(path, layer)`` for every layer inside ``layer``, depth first.

    Paths join layer names with ``/``. The walk enters nested models and custom blocks (layers
    made of sub-layers), not pruning wrappers or built-in containers (an ``LSTM``'s cell).

    Example:
        >>> inner = keras.Sequential([keras.Input((3,), name="x"),
        ...                           keras.layers.Dense(2, name="d")], name="inner")
        >>> outer = keras.Sequential([keras.Input((3,), name="y"), inner])
        >>> [path for path, _ in iter_layers(outer)]
        ['y', 'inner', 'inner/x', 'inner/d']
    """
    for child in _keras_compat.direct_sub_layers(layer):
        path = f"{prefix}{child.name}"
        yield path, child
        if not isinstance(child, PruneLowMagnitude) and registry.is_custom_container(child):
            yield from iter_layers(child, path + "/")


def all_layers(layer: Any, include_self: bool = False) -> list[Any]:
    """Every layer inside ``layer`` at any depth, each once, in Keras's order.

    Unlike :func:`iter_layers`, this enters every layer, built-in ones included: the query,
    key and value ``EinsumDense`` layers of a ``MultiHeadAttention`` are listed.

    Args:
        layer: A model or layer.
        include_self: List ``layer`` itself first.

    Example:
        >>> attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=2, name="mha")
        >>> _ = attention(keras.Input((3, 4)), keras.Input((3, 4)))
        >>> [sub.name for sub in all_layers(attention, include_self=True)][:4]
        ['mha', 'query', 'key', 'value']
    """
    nested = _keras_compat.all_sub_layers(layer)
    return [layer, *(sub for sub in nested if sub is not layer)] if include_self else nested


# ------------------------------------------------------------------- attributes (subclassed)
@functools.cache
def _internal_names() -> frozenset[str]:
    """Attribute names Keras (and torch.nn.Module) give every layer and model."""
    return frozenset(dir(keras.Model())) | frozenset(dir(keras.layers.Layer()))


def _find_layers(value: Any, steps: tuple[Step, ...]) -> Iterator[tuple[tuple[Step, ...], Any]]:
    if isinstance(value, keras.layers.Layer):
        yield steps, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _find_layers(item, steps + (("item", i),))
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield from _find_layers(item, steps + (("key", key),))


def attribute_children(layer: Any) -> Iterator[tuple[tuple[Step, ...], Any]]:
    """The sub-layers held by ``layer``'s own attributes, with the steps to each.

    Attributes, and list/tuple/dict attributes at any depth, are searched; Keras's own
    attributes are not.

    Example:
        >>> class Block(keras.layers.Layer):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.parts = [keras.layers.Dense(2)]
        >>> [describe(steps) for steps, _ in attribute_children(Block())]
        ['parts[0]']
    """
    attributes = dict(vars(layer))
    attributes.update(_keras_compat.torch_sub_modules(layer))
    for name, value in attributes.items():
        if name not in _internal_names():
            yield from _find_layers(value, (("attr", name),))


def describe(steps: tuple[Step, ...] | list[Any]) -> str:
    """A readable attribute path: ``encoder.blocks[0].dense``.

    Example:
        >>> describe((("attr", "blocks"), ("item", 0), ("attr", "dense")))
        'blocks[0].dense'
    """
    text = ""
    for kind, key in steps:
        text += f".{key}" if kind == "attr" else f'["{key}"]' if kind == "key" else f"[{key}]"
    return text.lstrip(".")


# ------------------------------------------------------------------------- graph neighbours
def _unique(nodes: Any) -> list[Any]:
    return list({id(node): node for node in nodes}.values())


def producers(node: Any) -> list[Any]:
    """The layers and operations feeding ``node`` (a layer, wrapper or operation), unwrapped.

    A layer shared by several graphs (a pruned clone reuses the original's layers) has a node
    in each; they have the same topology, so each neighbour is listed once.

    Example:
        >>> x = keras.Input((2,))
        >>> dense = keras.layers.Dense(2)
        >>> _ = dense(x + x)
        >>> [type(op).__name__ for op in producers(dense)]
        ['Add']
    """
    return _unique(unwrap(op) for op in _keras_compat.producers(unwrap(node)))


def consumers(node: Any) -> list[Any]:
    """The layers and operations consuming ``node``'s outputs, unwrapped.

    A nested Sequential model is entered at its first layer.

    Example:
        >>> x = keras.Input((2,))
        >>> dense = keras.layers.Dense(2)
        >>> _ = dense(x) * 2.0
        >>> [type(op).__name__ for op in consumers(dense)]
        ['Multiply']
    """
    def first(op: Any) -> Any:
        return first(op.layers[0]) if isinstance(op, keras.Sequential) else unwrap(op)

    return _unique(first(op) for op in _keras_compat.consumers(unwrap(node)))


def input_operations(model: keras.Model) -> list[Any]:
    """The operations (input layers) at a built graph model's inputs."""
    return _unique(_keras_compat.producing_operation(t) for t in model.inputs)


def output_operations(model: keras.Model) -> list[Any]:
    """The layers and operations producing a built graph model's outputs, unwrapped."""
    return _unique(unwrap(_keras_compat.producing_operation(t)) for t in model.outputs)
