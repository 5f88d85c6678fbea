"""One run of a sweep: build the study's model, prune it as asked, train, strip and measure.

Every run trains for the same number of epochs (no early stopping), seeded with
:func:`prunekit.sweep.grid.run_seed`, and returns a flat JSON-able record (one line of
``runs.jsonl``). Sizes are measured on the stripped model: the article's gzipped size
(:func:`prunekit.export.sizes.gzipped_size`, the same measure as the study's) and prunekit's
int8 compressed sparse format.
"""

from __future__ import annotations

import datetime
import math
import os
import time
from typing import Any

from prunekit.lab.data import Dataset, score
from prunekit.lab.models import kernel_shapes, steps_per_epoch
from prunekit.sweep.grid import ModelFacts, RunParams, run_seed
from prunekit.sweep.spec import SweepSpec


def model_facts(data: Dataset, spec: SweepSpec) -> ModelFacts:
    """Kernel shapes of the study's model on ``data`` and the training steps of one run.

    Example:
        >>> from prunekit.lab.data import load_dataset
        >>> from prunekit.sweep.spec import make_spec
        >>> model_facts(load_dataset("friedman"), make_spec(epochs=2))
        ModelFacts(kernels={'hidden': (10, 128), 'output': (128, 1)}, total_steps=336)
    """
    outputs = data.n_classes if data.task == "classification" else 1
    steps = steps_per_epoch(data, spec.validation_split, spec.batch_size) * spec.epochs
    return ModelFacts(kernel_shapes(data.n_features, outputs), steps)


def make_schedule(params: RunParams) -> Any:
    """The ``prunekit`` schedule of a run (``None`` for the dense run).

    Example:
        >>> from prunekit.sweep.grid import dense_run
        >>> make_schedule(dense_run()) is None
        True
    """
    import prunekit

    if params.schedule == "constant":
        return prunekit.ConstantSparsity(params.sparsity, params.begin_step, params.end_step,
                                         params.frequency)
    if params.schedule == "polynomial":
        return prunekit.PolynomialDecay(params.initial_sparsity, params.sparsity,
                                        params.begin_step, params.end_step, power=params.power,
                                        frequency=params.frequency)
    return None


def _layer_policy(names: set[str]) -> Any:
    """A ``PruningPolicy`` wrapping exactly the layers named ``names``."""
    import prunekit

    class OnlyLayers(prunekit.PruningPolicy):
        def allow_pruning(self, layer: Any) -> bool:
            return layer.name in names

        def ensure_model_supports_pruning(self, model: Any) -> None:
            return None

    return OnlyLayers()


def build_run_model(params: RunParams, data: Dataset) -> Any:
    """The study's model for ``data``, pruned as ``params`` says (uncompiled).

    Example:
        >>> from prunekit.lab.data import load_dataset
        >>> from prunekit.sweep.grid import dense_run
        >>> build_run_model(dense_run(), load_dataset("friedman")).count_params()
        1537
    """
    import prunekit
    from prunekit.lab.models import build_model

    model = build_model(data)
    if params.schedule == "none":
        return model
    return prunekit.prune_low_magnitude(
        model, pruning_schedule=make_schedule(params), block_size=params.block,
        block_pooling_type=params.pooling, pruning_scope=params.scope,
        pruning_policy=_layer_policy(set(params.pruned_layers.split(","))))


def measure(model: Any, params: RunParams) -> dict[str, Any]:
    """Sparsity, parameter counts and compressed sizes of a trained model's stripped form.

    Returns:
        ``achieved_sparsity`` (zeros over the pruned kernels), ``layer_sparsity``,
        ``weights``, ``nonzeros``, ``gz_bytes`` (the article's gzipped size of the ``.h5``
        file) and ``int8_bytes`` (``None`` if the model cannot be encoded).

    Example:
        >>> from prunekit.lab.data import load_dataset
        >>> from prunekit.sweep.grid import dense_run
        >>> run = dense_run()
        >>> measure(build_run_model(run, load_dataset("friedman")), run)["weights"]
        1537
    """
    from prunekit.export.sizes import gzipped_size
    from prunekit.lab.models import strip_if_pruned
    from prunekit.lab.sizes import int8_size, kernel_sparsity, weight_counts, zero_counts

    plain = strip_if_pruned(model)
    pruned = set(params.pruned_layers.split(",")) if params.pruned_layers else None
    zeros, total = zero_counts(plain, pruned)
    weights, nonzeros = weight_counts(plain)
    return {"achieved_sparsity": round(zeros / max(total, 1), 6),
            "layer_sparsity": {k: round(v, 6) for k, v in kernel_sparsity(plain).items()},
            "weights": weights, "nonzeros": nonzeros,
            "gz_bytes": gzipped_size(plain), "int8_bytes": int8_size(plain)}


