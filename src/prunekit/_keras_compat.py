"""Every Keras internal prunekit relies on, in one place.

Keras 3's public API has no way to do a few things prunekit must do: tell a Functional model
from a subclassed one, list a layer's direct sub-layers, follow a graph's nodes, swap a layer
held by a model's attribute, make a wrapper bind call arguments like the layer it wraps, and
read or write variables around Keras's scopes. Each is reached here, and only here, through a
small function or name with a comment saying why it is needed. Nothing else in ``src/prunekit``
imports ``keras.src`` or reads a private attribute of a Keras object.

Versions checked: Keras 3.15.1 on the JAX, TensorFlow and PyTorch backends (every name below
read in that version's sources and exercised by the test suite). :data:`REQUIRED` lists each
internal with a check; ``tests/test_keras_compat.py`` runs them all, so a Keras upgrade that
removes or renames one fails with a message naming it and what prunekit uses it for.

Example:
    >>> missing_internals()
    []
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import keras

# Why: `keras.Model(inputs, outputs)` returns a Functional model, but the class is not exported;
# prunekit must tell graph models (cloned) from subclassed ones (pruned in place).
from keras.src.models.functional import Functional

# Why: ConvLSTM1D/2D/3D hold their weights in this cell, which `keras.layers` does not export;
# the registry names its kernels.
from keras.src.layers.rnn.conv_lstm import ConvLSTMCell

# Why: the masked forward pass runs the inner layer in a nested StatelessScope and must keep the
# outer scope's `collect_losses`; only the getter of the current scope knows it.
from keras.src.backend import get_stateless_scope

# Why: a wrapper keeps references to the inner layer's variables; Keras would track them twice.
from keras.src.utils.tracking import DotNotTrackScope

# Why: inside a mixed-precision layer call Keras casts variables on read; `AutocastScope(None)`
# turns that off so masks are ranked and stored in the storage dtype (see _backend.py).
from keras.src.backend import AutocastScope

# Why: tfmot's XNNPACK policy accepts residual `x + r`, `x - r`, `x * r` (TFOpLambda in Keras 2);
# in Keras 3 they are these Operation nodes, whose classes are not exported.
from keras.src.ops.numpy import Add as AddOp
from keras.src.ops.numpy import Multiply as MultiplyOp
from keras.src.ops.numpy import Subtract as SubtractOp

# Why: pruned weights are saved masked by patching the owning layer's `save_own_variables` for
# one save; that relies on `saving_lib._save_state` saving a layer before its sub-layers. Only
# the check in REQUIRED reads it.
from keras.src.saving import saving_lib

# Why: variables a StatelessScope defers are listed only in Keras's global state (see
# uninitialized_variables).
from keras.src.backend.common import global_state

CHECKED_VERSIONS = ("3.15.1",)
ELEMENTWISE_OPS = (AddOp, SubtractOp, MultiplyOp)


def is_graph_model(obj: Any) -> bool:
    """Whether ``obj`` is a Sequential or Functional model (not a subclassed one).

    Example:
        >>> is_graph_model(keras.Sequential()), is_graph_model(keras.layers.Dense(2))
        (True, False)
    """
    return isinstance(obj, (keras.Sequential, Functional))


def is_plain_graph_model(obj: Any) -> bool:
    """Whether ``obj``'s class is exactly Sequential or Functional (not a subclass of them)."""
    return type(obj) in (keras.Sequential, Functional)


def direct_sub_layers(layer: Any) -> list[Any]:
    """The layers ``layer`` holds directly (tracked attributes, graph layers), each once.

    Why: Keras tracks sub-layers but exposes them publicly only for models (``model.layers``);
    ``Layer._flatten_layers`` is what Keras itself uses, for layers and models alike.
    """
    return list(layer._flatten_layers(include_self=False, recursive=False))


def all_sub_layers(layer: Any) -> list[Any]:
    """Every layer inside ``layer``, at any depth, each once (``Layer._flatten_layers``)."""
    return list(layer._flatten_layers(include_self=False, recursive=True))


