"""A live progress bar across the runs of a sweep: runs done, elapsed time, ETA, last result."""

from __future__ import annotations

from typing import Any

from prunekit.sweep.grid import RunParams


def describe(params: RunParams) -> str:
    """A short label of a run for progress lines and legends.

    Example:
        >>> from prunekit.sweep.grid import dense_run
        >>> describe(dense_run())
        'dense (no pruning)'
    """
    if params.schedule == "none":
        return "dense (no pruning)"
    scope = " global" if params.scope == "global" else ""
    return (f"{params.schedule} {params.sparsity:.0%} {params.block_size} {params.pooling} "
            f"{params.layers}{scope}")


class SweepProgress:
    """A ``rich.progress`` bar over the runs; silent unless ``verbose``.

    Args:
        total: Runs in the grid.
        done: Runs already recorded (a resumed sweep starts part-way).
        verbose: Draw the bar.
        console: A ``rich.console.Console`` (default: a new one).

    Example:
        >>> with SweepProgress(total=4, done=1, verbose=False) as progress:
        ...     progress.completed
        1
    """

    def __init__(self, total: int, done: int, verbose: bool, console: Any = None) -> None:
        self.completed = done
        self.progress = None
        if verbose:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("sweep"), BarColumn(bar_width=30), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"), console=console or Console(),
                refresh_per_second=4)
            self.task = self.progress.add_task("runs", total=total, completed=done,
                                               info="starting workers")

    def __enter__(self) -> SweepProgress:  # noqa: PYI034 - Python 3.10 has no typing.Self
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def advance(self, params: RunParams, record: dict[str, Any] | None,
                error: str | None) -> None:
        """Count one finished (or failed) run and show its outcome.

        Example:
            >>> from prunekit.sweep.grid import dense_run
            >>> progress = SweepProgress(total=2, done=0, verbose=False)
            >>> progress.advance(dense_run(), None, "boom"); progress.completed
            1
        """
        self.completed += 1
        if self.progress is None:
            return
        if record is not None:
            info = f"{describe(params)}: {record['metric']} {record['test_metric']:.4g}"
        else:
            info = f"[red]failed[/] {describe(params)}: {(error or '')[:60]}"
        self.progress.update(self.task, advance=1, info=info)
