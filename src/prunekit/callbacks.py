"""Training callbacks: ``UpdatePruningStep`` (required) and ``PruningSummaries`` (TensorBoard)."""

from __future__ import annotations

import os
import warnings
from typing import Any

import keras
import numpy as np

from prunekit import global_pruning, schedules
from prunekit.summary import weight_labels
from prunekit.walk import iter_wrappers


class UpdatePruningStep(keras.callbacks.Callback):
    """Required callback when training a pruned model.

    * ``on_train_begin``: every wrapper whose ``pruning_step`` is -1 (never trained) is set to
      0, so the first training batch runs at step 1. Wrappers restored from a checkpoint keep
      their step: a second ``fit`` continues counting.
      It also groups the wrappers of a model pruned with ``pruning_scope="global"``.
      After a :class:`~prunekit.MissingCallbackError` it also discards the model's compiled
      training function, so that ``fit`` can simply be called again with this callback (on
      TensorFlow the failed ``tf.function`` cannot be traced again).
    * ``on_epoch_end``: writes ``w * mask`` into every pruned weight, so the weights are exactly
      sparse after each epoch.
    * ``on_train_end``: warns when pruning did not reach its target because training ran too
      few steps for the schedule (e.g. tfmot's default ``frequency=100`` and 12 batches): it
      names the layers, the sparsity reached and the target, and says why and how to fix it.
      The schedule's semantics are tfmot's; only the silence is not.

    Wrappers are found wherever they are nested (sub-models, subclassed models, custom layers).
    In a custom training loop call ``set_model(model)`` and ``on_train_begin()`` once, and
    ``on_epoch_end(epoch)`` whenever exactly sparse weights are needed (tfmot's guide calls
    ``on_epoch_end(batch=...)``; that spelling is accepted too).

    Example:
        >>> import numpy as np
        >>> from prunekit import prune_low_magnitude
        >>> model = prune_low_magnitude(keras.Sequential([keras.Input((3,)),
        ...                                               keras.layers.Dense(1)]))
        >>> model.compile("sgd", "mse")
        >>> _ = model.fit(np.ones((4, 3)), np.ones((4, 1)), verbose=0,
        ...               callbacks=[UpdatePruningStep()])
    """

    def __init__(self) -> None:
        super().__init__()
        self._steps_at_begin: dict[int, int] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        wrappers = list(iter_wrappers(self.model))
        global_pruning.link_global_wrappers(wrappers)
        _retry_after_missing_callback(self.model, wrappers)
        self._steps_at_begin = {}
        for wrapper in wrappers:
            if not wrapper.built:
                continue
            if _step(wrapper) == -1:
                wrapper.pruning_step.assign(0)
            wrapper._step_ready = True
            self._steps_at_begin[id(wrapper)] = _step(wrapper)

    def on_epoch_end(self, epoch: int | None = None, logs: dict[str, Any] | None = None,
                     batch: int | None = None) -> None:
        wrappers = [w for w in iter_wrappers(self.model) if w.built]
        for wrapper in wrappers:
            wrapper.apply_masks()
        if self._steps_at_begin:  # After the first epoch only: did every wrapper train?
            idle = [w.name for w in wrappers
                    if self._steps_at_begin.get(id(w)) == _step(w)]
            self._steps_at_begin = None
            if idle:
                warnings.warn(
                    f"{len(idle)} pruning wrapper(s) were never called with training=True "
                    f"during the first epoch, so they do not prune: {', '.join(idle)}. If they "
                    "sit in a subclassed model, give its call() a `training` argument and "
                    "pass `training=training` to its layers.", stacklevel=2)


    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        message = shortfall_message(w for w in iter_wrappers(self.model) if w.built)
        if message:
            warnings.warn(message, stacklevel=2)


def _retry_after_missing_callback(model: Any, wrappers: list[Any]) -> None:
    """Recompile the training function that a missing callback made fail while tracing."""
    failed = [w for w in wrappers if getattr(w, "_failed_without_callback", False)]
    for wrapper in failed:
        wrapper._failed_without_callback = False
    if failed and getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)


