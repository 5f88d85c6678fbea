"""A compact, verified architecture config for the compressed export.

Keras serializes every constructor argument, defaults included. At small model sizes that text
outweighs the weights, so keys equal to their defaults are dropped -- but only where rebuilding
from the shorter config gives back the very same config, which is checked here. Anything that
does not verify is kept as Keras wrote it.

Keras Operation nodes of a Functional graph (``x + y``, ``ops.concatenate``: not layers) are
entries of its ``layers`` list like any layer, and are compacted and verified the same way.
"""

from __future__ import annotations

import json
from typing import Any

import keras

# Never dropped: names tie layers together, and the dtype must not follow the loader's policy.
_KEEP = frozenset({"name", "dtype"})
_STRUCTURE = frozenset({"layers", "input_layers", "output_layers"})


def _plain(obj: Any) -> Any:
    """JSON round trip, so tuples and lists compare equal."""
    return json.loads(json.dumps(obj))


def _compact_dtype(value: Any) -> Any:
    """``{"class_name": "DTypePolicy", "config": {"name": "float32"}, ...}`` -> ``"float32"``."""
    if (
        isinstance(value, dict)
        and value.get("class_name") == "DTypePolicy"
        and value.get("module") == "keras"
        and list(value.get("config", {})) == ["name"]
    ):
        return value["config"]["name"]
    return value


def _layer_class(entry: dict) -> type | None:
    try:
        return type(keras.saving.deserialize_keras_object(entry))
    except Exception:  # noqa: BLE001 -- an entry we cannot rebuild alone is kept verbatim
        return None


def _compact_layer_config(cls: type, config: dict) -> dict:
    """Drop each key whose removal leaves ``cls.from_config(...).get_config()`` unchanged."""
    reference = _plain(config)
    current = dict(config)
    current["dtype"] = _compact_dtype(config.get("dtype"))
    if "dtype" not in config:
        del current["dtype"]
    for key in [k for k in config if k not in _KEEP]:
        trial = {k: v for k, v in current.items() if k != key}
        try:
            same = _plain(cls.from_config(dict(trial)).get_config()) == reference
        except Exception:  # noqa: BLE001 -- the key is needed
            same = False
        if same:
            current = trial
    try:
        if _plain(cls.from_config(dict(current)).get_config()) != reference:
            return config
    except Exception:  # noqa: BLE001
        return config
    return current


def _compact_entry(entry: dict, drop_build: bool) -> dict:
    """Compact one serialized layer (recursing into nested models)."""
    out = {k: v for k, v in entry.items() if not (k == "registered_name" and v is None)}
    if drop_build:
        out.pop("build_config", None)
    config = dict(entry.get("config", {}))
    if "layers" in config:
        config["layers"] = [_compact_entry(e, drop_build) for e in config["layers"]]
        if "dtype" in config:
            config["dtype"] = _compact_dtype(config["dtype"])
        out["config"] = config
        return out
    cls = _layer_class(entry)
    if cls is not None and not issubclass(cls, keras.Model):
        out["config"] = _compact_layer_config(cls, config)
    return out


def _rebuilds_same(config: dict, model: keras.Model, strict: bool = True) -> bool:
    try:
        rebuilt = keras.saving.deserialize_keras_object(_plain(config))
        same_config = not strict or _plain(rebuilt.get_config()) == _plain(model.get_config())
    except Exception:  # noqa: BLE001
        return False
    shapes = [tuple(w.shape) for w in model.weights]
    return (
        rebuilt.built == model.built
        and [tuple(w.shape) for w in rebuilt.weights] == shapes
        and same_config
    )


def architecture_config(model: keras.Model, compact: bool = True) -> dict:
    """The serialized architecture of ``model`` (no weights, no compile state).

    Args:
        model: a Keras model.
        compact: drop constructor arguments equal to their defaults, where verified.

    Returns:
        A JSON-able dict that ``keras.saving.deserialize_keras_object`` turns back into an
        equivalent (same config, same weight shapes) model.

    Raises:
        ValueError: if Keras cannot rebuild the model from its config at all.

    Example:
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> cfg = architecture_config(model)
        >>> "kernel_initializer" in json.dumps(cfg)
        False
    """
    full = _plain(keras.saving.serialize_keras_object(model))
    full.pop("compile_config", None)
    if compact:
        for drop_build in (True, False):
            candidate = _compact_entry(full, drop_build)
            if _rebuilds_same(candidate, model):
                return _drop_model_keys(candidate, model)
    if not _rebuilds_same(full, model, strict=False):
        raise ValueError(
            "The model cannot be rebuilt from its Keras config with the same weights, so it "
            "could not be loaded back (a subclassed model without get_config/from_config, or "
            f"a custom layer that is not registered?). Received: model={model.name!r}"
        )
    return full


def _drop_model_keys(entry: dict, model: keras.Model) -> dict:
    """Drop model-level keys (``trainable``, ``build_input_shape``...) the rebuild does not need."""
    config = entry["config"]
    for key in [k for k in config if k not in _KEEP and k not in _STRUCTURE]:
        trial = {**entry, "config": {k: v for k, v in config.items() if k != key}}
        if _rebuilds_same(trial, model):
            entry, config = trial, trial["config"]
    return entry


def architecture_json(model: keras.Model, compact: bool = True) -> bytes:
    """:func:`architecture_config` as compact UTF-8 JSON.

    Example:
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> architecture_json(model).startswith(b'{"module":"keras"')
        True
    """
    config = architecture_config(model, compact)
    return json.dumps(config, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def model_from_json_bytes(data: bytes) -> keras.Model:
    """Rebuild a model from :func:`architecture_json` output, checked as untrusted input.

    The bytes go through the same checks as a file's architecture section
    (:mod:`prunekit.export.architecture_check`); the variables get their initializers' values.

    Raises:
        PkzFormatError: the bytes are not an architecture the writer produces.

    Example:
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> model_from_json_bytes(architecture_json(model)).count_params()
        8
    """
    from prunekit.export import architecture_check

    model, created = architecture_check.build_shape_only(
        architecture_check.parse_architecture(data)
    )
    architecture_check.initialize_rest(created, limit=None)
    return model
