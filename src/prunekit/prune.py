"""``prune_low_magnitude`` and ``strip_pruning``: putting wrappers into models and taking them out.

Sequential and Functional models are cloned with ``keras.models.clone_model``; each layer of
the clone is a wrapper around the *original* layer object, so the pruned model shares its
weights with the model it came from (as in tfmot). Containers inside them -- RNNs,
``Bidirectional``, ``TimeDistributed``, custom blocks, subclassed sub-models -- are wrapped as a
whole, with a mask for each prunable weight of their parts. Subclassed models are pruned in
place (see :mod:`prunekit.subclassed`). Everything is validated before anything is cloned or
changed: a model that cannot be pruned as asked is left untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator
from typing import Any

import keras
from keras import tree
from keras.src.models.functional import Functional  # Not exported publicly.

from prunekit import global_pruning, registry
from prunekit.schedules import ConstantSparsity, PruningSchedule
from prunekit.wrapper import PruneLowMagnitude, validate_block_args, validate_m_by_n

_TYPE_ERROR = (
    "`prune_low_magnitude` can only prune an object of the following types: "
    "keras.models.Sequential, keras functional model, keras.layers.Layer, "
    "list of keras.layers.Layer. You passed an object of type: {name}."
)


@dataclasses.dataclass(frozen=True)
class SkippedLayer:
    """A layer ``prune_low_magnitude(..., skip_unsupported=True)`` left unpruned, and why.

    For a container (an RNN with a custom cell, a custom block), the layer named is the part
    at fault; the whole container is left unwrapped.

    Attributes:
        path: Where the layer sits in the model, e.g. ``"encoder/block_1/odd"``.
        class_name: The layer's class.
        reason: Why prunekit cannot prune it.

    Example:
        >>> SkippedLayer("odd", "Odd", "unknown layer").path
        'odd'
    """

    path: str
    class_name: str
    reason: str


def _is_graph_model(obj: Any) -> bool:
    return isinstance(obj, (keras.Sequential, Functional))


def graph_problems(model: keras.Model, policy: Any, path: str = "") -> dict[int, SkippedLayer]:
    """Every layer of a Sequential/Functional ``model`` (recursively) that cannot be wrapped.

    Returns:
        ``{id(layer): SkippedLayer}``; layers the policy excludes are not problems.

    Example:
        >>> graph_problems(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]), None)
        {}
    """
    problems = {}
    for layer in model.layers:
        where = f"{path}{layer.name}"
        if isinstance(layer, (PruneLowMagnitude, keras.layers.InputLayer)):
            continue
        if _is_graph_model(layer):
            problems.update(graph_problems(layer, policy, where + "/"))
        elif policy is None or policy.allow_pruning(layer):
            found = registry.find_unsupported(layer, where)
            if found is not None:  # Named after the culprit: a container's unsupported part.
                culprit, culprit_path, reason = found
                problems[id(layer)] = SkippedLayer(culprit_path, type(culprit).__name__, reason)
    return problems


def raise_or_warn(problems: list[SkippedLayer], skip_unsupported: bool) -> None:
    """Raise for unsupported layers, or warn once listing those that will be skipped."""
    if not problems:
        return
    listing = "; ".join(f"'{p.path}' ({p.class_name}): {p.reason}" for p in problems)
    if not skip_unsupported:
        first = problems[0]
        more = f" All unsupported: {listing}." if len(problems) > 1 else ""
        raise registry.unsupported_error(first.path, first.class_name, first.reason,
                                         f"{more} Nothing was changed.")
    warnings.warn(f"prune_low_magnitude left {len(problems)} unsupported layer(s) unpruned "
                  f"(see the model's `_prunekit_skipped`): {listing}", stacklevel=4)


def _prune_model(model: keras.Model, params: dict[str, Any], policy: Any,
                 skip: set[int] | frozenset[int] = frozenset()) -> keras.Model:
    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if _is_graph_model(layer):
            return _prune_model(layer, params, policy, skip)
        if isinstance(layer, (PruneLowMagnitude, keras.layers.InputLayer)) or id(layer) in skip:
            return layer
        if policy is not None and not policy.allow_pruning(layer):
            return layer
        return PruneLowMagnitude(layer, **params)

    return _clone(model, clone)


def _clone(model: keras.Model, clone_function: Any) -> keras.Model:
    """``clone_model`` as tfmot's: same input layer names, and never compiled.

    Keras names a clone's inputs after their tensors (``keras_tensor_3`` for an auto-named
    ``Input``), so Functional inputs are recreated from their layers' configs; and Keras
    compiles a clone of a compiled model with a fresh optimizer, while tfmot returns it
    uncompiled (the model must be compiled again), so ``compiled`` is hidden for the clone.
    """
    inputs = _same_inputs(model) if isinstance(model, Functional) and not isinstance(
        model, keras.Sequential) else None
    compiled = model.compiled
    # keras internal: clone_model compiles the clone when `model.compiled` is True.
    model.compiled = False  # Read by clone_model only; restored below.
    try:
        return keras.models.clone_model(model, clone_function=clone_function,
                                        input_tensors=inputs)
    finally:
        model.compiled = compiled


def _same_inputs(model: keras.Model) -> Any:
    """New ``Input`` tensors for ``model.input``, each from its ``InputLayer``'s config."""
    layers = {id(layer.output): layer for layer in model.layers
              if isinstance(layer, keras.layers.InputLayer)}

    def recreate(tensor: Any) -> Any:
        layer = layers.get(id(tensor))
        if layer is None:
            return keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor.name)
        return keras.layers.InputLayer.from_config(layer.get_config()).output

    return tree.map_structure(recreate, model.input)