def own_variables(layer: Any) -> list[Any]:
    """The variables ``layer`` created itself, not through its sub-layers.

    Why: ``layer.weights`` includes the sub-layers'; these lists hold only the layer's own.
    """
    return list(layer._trainable_variables) + list(layer._non_trainable_variables)


def lay_out_like(variable: Any, reference: Any) -> None:
    """Give ``variable`` the sharding layout of ``reference`` (same shape), in place.

    Why: under a ``keras.distribution`` (JAX) a variable's layout is fixed when it is created,
    from its path (``LayoutMap`` keys are full-match regexes over paths such as
    ``.*dense/kernel``), and ``add_weight`` takes no layout. A mask, at ``<wrapper>/mask``,
    would be replicated on every device while the weight it masks is sharded.
    ``Variable._layout`` is what ``JaxVariable._direct_assign`` distributes values to, so
    setting it and assigning the value again lays the mask out like its weight. Nothing
    happens without a distribution (``_layout`` is None). Checked on Keras 3.15.
    """
    layout = getattr(reference, "_layout", None)
    if layout is None or getattr(variable, "_layout", None) is None:
        return
    variable._layout = layout
    variable.assign(variable.value)


def torch_sub_modules(layer: Any) -> dict[str, Any]:
    """Sub-modules the Torch backend keeps in ``torch.nn.Module._modules`` instead of ``vars``."""
    return dict(getattr(layer, "_modules", None) or {})


def producers(operation: Any) -> list[Any]:
    """The operations whose outputs ``operation`` consumes, in every graph it is used in.

    Why: Keras records a graph in nodes (``Operation._inbound_nodes``); no public API walks it.
    """
    return [parent.operation for node in operation._inbound_nodes
            for parent in node.parent_nodes]


def consumers(operation: Any) -> list[Any]:
    """The operations that consume ``operation``'s outputs (``Operation._outbound_nodes``)."""
    return [node.operation for node in operation._outbound_nodes]


def graph_nodes(model: Any) -> list[Any] | None:
    """The call nodes of a Functional or Sequential model, inputs first; None without a graph.

    Each node holds one call: ``operation``, ``input_tensors``, ``outputs`` and ``arguments``.
    Returns None for a subclassed model and for a Sequential model that is not built yet.

    Why: structured pruning follows tensors (which input of an ``Add`` carries which channel),
    not only operations; Keras keeps a graph's nodes in ``Functional._nodes_by_depth`` (depth 0
    at the outputs) and a Sequential model's graph in ``Sequential._functional``.
    """
    functional = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) \
        else model
    by_depth = getattr(functional, "_nodes_by_depth", None)
    if not isinstance(model, keras.Model) or by_depth is None:
        return None
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


def first_node(layer: Any) -> Any:
    """The node of ``layer``'s first call in a graph (``Operation._inbound_nodes[0]``)."""
    return layer._inbound_nodes[0]


def producing_operation(tensor: Any) -> Any:
    """The operation that produced a symbolic tensor (``KerasTensor._keras_history``)."""
    return tensor._keras_history.operation


def replace_tracked_layer(owner: Any, old: Any, new: Any) -> None:
    """Make ``owner``'s layer tracking hold ``new`` where it held ``old``.

    Why: ``setattr`` tracks a new layer but does not forget the old one, which would then stay
    in ``owner.layers``, its weights and its saved file. ``Tracker.replace_tracked_value`` is
    how Keras itself swaps one.
    """
    tracker = owner._tracker
    if tracker.is_in_store("layers", old) and not tracker.is_in_store("layers", new):
        tracker.replace_tracked_value("layers", old, new)


def call_has_training_arg(layer: Any) -> bool:
    """Whether ``layer.call`` declares ``training`` (Keras passes it only then)."""
    return bool(layer._call_has_training_arg)


def copy_input_shape(source: Any, target: Any) -> None:
    """Give ``target`` the ``input_shape=`` a layer was created with, if ``source`` has one.

    Why: a Sequential model builds itself from its first layer's ``input_shape`` argument,
    which Keras stores only in ``Layer._input_shape_arg``.
    """
    shape = getattr(source, "_input_shape_arg", None)
    if shape is not None:
        target._input_shape_arg = shape


