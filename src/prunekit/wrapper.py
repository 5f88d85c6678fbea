"""The ``PruneLowMagnitude`` layer wrapper: mask and step state, masked forward pass.

State (all non-trainable Keras variables, so they are saved, restored and carried through the
JAX trainer like any other layer state):

* per prunable weight ``w``: ``mask`` (0/1, ``w``'s shape, stored as ``uint8``: one byte per
  weight in memory and in ``.keras`` files; files saved by prunekit 0.1.0 hold masks in ``w``'s
  dtype and are converted when loaded) and ``threshold`` (scalar, ``w``'s dtype,
  as the criterion defines it: the lowest kept score for magnitude and global pruning, the
  largest pruned magnitude for m-by-n; files saved by prunekit 0.1.0 hold 999.0 for m-by-n);
* one ``pruning_step`` (int32, starts at -1; ``UpdatePruningStep`` sets it to 0 and every
  training call adds 1, so the first training batch is step 1, as in tfmot).

The forward pass computes the inner layer with ``w * mask`` substituted for each pruned weight
(through a ``keras.StatelessScope``), so the same code runs under ``jax.jit``, ``tf.function``
and eager PyTorch. Nothing is written to the weights during a forward pass.

Gradient semantics (the same on every backend): the masked weight enters the forward pass as
``w + stop_gradient(w * mask - w)``, a straight-through estimator. Its value is exactly
``w * mask``; its gradient with respect to ``w`` is the dense gradient evaluated at the pruned
point -- exactly the gradient tfmot computes after assigning ``w <- w * mask``. So pruned weights
keep receiving gradients and a weight that grows past the threshold comes back at the next mask
update, as in tfmot. We chose this over masked gradients because it preserves tfmot's training
dynamics (users porting code get the same behaviour) and because letting pruned weights
recover is what makes gradual pruning forgiving of early mistakes. The one difference: tfmot
resets pruned weights to zero before every batch, while here they accumulate updates between
mask updates and are reset at every epoch end (``UpdatePruningStep``) and by ``strip_pruning``.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any

import keras
import numpy as np
from keras import ops

from prunekit import _backend, _keras_compat, criteria, global_pruning, registry
from prunekit.schedules import (ConstantSparsity, PruningSchedule, deserialize_schedule,
                                serialize_schedule)

MASK_DTYPE = "uint8"  # One byte per weight; every computation casts it to the weight's dtype.

MISSING_CALLBACK_MESSAGE = (
    "Prune() wrapper requires the UpdatePruningStep callback to be provided during training. "
    "Please add it as a callback to your model.fit call."
)


class MissingCallbackError(RuntimeError):
    """Raised when a pruned model is trained without ``UpdatePruningStep``."""


@keras.saving.register_keras_serializable(package="prunekit")
class PruneLowMagnitude(keras.layers.Wrapper):
    """Wraps a layer and prunes its weights during training, by magnitude or another criterion.

    Usually created by :func:`prunekit.prune_low_magnitude`, which also handles lists and
    whole models.

    Args:
        layer: The layer to prune (a built-in layer with prunable weights, a layer without
            weights, or a custom layer implementing ``get_prunable_weights()``).
        pruning_schedule: A :class:`PruningSchedule`; default ``ConstantSparsity(0.5, 0)``.
        block_size: tfmot's ``(height, width)`` of blocks pruned together (rank-2 weights
            only): :class:`~prunekit.BlockMagnitudeCriterion`.
        block_pooling_type: ``"AVG"`` or ``"MAX"``, how a block's magnitude is pooled.
        sparsity_m_by_n: ``(m, n)``: zero ``m`` of every ``n`` consecutive input weights
            (:class:`~prunekit.MByNCriterion`). The mask is computed once, at step 1, and the
            schedule is ignored.
        pruning_scope: ``"layer"`` (tfmot's rule: each weight reaches the target on its own)
            or ``"global"``: one threshold ranked across the pruned weights of every global
            wrapper of the model (see :mod:`prunekit.global_pruning`).
        criterion: Which weights to prune: a :class:`~prunekit.PruningCriterion` or its
            serialized form. Default: the one tfmot's three arguments above describe
            (:class:`~prunekit.MagnitudeCriterion` when they are left at their defaults);
            giving both is an error.
        **kwargs: Passed to ``keras.layers.Layer`` (e.g. ``name``).

    The wrapper is called exactly like the layer it wraps -- several inputs and keyword
    arguments included (``MultiHeadAttention``'s ``query, value, key=None, ...``) -- and builds
    it from all of them. When saved, it stores ``w * mask`` for the pruned weights without
    changing them, so checkpoints are exactly sparse whatever the callback order (tfmot's are
    not, tfmot#206) and taking them does not change training. ``pruning_step`` advances once
    per training forward pass, however often the model calls the wrapper (tfmot: per call).

    Example:
        >>> wrapper = PruneLowMagnitude(keras.layers.Dense(3, name="d"))
        >>> wrapper.name
        'prune_low_magnitude_d'
    """

    def __init__(
        self,
        layer: keras.layers.Layer,
        pruning_schedule: PruningSchedule | None = None,
        block_size: tuple[int, int] = (1, 1),
        block_pooling_type: str = "AVG",
        sparsity_m_by_n: tuple[int, int] | None = None,
        pruning_scope: str = "layer",
        criterion: criteria.PruningCriterion | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        criterion = criteria.resolve_criterion(criterion, block_size, block_pooling_type,
                                               sparsity_m_by_n)
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                "Please initialize `Prune` layer with a `Layer` instance. "
                f"Received: layer={layer!r} of type {type(layer).__name__}"
            )
        if not registry.is_supported(layer):
            raise registry.unsupported_layer_error(layer)
        if pruning_schedule is None:
            pruning_schedule = ConstantSparsity(0.5, 0)
        pruning_schedule = deserialize_schedule(pruning_schedule)
        self.pruning_scope = global_pruning.validate_pruning_scope(pruning_scope, criterion)
        kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        super().__init__(layer, **kwargs)
        self._mirror_call_signature(layer)
        self.pruning_schedule = pruning_schedule
        self.criterion = criterion
        self._pruned: tuple[Any, ...] = ()
        self._global_group: global_pruning.GlobalPruningGroup | None = None
        self.masks: list[Any] = []
        self.thresholds: list[Any] = []
        self._step_ready = False  # Set by UpdatePruningStep; see _check_callback.
        self._failed_without_callback = False
        self._pass_context: Any = None  # See _first_call_in_forward_pass.
        self.supports_masking = getattr(layer, "supports_masking", False)
        _keras_compat.copy_input_shape(layer, self)  # Lets Sequential build itself.

    def _mirror_call_signature(self, layer: keras.layers.Layer) -> None:
        """Make Keras bind the wrapper's call arguments exactly as the inner layer's.

        Keras matches call arguments to names (for building, masks and ``training``) using the
        signature of ``call``; the wrapper's generic ``call(*args, **kwargs)`` would hide
        ``value=`` or ``mask=`` of the inner layer. ``training`` is always accepted.
        """
        signature = inspect.signature(layer.call)
        params = list(signature.parameters.values())
        if "training" not in signature.parameters:
            position = next((i for i, p in enumerate(params) if p.kind == p.VAR_KEYWORD),
                            len(params))
            params.insert(position, inspect.Parameter(
                "training", inspect.Parameter.KEYWORD_ONLY, default=None))
        _keras_compat.mirror_call_signature(self, signature.replace(parameters=params))

    # ----------------------------------------------------------------------------- state
    @property
    def block_size(self) -> tuple[int, int]:
        """tfmot's ``block_size`` of this wrapper's criterion ((1, 1) if it has none)."""
        return self.criterion.tfmot_arguments()["block_size"]

    @property
    def block_pooling_type(self) -> str:
        """tfmot's ``block_pooling_type`` of this wrapper's criterion."""
        return self.criterion.tfmot_arguments()["block_pooling_type"]

    @property
    def sparsity_m_by_n(self) -> tuple[int, int] | None:
        """tfmot's ``sparsity_m_by_n`` of this wrapper's criterion (None if it has none)."""
        return self.criterion.tfmot_arguments()["sparsity_m_by_n"]

    @property
    def prunable_weights(self) -> list[Any]:
        """The inner layer's variables this wrapper masks (empty until built)."""
        return list(self._pruned)

    def _maybe_build(self, call_spec: Any) -> None:
        # Keras's build hook (see _keras_compat.build_from_call_spec): build the inner layer
        # from all its call arguments (MultiHeadAttention needs the query and the value
        # shapes), the way Keras would; then build the wrapper's state.
        if not self.built and not self.layer.built:
            _keras_compat.build_from_call_spec(self.layer, call_spec)
        super()._maybe_build(call_spec)

    def build(self, input_shape: Any = None) -> None:
        super().build(input_shape)
        weights = registry.get_prunable_weights(self.layer)
        self._check_weight_ranks(weights)
        with _keras_compat.DotNotTrackScope():  # The inner layer owns them: track once.
            self._pruned = tuple(weights)
        with _backend.full_precision_scope():  # The storage dtype, even when built mid-call.
            for weight in weights:
                mask = self.add_weight(name="mask", shape=weight.shape, dtype=MASK_DTYPE,
                                       initializer="ones", trainable=False)
                _keras_compat.lay_out_like(mask, weight)  # Sharded like the weight, if it is.
                self.masks.append(mask)
                self.thresholds.append(self.add_weight(
                    name="threshold", shape=(), dtype=weight.dtype,
                    initializer="zeros", trainable=False))
        self.pruning_step = self.add_weight(
            name="pruning_step", shape=(), dtype="int32",
            initializer=keras.initializers.Constant(-1), trainable=False)
        self.built = True

    def _check_weight_ranks(self, weights: list[Any]) -> None:
        for weight in weights:
            where = f"Layer '{self.layer.name}', weight '{weight.name}'"
            self.criterion.check_weight(tuple(weight.shape), where)

    # ----------------------------------------------------------------------------- masks
    def compute_masks(self, sparsity: Any) -> list[tuple[Any, Any]]:
        """Return the criterion's ``(mask, threshold)`` for every prunable weight at ``sparsity``.

        Masks and thresholds come in the weights' storage dtype (the wrapper stores masks as
        ``MASK_DTYPE``).
        """
        if self.pruning_scope == "global":
            return global_pruning.group_of(self).masks_for(self.prunable_weights, sparsity)
        return [self.criterion.compute_mask(_backend.full_precision(weight), sparsity)
                for weight in self.prunable_weights]  # Rank stored values, not fp16 copies.

    def _schedule_decision(self, step: Any) -> tuple[Any, Any]:
        return self.criterion.schedule_decision(self.pruning_schedule, step)

    def _update_masks(self, step: Any, concrete_step: int | None = None) -> None:
        if not self.prunable_weights:
            return
        if concrete_step is not None:  # Eager: off an update step, nothing to compute or write.
            due = self.criterion.update_due(self.pruning_schedule, concrete_step)
            if due is False:
                return
        should_prune, sparsity = self._schedule_decision(step)
        if concrete_step is not None and not bool(_backend.concrete_value(should_prune)):
            return

        def new_masks() -> tuple[Any, ...]:
            return tuple(value for mask, threshold in self.compute_masks(sparsity)
                         for value in (ops.cast(mask, MASK_DTYPE), threshold))

        def old_masks() -> tuple[Any, ...]:
            return tuple(ops.convert_to_tensor(v.value)
                         for pair in zip(self.masks, self.thresholds) for v in pair)

        # Under mixed precision, rank, cast and store in the variables' dtype (see _backend).
        with _backend.full_precision_scope():
            values = ops.cond(should_prune, new_masks, old_masks)
            for i, (mask, threshold) in enumerate(zip(self.masks, self.thresholds)):
                mask.assign(values[2 * i])
                threshold.assign(values[2 * i + 1])

    def _check_callback(self, new_step: Any) -> int | None:
        """Refuse a training call without ``UpdatePruningStep``; return the step if concrete."""
        value = _backend.concrete_value(new_step)
        traced = value is None
        if traced:  # Decide from state known outside the trace.
            value = 1 if self._step_ready else 0
        if int(value) < 1:
            if traced:
                _keras_compat.reattach_jax_state()
            self._failed_without_callback = True  # UpdatePruningStep then resets train_function.
            raise MissingCallbackError(
                f"{MISSING_CALLBACK_MESSAGE} (layer '{self.name}' was called with "
                f"training=True while its pruning_step was {int(value) - 1}; "
                "UpdatePruningStep.on_train_begin sets it to 0.)"
            )
        return None if traced else int(value)

    def _first_call_in_forward_pass(self) -> bool:
        """True for the first call of this wrapper in each forward pass of the model.

        A layer used twice in one model is called twice per training batch; the step must
        advance once per batch (tfmot advances it per call, so such a layer's schedule ran
        twice as fast). A forward pass is one call of the outermost layer (the model): Keras
        creates one call context for it, shared by every layer it calls -- in eager mode and
        while ``tf.function`` traces the training step alike. JAX's trainer runs the model's
        ``call`` (not ``__call__``) inside one ``StatelessScope`` per step: that scope is then
        the forward pass.
        """
        context = _keras_compat.forward_pass_context(self)
        if self._pass_context is not None and self._pass_context() is context:
            return False
        self._pass_context = weakref.ref(context)  # Do not keep a finished trace alive.
        return True

    def apply_masks(self) -> None:
        """Write ``w * mask`` into every pruned weight (makes the stored weights sparse)."""
        for weight, mask in zip(self.prunable_weights, self.masks):
            weight.assign(ops.multiply(weight.value, ops.cast(mask.value, weight.dtype)))

    def save_own_variables(self, store: Any) -> None:
        """Save mask, threshold and step; the inner layer's pruned weights are saved masked.

        Keras saves a layer's own variables before its sub-layers. This saves the wrapper's
        state and arranges for the layers owning the pruned weights, saved next, to write
        ``w * mask`` in their place: every checkpoint (``ModelCheckpoint``, ``model.save``,
        ``save_weights``, at epoch end or after N batches) is exactly sparse, and the live
        weights are left untouched, so saving never changes how training goes on.
        """
        super().save_own_variables(store)
        if self.built and self.prunable_weights:
            _save_masked_on_next_save(self.layer, dict(zip(
                (id(w) for w in self.prunable_weights), self.masks)))

    def load_own_variables(self, store: Any) -> None:
        """Load mask, threshold and step; float masks (prunekit 0.1.0 files) become ``uint8``."""
        variables = _keras_compat.own_variables(self)
        mask_keys = {str(i) for i, v in enumerate(variables) if any(v is m for m in self.masks)}
        super().load_own_variables(_LeanMaskStore(store, mask_keys))

    # ----------------------------------------------------------------------------- call
    def call(self, *args: Any, training: bool | None = None, **kwargs: Any) -> Any:
        if training and self._first_call_in_forward_pass():
            new_step = ops.add(self.pruning_step.value, 1)
            concrete_step = self._check_callback(new_step)
            self.pruning_step.assign(new_step)
            self._update_masks(new_step, concrete_step)
        if not self.prunable_weights:
            return self.layer(*args, **kwargs)
        return self._call_masked(args, kwargs, bool(training))

    def _inner_variables(self) -> tuple[tuple[Any, Any], ...]:
        """``(variable, mask or None)`` for each inner variable, in order; computed once.

        The inner layer is built with the wrapper, so its variables are fixed by the first
        call; ``layer.variables`` walks its sub-layers on every read, which shows per call on
        eager backends.
        """
        cached = self.__dict__.get("_inner_variables_cache")
        if cached is None:
            masks = {id(w): m for w, m in zip(self.prunable_weights, self.masks)}
            cached = tuple((v, masks.get(id(v))) for v in self.layer.variables)
            # Set in the instance __dict__: bypasses Keras's attribute tracking.
            self.__dict__["_inner_variables_cache"] = cached
        return cached

    def _call_masked(self, args: tuple[Any, ...], kwargs: dict[str, Any], training: bool) -> Any:
        mapping = []
        for variable, mask in self._inner_variables():
            value = _backend.full_precision(variable)  # The inner call autocasts it.
            if mask is not None:
                value = _backend.masked_weight(value, mask.value, straight_through=training)
            mapping.append((variable, value))
        outer = _keras_compat.get_stateless_scope()
        collect = True if outer is None else outer.collect_losses
        with keras.StatelessScope(state_mapping=mapping, collect_losses=collect) as scope:
            outputs = self.layer(*args, **kwargs)
        # Carry out the inner layer's own state updates (e.g. seed generators, statistics).
        with _backend.full_precision_scope():
            for (variable, mask), (_, value) in zip(self._inner_variables(), mapping):
                current = scope.get_current_value(variable)
                if current is not None and current is not value and mask is None:
                    variable.assign(current)
        for loss in scope.losses:
            self.add_loss(loss)
        return outputs

    # ----------------------------------------------------------------------------- keras API
    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return self.layer.compute_mask(inputs, mask)

    def get_weights(self) -> list[Any]:
        """Weights of the inner layer only, as in tfmot (masks are state, not weights)."""
        return self.layer.get_weights()

    def set_weights(self, weights: list[Any]) -> None:
        """Set the inner layer's weights, as in tfmot."""
        self.layer.set_weights(weights)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "pruning_schedule": serialize_schedule(self.pruning_schedule),
            "pruning_scope": self.pruning_scope,
            "criterion": keras.saving.serialize_keras_object(self.criterion),
        })
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> PruneLowMagnitude:
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(config.pop("layer"),
                                                      custom_objects=custom_objects)
        config["pruning_schedule"] = deserialize_schedule(config["pruning_schedule"],
                                                          custom_objects)
        if isinstance(config.get("criterion"), dict):
            config["criterion"] = keras.saving.deserialize_keras_object(
                config["criterion"], custom_objects=custom_objects)
        # Configs written by prunekit 0.1.0 hold tfmot's arguments instead of a criterion.
        return cls(layer, **config)


class _LeanMaskStore:
    """A weights store that reads the masks it is told about as ``MASK_DTYPE`` (0 or 1)."""

    def __init__(self, store: Any, mask_keys: set[str]) -> None:
        self._store = store
        self._mask_keys = mask_keys

    def __getitem__(self, key: str) -> Any:
        value = self._store[key]
        if key in self._mask_keys:
            value = (np.asarray(value) != 0).astype(MASK_DTYPE)
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class _MaskedStore:
    """A weights store that writes ``w * mask`` for the pruned variables it is given."""

    def __init__(self, store: Any, masks_by_id: dict[int, Any]) -> None:
        self._store = store
        self._masks_by_id = masks_by_id

    def __setitem__(self, key: str, value: Any) -> None:
        mask = self._masks_by_id.get(id(value))
        if mask is not None:
            with _backend.full_precision_scope():
                value = ops.multiply(value.value, ops.cast(mask.value, value.dtype))
        self._store[key] = value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class _MaskedSave:
    """A one-shot ``save_own_variables`` for a layer owning pruned weights.

    Installed on the layer instance by the wrapper's ``save_own_variables``; on the layer's
    own save, which follows, it removes itself and runs the layer's usual saving through a
    :class:`_MaskedStore`. Nothing is assigned to any variable.
    """

    def __init__(self, owner: Any, masks_by_id: dict[int, Any], previous: Any) -> None:
        self.owner, self.masks_by_id, self.previous = owner, masks_by_id, previous

    def __call__(self, store: Any) -> None:
        self.restore()
        self.owner.save_own_variables(_MaskedStore(store, self.masks_by_id))

    def restore(self) -> None:
        if self.previous is None:
            self.owner.__dict__.pop("save_own_variables", None)
        else:
            self.owner.__dict__["save_own_variables"] = self.previous


def _save_masked_on_next_save(layer: Any, masks_by_id: dict[int, Any]) -> None:
    """Make the next save of each layer that owns a pruned variable write it masked.

    Keras's saving (``keras.src.saving.saving_lib._save_state``) calls a layer's
    ``save_own_variables(store)`` with its own variables, then visits its sub-layers; the
    wrapper's inner layer comes right after the wrapper. The layers are patched per instance
    and each patch removes itself when used.
    """
    for owner in [layer, *_keras_compat.all_sub_layers(layer)]:
        own = {id(v) for v in _keras_compat.own_variables(owner)}
        owned = {i: m for i, m in masks_by_id.items() if i in own}
        if not owned:
            continue
        previous = owner.__dict__.get("save_own_variables")
        if isinstance(previous, _MaskedSave):  # Left by a save that failed midway.
            previous = previous.previous
        # Set in the instance __dict__: bypasses Keras's attribute tracking.
        owner.__dict__["save_own_variables"] = _MaskedSave(owner, owned, previous)