def prune_graph_model(model: keras.Model, params: dict[str, Any], policy: Any,
                      skip_unsupported: bool) -> keras.Model:
    """Validate, then clone a Sequential/Functional model with wrapped layers.

    Example:
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> pruned = prune_graph_model(model, {}, None, False)
        >>> pruned._prunekit_skipped
        ()
    """
    if policy is not None:
        policy.ensure_model_supports_pruning(model)
    problems = graph_problems(model, policy)
    raise_or_warn(list(problems.values()), skip_unsupported)
    pruned = _prune_model(model, params, policy, set(problems))
    pruned._prunekit_skipped = tuple(problems.values())
    global_pruning.link_global_wrappers(iter_wrappers(pruned))
    return pruned


def prune_low_magnitude(
    to_prune: Any,
    pruning_schedule: PruningSchedule | None = None,
    block_size: tuple[int, int] = (1, 1),
    block_pooling_type: str = "AVG",
    pruning_policy: Any = None,
    sparsity_m_by_n: tuple[int, int] | None = None,
    pruning_scope: str = "layer",
    skip_unsupported: bool = False,
    **kwargs: Any,
) -> Any:
    """Wrap a layer, a list of layers or a model so that its weights are pruned in training.

    Weights are zeroed by magnitude, following ``pruning_schedule``; train with the
    :class:`~prunekit.UpdatePruningStep` callback, then call :func:`strip_pruning` to export.

    * A layer returns a ``PruneLowMagnitude`` wrapper (``kwargs`` go to the wrapper).
    * A list returns a list of wrappers (existing wrappers are kept). A layer listed twice
      gets one wrapper, returned at each of its positions.
    * A Sequential or Functional model returns a clone whose layers are wrapped (shared layers
      once, nested models recursively); it shares weights with ``to_prune``, has the same
      input names, and is **not compiled**, whether ``to_prune`` was or not (as in tfmot):
      compile it before training. ``pruned._prunekit_skipped`` lists the layers left unpruned
      by ``skip_unsupported`` (a tuple of :class:`SkippedLayer`).
    * A subclassed model (built) is pruned **in place** and returned: its layer attributes
      become wrappers (see :mod:`prunekit.subclassed` for why); it keeps its compilation.

    Already pruned layers (wrappers in a model or list, or a wrapper passed itself) are kept
    as they are when they were pruned with the settings asked for now (as in tfmot). With
    other settings -- say the model was pruned to 0.5 and now 0.9 is asked -- this raises
    instead of silently keeping the old schedule: strip the model with
    :func:`strip_pruning` first to prune it anew.

    Args:
        to_prune: Layer, list of layers, Sequential, Functional or (built) subclassed model.
        pruning_schedule: When and how much to prune; default ``ConstantSparsity(0.5, 0)``.
        block_size: ``(height, width)`` blocks pruned together, for rank-2 weights.
        block_pooling_type: ``"AVG"`` or ``"MAX"``.
        pruning_policy: A :class:`PruningPolicy` deciding which layers of a model to prune.
        sparsity_m_by_n: ``(m, n)`` structured sparsity, e.g. ``(2, 4)``.
        pruning_scope: ``"layer"`` (default, tfmot's rule: every weight tensor reaches the
            target on its own) or ``"global"``: one magnitude threshold across all pruned
            weights of the model (see :mod:`prunekit.global_pruning`).
        skip_unsupported: For models: leave layers prunekit cannot prune unwrapped, warn once
            and record them in ``_prunekit_skipped``, instead of raising.
        **kwargs: Extra wrapper arguments (single layers only), e.g. ``name``.

    Returns:
        The pruned layer, list or model.

    Raises:
        ValueError: For a bad argument, an unsupported layer (named with its path), a wrapper
            pruned with other settings, or an object that is not a layer or model -- before
            anything is modified.
        TypeError: For keyword arguments given with a model or a list (tfmot ignores them).

    Example:
        >>> model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(4),
        ...                           keras.layers.Dense(1)])
        >>> pruned = prune_low_magnitude(model, pruning_schedule=ConstantSparsity(0.5, 0))
        >>> [type(layer).__name__ for layer in pruned.layers]
        ['PruneLowMagnitude', 'PruneLowMagnitude']
    """
    validate_block_args(block_size, block_pooling_type)
    validate_m_by_n(sparsity_m_by_n)
    if pruning_schedule is None:
        pruning_schedule = ConstantSparsity(0.5, 0)
    if not isinstance(pruning_schedule, PruningSchedule):
        raise TypeError(
            "pruning_schedule must be a prunekit.PruningSchedule (e.g. ConstantSparsity, "
            f"PolynomialDecay). Received: {type(pruning_schedule).__name__}"
        )
    global_pruning.validate_pruning_scope(pruning_scope, block_size, sparsity_m_by_n)
    _validate_policy(pruning_policy)
    if kwargs and not (isinstance(to_prune, keras.layers.Layer)
                       and not isinstance(to_prune, keras.Model)):
        raise TypeError(
            "prune_low_magnitude takes extra keyword arguments for a single layer only (they "
            "go to its wrapper); for a model or a list they would be ignored. "
            f"Received: {', '.join(f'{k}={v!r}' for k, v in kwargs.items())} with "
            f"to_prune of type {type(to_prune).__name__}"
        )
    params = {
        "pruning_schedule": pruning_schedule,
        "block_size": tuple(block_size),
        "block_pooling_type": block_pooling_type,
        "sparsity_m_by_n": sparsity_m_by_n,
        "pruning_scope": pruning_scope,
    }
    _check_already_pruned(to_prune, params)
    if isinstance(to_prune, list):
        return _prune_list(to_prune, params)
    if _is_graph_model(to_prune):
        return prune_graph_model(to_prune, params, pruning_policy, skip_unsupported)
    if isinstance(to_prune, keras.Model):
        from prunekit import subclassed

        return subclassed.prune_in_place(to_prune, params, pruning_policy, skip_unsupported)
    if isinstance(to_prune, keras.layers.Layer):
        if isinstance(to_prune, PruneLowMagnitude):
            return to_prune
        return PruneLowMagnitude(to_prune, **params, **kwargs)
    raise ValueError(_TYPE_ERROR.format(name=type(to_prune).__name__))