def mirror_call_signature(wrapper: Any, signature: inspect.Signature) -> None:
    """Make Keras bind ``wrapper``'s call arguments by ``signature`` (the inner layer's).

    Why: Keras matches call arguments to names (for building, masks and ``training``) using
    attributes it computes once from ``call`` in ``Layer.__init__``; a wrapper's generic
    ``call(*args, **kwargs)`` would hide ``value=`` or ``mask=`` of the layer it wraps.
    """
    names = list(signature.parameters)
    wrapper._call_signature = signature
    wrapper.call_signature_parameters = names
    wrapper._call_has_training_arg = "training" in names
    wrapper._call_has_mask_arg = "mask" in names
    wrapper._call_has_context_arg = {arg: arg in names for arg in wrapper._call_context_args}


def build_from_call_spec(layer: Any, call_spec: Any) -> None:
    """Build ``layer`` from all its call arguments, as Keras does on a first call.

    Why: a wrapper overrides ``Layer._maybe_build`` (the hook Keras calls with the call's
    arguments) to build the inner layer from them -- ``MultiHeadAttention`` needs the query's
    and the value's shapes, which ``build(input_shape)`` alone does not get.
    """
    layer._maybe_build(call_spec)


@contextlib.contextmanager
def replaced_call(layer: Any, call: Callable[..., Any]) -> Iterator[None]:
    """Make ``layer(...)`` run ``call`` instead of ``layer.call`` while the context is open.

    Why: one-shot pruning must see a nested layer's inputs (attention's projections inside a
    KerasHub block) as the block runs, and Keras has no public call hook. ``Layer.__call__``
    looks ``self.call`` up at each call, so an instance attribute shadows the class's method;
    it is set with ``object.__setattr__`` so that Keras's (and torch.nn.Module's) attribute
    tracking does not see it, and removed on exit.

    Example:
        >>> dense = keras.layers.Dense(2)
        >>> with replaced_call(dense, lambda inputs: "hooked"):
        ...     dense(keras.ops.ones((1, 3)))
        'hooked'
        >>> tuple(dense(keras.ops.ones((1, 3))).shape)
        (1, 2)
    """
    object.__setattr__(layer, "call", call)
    try:
        yield
    finally:
        object.__delattr__(layer, "call")


def _call_is_replaceable() -> bool:
    dense = _layer()
    with replaced_call(dense, lambda inputs: "hooked"):
        hooked = dense(keras.ops.ones((1, 3)))
    return hooked == "hooked" and tuple(dense(keras.ops.ones((1, 3))).shape) == (1, 2)


def direct_assign(variable: Any, value: Any) -> None:
    """Set a variable's stored value, bypassing any StatelessScope (``_direct_assign``)."""
    variable._direct_assign(value)


def reattach_jax_state() -> None:
    """Give a model back its variable values after a failed first JAX training step.

    Why: Keras's JAX ``fit`` detaches the values from the model's variables while an epoch runs
    (they live in the trainer's local ``state``, a 4-tuple) and reattaches them at the epoch's
    end. An error raised while the first step is traced -- the missing-callback error -- would
    leave the model without values, unusable for the retry the error message asks for. This
    finds ``fit``'s ``state`` on the stack and reattaches it, as Keras's ``jax_state_sync``
    would. Other backends keep values in their variables; nothing to do there.
    """
    if keras.backend.backend() != "jax":
        return
    frame = inspect.currentframe()
    while frame is not None:
        model, state = frame.f_locals.get("self"), frame.f_locals.get("state")
        if (frame.f_code.co_name == "fit" and isinstance(model, keras.Model)
                and isinstance(state, tuple) and len(state) == 4):
            owners = (model.trainable_variables, model.non_trainable_variables,
                      model.optimizer.variables, model.metrics_variables)
            for variables, values in zip(owners, state):
                for variable, value in zip(variables, values):
                    direct_assign(variable, value)
            return
        frame = frame.f_back


def forward_pass_context(layer: Any) -> Any:
    """An object that identifies the forward pass ``layer`` is being called in.

    Why: a layer used twice in a model must advance its pruning step once per training batch.
    Keras creates one call context per outermost ``__call__`` (``Layer._get_call_context``),
    shared by every layer it calls; JAX's trainer calls the model's ``call`` inside one
    ``StatelessScope`` per step instead, so that scope, when present, is the forward pass.
    """
    return get_stateless_scope() or layer._get_call_context()


