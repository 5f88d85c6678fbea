"""The study's runs: what each one trains, with which pruning parameters and callbacks.

==============  ===  ============================================================================
run             id   what it does
==============  ===  ============================================================================
baseline        a    The article's dense model, EarlyStopping(patience=30).
whole           b    The whole model pruned from scratch: ConstantSparsity(0.5, 0), 1x1 AVG.
layer           c    Only the first Dense pruned: PolynomialDecay(0.2->0.8, steps 1000->2000),
                     block 2x3, MAX.
weights         d    Baseline weights reloaded from a ``.weights.h5`` file, pruned with the
                     default parameters, fine-tuned, stripped (the article's size section).
recommended     r    How to prune well: from the trained baseline, hidden layer only (the 1-unit
                     output layer stays dense), PolynomialDecay 0->80% over a ramp, early stopping
                     only once the ramp is over.
structured      s    Whole hidden units removed: from the trained baseline, 0->50 % of the 128 units
                     zeroed gradually (``prune_structured``, L2 importance), then ``shrink``: a
                     smaller dense model (64 hidden units), timed against the others.
custom          x    Your parameters (``--sparsity``, ``--schedule``...; defaults are run b's).
==============  ===  ============================================================================

Pruning runs use UpdatePruningStep, PruningSummaries and EarlyStopping(patience=10), as the
article did; the structured run uses the ``StructuredPruning`` callback (it writes its own
TensorBoard scalar) instead of the first two.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from prunekit.study.config import RUN_ALIASES, StudyConfig
from prunekit.lab.data import Dataset
from prunekit.lab.models import build_model, steps_per_epoch

LETTERS = {run: letter for letter, run in RUN_ALIASES.items()}
#: The recommended run ramps sparsity up over at most this many epochs.
RECOMMENDED_RAMP_EPOCHS = 30
RECOMMENDED_SPARSITY = 0.8
#: Fraction of the hidden units the structured run removes.
STRUCTURED_SPARSITY = 0.5


@dataclasses.dataclass
class RunPlan:
    """How to build and train one run.

    Attributes:
        run_id: The run's id (see the module docstring).
        title: Short title for tables.
        description: One or two sentences for the report.
        build: Returns the (uncompiled) model to train.
        pruning: Pruning parameters for the record, or ``None`` for the baseline.
        patience: EarlyStopping patience (on ``val_loss``).
        start_from_epoch: Epochs before EarlyStopping starts watching.
        structured: The schedule of a structured run (units removed with
            ``prunekit.structured.prune_structured``, then the model shrunk), else ``None``.
    """

    run_id: str
    title: str
    description: str
    build: Callable[[], Any]
    pruning: dict[str, Any] | None = None
    patience: int = 10
    start_from_epoch: int = 0
    structured: Any = None

    @property
    def letter(self) -> str:
        """The run's letter (a, b, c, d, r, s, x)."""
        return LETTERS[self.run_id]


