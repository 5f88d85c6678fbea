"""Running the study: train each run, measure it the article's way, write the run folder.

Run folder layout::

    results.json  results.csv  report.html
    summaries/<letter>-<run>.txt     model summaries (pruned and stripped), parameter counts
    pictures/<letter>-<run>.png      keras.utils.plot_model pictures (needs graphviz + pydot)
    models/<run>.h5, <run>.zip       saved models, the article's gzipped size (-stripped, -shrunk)
    models/baseline.weights.h5       the baseline's weights, reloaded by runs d and r
    logs/<run>/                      TensorBoard event files (tensorboard --logdir logs)
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from typing import Any

import numpy as np

from prunekit.export.io import make_new_folder, write_atomic
from prunekit.export.sizes import GZIP_FORMAT, gzipped_size
from prunekit.lab import models
from prunekit.lab.data import Dataset, load_dataset, score
from prunekit.lab.sizes import int8_size, kernel_sparsity
from prunekit.study.config import StudyConfig
from prunekit.study.plans import RunPlan, plan_run
from prunekit.study.results import RunResult, write_results

_SUBFOLDERS = ("summaries", "pictures", "models", "logs")


@dataclasses.dataclass
class StudyOutcome:
    """What :func:`run_study` produced.

    Attributes:
        folder: The run folder.
        results: One :class:`RunResult` per run.
        meta: The study's setup, as written to results.json.
        report: Path of report.html.
    """

    folder: str
    results: list[RunResult]
    meta: dict[str, Any]
    report: str


#: Timed calls per batch-1 latency figure (after 5 untimed ones), models of ~1,500 parameters.
LATENCY_REPEATS = 50


def _callbacks(plan: RunPlan, model: Any, folder: str, recorder: Any,
               extra: list[Any]) -> list[Any]:
    import keras

    import prunekit
    from prunekit.structured import prune_structured

    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=plan.patience,
                                         start_from_epoch=plan.start_from_epoch)
    log_dir = os.path.join(folder, "logs", plan.run_id)
    if plan.structured is not None:
        return [prune_structured(model, plan.structured, log_dir=log_dir), stop, recorder] + extra
    steps = [prunekit.UpdatePruningStep()] if plan.pruning else []
    return steps + [prunekit.PruningSummaries(log_dir=log_dir), stop, recorder] + extra


def _write(folder: str, relative: str, text: str) -> str:
    write_atomic(os.path.join(folder, relative), text)
    return relative


def train_run(plan: RunPlan, config: StudyConfig, data: Dataset, folder: str,
              progress: Any = None) -> tuple[Any, RunResult, Any]:
    """Build, compile and fit one run with the study's seed and callbacks.

    Args:
        plan: The run.
        config: The study configuration (epochs, seed, batch size...).
        data: The dataset.
        folder: The run folder (TensorBoard logs go to ``logs/<run>``).
        progress: A :class:`~prunekit.lab.progress.LiveProgress`, or ``None`` for silence.

    Returns:
        ``(model, result, recorder)``: the trained model, a partly filled :class:`RunResult`
        (history, epochs, steps, time) and the :class:`PruningRecorder`.
    """
    import keras

    from prunekit.lab.progress import PruningRecorder

    keras.utils.set_random_seed(config.seed)
    # Structured pruning zeroes units between batches: one batch per compiled call.
    per_call = 1 if plan.structured is not None else models.steps_per_execution(config.epochs)
    model = models.compile_model(plan.build(), data, steps_per_execution=per_call)
    recorder = PruningRecorder()
    title = f"({plan.letter}) {plan.title}"
    extra = [progress.callback(title, config.epochs, recorder)] if progress else []
    start = time.perf_counter()
    history = model.fit(data.x_train, data.y_train, epochs=config.epochs,
                        batch_size=config.batch_size, validation_split=config.validation_split,
                        callbacks=_callbacks(plan, model, folder, recorder, extra), verbose=0)
    wall = time.perf_counter() - start
    losses = {k: [float(v) for v in history.history.get(k, [])] for k in ("loss", "val_loss")}
    epochs = len(losses["loss"])
    result = RunResult(plan.run_id, plan.letter, plan.title, plan.description,
                       pruning=plan.pruning, metric=data.metric, epochs=epochs,
                       steps=int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
                       wall_time_s=round(wall, 3), history=losses, trace=recorder.trace)
    if plan.structured is not None:
        _structured_schedule_record(plan.structured, result)
    return model, result, recorder


def _structured_schedule_record(schedule: Any, result: RunResult) -> None:
    """The structured run's schedule curve and final target (fraction of units removed)."""
    import keras

    from prunekit.lab.progress import schedule_curve

    steps, values = schedule_curve(schedule, result.steps)
    result.schedule_curve = {"step": steps, "target": values}
    final = float(keras.ops.convert_to_numpy(schedule(2**30)[1]))
    result.structured = {"target": round(final, 6), "reached": abs(values[-1] - final) <= 0.005}
    result.target_reached = result.structured["reached"]


