"""The end-to-end job: scan, allocate, prune gradually with fine-tuning, verify, back off.

1. **Scan** (:mod:`prunekit.auto.scan`): every unit's one-shot drop on the held-out rows.
2. **Allocate** (:mod:`prunekit.auto.allocate`): the greedy path; the first trial is the last
   point whose predicted one-shot drop fits the budget (with a fixed ``sparsity``: every unit
   at that sparsity, one trial).
3. **Trial**: a fresh copy of the model is pruned with a ``PolynomialDecay`` from 0 to each
   unit's sparsity over the first 70 % of the fine-tuning steps, fine-tuned on the training
   rows, stripped, and measured on the held-out rows.
4. **Search and back off**: one-shot drops overstate what fine-tuning leaves, so a trial that
   holds the budget is followed by one further along the path, and one that breaks it by one
   further back (bisection on the path index), at most ``max_trials`` trials. When even the
   path's first point breaks it, the back-off continues below the ladder: that point with its
   sparsities halved, then halved again. The result is the sparsest trial that held; when none
   did, the model unpruned, saying so.

Regression fine-tuning minimises the MSE in standardised units,
``mean(((y_pred - y) / std(y_train))**2)``, so targets on large scales do not blow up the
gradients; the model still predicts, and every figure is reported, in the targets' own units.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np

from prunekit.auto import allocate, scan as scanning
from prunekit.auto.data import AutoPruneError, PruneData, split_data
from prunekit.auto.metric import Budget, check_targets, default_metric, metric_name, metric_value
from prunekit.auto.model import check_model, copy_model, predict
from prunekit.auto.report import AutoPruneReport, Trial

#: Fewest mask updates a unit's schedule should have; fewer steps lower the frequency.
MIN_UPDATES = 4
#: Most trials below the ladder (each halves the sparsities of the last one).
BELOW_LADDER = 2
#: Share of the fine-tuning steps over which sparsity rises (the rest recovers).
PRUNE_SHARE = 0.7


def schedule_steps(total_steps: int, frequency: int) -> tuple[int, int, str | None]:
    """``(end_step, frequency, note)`` of the pruning schedules for ``total_steps`` of training.

    Sparsity rises over the first :data:`PRUNE_SHARE` of the steps, ``end_step`` a multiple of
    the frequency so that the last update reaches the target. Too few steps for
    :data:`MIN_UPDATES` updates at ``frequency`` lower the frequency, with a note.

    Example:
        >>> schedule_steps(1000, 100)
        (700, 100, None)
        >>> schedule_steps(40, 100)[:2]
        (28, 7)
    """
    window = max(1, int(total_steps * PRUNE_SHARE))
    note = None
    if window // frequency < MIN_UPDATES:
        new = max(1, window // MIN_UPDATES)
        note = (f"fine-tuning has {total_steps} steps, so a mask update every {frequency} steps "
                f"would update the masks {window // frequency} time(s) in the pruning window of "
                f"{window} steps; updating every {new} step(s) instead")
        frequency = new
    return frequency * (window // frequency), frequency, note


def _standardised_mse_class() -> type:
    """The loss class, defined on first use (Keras is imported lazily by the CLI)."""
    import keras

    @keras.saving.register_keras_serializable(package="prunekit")
    class StandardisedMSE(keras.losses.Loss):
        """``mean(((y_pred - y_true) / std)**2)``: MSE in standardised target units."""

        def __init__(self, std: float = 1.0, name: str = "standardised_mse", **kwargs: Any):
            super().__init__(name=name, **kwargs)
            self.std = float(std)

        def call(self, y_true: Any, y_pred: Any) -> Any:
            ops = keras.ops
            y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), ops.shape(y_pred))
            return ops.mean(ops.square((y_pred - y_true) / self.std), axis=-1)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "std": self.std}

    return StandardisedMSE


def StandardisedMSE(std: float) -> Any:  # noqa: N802 - reads as the class it builds
    """A Keras loss: the MSE of targets standardised by ``std`` (see the module docstring).

    Example:
        >>> import keras
        >>> loss = StandardisedMSE(2.0)
        >>> float(loss(keras.ops.zeros((2, 1)), keras.ops.ones((2, 1)) * 4.0))
        4.0
    """
    return _standardised_mse_class()(std)


def _loss(budget: Budget, model: Any, data: PruneData) -> tuple[Any, str]:
    """The fine-tuning loss and its description (see the module docstring)."""
    import keras

    if budget.metric != "accuracy":
        std = float(np.std(data.y_train)) or 1.0
        return StandardisedMSE(std), f"MSE on targets standardised by their std ({std:.4g})"
    out = predict(model, data.x_val[:64])
    logits = bool(np.any(out < 0) or np.any(out > 1)
                  or (out.shape[-1] > 1 and not np.allclose(out.sum(-1), 1, atol=1e-3)))
    if out.shape[-1] > 1:
        return (keras.losses.SparseCategoricalCrossentropy(from_logits=logits),
                f"sparse categorical cross-entropy (from_logits={logits})")
    return (keras.losses.BinaryCrossentropy(from_logits=logits),
            f"binary cross-entropy (from_logits={logits})")


def _optimizer(model: Any, learning_rate: float | None) -> Any:
    """A fresh optimizer for fine-tuning (the model's optimizer state is never reused).

    ``learning_rate`` given: Adam at that rate. Otherwise the model's compiled optimizer at a
    tenth of its learning rate (a trained model is fine-tuned, not trained again: a lower rate
    keeps it near the optimum it found), else Adam(1e-4).
    """
    import keras

    if learning_rate is not None:
        return keras.optimizers.Adam(learning_rate)
    config = (model.get_compile_config() or {}).get("optimizer") \
        if getattr(model, "compiled", False) else None
    if config:
        try:
            optimizer = keras.optimizers.deserialize(config)
            rate = optimizer.get_config().get("learning_rate")
            if isinstance(rate, (int, float)):
                return type(optimizer).from_config({**optimizer.get_config(),
                                                   "learning_rate": rate / 10})
        except (TypeError, ValueError):
            pass
    return keras.optimizers.Adam(1e-4)


def _trial(model: Any, data: PruneData, point: allocate.PathPoint, settings: dict[str, Any],
           log_dir: str | None) -> tuple[Any, dict[str, float]]:
    """Prune a fresh copy to ``point``'s sparsities with fine-tuning; the stripped model and
    each unit's measured sparsity."""
    import keras

    from prunekit import callbacks, prune, schedules

    pruned, _ = scanning.pruned_copy(model, data.x_val)
    # Units by position: a subclassed model's copies get new layer names; the order is fixed.
    wrappers = [wrapper for _, wrapper in scanning.units(pruned)]
    for name, wrapper in zip(settings["names"], wrappers):
        target = point.sparsities.get(name, 0.0)
        wrapper.pruning_schedule = (
            schedules.PolynomialDecay(0.0, target, 0, settings["end_step"], power=3,
                                      frequency=settings["frequency"])
            if target > 0 else schedules.ConstantSparsity(0.0, 0, frequency=10**9))
    loss, _ = _loss(settings["budget"], model, data)
    pruned.compile(optimizer=_optimizer(model, settings["learning_rate"]), loss=loss)
    steps = [callbacks.UpdatePruningStep()]
    if log_dir:
        steps.append(callbacks.PruningSummaries(log_dir=log_dir))
    y_train = data.y_train.astype("int32" if settings["budget"].metric == "accuracy" else "float32")
    keras.utils.set_random_seed(settings["seed"])
    pruned.fit(data.x_train, y_train, epochs=settings["epochs"],
               batch_size=settings["batch_size"], verbose=0, callbacks=steps)
    measured = {name: float(np.mean([np.mean(keras.ops.convert_to_numpy(w) == 0)
                                     for w in wrapper.prunable_weights]))
                for name, wrapper in zip(settings["names"], wrappers)}
    return prune.strip_pruning(pruned), measured


def _search(model: Any, data: PruneData, path: list[allocate.PathPoint], start: int,
            settings: dict[str, Any], baseline: float, log_root: str | None,
            verbose: bool) -> tuple[list[Trial], dict[int, Any]]:
    """Bisection on the path index from ``start``: up after a trial that holds, down after one
    that breaks the budget."""
    budget = settings["budget"]
    low, high = 0, len(path)  # path[low] holds (dense: by definition); path[high:] broke it
    index, trials, models = start, [], {}

    def run(point: allocate.PathPoint, key: int) -> bool:
        log_dir = f"{log_root}/trial-{len(trials) + 1}" if log_root else None
        begun = time.perf_counter()
        stripped, measured = _trial(model, data, point, settings, log_dir)
        value = metric_value(budget.metric, data.y_val, predict(stripped, data.x_val))
        held = budget.holds(baseline, value)
        trials.append(Trial(len(trials) + 1, key, dict(point.sparsities), measured,
                            point.predicted_drop, point.removed, value,
                            budget.drop(baseline, value), held, time.perf_counter() - begun))
        models[key] = stripped
        if verbose:
            where = f"path point {key}/{len(path) - 1}" if key >= 0 else "below the ladder"
            print(f"trial {len(trials)}: {where}, {point.removed:,} weights removed, "
                  f"{budget.metric} {value:.5g} (drop {trials[-1].drop:.4g}): "
                  f"{'holds' if held else 'breaks the budget'}")
        return held

    while len(trials) < settings["max_trials"] and low < index < high:
        held = run(path[index], index)
        low, high = (index, high) if held else (low, index)
        index = (low + high + 1) // 2 if held else (low + high) // 2
    # Even the first point of the path broke the budget: keep backing off, below the ladder,
    # by halving its sparsities (BELOW_LADDER times at most).
    point = path[high] if high < len(path) else None
    for step in range(1, BELOW_LADDER + 1):
        if low > 0 or point is None or len(trials) >= settings["max_trials"]:
            break
        point = allocate.scaled_point(point, 0.5)
        if run(point, -step):
            break
    return trials, models


def _short_of_target(trials: list[Trial]) -> list[str]:
    """Notes for units whose measured sparsity fell well short of their target."""
    short = {name: (t.targets[name], s) for t in trials for name, s in t.sparsities.items()
             if s < t.targets.get(name, 0.0) - 0.02}
    return [f"{name} reached {s:.1%} of its {target:.0%} target in fine-tuning"
            for name, (target, s) in short.items()]


def _restore_compile(final: Any, model: Any) -> None:
    """Compile ``final`` as the user's model was (a fresh optimizer), when it was compiled."""
    if getattr(model, "compiled", False) and model.get_compile_config():
        try:
            final.compile_from_config(model.get_compile_config())
        except (TypeError, ValueError):
            pass  # left with the fine-tuning loss; the weights are what matters


def check_inputs(model: Any, data: Any, metric: str | None, max_drop: Any, sparsity: float | None,
             unsafe: bool, structured: bool = False) -> tuple[PruneData, Budget, str, int]:
    """Validate everything before any work: the data split, the budget, why that metric and
    the model's number of outputs.

    Raises:
        AutoPruneError: The first problem found.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
        >>> x, y = np.zeros((50, 2)), np.arange(50) % 3
        >>> check_inputs(model, (x, y), None, "1%", None, False)[1]
        Budget(metric='accuracy', max_drop=0.01, relative=True)
    """
    from prunekit.auto.metric import parse_max_drop

    if (max_drop is None) == (sparsity is None):
        raise AutoPruneError("give exactly one of max_drop (an error budget, --max-drop) and "
                             f"sparsity (a fixed target, --sparsity). Received: "
                             f"max_drop={max_drop!r}, sparsity={sparsity!r}")
    if structured and sparsity is None:
        raise AutoPruneError("--structured removes a fixed share of units: give --sparsity "
                             "(sparsity=) with it, not an error budget.")
    if structured:
        from prunekit.auto.structured import check_structured

        check_structured(model)
    if sparsity is not None and not 0 < sparsity < 1:
        raise AutoPruneError(f"sparsity must be in (0, 1). Received: sparsity={sparsity!r}")
    if not isinstance(data, PruneData):
        if not (isinstance(data, tuple) and len(data) == 2):
            raise AutoPruneError("data must be (x, y) arrays or a PruneData. Received: "
                                 f"{type(data).__name__}")
        data = split_data(*data)
    n_outputs = check_model(model, data.x_val, unsafe)
    name, why = (metric_name(metric), "chosen with --metric") if metric else \
        default_metric(model, n_outputs)
    for y, where in ((data.y_train, "the training targets"),
                     (data.y_val, "the validation targets")):
        check_targets(name, y, n_outputs, where)
    drop, relative = parse_max_drop(max_drop) if max_drop is not None else (math.inf, False)
    pruned, skipped = scanning.pruned_copy(model, data.x_val[:1])
    if not scanning.units(pruned):
        raise AutoPruneError("the model has no layer prunekit can prune "
                             f"({'; '.join(skipped) or 'no prunable weights'}).")
    return data, Budget(name, drop, relative), why, n_outputs


def auto_prune(model: Any, data: Any, max_drop: str | float | None = None,
               sparsity: float | None = None, metric: str | None = None, epochs: int = 10,
               batch_size: int = 32, learning_rate: float | None = None, frequency: int = 100,
               ladder: tuple[float, ...] = scanning.DEFAULT_LADDER, max_trials: int = 6,
               unsafe: bool = False, seed: int = 0, log_dir: str | None = None,
               test: tuple[np.ndarray, np.ndarray] | None = None, structured: bool = False,
               verbose: bool = False) -> tuple[Any, AutoPruneReport]:
    """Prune ``model`` as far as an error budget allows, layer by layer (or to a fixed sparsity).

    See the module docstring for the method. ``model`` is never changed: every trial prunes a
    copy.

    Args:
        model: A built Keras model with one input (Sequential, Functional or subclassed).
        data: ``(x, y)`` arrays (20 % held out, seeded) or a
            :class:`~prunekit.auto.data.PruneData` with its own validation rows.
        max_drop: The budget: ``"1%"`` (relative to the baseline) or a number in metric units.
        sparsity: Instead of a budget, every prunable layer at this sparsity in (0, 1).
        metric: ``accuracy``, ``mse`` or ``mae`` (default: from the model's compiled
            metric or loss, else the number of outputs).
        epochs: Fine-tuning epochs per trial.
        batch_size: Fine-tuning batch size.
        learning_rate: Adam's learning rate (default: the model's compiled optimizer at a
            tenth of its learning rate, else Adam at 1e-4).
        frequency: Steps between mask updates (lowered, with a note, for small data).
        ladder: Sparsities of the scan, increasing, in (0, 1).
        max_trials: Most fine-tuning trials of the search.
        unsafe: Accept Lambda layers.
        seed: Seed of the split and the fine-tuning.
        log_dir: TensorBoard logs (``PruningSummaries``), one folder per trial.
        test: Optional ``(x, y)`` never used for any decision, measured for the report.
        structured: With ``sparsity``: also remove that share of whole units from a copy
            (:mod:`prunekit.auto.structured`), fine-tune and time it; the shrunk model is
            ``report.shrunk_model``, its figures ``report.structured``.
        verbose: Print one line per stage and trial.

    Returns:
        ``(pruned, report)``: a plain Keras model (pruning stripped, exact zeros) and the
        :class:`~prunekit.auto.report.AutoPruneReport`.

    Raises:
        AutoPruneError: Bad arguments, data that does not fit the model, Lambda layers
            without ``unsafe`` -- before any work.

    Example:
        >>> import keras
        >>> x = np.random.default_rng(0).normal(size=(200, 4)).astype("float32")
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
        ...                           keras.layers.Dense(1)])
        >>> pruned, report = auto_prune(model, (x, x.sum(axis=1)), sparsity=0.5, epochs=1)
        >>> sorted(report.sparsities.values())
        [0.5, 0.5]
    """
    begun = time.perf_counter()
    data, budget, why, _ = check_inputs(model, data, metric, max_drop, sparsity, unsafe,
                                        structured)
    ladder = tuple(sorted({*ladder, *([sparsity] if sparsity else [])}))
    if not ladder or not all(0 < s < 1 for s in ladder):
        raise AutoPruneError(f"ladder sparsities must be in (0, 1). Received: ladder={ladder!r}")
    total_steps = epochs * math.ceil(len(data.x_train) / batch_size)
    end_step, frequency, note = schedule_steps(total_steps, frequency)
    notes = [note] if note else []
    if verbose:
        print(f"scanning {budget.metric} at sparsities {', '.join(f'{s:g}' for s in ladder)}")
    scan = scanning.sensitivity_scan(model, data.x_val, data.y_val, budget, ladder)
    if sparsity is None:
        path = allocate.greedy_path(scan)
        start = max(1, allocate.budget_index(path, budget.max_drop))
    else:
        path, start = [allocate.PathPoint({}, 0.0, 0), allocate.uniform_point(scan, sparsity)], 1
    settings = {"budget": budget, "end_step": end_step, "frequency": frequency,
                "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                "seed": seed, "names": [c.name for c in scan.layers],
                "max_trials": max_trials if sparsity is None else 1}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trials, models = _search(model, data, path, start, settings, scan.baseline, log_dir,
                                 verbose)
    notes += list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught
                                if "prunekit" in w.filename or "wrapper" in str(w.message)))
    notes += _short_of_target(trials)
    held = [t for t in trials if t.held or sparsity is not None]
    best = max(held, key=lambda t: t.removed) if held else None
    if best is None:
        notes.append("no trial held the budget: the model is returned unpruned")
        final = copy_model(model, data.x_val)
    else:
        final = models[best.index]
    _restore_compile(final, model)
    value = metric_value(budget.metric, data.y_val, predict(final, data.x_val))
    report = AutoPruneReport.build(
        budget=budget if sparsity is None else None, metric=budget.metric, metric_reason=why,
        baseline=scan.baseline, value=value, scan=scan, trials=trials, chosen=best,
        model=final, data=data, loss=_loss(budget, model, data)[1],
        schedule={"epochs": epochs, "batch_size": batch_size, "end_step": end_step,
                  "frequency": frequency, "steps": total_steps},
        notes=notes, wall_time_s=time.perf_counter() - begun)
    if structured:
        from prunekit.auto.structured import shrink_and_tune

        compile_args = {"loss": _loss(budget, model, data)[0],
                        "optimizer": _optimizer(model, learning_rate)}
        report.shrunk_model, report.structured = shrink_and_tune(
            model, data, sparsity, budget, scan.baseline, compile_args,
            {"epochs": epochs, "batch_size": batch_size})
    if test is not None:
        x_test, y_test = test
        report.test = {"rows": len(x_test),
                       "baseline": metric_value(budget.metric, y_test, predict(model, x_test)),
                       "value": metric_value(budget.metric, y_test, predict(final, x_test))}
        report.test["drop"] = budget.drop(report.test["baseline"], report.test["value"])
    return final, report
