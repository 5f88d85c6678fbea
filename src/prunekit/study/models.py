"""The study's model and the article's ways of measuring it: summaries, pictures, gzipped size."""

from __future__ import annotations

import logging
import os
import zipfile
from typing import Any

import numpy as np

from prunekit.study.config import HIDDEN_UNITS
from prunekit.study.data import Dataset

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
        >>> from prunekit.study.data import load_dataset
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
        >>> from prunekit.study.data import load_dataset
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
        >>> from prunekit.study.data import load_dataset
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
        >>> from prunekit.study.data import load_dataset
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
        >>> from prunekit.study.data import load_dataset
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


def gzipped_size(model: Any, model_path: str, zip_path: str) -> int:
    """The article's ``get_gzipped_model_size``: save the model, deflate it, size of the zip.

    ``model.save(model_path, include_optimizer=False)``, then a ``ZIP_DEFLATED`` archive
    holding that one file. Use an ``.h5`` name, as the article: Keras 3 honours
    ``include_optimizer=False`` only for ``.h5`` and silently saves the optimizer's state into
    a ``.keras`` file, which would count Adam's two moments (2x the weights) in the size.

    Args:
        model: The Keras model.
        model_path: Where to save the model (``.h5``).
        zip_path: Where to write the zip.

    Returns:
        Size of the zip in bytes.

    Example:
        >>> from prunekit.study.data import load_dataset
        >>> model = build_model(load_dataset("friedman"))
        >>> 5000 < gzipped_size(model, "/tmp/m.h5", "/tmp/m.zip") < 9000
        True
    """
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)  # Quiet Keras's "HDF5 is legacy" warning: we want HDF5 here.
    try:
        model.save(model_path, include_optimizer=False)
    finally:
        absl.setLevel(level)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(model_path, arcname=os.path.basename(model_path))
    return os.path.getsize(zip_path)


def kernel_sparsity(model: Any) -> dict[str, float]:
    """Fraction of exact zeros in each kernel of a plain (stripped) model, by layer name.

    Example:
        >>> from prunekit.study.data import load_dataset
        >>> kernel_sparsity(build_model(load_dataset("friedman")))
        {'hidden': 0.0, 'output': 0.0}
    """
    import keras

    result = {}
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None:
            values = np.asarray(keras.ops.convert_to_numpy(kernel))
            result[layer.name] = float(np.mean(values == 0))
    return result