def _schedule_record(model: Any, result: RunResult) -> None:
    """Fill the schedule curve, final targets and whether they were reached."""
    import keras

    import prunekit
    from prunekit.lab.progress import schedule_curve

    wrappers = [w for w in prunekit.iter_wrappers(model) if w.masks]
    if not wrappers:
        return
    schedule = wrappers[0].pruning_schedule
    steps, values = schedule_curve(schedule, result.steps)
    result.schedule_curve = {"step": steps, "target": values}
    final = float(keras.ops.convert_to_numpy(schedule(2**30)[1]))
    result.target_sparsity = {w.layer.name: round(final, 6) for w in wrappers}
    result.target_reached = abs(values[-1] - final) <= 0.005
    if not result.target_reached:
        result.notes.append(
            f"The schedule's final sparsity ({final:.0%}) was not reached: training stopped "
            f"after {result.epochs} epochs ({result.steps} steps) and the last mask update "
            f"used {values[-1]:.0%}. Give it more epochs, an earlier end_step, or early "
            "stopping that starts after the schedule ends."
        )


def measure_run(model: Any, result: RunResult, data: Dataset,
                folder: str) -> tuple[RunResult, str | None]:
    """Score, strip, size and describe a trained model, completing ``result``.

    Args:
        model: The trained model (pruned or not).
        result: The run's partly filled result (from :func:`train_run`).
        data: The dataset.
        folder: The run folder.

    Returns:
        ``(result, problem)``: ``result`` completed, and why the model picture could not be
        drawn (``None`` if it was).
    """
    import prunekit

    name, stem = result.run_id, f"{result.letter}-{result.run_id}"
    predictions = models.predict(model, data.x_test)
    result.test_metric = score(data, predictions)
    result.params = models.count_params(model)
    summary = models.summary_text(model, f"({result.letter}) {result.title}")
    picture = os.path.join("pictures", f"{stem}.png")
    problem = models.plot_model(model, os.path.join(folder, picture))
    if problem is None:
        result.files["picture"] = picture
    final = model
    if not result.pruning:
        result.gz_size = gzipped_size(model, *_paths(folder, name))
        result.int8_size = int8_size(model)
        result.sparsity = kernel_sparsity(model)
        result.params_stripped = result.params
    elif result.structured is not None:
        final = _measure_shrunk(model, predictions, result, data, folder)
        summary += "\n" + models.summary_text(final, "after prunekit.structured.shrink")
    else:
        result.gz_unstripped = gzipped_size(model, *_paths(folder, name))
        stripped = prunekit.strip_pruning(model)
        stripped_predictions = models.predict(stripped, data.x_test)
        result.stripped_metric = score(data, stripped_predictions)
        result.predictions_max_abs_diff = float(np.max(np.abs(predictions - stripped_predictions)))
        result.gz_size = gzipped_size(stripped, *_paths(folder, f"{name}-stripped"))
        result.int8_size = int8_size(stripped)
        result.sparsity = kernel_sparsity(stripped)
        result.params_stripped = models.count_params(stripped)
        summary += "\n" + models.summary_text(stripped, "after strip_pruning")
        _schedule_record(model, result)
        final = stripped
    result.latency_ms = batch1_latency_ms(final)
    result.files.update(summary=_write(folder, os.path.join("summaries", f"{stem}.txt"), summary),
                        model=os.path.join("models", f"{name}{GZIP_FORMAT}"),
                        logs=os.path.join("logs", name))
    return result, problem


