"""Progress on the terminal, and what it reads from training.

Two displays on one ``rich.progress`` setup: :class:`LiveProgress` (the study: one line per
run, driven by a Keras callback at each epoch end) and :class:`RunsProgress` (the sweep: one
bar over many runs). :class:`PruningRecorder` reads the masks at epoch ends, and
:func:`schedule_curve` gives a schedule's sparsity against step for the reports.

The callbacks act only at epoch boundaries, so they cost nothing per batch and work on every
backend (on JAX, layer variables are only up to date between epochs).
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


#: Console widths from which a progress line also shows a bar, and the elapsed time.
WIDE, MEDIUM = 110, 100


def _progress(console: Any, *columns: Any) -> Any:
    """The one ``rich.progress.Progress`` setup of both displays.

    ``columns`` are rich progress columns, or ``None`` for one left out at this width. Every
    column keeps its width on one line except the last text column, the run's outcome, which
    takes what is left and is cut with an ellipsis: a line always fits the console (80 columns
    and up) and never wraps.
    """
    from rich.progress import Progress

    return Progress(*[c for c in columns if c is not None], console=console, transient=False,
                    refresh_per_second=4, expand=True)


def _fixed() -> Any:
    """A progress column kept whole, on one line."""
    from rich.table import Column

    return Column(no_wrap=True)


def _outcome() -> Any:
    """The last progress column: the rest of the line, cut with an ellipsis."""
    from rich.progress import TextColumn
    from rich.table import Column

    return TextColumn("{task.fields[info]}",
                      table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis"))


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
        from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        from rich.table import Column

        width = console.width
        self.compact = width < WIDE
        self.title_width = 22 if self.compact else 30
        self.progress = _progress(
            console, TextColumn("{task.description}", table_column=Column(
                width=self.title_width, no_wrap=True, overflow="ellipsis")),
            BarColumn(bar_width=12, table_column=_fixed()) if width >= WIDE else None,
            TextColumn("ep", table_column=_fixed()), MofNCompleteColumn(table_column=_fixed()),
            TimeElapsedColumn(table_column=_fixed()) if width >= MEDIUM else None,
            TextColumn("ETA", table_column=_fixed()),
            TimeRemainingColumn(compact=True, table_column=_fixed()), _outcome())

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
        task = self.progress.add_task(title, total=max_epochs, info="starting")
        return _LiveLine(self.progress, task, recorder, self.compact)


class _LiveLine(keras.callbacks.Callback):
    """Updates one rich task at each epoch end; completes it when training stops."""

    def __init__(self, progress: Any, task: Any, recorder: PruningRecorder | None,
                 compact: bool = False) -> None:
        super().__init__()
        self.progress, self.task, self.recorder = progress, task, recorder
        self.start = time.perf_counter()
        self.sparsity_label = "sp" if compact else "sparsity"

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        info = f"loss {logs.get('loss', float('nan')):.4g}"
        if "val_loss" in logs:
            info += f" val {logs['val_loss']:.4g}"
        if self.recorder is not None and self.recorder.trace:
            values = self.recorder.trace[-1]["sparsity"].values()
            info += f" {self.sparsity_label} " + "/".join(f"{v:.2f}" for v in values)
        self.progress.update(self.task, completed=epoch + 1, info=info)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        done = self.progress.tasks[self.task].completed
        self.progress.update(self.task, total=max(done, 1), completed=done)


class RunsProgress:
    """One bar over many runs: runs done, elapsed time, ETA and the last run's outcome.

    Silent unless ``verbose``.

    Args:
        title: Text before the bar (e.g. ``"sweep"``).
        total: Runs in all.
        done: Runs already finished (a resumed sweep starts part-way).
        verbose: Draw the bar.
        console: A ``rich.console.Console`` (default: a new one).

    Example:
        >>> with RunsProgress("sweep", total=4, done=1, verbose=False) as progress:
        ...     progress.advance("dense: mse 0.02")
        ...     progress.completed
        2
    """

    def __init__(self, title: str, total: int, done: int, verbose: bool,
                 console: Any = None) -> None:
        self.completed = done
        self.progress = None
        if verbose:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            console = console or Console()
            width = console.width
            bar = 30 if width >= WIDE else 10
            self.progress = _progress(
                console, TextColumn(title, table_column=_fixed()),
                BarColumn(bar_width=bar, table_column=_fixed()) if width >= 90 else None,
                MofNCompleteColumn(table_column=_fixed()),
                TimeElapsedColumn(table_column=_fixed()) if width >= MEDIUM else None,
                TextColumn("ETA", table_column=_fixed()),
                TimeRemainingColumn(table_column=_fixed()), _outcome())
            self.task = self.progress.add_task("runs", total=total, completed=done,
                                               info="starting workers")

    def __enter__(self) -> RunsProgress:  # noqa: PYI034 - Python 3.10 has no typing.Self
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def advance(self, info: str, failed: bool = False) -> None:
        """Count one finished run and show ``info`` (its outcome) beside the bar.

        Args:
            info: One short line on the run (rich markup is not interpreted).
            failed: Show it as a failure.
        """
        self.completed += 1
        if self.progress is None:
            return
        from rich.markup import escape

        text = f"[red]failed[/] {escape(info)}" if failed else escape(info)
        self.progress.update(self.task, advance=1, info=text)