def initialize_deferred(variable: Any, value: Any = None) -> None:
    """Give a variable created in ``StatelessScope(initialize_variables=False)`` its value.

    Why: such a variable keeps its initializer and runs it in ``_deferred_initialize``; the
    ``.pkz`` loader builds models shape-only this way (no memory for weights a hostile file
    declares) and hands each variable the file's array instead of its initializer's. With
    ``value=None`` the variable's own initializer runs.
    """
    if value is not None:
        variable._initializer = lambda shape, dtype=None: value
    variable._deferred_initialize()


def uninitialized_variables() -> list[Any]:
    """The list ``StatelessScope(initialize_variables=False)`` appends deferred variables to.

    Why: the shape-only build must know every variable it created, and Keras records them only
    in this global attribute (``register_uninitialized_variable``).
    """
    return global_state.get_global_attribute("uninitialized_variables", [],
                                             set_to_default=True)


def clone_model_uncompiled(model: Any, clone_function: Callable[[Any], Any],
                           input_tensors: Any = None) -> Any:
    """``keras.models.clone_model``, never compiling the clone (tfmot returns clones uncompiled).

    Why: ``clone_model`` compiles the clone of a compiled model, with a fresh optimizer, when it
    reads ``model.compiled`` as True; no argument turns that off, so the flag is hidden from it
    for the call and restored afterwards (the model itself is not changed).
    """
    compiled = model.compiled
    model.compiled = False
    try:
        return keras.models.clone_model(model, clone_function=clone_function,
                                        input_tensors=input_tensors)
    finally:
        model.compiled = compiled


# --------------------------------------------------------------------------- the checks
@dataclasses.dataclass(frozen=True)
class Internal:
    """One Keras internal: what it is, what prunekit uses it for, and how to check it exists."""

    name: str
    used_for: str
    exists: Callable[[], bool]


def _layer() -> Any:
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    return layer


def _graph() -> keras.Model:
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def _dense_with_input_shape() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras advises an Input instead; tfmot code passes it.
        return keras.layers.Dense(2, input_shape=(3,))


def _deferred_check() -> bool:
    pending = uninitialized_variables()
    start = len(pending)
    with keras.StatelessScope(initialize_variables=False):
        variable = keras.Variable(initializer="zeros", shape=(2,))
    new = pending[start:]
    del pending[start:]
    initialize_deferred(variable, [1.0, 2.0])
    return new == [variable] and keras.ops.convert_to_numpy(variable.value).tolist() == [1.0, 2.0]


def _uncompiled_clone_check() -> bool:
    model = _graph()
    model.compile(loss="mse")
    return model.compiled and not clone_model_uncompiled(model, lambda layer: layer).compiled


def _has(make: Callable[[], Any], *names: str) -> Callable[[], bool]:
    return lambda: all(hasattr(make(), name) for name in names)


