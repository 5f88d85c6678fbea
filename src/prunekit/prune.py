"""``prune_low_magnitude`` and ``strip_pruning``: putting wrappers into models and taking them out.

The two entry points validate their arguments, then hand the work to the module for the kind
of object given: a layer or a list of layers is wrapped here; Sequential and Functional models
are cloned with wrapped layers (:mod:`prunekit.functional`); subclassed models are pruned in
place (:mod:`prunekit.subclassed`). Containers inside them -- RNNs, ``Bidirectional``,
``TimeDistributed``, custom blocks, subclassed sub-models -- are wrapped as a whole, with a mask
for each prunable weight of their parts. A model that cannot be pruned as asked is left
untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras

from prunekit import criteria, functional, global_pruning, registry, subclassed, walk
from prunekit.schedules import ConstantSparsity, PruningSchedule
from prunekit.wrapper import PruneLowMagnitude

_TYPE_ERROR = (
    "`prune_low_magnitude` can only prune an object of the following types: "
    "keras.models.Sequential, keras functional model, keras.layers.Layer, "
    "list of keras.layers.Layer. You passed an object of type: {name}."
)


def prune_low_magnitude(
    to_prune: Any,
    pruning_schedule: PruningSchedule | None = None,
    block_size: tuple[int, int] = (1, 1),
    block_pooling_type: str = "AVG",
    pruning_policy: Any = None,
    sparsity_m_by_n: tuple[int, int] | None = None,
    pruning_scope: str = "layer",
    skip_unsupported: bool = False,
    criterion: criteria.PruningCriterion | dict[str, Any] | None = None,
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
      compile it before training. Keras Operation nodes (``x + y`` on symbolic tensors) are kept as they
      are. :func:`prunekit.pruning_report` lists the layers left unpruned by
      ``skip_unsupported``, with the reasons.
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
            target on its own) or ``"global"``: one threshold on the criterion's scores across
            all pruned weights of the model (see :mod:`prunekit.global_pruning`).
        skip_unsupported: For models: leave layers prunekit cannot prune unwrapped, warn once
            and record them for :func:`prunekit.pruning_report`, instead of raising.
        criterion: Which weights to prune, a :class:`~prunekit.PruningCriterion` (or its
            serialized form); default: the one ``block_size``, ``block_pooling_type`` and
            ``sparsity_m_by_n`` describe (magnitude when they are left at their defaults).
            Giving both a criterion and non-default tfmot arguments is an error.
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
    criterion = criteria.resolve_criterion(criterion, block_size, block_pooling_type,
                                           sparsity_m_by_n)
    if pruning_schedule is None:
        pruning_schedule = ConstantSparsity(0.5, 0)
    if not isinstance(pruning_schedule, PruningSchedule):
        raise TypeError(
            "pruning_schedule must be a prunekit.PruningSchedule (e.g. ConstantSparsity, "
            f"PolynomialDecay). Received: {type(pruning_schedule).__name__}"
        )
    global_pruning.validate_pruning_scope(pruning_scope, criterion)
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
        "criterion": criterion,
        "pruning_scope": pruning_scope,
    }
    _check_already_pruned(to_prune, params)
    if isinstance(to_prune, list):
        return _prune_list(to_prune, params)
    if walk.is_graph_model(to_prune):
        return functional.prune_graph_model(to_prune, params, pruning_policy, skip_unsupported)
    if isinstance(to_prune, keras.Model):
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
    return {"pruning_schedule": wrapper.pruning_schedule, "criterion": wrapper.criterion,
            "pruning_scope": wrapper.pruning_scope}


def _check_already_pruned(to_prune: Any, params: dict[str, Any]) -> None:
    """Refuse to keep wrappers whose settings differ from those asked for (see the docs)."""
    if isinstance(to_prune, list):
        found = [x for x in to_prune if isinstance(x, PruneLowMagnitude)]
    elif isinstance(to_prune, keras.layers.Layer):
        found = list(walk.iter_wrappers(to_prune))
    else:
        return
    for wrapper in found:
        old = _settings(wrapper)
        changed = {k: v for k, v in params.items() if old[k] != v}
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
    for wrapper in walk.iter_wrappers(model):
        if wrapper.built:
            wrapper.apply_masks()
    if not walk.is_graph_model(model):
        return subclassed.strip_in_place(model)
    return functional.strip_graph_model(model)


@contextlib.contextmanager
def prune_scope() -> Iterator[None]:
    """tfmot's scope for loading pruned models; not needed with prunekit, kept for old code.

    Pruned models load with plain ``keras.saving.load_model`` (the wrapper class is registered
    with Keras when ``prunekit`` is imported). So that tfmot code
    (``with prune_scope(): load_model(...)``) keeps running, this opens a custom-object scope
    holding the wrapper class under its tfmot name, ``PruneLowMagnitude``.

    Example:
        >>> with prune_scope():
        ...     pass
    """
    with keras.saving.custom_object_scope({"PruneLowMagnitude": PruneLowMagnitude}):
        yield