def recommended_end_step(data: Dataset, config: StudyConfig, frequency: int = 100) -> int:
    """End of the recommended run's ramp: a multiple of ``frequency`` within the epochs.

    The ramp spans ``min(30, 2/3 of the epochs)`` epochs (at least one mask update), rounded
    down to a multiple of ``frequency`` so that the last update lands exactly on
    ``end_step`` and the final sparsity is reached.

    Example:
        >>> from prunekit.study.config import make_config
        >>> from prunekit.lab.data import load_dataset
        >>> recommended_end_step(load_dataset("friedman"), make_config(epochs=3))
        300
    """
    ramp_epochs = min(RECOMMENDED_RAMP_EPOCHS, max(1, (2 * config.epochs) // 3))
    steps = ramp_epochs * steps_per_epoch(data, config.validation_split, config.batch_size)
    return max(frequency, steps // frequency * frequency)


def _record(schedule: Any, block_size: tuple[int, int], pooling: str, layers: str,
            start: str) -> dict[str, Any]:
    return {"schedule": repr(schedule), "block_size": f"{block_size[0]}x{block_size[1]}",
            "block_pooling_type": pooling, "pruned_layers": layers, "start": start}


def _from_weights(data: Dataset, weights_path: str) -> Any:
    model = build_model(data)
    model.load_weights(weights_path)
    return model


def _prune_hidden_only(model: Any, **params: Any) -> Any:
    """Wrap the hidden Dense of a study model; the output layer stays dense (weights shared)."""
    import keras

    import prunekit

    hidden, output = model.layers
    return keras.Sequential([keras.Input(shape=model.input_shape[1:]),
                             prunekit.prune_low_magnitude(hidden, **params), output])


def plan_run(run_id: str, config: StudyConfig, data: Dataset, weights_path: str) -> RunPlan:
    """Describe run ``run_id`` (see the module docstring for the runs).

    Args:
        run_id: One of :data:`prunekit.study.config.RUN_IDS`.
        config: The study configuration.
        data: The dataset.
        weights_path: The baseline's ``.weights.h5`` file (written by run ``baseline``).

    Returns:
        The :class:`RunPlan`.

    Example:
        >>> from prunekit.study.config import make_config
        >>> from prunekit.lab.data import load_dataset
        >>> plan = plan_run("layer", make_config(), load_dataset("friedman"), "w.weights.h5")
        >>> plan.pruning["block_size"]
        '2x3'
    """
    import prunekit

    if run_id == "baseline":
        return RunPlan(run_id, "Baseline (no pruning)",
                       "The article's Dense(128, relu) -> Dense(1) model, trained without pruning "
                       "(EarlyStopping on val_loss, patience 30).",
                       lambda: build_model(data), patience=30)
    if run_id == "whole":
        schedule = prunekit.ConstantSparsity(0.5, 0)
        return RunPlan(run_id, "Whole model, Constant 50%",
                       "The whole model pruned from scratch with the article's pruning_params. "
                       "Half of the 1-unit output layer's 128 weights are zeroed too, cutting "
                       "half of the hidden units off from the output: the article's four runs of "
                       "this recipe gave MSE 0.18, 0.42, 2.39 and 2.43.",
                       lambda: prunekit.prune_low_magnitude(
                           build_model(data), pruning_schedule=schedule, block_size=(1, 1),
                           block_pooling_type="AVG"),
                       _record(schedule, (1, 1), "AVG", "all", "scratch"))
    if run_id == "layer":
        schedule = prunekit.PolynomialDecay(initial_sparsity=0.2, final_sparsity=0.8,
                                            begin_step=1000, end_step=2000)
        return RunPlan(run_id, "First Dense, Poly 20->80%",
                       "Only the first Dense layer pruned from scratch, in 2x3 blocks (MAX), "
                       "sparsity rising from 20% to 80% between steps 1000 and 2000.",
                       lambda: _prune_hidden_only(build_model(data), pruning_schedule=schedule,
                                                  block_size=(2, 3), block_pooling_type="MAX"),
                       _record(schedule, (2, 3), "MAX", "hidden", "scratch"))
    if run_id == "weights":
        schedule = prunekit.ConstantSparsity(0.5, 0)
        return RunPlan(run_id, "Baseline weights, default",
                       "The baseline's weights saved to a .weights.h5 file, loaded into a fresh "
                       "model, pruned with prune_low_magnitude's defaults, fine-tuned, stripped.",
                       lambda: prunekit.prune_low_magnitude(_from_weights(data, weights_path)),
                       _record(schedule, (1, 1), "AVG", "all", "baseline weights"))
    if run_id == "recommended":
        end = recommended_end_step(data, config)
        schedule = prunekit.PolynomialDecay(0.0, RECOMMENDED_SPARSITY, begin_step=0,
                                            end_step=end, frequency=100)
        per_epoch = steps_per_epoch(data, config.validation_split, config.batch_size)
        ramp_epochs = math.ceil(end / per_epoch)
        return RunPlan(run_id, "Recommended: hidden 0->80%",
                       "Start from the trained baseline, prune only the hidden layer (pruning the "
                       "1-unit output layer removes whole hidden units), raise sparsity gradually "
                       f"to 80% by step {end} and only then let early stopping act.",
                       lambda: _prune_hidden_only(_from_weights(data, weights_path),
                                                  pruning_schedule=schedule),
                       _record(schedule, (1, 1), "AVG", "hidden", "baseline weights"),
                       start_from_epoch=ramp_epochs)
    if run_id == "structured":
        return _plan_structured(config, data, weights_path)
    if run_id == "custom":
        return _plan_custom(config, data, weights_path)
    raise ValueError(f"Unknown run. Received: run_id={run_id!r}")


def _plan_structured(config: StudyConfig, data: Dataset, weights_path: str) -> RunPlan:
    import prunekit

    end = recommended_end_step(data, config)
    schedule = prunekit.PolynomialDecay(0.0, STRUCTURED_SPARSITY, begin_step=0, end_step=end,
                                        frequency=100)
    per_epoch = steps_per_epoch(data, config.validation_split, config.batch_size)
    record = {"schedule": repr(schedule), "granularity": "hidden units (whole)",
              "importance": "l2", "pruned_layers": "hidden", "start": "baseline weights"}
    return RunPlan("structured", f"Structured: {STRUCTURED_SPARSITY:.0%} units, shrunk",
                   "Start from the trained baseline and remove whole hidden units: "
                   "prunekit.structured.prune_structured zeroes the units of lowest L2 norm "
                   f"(input column and output row), 0 -> {STRUCTURED_SPARSITY:.0%} by step "
                   f"{end}; then prunekit.structured.shrink rebuilds a smaller dense model "
                   "without them, which is what is measured, sized and timed.",
                   lambda: _from_weights(data, weights_path), record,
                   start_from_epoch=math.ceil(end / per_epoch), structured=schedule)


def _plan_custom(config: StudyConfig, data: Dataset, weights_path: str) -> RunPlan:
    import prunekit

    c = config.custom
    if c.schedule == "constant":
        schedule = prunekit.ConstantSparsity(c.sparsity, c.begin_step, c.end_step, c.frequency)
    else:
        schedule = prunekit.PolynomialDecay(c.initial_sparsity, c.sparsity, c.begin_step,
                                            c.end_step, frequency=c.frequency)
    params = {"pruning_schedule": schedule, "block_size": c.block_size,
              "block_pooling_type": c.pooling}

    def build() -> Any:
        base = _from_weights(data, weights_path) if c.from_baseline else build_model(data)
        if c.prune_layers == "hidden":
            return _prune_hidden_only(base, **params)
        return prunekit.prune_low_magnitude(base, **params)

    start = "baseline weights" if c.from_baseline else "scratch"
    return RunPlan("custom", f"Custom {c.schedule} {c.sparsity:.0%}",
                   "Your parameters from the command line.", build,
                   _record(schedule, c.block_size, c.pooling, c.prune_layers, start))
