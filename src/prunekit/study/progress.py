"""Small Keras callbacks of the study: a pruning recorder and one live progress line per run.

Both act only at epoch boundaries, so they cost nothing per batch and work on every backend
(on JAX, layer variables are only up to date between epochs).
"""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np

import prunekit


def _to_numpy(value: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value))


def mask_sparsity(wrapper: Any) -> float:
    """Fraction of zeros in the (first) mask of a wrapper, i.e. of its pruned kernel.

    Example:
        >>> import prunekit
        >>> w = prunekit.prune_low_magnitude(keras.layers.Dense(2))
        >>> w.build((None, 3)); mask_sparsity(w)
        0.0
    """
    if not wrapper.masks:
        return 0.0
    return float(np.mean(_to_numpy(wrapper.masks[0]) == 0))


def schedule_curve(schedule: Any, last_step: int) -> tuple[list[int], list[float]]:
    """The sparsity a schedule imposes from step 0 to ``last_step``, as a step function.

    Each mask update (a step where ``should_prune`` is true) sets the sparsity to
    ``schedule(step)``'s value, which holds until the next update; before the first update
    the weights are dense.

    Args:
        schedule: A callable ``schedule(step) -> (should_prune, sparsity)``.
        last_step: Last training step (the first batch is step 1).

    Returns:
        ``(steps, sparsities)``: the points where the target changes, for a ``where="post"``
        step plot, ending at ``last_step``.

    Example:
        >>> from prunekit import ConstantSparsity
        >>> schedule_curve(ConstantSparsity(0.5, 0), 250)
        ([0, 100, 250], [0.0, 0.5, 0.5])
    """
    steps = np.arange(1, max(int(last_step), 0) + 1, dtype="int32")
    if len(steps):
        should, values = schedule(keras.ops.convert_to_tensor(steps))
        should = np.broadcast_to(_to_numpy(should), steps.shape)
        values = np.broadcast_to(_to_numpy(values), steps.shape)
        events, targets = steps[should], values[should]
    else:
        events, targets = steps, np.zeros(0)
    xs, ys = [0], [0.0]
    for step, target in zip(events.tolist(), targets.tolist()):
        if abs(target - ys[-1]) > 1e-9:
            xs.append(int(step))
            ys.append(round(float(target), 6))
    xs.append(int(last_step))
    ys.append(ys[-1])
    return xs, ys


class PruningRecorder(keras.callbacks.Callback):
    """Records each pruned kernel's sparsity and step at every epoch end.

    After ``fit``, ``trace`` holds ``{"epoch", "step", "sparsity": {layer: s}}`` records,
    read from the wrappers' masks and ``pruning_step`` variables.

    Example:
        >>> recorder = PruningRecorder()
        >>> recorder.trace
        []
    """

    def __init__(self) -> None:
        super().__init__()
        self.trace: list[dict[str, Any]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        wrappers = list(prunekit.iter_wrappers(self.model))
        if not wrappers:
            return
        step = int(_to_numpy(wrappers[0].pruning_step))
        sparsity = {w.layer.name: round(mask_sparsity(w), 6) for w in wrappers if w.masks}
        self.trace.append({"epoch": epoch + 1, "step": step, "sparsity": sparsity})


class LiveProgress:
    """One rewritten terminal line per run: epoch, losses, sparsity, elapsed time and ETA.

    Args:
        console: A ``rich.console.Console`` to draw on.

    Example:
        >>> from rich.console import Console
        >>> with LiveProgress(Console(quiet=True)) as progress:
        ...     callback = progress.callback("(a) baseline", max_epochs=3)
    """

    def __init__(self, console: Any) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.progress = Progress(
            TextColumn("{task.description:<30}"), BarColumn(bar_width=12),
            TextColumn("ep"), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(compact=True),
            console=console, transient=False, refresh_per_second=4,
        )

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def callback(self, title: str, max_epochs: int,
                 recorder: PruningRecorder | None = None) -> keras.callbacks.Callback:
        """A Keras callback driving a new line titled ``title``.

        Args:
            title: Text at the start of the line.
            max_epochs: Epochs the run may last (early stopping may end it sooner).
            recorder: Where to read the current sparsity from (runs with pruning).

        Returns:
            The callback; put it after ``recorder`` in the callback list.
        """
        task = self.progress.add_task(title[:30], total=max_epochs, info="starting")
        return _LiveLine(self.progress, task, recorder)


class _LiveLine(keras.callbacks.Callback):
    """Updates one rich task at each epoch end; completes it when training stops."""

    def __init__(self, progress: Any, task: Any, recorder: PruningRecorder | None) -> None:
        super().__init__()
        self.progress, self.task, self.recorder = progress, task, recorder
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        info = f"loss {logs.get('loss', float('nan')):.4g}"
        if "val_loss" in logs:
            info += f" val {logs['val_loss']:.4g}"
        if self.recorder is not None and self.recorder.trace:
            values = self.recorder.trace[-1]["sparsity"].values()
            info += " sparsity " + "/".join(f"{v:.2f}" for v in values)
        self.progress.update(self.task, completed=epoch + 1, info=info)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        done = self.progress.tasks[self.task].completed
        self.progress.update(self.task, total=max(done, 1), completed=done)
