"""Pruning subclassed models in place, in a form ``keras.saving.load_model`` restores.

**Why in place.** A subclassed model is Python code: its ``call`` uses the layers its
``__init__`` stored as attributes. Keras cannot rebuild it around other layers the way
``clone_model`` rebuilds a graph, and a copy (``from_config`` plus copied weights) would not
share variables, would double memory and would fail for models without ``get_config``. The
only way the model's own ``call`` runs pruned is to replace those attributes -- as
``keras.Model.quantize()`` also works in place. So ``prune_low_magnitude(model)`` returns the
same object, now pruned; the wrappers hold the original layers (variables are shared). Compile
it again before training. ``strip_pruning`` undoes it, also in place.

**What is replaced**, in attributes and in list/tuple/dict attributes, at any depth:

* a layer with prunable weights (``Dense``, ``Conv*``, ``LSTM``, ``MultiHeadAttention``, a
  ``PrunableLayer``, a registered class...) -> a ``PruneLowMagnitude`` wrapper around it;
* a Sequential or Functional block -> its pruned clone (``prune_low_magnitude(block)``); a
  block of a *subclass* of Functional (e.g. a KerasHub backbone) is wrapped as a whole
  instead, so that it keeps its class, methods and saved layout;
* a custom layer or subclassed sub-model made of sub-layers -> its attributes, recursively;
* layers without (prunable) weights are left alone; anything else is unsupported: an error
  naming its attribute path and both fixes, or, with ``skip_unsupported``, left alone.

Everything is validated before anything is replaced. The model must be built. Its ``call``
should take ``training`` and pass it on to its layers (Keras's trainers give ``training=True``
only to models that declare it, and the JAX trainer calls ``call`` directly): a wrapper that
never sees ``training=True`` never prunes; ``UpdatePruningStep`` warns about such wrappers.

**Saving.** The pruned model's class becomes a subclass of its own class (``isinstance`` and
methods unchanged) whose ``get_config`` stores the original model's serialization plus each
replacement's serialization and attribute paths, registered as ``prunekit>PrunedModel``.
``keras.saving.load_model`` rebuilds the original model from its own config, puts the
deserialized wrappers and pruned blocks back at their paths, then loads all weights -- masks
and steps included. The model class must be serializable as for any saved subclassed model
(registered, with ``get_config``).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import keras

from prunekit import _keras_compat, functional, global_pruning, registry, summary, walk
from prunekit.summary import SkippedLayer
from prunekit.walk import Step, attribute_children, describe
from prunekit.wrapper import PruneLowMagnitude

_REGISTERED_PACKAGE, _REGISTERED_NAME = "prunekit", "PrunedModel"


@dataclasses.dataclass
class _Change:
    """One layer to replace, everywhere it is referenced (shared layers are wrapped once)."""

    old: Any
    kind: str  # "wrap" | "clone"
    slots: list[tuple[Any, tuple[Step, ...], tuple[Step, ...]]]  # (owner, from owner, full)
    skip: frozenset[int] = frozenset()
    new: Any = None


@dataclasses.dataclass
class _Plan:
    changes: dict[int, _Change] = dataclasses.field(default_factory=dict)
    problems: list[SkippedLayer] = dataclasses.field(default_factory=list)
    visited: set[int] = dataclasses.field(default_factory=set)


def _plan(owner: Any, prefix: tuple[Step, ...], policy: Any, plan: _Plan) -> None:
    for steps, child in attribute_children(owner):
        full = prefix + steps
        if id(child) in plan.changes:
            plan.changes[id(child)].slots.append((owner, steps, full))
            continue
        if id(child) in plan.visited or isinstance(child, PruneLowMagnitude):
            continue
        plan.visited.add(id(child))
        where = describe(full)
        if _keras_compat.is_plain_graph_model(child):  # Its own subclasses are wrapped.
            if walk.has_wrappers(child):
                continue  # Already pruned.
            problems = functional.graph_problems(child, policy, where + "/")
            plan.problems.extend(problems.values())
            plan.changes[id(child)] = _Change(child, "clone", [(owner, steps, full)],
                                              frozenset(problems))
        elif registry.is_pass_through(child):
            continue
        elif (registry.is_custom_container(child) and not walk.is_graph_model(child)
              and not registry.own_weight_names(child)):
            _plan(child, full, policy, plan)
        elif policy is not None and not policy.allow_pruning(child):
            continue
        elif registry.find_unsupported(child, where) is None:
            plan.changes[id(child)] = _Change(child, "wrap", [(owner, steps, full)])
        elif child.built and not child.variables:
            continue  # Nothing to prune in a layer without weights.
        else:
            culprit, path, reason = registry.find_unsupported(child, where)
            plan.problems.append(SkippedLayer(path, type(culprit).__name__, reason))


def _set_in(value: Any, steps: tuple[Step, ...], new: Any) -> Any:
    """Put ``new`` at ``steps`` inside a list/tuple/dict ``value``; return the container."""
    (_, key), rest = steps[0], steps[1:]
    replaced = _set_in(value[key], rest, new) if rest else new
    if isinstance(value, tuple):
        return type(value)(replaced if i == key else v for i, v in enumerate(value))
    value[key] = replaced  # A list or dict (Keras's tracked versions track nothing here).
    return value


def _replace(owner: Any, steps: tuple[Step, ...], old: Any, new: Any) -> None:
    """Replace ``old`` by ``new`` at ``steps`` of ``owner``, keeping Keras's tracking right."""
    _keras_compat.replace_tracked_layer(owner, old, new)
    (_, name), rest = steps[0], steps[1:]
    value = _set_in(getattr(owner, name), rest, new) if rest else new
    if not rest or value is not getattr(owner, name):
        setattr(owner, name, value)