def _validate_policy(policy: Any) -> None:
    if policy is None:
        return
    if not all(callable(getattr(policy, name, None))
               for name in ("allow_pruning", "ensure_model_supports_pruning")):
        raise ValueError(
            "pruning_policy must be None or a prunekit.PruningPolicy (an object with "
            "allow_pruning(layer) and ensure_model_supports_pruning(model)), e.g. "
            f"PruneForLatencyOnXNNPack(). Received: pruning_policy={policy!r}"
        )


def _settings(wrapper: PruneLowMagnitude) -> dict[str, Any]:
    return {"pruning_schedule": wrapper.pruning_schedule, "block_size": wrapper.block_size,
            "block_pooling_type": wrapper.block_pooling_type,
            "sparsity_m_by_n": wrapper.sparsity_m_by_n, "pruning_scope": wrapper.pruning_scope}


def _check_already_pruned(to_prune: Any, params: dict[str, Any]) -> None:
    """Refuse to keep wrappers whose settings differ from those asked for (see the docs)."""
    if isinstance(to_prune, list):
        found = [x for x in to_prune if isinstance(x, PruneLowMagnitude)]
    elif isinstance(to_prune, keras.layers.Layer):
        found = list(iter_wrappers(to_prune))
    else:
        return
    asked = dict(params, block_size=tuple(params["block_size"]),
                 sparsity_m_by_n=validate_m_by_n(params["sparsity_m_by_n"]))
    for wrapper in found:
        old = _settings(wrapper)
        changed = {k: v for k, v in asked.items() if old[k] != v}
        if changed:
            differences = ", ".join(f"{k}={old[k]!r} (asked {v!r})" for k, v in changed.items())
            raise ValueError(
                f"'{wrapper.name}' is already pruned with other settings: {differences}. "
                "prune_low_magnitude keeps existing wrappers as they are, so the new settings "
                "would be silently ignored; call prunekit.strip_pruning(model) first to prune "
                f"it anew. Received: to_prune containing '{wrapper.name}'. Nothing was changed."
            )