def run_notes(params: RunParams, total_steps: int, achieved: float) -> list[str]:
    """Remarks on a run worth a reader's attention (e.g. a target never reached).

    Example:
        >>> from prunekit.sweep.grid import RunParams
        >>> run = RunParams("polynomial", 0.8, 0.0, 0, 1000, 100, 3.0, "1x1", "AVG", "all",
        ...                 "hidden,output", "layer")
        >>> run_notes(run, 336, 0.6)[0][:33]
        'end_step 1000 is after the last t'
    """
    notes = []
    if params.schedule == "polynomial" and params.end_step > total_steps:
        notes.append(f"end_step {params.end_step} is after the last training step "
                     f"({total_steps}): the final sparsity {params.sparsity:.0%} was not reached")
    if params.schedule != "none" and params.block_size == "1x1" and params.scope == "layer" \
            and abs(achieved - params.sparsity) > 0.02 and not notes:
        notes.append(f"achieved sparsity {achieved:.1%} differs from the target "
                     f"{params.sparsity:.0%}")
    return notes


def run_one(params: RunParams, spec: SweepSpec, data: Dataset) -> dict[str, Any]:
    """Train and measure one run; return its record (one line of ``runs.jsonl``).

    Args:
        params: The run's pruning parameters.
        spec: The sweep (epochs, batch size, base seed...).
        data: The dataset.

    Returns:
        A flat dict: ``key``, ``seed``, every parameter, ``metric``, ``test_metric``,
        ``error`` (MSE, or 1 - accuracy), the :func:`measure` figures, ``train_time_s``,
        ``steps``, final losses, ``notes``, ``backend``, ``devices`` (of the Keras
        distribution, else 1), ``pid`` (the worker process) and ``finished``.

    Example:
        >>> from prunekit.sweep.grid import dense_run
        >>> from prunekit.sweep.spec import make_spec
        >>> from prunekit.lab.data import load_dataset
        >>> record = run_one(dense_run(), make_spec(epochs=1), load_dataset("friedman"))
        >>> record["achieved_sparsity"]
        0.0
    """
    import keras

    import prunekit
    from prunekit.lab.devices import devices_in_use, fresh_session
    from prunekit.lab.models import compile_model, predict

    start = time.perf_counter()
    fresh_session()  # runs share a worker process: start each from scratch
    seed = run_seed(spec.seed, params)
    keras.utils.set_random_seed(seed)
    model = compile_model(build_run_model(params, data), data, spec.learning_rate)
    callbacks = [prunekit.UpdatePruningStep()] if params.schedule != "none" else []
    fit_start = time.perf_counter()
    history = model.fit(data.x_train, data.y_train, epochs=spec.epochs,
                        batch_size=spec.batch_size, validation_split=spec.validation_split,
                        callbacks=callbacks, verbose=0).history
    train_time = time.perf_counter() - fit_start
    metric = score(data, predict(model, data.x_test))
    sizes = measure(model, params)
    steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    return {"key": params.key(), "seed": seed, **params.as_dict(), "metric": data.metric,
            "test_metric": metric, "error": metric if data.metric == "mse" else 1.0 - metric,
            **sizes, "train_time_s": round(train_time, 3),
            "run_time_s": round(time.perf_counter() - start, 3), "epochs": spec.epochs,
            "steps": steps, "loss": _last(history, "loss"), "val_loss": _last(history, "val_loss"),
            "notes": run_notes(params, steps, sizes["achieved_sparsity"]),
            "backend": keras.backend.backend(), "devices": devices_in_use(), "pid": os.getpid(),
            "finished": datetime.datetime.now().isoformat(timespec="seconds")}


def _last(history: dict[str, list[float]], key: str) -> float | None:
    values = history.get(key) or []
    value = float(values[-1]) if values else None
    return value if value is None or math.isfinite(value) else None