def _make(change: _Change, params: dict[str, Any], policy: Any) -> Any:
    if change.kind == "clone":
        return functional.clone_pruned(change.old, params, policy, change.skip)
    wrapper = PruneLowMagnitude(change.old, **params)
    if change.old.built:
        wrapper.build(None)  # The inner layer is built: create masks now, not while tracing.
    return wrapper


@dataclasses.dataclass
class _Record:
    """What in-place pruning replaced: ``[(full paths, replacement)]``; not tracked by Keras."""

    replacements: list[tuple[list[tuple[Step, ...]], Any]]
    skipped: tuple[SkippedLayer, ...]


def prune_in_place(model: keras.Model, params: dict[str, Any], policy: Any,
                   skip_unsupported: bool) -> keras.Model:
    """Prune a built subclassed model in place (see the module docstring); return it.

    Example:
        >>> class Net(keras.Model):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.dense = keras.layers.Dense(2)
        ...     def call(self, x, training=None):
        ...         return self.dense(x, training=training)
        >>> net = Net()
        >>> _ = net(keras.ops.ones((1, 3)))
        >>> type(prune_in_place(net, {}, None, False).dense).__name__
        'PruneLowMagnitude'
    """
    if policy is not None:
        policy.ensure_model_supports_pruning(model)
    if not _keras_compat.call_has_training_arg(model):
        warnings.warn(
            f"{type(model).__name__}.call() has no `training` argument: Keras's `fit` then "
            "runs the model's layers as in inference and the pruning wrappers never update. "
            "Add `training=None` to call() and pass `training=training` to the layers it "
            "calls (the JAX backend needs it passed explicitly).", stacklevel=3)
    if not model.built:
        raise ValueError(
            f"Cannot prune the subclassed model '{model.name}' before it is built: prunekit "
            "checks every weight before changing anything. Call it on a batch of data or "
            "`model.build(input_shape)` first. Received: an unbuilt "
            f"{type(model).__name__}")
    plan = _Plan(visited={id(model)})
    _plan(model, (), policy, plan)
    summary.raise_or_warn(plan.problems, skip_unsupported)
    for change in plan.changes.values():
        change.new = _make(change, params, policy)
        for owner, steps, _ in change.slots:
            _replace(owner, steps, change.old, change.new)
    previous = getattr(model, "_prunekit_record", None)
    replacements = list(previous.replacements) if previous else []
    replacements += [([full for _, _, full in c.slots], c.new) for c in plan.changes.values()]
    _mark_pruned(model, _Record(replacements, tuple(plan.problems)))
    global_pruning.link_global_wrappers(walk.iter_wrappers(model))
    return model


def _mark_pruned(model: keras.Model, record: _Record) -> None:
    base = getattr(type(model), "_prunekit_base", type(model))
    model.__class__ = _pruned_class(base)
    object.__setattr__(model, "_prunekit_record", record)  # A plain attribute, not tracked.
    summary.record_skipped(model, record.skipped)
    for name in ("train_function", "test_function", "predict_function"):
        if getattr(model, name, None) is not None:  # Traced without the wrappers: retrace.
            setattr(model, name, None)


