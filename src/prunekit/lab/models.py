"""The article's model as the study and the sweep train it: build, compile, predict, describe.

The network is ``Dense(128, relu) -> Dense(1, relu)`` (digits: ``Dense(10, softmax)``), its
layers named ``hidden`` and ``output``.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from prunekit.lab.data import Dataset

#: Units of the hidden Dense layer.
HIDDEN_UNITS = 128
#: The model's prunable layers, input to output.
LAYER_NAMES = ("hidden", "output")

#: How to get ``keras.utils.plot_model`` working when it is not.
PLOT_INSTALL_HINT = (
    "model pictures need Graphviz and pydot: `apt-get install graphviz` "
    "(or `brew install graphviz`) and `pip install pydot`"
)


def build_model(data: Dataset) -> Any:
    """The article's network: ``Dense(128, relu) -> Dense(1, relu)``.

    For digits the output layer is ``Dense(10, softmax)``. Layers are named ``hidden`` and
    ``output``.

    Args:
        data: The dataset (fixes the input width and the output layer).

    Returns:
        An uncompiled, built ``keras.Sequential``.

    Example:
        >>> from prunekit.lab.data import load_dataset
        >>> build_model(load_dataset("friedman")).count_params()
        1537
    """
    import keras

    if data.task == "regression":
        output = keras.layers.Dense(1, activation="relu", name="output")
    else:
        output = keras.layers.Dense(data.n_classes, activation="softmax", name="output")
    return keras.Sequential(
        [
            keras.Input(shape=(data.n_features,)),
            keras.layers.Dense(HIDDEN_UNITS, activation="relu", name="hidden"),
            output,
        ]
    )


def kernel_shapes(n_features: int, n_outputs: int) -> dict[str, tuple[int, int]]:
    """Kernel shapes of the model, by layer name, input to output.

    Example:
        >>> kernel_shapes(10, 1)
        {'hidden': (10, 128), 'output': (128, 1)}
    """
    return {"hidden": (n_features, HIDDEN_UNITS), "output": (HIDDEN_UNITS, n_outputs)}


def compile_model(model: Any, data: Dataset, learning_rate: float = 1e-3,
                  steps_per_execution: int = 1) -> Any:
    """Compile as the article: adam, mse loss, mae/mse metrics (digits: crossentropy, accuracy).

    Args:
        model: The Keras model.
        data: The dataset (fixes loss and metrics).
        learning_rate: Adam's learning rate (Keras's default, as the article).
        steps_per_execution: Batches per compiled call (see :func:`steps_per_execution`).

    Returns:
        ``model``, compiled.

    Example:
        >>> from prunekit.lab.data import load_dataset
        >>> data = load_dataset("friedman")
        >>> compile_model(build_model(data), data).loss
        'mse'
    """
    import keras

    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    fused = steps_per_execution
    if data.task == "regression":
        model.compile(optimizer=optimizer, loss="mse", metrics=["mae", "mse"],
                      steps_per_execution=fused)
    else:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], steps_per_execution=fused)
    return model


def steps_per_epoch(data: Dataset, validation_split: float, batch_size: int) -> int:
    """Training batches per epoch after Keras's ``validation_split`` (the article's: 168).

    Keras holds out the last ``validation_split`` of the rows, so
    ``ceil(floor(n_train * (1 - validation_split)) / batch_size)``.

    Example:
        >>> from prunekit.lab.data import load_dataset
        >>> steps_per_epoch(load_dataset("friedman"), 0.2, 32)
        168
    """
    kept = math.floor(len(data.x_train) * (1.0 - validation_split))
    return math.ceil(kept / batch_size)


def steps_per_execution(epochs: int) -> int:
    """Batches per compiled call for a run of up to ``epochs`` epochs: 8 for long runs, else 1.

    The same batches in the same order, so training is unchanged (checked: identical losses),
    but the per-batch Python overhead is paid once per 8 batches, which makes the full study
    about 25% faster on JAX. The study's callbacks act at epoch boundaries only, so they do not
    notice. Short runs keep 1: compiling the 8-batch function costs more than it saves there.
    Keras's PyTorch trainer requires 1.

    Example:
        >>> steps_per_execution(3)
        1
    """
    import keras

    return 1 if keras.backend.backend() == "torch" or epochs < 20 else 8


def count_params(model: Any) -> dict[str, int]:
    """Total, trainable and non-trainable parameter counts (as ``model.summary()`` prints).

    Example:
        >>> from prunekit.lab.data import load_dataset
        >>> count_params(build_model(load_dataset("friedman")))
        {'total': 1537, 'trainable': 1537, 'non_trainable': 0}
    """
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return {"total": trainable + non_trainable, "trainable": trainable,
            "non_trainable": non_trainable}


def summary_text(model: Any, title: str) -> str:
    """``model.summary()`` as plain text, headed by ``title`` and the parameter counts.

    Example:
        >>> from prunekit.lab.data import load_dataset
        >>> "Total params: 1,537" in summary_text(build_model(load_dataset("friedman")), "a")
        True
    """
    lines: list[str] = []
    # 80 columns: Keras renders through a rich console that cuts wider tables off.
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line), line_length=80)
    counts = count_params(model)
    header = (
        f"{title}\n"
        f"total params: {counts['total']:,} | trainable: {counts['trainable']:,} | "
        f"non-trainable: {counts['non_trainable']:,}\n"
    )
    if getattr(model, "optimizer", None) is not None and model.optimizer.built:
        header += "(Keras's own 'Total params' below also counts the optimizer's state.)\n"
    header += "\n"
    return header + "\n".join(lines).rstrip() + "\n"


def plot_model(model: Any, path: str) -> str | None:
    """Draw ``model`` to ``path`` with ``keras.utils.plot_model``.

    Args:
        model: The Keras model.
        path: The PNG file to write.

    Returns:
        ``None`` on success, else why the picture could not be drawn (with install hints).

    Example:
        >>> from prunekit.lab.data import load_dataset
        >>> plot_model(build_model(load_dataset("friedman")), "/tmp/m.png")  # doctest: +SKIP
    """
    import keras

    try:
        keras.utils.plot_model(
            model, to_file=path, show_shapes=True, show_layer_names=True, expand_nested=True,
            dpi=72,
        )
    except (ImportError, OSError, FileNotFoundError) as error:
        return f"{PLOT_INSTALL_HINT} ({type(error).__name__}: {str(error).splitlines()[0]})"
    return None if os.path.exists(path) else PLOT_INSTALL_HINT


def predict(model: Any, x: np.ndarray) -> np.ndarray:
    """The model's outputs for ``x`` (inference mode), as a NumPy array.

    One eager call: on JAX, ``model.predict`` would compile a function per model (~0.3 s each),
    which costs more than it saves on the study's few thousand rows.

    Example:
        >>> from prunekit.lab.data import load_dataset
        >>> data = load_dataset("friedman")
        >>> predict(build_model(data), data.x_test).shape
        (3300, 1)
    """
    import keras

    return np.asarray(keras.ops.convert_to_numpy(model(keras.ops.convert_to_tensor(x),
                                                       training=False)))


def strip_if_pruned(model: Any) -> Any:
    """The plain model to measure: ``prunekit.strip_pruning(model)`` if it has pruning
    wrappers (a new model), else ``model`` itself. ``model`` is not changed.

    Example:
        >>> import prunekit
        >>> from prunekit.lab.data import load_dataset
        >>> model = build_model(load_dataset("friedman"))
        >>> strip_if_pruned(model) is model
        True
        >>> pruned = prunekit.prune_low_magnitude(model)
        >>> [layer.name for layer in strip_if_pruned(pruned).layers]
        ['hidden', 'output']
    """
    import prunekit

    if any(True for _ in prunekit.iter_wrappers(model)):
        return prunekit.strip_pruning(model)
    return model