def _measure_shrunk(model: Any, predictions: np.ndarray, result: RunResult, data: Dataset,
                    folder: str) -> Any:
    """Shrink a structured run's masked model; fill the stripped-model fields from the result.

    Returns:
        The shrunk model (the run's final model).
    """
    from prunekit.structured import shrink

    small, report = shrink(model)
    small_predictions = models.predict(small, data.x_test)
    result.stripped_metric = score(data, small_predictions)
    result.predictions_max_abs_diff = float(np.max(np.abs(predictions - small_predictions)))
    result.gz_unstripped = gzipped_size(model, *_paths(folder, result.run_id))
    result.gz_size = gzipped_size(small, *_paths(folder, f"{result.run_id}-shrunk"))
    result.int8_size = int8_size(small)
    result.sparsity = kernel_sparsity(small)
    result.params_stripped = models.count_params(small)
    result.structured = {**(result.structured or {}),
                         "units": {r.name: [r.units_before, r.units_after]
                                   for r in report.layers if r.units_before != r.units_after},
                         "params_ratio": round(report.params_ratio, 4),
                         "macs_ratio": round(report.macs_ratio, 4)}
    return small


def batch1_latency_ms(model: Any, repeats: int = LATENCY_REPEATS) -> float:
    """Median milliseconds of one inference call at batch 1 (``measure_latency``).

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> batch1_latency_ms(model, repeats=3) > 0
        True
    """
    from prunekit.structured import measure_latency

    seconds = measure_latency([model], (1,), repeats=repeats, warmup=5)[0][1]
    return round(1000.0 * seconds, 4)


def _paths(folder: str, name: str) -> tuple[str, str]:
    return (os.path.join(folder, "models", f"{name}{GZIP_FORMAT}"),
            os.path.join(folder, "models", f"{name}.zip"))


def study_meta(config: StudyConfig, data: Dataset, folder: str) -> dict[str, Any]:
    """The setup recorded in results.json and shown at the top of the report."""
    import keras

    from prunekit.lab.devices import devices_in_use

    return {
        "dataset": data.name, "data": data.description, "task": data.task,
        "metric": data.metric, "n_train": len(data.x_train), "n_test": len(data.x_test),
        "backend": keras.backend.backend(), "keras": keras.__version__,
        "devices": devices_in_use(), "seed": config.seed,
        "epochs": config.epochs, "quick": config.quick, "runs": list(config.runs),
        "batch_size": config.batch_size, "validation_split": config.validation_split,
        "custom": dataclasses.asdict(config.custom) if "custom" in config.runs else None,
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "folder": folder, "logdir": os.path.join(folder, "logs"), "notes": [],
    }


def run_study(config: StudyConfig, out: str | None = None, verbose: bool = False,
              console: Any = None) -> StudyOutcome:
    """Run the study and write everything to a new run folder.

    Args:
        config: A validated configuration (:func:`prunekit.study.config.make_config`).
        out: The run folder (a ``-2``... suffix is added if it exists); ``None``:
            ``runs/<timestamp>``.
        verbose: Draw one live progress line per run (and notes) on ``console``.
        console: A ``rich.console.Console`` (default: a new one on stdout).

    Returns:
        The :class:`StudyOutcome`.

    Example:
        >>> from prunekit.study.config import make_config
        >>> outcome = run_study(make_config(runs="a", epochs=2), out="/tmp/study")  # doctest: +SKIP
        >>> outcome.results[0].epochs  # doctest: +SKIP
        2
    """
    from rich.console import Console
    from rich.markup import escape

    from prunekit.lab.progress import LiveProgress
    from prunekit.study.report import write_report
    from prunekit.study.table import ARTICLE_MSE

    data = load_dataset(config.dataset)
    folder = make_new_folder(out)
    for sub in _SUBFOLDERS:
        os.makedirs(os.path.join(folder, sub))
    meta = study_meta(config, data, folder)
    weights_path = os.path.join(folder, "models", "baseline.weights.h5")
    console = console or Console(quiet=not verbose)
    results = []
    start = time.perf_counter()
    with LiveProgress(console if verbose else Console(quiet=True)) as progress:
        for run_id in config.runs:
            plan = plan_run(run_id, config, data, weights_path)
            model, result, _ = train_run(plan, config, data, folder, progress)
            if run_id == "baseline":
                model.save_weights(weights_path)
                result.files["weights"] = os.path.relpath(weights_path, folder)
            result, problem = measure_run(model, result, data, folder)
            if problem and problem not in meta["notes"]:
                meta["notes"].append(problem)
                if verbose:
                    console.print(f"[yellow]note:[/] {escape(problem)}", soft_wrap=True)
            results.append(result)
            write_results(folder, results, meta)  # after every run: a crash keeps what ran
    meta["total_time_s"] = round(time.perf_counter() - start, 2)
    write_results(folder, results, meta)
    article = ARTICLE_MSE if data.name == "friedman" else None
    report = write_report(folder, results, meta, article=article)
    return StudyOutcome(folder, results, meta, report)