def strip_in_place(model: keras.Model) -> keras.Model:
    """Replace every wrapper (and pruned block) of a subclassed model by the plain layer.

    Masks must already be applied (``strip_pruning`` does it). Returns ``model``.
    """
    _strip_children(model, set())
    base = getattr(type(model), "_prunekit_base", None)
    if base is not None:
        model.__class__ = base
    if "_prunekit_record" in vars(model):
        object.__delattr__(model, "_prunekit_record")
    summary.forget_skipped(model)
    return model


def _strip_children(owner: Any, visited: set[int]) -> None:
    done: dict[int, Any] = {}
    for steps, child in list(attribute_children(owner)):
        if id(child) in done:
            _replace(owner, steps, child, done[id(child)])
        elif isinstance(child, PruneLowMagnitude):
            done[id(child)] = child.layer
            _replace(owner, steps, child, child.layer)
        elif walk.is_graph_model(child) and walk.has_wrappers(child):
            done[id(child)] = functional.strip_graph_model(child)
            _replace(owner, steps, child, done[id(child)])
        elif id(child) not in visited and registry.is_custom_container(child):
            visited.add(id(child))
            _strip_children(child, visited)


# ------------------------------------------------------------------------------ saving
def _get_config(self: keras.Model) -> dict[str, Any]:
    base = type(self)._prunekit_base
    original = {
        "module": None if base.__module__ == "__main__" else base.__module__,
        "class_name": base.__name__,
        "registered_name": keras.saving.get_registered_name(base),
        "config": keras.saving.serialize_keras_object(base.get_config(self)),
    }
    build_config = self.get_build_config()
    if build_config is not None:
        original["build_config"] = keras.saving.serialize_keras_object(build_config)
    return {
        "model": original,
        "replacements": [
            {"paths": [[list(step) for step in path] for path in paths],
             "layer": keras.saving.serialize_keras_object(layer)}
            for paths, layer in self._prunekit_record.replacements
        ],
    }


def _from_config(cls: type, config: dict[str, Any], custom_objects: Any = None) -> keras.Model:
    model = keras.saving.deserialize_keras_object(config["model"], custom_objects=custom_objects)
    replacements = []
    for entry in config["replacements"]:
        layer = keras.saving.deserialize_keras_object(entry["layer"],
                                                      custom_objects=custom_objects)
        paths = [tuple(tuple(step) for step in path) for path in entry["paths"]]
        for path in paths:
            _replace_at(model, path, layer)
        replacements.append((list(paths), layer))
    _mark_pruned(model, _Record(replacements, ()))
    global_pruning.link_global_wrappers(walk.iter_wrappers(model))
    return model


def _get(owner: Any, step: Step) -> Any:
    kind, key = step
    return getattr(owner, key) if kind == "attr" else owner[key]


def _replace_at(model: keras.Model, path: tuple[Step, ...], new: Any) -> None:
    """Replace the layer at ``path`` from ``model``, through the layer owning its attribute."""
    owner, start, value = model, 0, model
    for i, step in enumerate(path[:-1]):
        value = _get(value, step)
        if isinstance(value, keras.layers.Layer):
            owner, start = value, i + 1
    _replace(owner, path[start:], _get(value, path[-1]), new)


class PrunedModel:
    """Loader of subclassed models pruned in place (``registered_name: prunekit>PrunedModel``).

    Not instantiated: pruned models are instances of a subclass of their own class that
    serializes under this name; ``keras.saving.load_model`` calls :meth:`from_config`.

    Example:
        >>> keras.saving.get_registered_object("prunekit>PrunedModel") is PrunedModel
        True
    """

    def get_config(self) -> dict[str, Any]:  # Required by register_keras_serializable.
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> keras.Model:
        """Rebuild the original model, then put the pruned layers back at their paths."""
        return _from_config(cls, config, custom_objects)


_register = keras.saving.register_keras_serializable(_REGISTERED_PACKAGE, _REGISTERED_NAME)
_register(PrunedModel)
_PRUNED_CLASSES: dict[type, type] = {}


def _pruned_class(base: type) -> type:
    """The subclass of ``base`` that pruned instances of ``base`` take on."""
    if base not in _PRUNED_CLASSES:
        cls = type(base.__name__, (base,), {
            "__module__": base.__module__, "__qualname__": base.__qualname__,
            "_prunekit_base": base, "get_config": _get_config,
            "from_config": classmethod(_from_config),
        })
        _register(cls)
        _register(PrunedModel)  # Keep the name resolving to the loader.
        _PRUNED_CLASSES[base] = cls
    return _PRUNED_CLASSES[base]
