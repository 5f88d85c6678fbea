"""The user's model: loading it safely, checking it against the data, copying and predicting.

Nothing here changes the user's model: every pruning step works on a copy
(:func:`copy_model`), which shares no variables with it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

import numpy as np

from prunekit.auto.data import AutoPruneError

#: Rows per forward pass when predicting (bounds memory on large validation sets).
BATCH = 1024


def predict(model: Any, x: np.ndarray) -> np.ndarray:
    """The model's outputs for ``x`` in inference mode, as one NumPy array.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> predict(model, np.zeros((5, 3), "float32")).shape
        (5, 2)
    """
    import keras

    parts = [keras.ops.convert_to_numpy(model(keras.ops.convert_to_tensor(x[i:i + BATCH]),
                                              training=False))
             for i in range(0, len(x), BATCH)]
    return np.concatenate([np.asarray(p) for p in parts])


def lambda_layers(model: Any) -> list[str]:
    """Paths of the ``keras.layers.Lambda`` layers in ``model`` (nested ones included).

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda t: t * 2,
        ...                           name="double")])
        >>> lambda_layers(model)
        ['double']
    """
    import keras

    from prunekit import walk

    return [path for path, layer in walk.iter_layers(model)
            if isinstance(layer, keras.layers.Lambda)]


def check_model(model: Any, x: np.ndarray, unsafe: bool = False) -> int:
    """Refuse a model the data does not fit, or one holding Lambda layers without ``unsafe``.

    Args:
        model: A built Keras model with one input and one output.
        x: Sample inputs, first axis the rows.
        unsafe: Accept Lambda layers (arbitrary Python code, copied by serialization).

    Returns:
        The number of outputs per row (the last axis of the output).

    Raises:
        AutoPruneError: Naming the expected and the received shapes, or the Lambda layers.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> check_model(model, np.zeros((4, 3), "float32"))
        2
        >>> check_model(model, np.zeros((4, 5), "float32"))
        Traceback (most recent call last):
        ...
        prunekit.auto.data.AutoPruneError: the model takes inputs of shape (None, 3); ... (4, 5)
    """
    import keras

    if not isinstance(model, keras.Model):
        raise AutoPruneError(f"expected a keras.Model. Received: {type(model).__name__}")
    found = lambda_layers(model)
    if found and not unsafe:
        raise AutoPruneError(f"the model has Lambda layers ({', '.join(found)}): Python code "
                             "that cannot be copied safely; pass --unsafe (unsafe=True) if you "
                             "trust it.")
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) > 1:
        raise AutoPruneError(f"the model has {len(inputs)} inputs; prunekit prune takes models "
                             "with one input array.")
    if inputs:
        expected = tuple(inputs[0].shape)
        if len(expected) != x.ndim or any(e not in (None, r)
                                          for e, r in zip(expected[1:], x.shape[1:])):
            raise AutoPruneError(f"the model takes inputs of shape {expected}; the data's rows "
                                 f"have shape {x.shape[1:]} ({len(x)} rows). Received: data "
                                 f"shape {x.shape}")
    try:
        out = predict(model, x[:2])
    except Exception as error:  # noqa: BLE001 - a subclassed model says what it wants.
        raise AutoPruneError(f"the model cannot take the data's rows of shape {x.shape[1:]}: "
                             f"{type(error).__name__}: {_one_line(error)[:200]}") from None
    return int(out.shape[-1]) if out.ndim > 1 else 1


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def copy_model(model: Any, sample: np.ndarray) -> Any:
    """A new model with ``model``'s architecture and weight values, sharing no variables.

    Sequential and Functional models are cloned; subclassed ones are rebuilt from their config
    (they need ``get_config``, as for saving) and called on ``sample`` to build them.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> twin = copy_model(model, np.zeros((1, 3), "float32"))
        >>> twin is not model and twin.weights[0] is not model.weights[0]
        True
    """
    import keras

    twin = keras.models.clone_model(model)
    if not twin.built:
        twin(keras.ops.convert_to_tensor(sample[:1]), training=False)
    twin.set_weights(model.get_weights())
    return twin


def load_custom_objects(path: str) -> dict[str, Any]:
    """Import a Python file and return the custom objects it defines for loading a model.

    The module's ``CUSTOM_OBJECTS`` dict if it has one, else every class and function it
    defines. Importing it also runs any ``keras.saving.register_keras_serializable`` in it.

    Raises:
        AutoPruneError: No such file, not a ``.py`` file, or an error while importing it.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/objs.py"
        >>> _ = open(path, "w").write("def twice(x):\\n    return 2 * x\\n")
        >>> sorted(load_custom_objects(path))
        ['twice']
    """
    if not os.path.isfile(path) or not path.endswith(".py"):
        raise AutoPruneError(f"--custom-objects: expected an existing .py file. Received: {path!r}")
    name = "prunekit_custom_objects_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - any failure of the user's file is reported.
        del sys.modules[name]
        raise AutoPruneError(f"--custom-objects {path}: importing it failed: "
                             f"{type(error).__name__}: {error}") from None
    if isinstance(getattr(module, "CUSTOM_OBJECTS", None), dict):
        return dict(module.CUSTOM_OBJECTS)
    return {key: value for key, value in vars(module).items()
            if not key.startswith("_") and callable(value)
            and getattr(value, "__module__", None) == name}


def load_model_file(path: str, custom_objects: dict[str, Any] | None = None,
                    unsafe: bool = False) -> Any:
    """Load a ``.keras`` model (optimizer state and compile settings kept when they load).

    Keras's ``safe_mode`` stays on unless ``unsafe``: a file holding Python code (a ``Lambda``
    layer's function) is refused.

    Raises:
        AutoPruneError: No such file, not a ``.keras`` file, a ``Lambda`` layer without
            ``unsafe``, a missing custom object, or a file Keras cannot read.

    Example:
        >>> load_model_file("missing.keras")
        Traceback (most recent call last):
        ...
        prunekit.auto.data.AutoPruneError: no such model file; expected a .keras file. ...
    """
    import keras

    if not os.path.isfile(path):
        raise AutoPruneError(f"no such model file; expected a .keras file. Received: {path!r}")
    if not path.endswith(".keras"):
        raise AutoPruneError(f"expected a .keras model file (Keras 3's format). Received: {path!r}")
    def load(compile: bool) -> Any:
        return keras.saving.load_model(path, custom_objects=custom_objects, compile=compile,
                                       safe_mode=not unsafe)
    try:
        try:
            return load(compile=True)
        except (TypeError, ValueError) as error:
            if "safe_mode" in str(error) or "Lambda" in str(error):
                raise
            return load(compile=False)  # e.g. a custom loss not given: the weights still load
    except Exception as error:  # noqa: BLE001 - Keras raises many types for a bad file.
        text = " ".join(str(error).split())
        if "Lambda" in text or "safe_mode" in text:
            raise AutoPruneError(f"{path} holds a Lambda layer (Python code, which Keras's "
                                 "safe_mode refuses to load); pass --unsafe if you trust the "
                                 "file.") from None
        if "custom_objects" in text or "Could not locate" in text:
            raise AutoPruneError(f"{path} needs a custom object Keras cannot find; pass "
                                 f"--custom-objects FILE.py defining it. Keras said: "
                                 f"{text[:300]}") from None
        raise AutoPruneError(f"{path}: Keras could not load it: {type(error).__name__}: "
                             f"{text[:300]}") from None