def shortfall_message(wrappers: Any) -> str | None:
    """One warning naming each wrapper whose schedule could not reach its target, or None.

    Example:
        >>> shortfall_message([]) is None
        True
    """
    lines = []
    for wrapper in wrappers:
        if not wrapper.prunable_weights or not wrapper.criterion.follows_schedule:
            continue
        why = schedules.shortfall(wrapper.pruning_schedule, _step(wrapper))
        if why is None:
            continue
        schedule = wrapper.pruning_schedule
        target = getattr(schedule, "target_sparsity", getattr(schedule, "final_sparsity", 0.0))
        zeros = sum(float(np.sum(keras.ops.convert_to_numpy(m.value) == 0)) for m in wrapper.masks)
        size = sum(int(np.prod(m.shape)) for m in wrapper.masks)
        lines.append(f"'{wrapper.name}' is at {zeros / size:.1%} sparsity, target "
                     f"{target:.1%}: {why}")
    if not lines:
        return None
    return (f"Pruning did not reach its target in {len(lines)} layer(s): " + "; ".join(lines)
            + ". To fix: train for more steps, or give the schedule a smaller frequency and "
            "begin_step/end_step within the steps you train (the first training batch is step "
            "1; with tfmot's default frequency=100 fewer than 100 batches never prune).")


def _step(wrapper: Any) -> int:
    return int(keras.ops.convert_to_numpy(wrapper.pruning_step.value))


def sparsity_of(value: Any) -> float:
    """Fraction of exact zeros in an array-like.

    Example:
        >>> sparsity_of([0.0, 1.0, 0.0, 2.0])
        0.5
    """
    array = np.asarray(keras.ops.convert_to_numpy(value))
    return float(np.mean(array == 0)) if array.size else 0.0


class PruningSummaries(keras.callbacks.Callback):
    """Write pruning scalars for TensorBoard, without needing TensorFlow.

    At the beginning of every epoch (tfmot's cadence: the state at the end of the previous
    epoch, nothing after the last one), for each pruned weight of each wrapper, writes
    ``<wrapper>/<weight>/sparsity`` (``1 - mean(mask)``) and ``<wrapper>/<weight>/threshold``,
    plus ``model/sparsity`` (the fraction of all pruned weights that are masked), to
    ``log_dir/metrics`` at step ``model.optimizer.iterations``; also the epoch's loss and
    metrics to ``log_dir/train`` and ``log_dir/validation``. ``<weight>`` is the weight's path
    inside the wrapped layer (``kernel``; ``query/kernel`` for attention;
    ``forward_lstm/lstm_cell/kernel`` for ``Bidirectional``). Open with
    ``tensorboard --logdir LOG_DIR``.

    Args:
        log_dir: Directory for the event files (a non-empty string).
        update_freq: ``"epoch"`` (default), or an int N to also write the pruning scalars every
            N training batches.
        **kwargs: Accepted for compatibility with ``keras.callbacks.TensorBoard`` and ignored.

    Example:
        >>> import tempfile
        >>> callback = PruningSummaries(log_dir=tempfile.mkdtemp())
    """

    def __init__(self, log_dir: str, update_freq: str | int = "epoch", **kwargs: Any) -> None:
        if not isinstance(log_dir, str) or not log_dir:
            raise ValueError(
                f"`log_dir` must be a non-empty string. You passed `log_dir`={log_dir!r}."
            )
        if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq > 0):
            raise ValueError(
                "update_freq must be 'epoch' or a positive integer number of batches. "
                f"Received: update_freq={update_freq!r}"
            )
        super().__init__()
        self.log_dir = log_dir
        self.update_freq = update_freq
        self._writers: dict[str, Any] = {}
        self._batches = 0

    def _writer(self, name: str) -> Any:
        if name not in self._writers:
            from tensorboard.summary import Writer

            path = os.path.join(self.log_dir, name)
            os.makedirs(path, exist_ok=True)
            self._writers[name] = Writer(path)
        return self._writers[name]

    def _step(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return self._batches
        return int(keras.ops.convert_to_numpy(optimizer.iterations.value))

    def _log_pruning(self, step: int) -> None:
        writer = self._writer("metrics")
        zeros = total = 0
        for wrapper in iter_wrappers(self.model):
            if not wrapper.built:
                continue
            for label, mask, threshold in zip(weight_labels(wrapper), wrapper.masks,
                                              wrapper.thresholds):
                tag = f"{wrapper.name}/{label}"
                mask_sparsity = sparsity_of(mask.value)
                writer.add_scalar(f"{tag}/sparsity", mask_sparsity, step)
                threshold_value = float(keras.ops.convert_to_numpy(threshold.value))
                writer.add_scalar(f"{tag}/threshold", threshold_value, step)
                size = int(np.prod(mask.shape))
                zeros, total = zeros + round(mask_sparsity * size), total + size
        if total:
            writer.add_scalar("model/sparsity", zeros / total, step)
        writer.flush()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._log_pruning(self._step())

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._batches += 1
        if self.update_freq != "epoch" and self._batches % self.update_freq == 0:
            self._log_pruning(self._step())  # `self.model` syncs JAX's state first.

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key, value in (logs or {}).items():
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            self._writer(split).add_scalar(f"epoch_{name}", float(value), epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