def _prune_list(layers: list[Any], params: dict[str, Any]) -> list[Any]:
    for i, layer in enumerate(layers):
        if not isinstance(layer, keras.layers.Layer) or isinstance(layer, keras.Model):
            raise ValueError(_TYPE_ERROR.format(name=f"list containing {type(layer).__name__} "
                                                     f"at index {i}"))
        if not isinstance(layer, (PruneLowMagnitude, keras.layers.InputLayer)):
            if not registry.is_supported(layer):
                raise registry.unsupported_layer_error(layer)
    wrapped = {id(x.layer): x for x in layers if isinstance(x, PruneLowMagnitude)}
    result = []
    for layer in layers:
        if isinstance(layer, keras.layers.InputLayer):
            layer = keras.layers.InputLayer.from_config(layer.get_config())
            result.append(layer)
        elif isinstance(layer, PruneLowMagnitude):
            result.append(layer)
        else:  # A layer listed twice (or with its wrapper) gets one wrapper.
            if id(layer) not in wrapped:
                wrapped[id(layer)] = PruneLowMagnitude(layer, **params)
            result.append(wrapped[id(layer)])
    return result


def iter_wrappers(model: Any) -> Iterator[PruneLowMagnitude]:
    """Yield every ``PruneLowMagnitude`` wrapper in ``model``, however deeply nested.

    Example:
        >>> pruned = prune_low_magnitude(keras.Sequential([keras.Input((3,)),
        ...                                                keras.layers.Dense(2)]))
        >>> len(list(iter_wrappers(pruned)))
        1
    """
    if isinstance(model, PruneLowMagnitude):
        yield model
    seen = set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, PruneLowMagnitude) and id(layer) not in seen:
            seen.add(id(layer))
            yield layer


def strip_pruning(model: keras.Model) -> keras.Model:
    """Return a plain Keras model without pruning wrappers, with exactly sparse weights.

    The mask is applied to every pruned weight first (``w <- w * mask``), so the result's
    pruned weights are exact zeros and its predictions equal the pruned model's. The result
    shares weight variables with ``model``. A subclassed model is stripped in place and
    returned (its wrappers are replaced by the layers they hold).

    Args:
        model: A pruned model, usually from :func:`prune_low_magnitude`.

    Returns:
        A model with the original architecture (same ``get_config()`` as the unpruned model).

    Raises:
        ValueError: If ``model`` is not a ``keras.Model``.

    Example:
        >>> base = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> stripped = strip_pruning(prune_low_magnitude(base))
        >>> [type(layer).__name__ for layer in stripped.layers]
        ['Dense']
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Expected model to be a `keras.Model` instance. "
            f"Received: an object of type {type(model).__name__}"
        )
    for wrapper in iter_wrappers(model):
        if wrapper.built:
            wrapper.apply_masks()
    if not _is_graph_model(model):
        from prunekit import subclassed

        return subclassed.strip_in_place(model)
    return _strip(model)


def _strip(model: keras.Model) -> keras.Model:
    def unwrap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, keras.Model) and _is_graph_model(layer):
            return _strip(layer)
        if isinstance(layer, PruneLowMagnitude):
            inner = layer.layer
            if getattr(layer, "_input_shape_arg", None) is not None:
                inner._input_shape_arg = layer._input_shape_arg
            return inner
        return layer

    return _clone(model, unwrap)


@contextlib.contextmanager
def prune_scope() -> Iterator[None]:
    """Compatibility no-op: pruned models load with plain ``keras.saving.load_model``.

    Kept so that tfmot code (``with prune_scope(): load_model(...)``) keeps running; it opens
    a custom-object scope holding the wrapper class.

    Example:
        >>> with prune_scope():
        ...     pass
    """
    with keras.saving.custom_object_scope({"PruneLowMagnitude": PruneLowMagnitude}):
        yield