REQUIRED: tuple[Internal, ...] = (
    Internal("keras.src.models.functional.Functional", "telling graph models from subclassed",
             lambda: isinstance(_graph(), Functional)),
    Internal("keras.src.layers.rnn.conv_lstm.ConvLSTMCell", "ConvLSTM's prunable kernels",
             lambda: isinstance(keras.layers.ConvLSTM1D(2, 3).cell, ConvLSTMCell)),
    Internal("keras.src.backend.get_stateless_scope", "the masked forward pass",
             lambda: get_stateless_scope() is None),
    Internal("keras.src.utils.tracking.DotNotTrackScope", "wrapper state without double tracking",
             lambda: hasattr(DotNotTrackScope(), "__enter__")),
    Internal("keras.src.backend.AutocastScope", "masks in the storage dtype (mixed precision)",
             lambda: hasattr(AutocastScope(None), "__enter__")),
    Internal("keras.src.ops.numpy.Add/Subtract/Multiply", "residuals in the XNNPACK policy",
             lambda: isinstance((keras.Input((2,)) + keras.Input((2,)))._keras_history.operation,
                                AddOp)),
    Internal("Layer._flatten_layers", "finding sub-layers and wrappers",
             lambda: direct_sub_layers(_graph()) != []),
    Internal("Layer._trainable_variables/_non_trainable_variables",
             "telling a container's own weights from its parts'", _has(_layer,
             "_trainable_variables", "_non_trainable_variables")),
    Internal("Operation._inbound_nodes/_outbound_nodes, Node.parent_nodes",
             "walking graphs (XNNPACK policy)",
             lambda: producers(_graph().layers[-1]) != [] and consumers(_graph().layers[0]) != []),
    Internal("Functional._nodes_by_depth, Sequential._functional, Node.arguments",
             "structured pruning following a graph's tensors",
             lambda: len(graph_nodes(keras.Sequential([keras.Input((3,)),
                                                       keras.layers.Dense(2)]))) == 2
             and graph_nodes(_graph())[-1].arguments is not None
             and first_node(_graph().layers[-1]).outputs != []),
    Internal("KerasTensor._keras_history", "the operations at a model's inputs and outputs",
             lambda: producing_operation(_graph().outputs[0]) is not None),
    Internal("Layer._tracker (is_in_store, replace_tracked_value)",
             "replacing layers of subclassed models in place",
             lambda: all(hasattr(_layer()._tracker, n)
                         for n in ("is_in_store", "replace_tracked_value"))),
    Internal("Layer._call_has_training_arg", "warning when a subclassed call drops `training`",
             _has(_layer, "_call_has_training_arg")),
    Internal("Layer._call_signature, call_signature_parameters, _call_has_mask_arg, "
             "_call_context_args, _call_has_context_arg",
             "the wrapper binding call arguments like the layer it wraps",
             _has(_layer, "_call_signature", "call_signature_parameters", "_call_has_mask_arg",
                  "_call_context_args", "_call_has_context_arg")),
    Internal("Layer._maybe_build", "building a wrapped layer from all its call arguments",
             _has(_layer, "_maybe_build")),
    Internal("Layer._input_shape_arg", "Sequential models built from a wrapper's input_shape",
             lambda: getattr(_dense_with_input_shape(), "_input_shape_arg", None) == (3,)),
    Internal("torch.nn.Module._modules", "sub-layers the Torch backend keeps as modules",
             lambda: keras.backend.backend() != "torch"
             or isinstance(getattr(_layer(), "_modules", None), dict)),
    Internal("Layer.__call__ looking up self.call", "capturing nested layers' inputs (oneshot)",
             _call_is_replaceable),
    Internal("Variable._direct_assign", "re-attaching JAX training state after an error",
             _has(lambda: keras.Variable(1.0), "_direct_assign")),
    Internal("Variable._deferred_initialize/_initializer, global uninitialized_variables",
             "building .pkz models shape-only, then filling each weight from the file",
             lambda: _deferred_check()),
    Internal("Variable._layout", "masks laid out like their weights (keras.distribution)",
             _has(lambda: keras.Variable(1.0), "_layout")),
    Internal("Layer._get_call_context", "one pruning step per forward pass",
             _has(_layer, "_get_call_context")),
    Internal("saving: a layer's save_own_variables runs before its sub-layers'",
             "checkpoints written masked without touching the live weights",
             lambda: "save_own_variables" in inspect.getsource(
                 saving_lib._save_state)),
    Internal("clone_model reads `model.compiled`", "pruned and stripped clones left uncompiled",
             lambda: _uncompiled_clone_check()),
    Internal("JAX Trainer.fit's local `state`", "re-attaching JAX training state after an error",
             lambda: keras.backend.backend() != "jax" or "state" in inspect.getsource(
                 type(keras.Model()).fit)),
)


def missing_internals() -> list[str]:
    """Names (with their use) of the Keras internals in :data:`REQUIRED` this Keras lacks.

    Example:
        >>> missing_internals()
        []
    """
    missing = []
    for internal in REQUIRED:
        try:
            ok = bool(internal.exists())
        except Exception:  # noqa: BLE001 -- any failure means the internal is not as expected
            ok = False
        if not ok:
            missing.append(f"{internal.name} (used for {internal.used_for})")
    return missing
