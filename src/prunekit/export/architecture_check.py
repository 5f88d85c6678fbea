"""Reading the architecture section of a ``.pkz`` file that may be corrupted or hostile.

A file's architecture is a Keras config, and deserializing a Keras config looks up classes
and functions by name and runs their constructors and ``build``. So before Keras sees it, the
JSON is bounded (:data:`MAX_ARCHITECTURE_BYTES`, :data:`MAX_CONTAINERS`, :data:`MAX_NESTING`,
:data:`MAX_OBJECTS`) and
checked against an allow-list of what the writer produces: a Sequential or Functional model
(or a registered custom model), public ``keras.layers`` classes, Keras initializers,
regularizers, constraints and dtype policies, ``keras.ops`` operations of a Functional graph,
Keras activations, and classes and functions the program itself registered with
``keras.saving.register_keras_serializable``. Anything else -- a Keras API function as an
activation, a pruning wrapper (the writer refuses those, and a pruned subclassed model's config
names attribute paths), a layer that loads files or runs stored code -- is refused by name.

The model is then built *shape-only* (:func:`build_shape_only`): inside
``keras.StatelessScope(initialize_variables=False)`` Keras records each variable's shape and
dtype without creating its value, so an architecture naming a huge layer costs nothing until
its shapes have been compared with the tensors the file actually holds.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import keras

from prunekit import _keras_compat
from prunekit.export.container import PkzFormatError

MAX_ARCHITECTURE_BYTES = 4 << 20  # decompressed JSON (Python objects take ~10x as much)
MAX_NESTING = 64  # JSON arrays and objects inside each other
MAX_CONTAINERS = 200_000  # JSON arrays and objects, counted (by brackets) before parsing
MAX_OBJECTS = 50_000  # serialized objects: layers, initializers, graph nodes...
MAX_EXTRA_ELEMENTS = 1 << 20  # elements of variables outside model.weights (seed states)

_OBJECT_KEYS = frozenset(
    {"module", "class_name", "config", "registered_name", "build_config", "compile_config",
     "name", "inbound_nodes", "shared_object_id"}
)
# Values Keras builds without looking anything up; arrays only of plain dtypes.
_PLAIN_SPECIALS = frozenset({"__keras_tensor__", "__bytes__", "__ellipsis__", "__slice__"})
_ARRAY_SPECIALS = frozenset({"__numpy__", "__tensor__"})
_ARRAY_DTYPES = frozenset(
    {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
     "float16", "bfloat16", "float32", "float64"}
)
# Public layers that read files, run stored code or wrap another framework's module.
_REFUSED_LAYERS = frozenset({"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"})
_OPS_MODULES = frozenset(
    {"keras.src.ops.core", "keras.src.ops.einops", "keras.src.ops.image", "keras.src.ops.linalg",
     "keras.src.ops.math", "keras.src.ops.nn", "keras.src.ops.numpy"}
)
_OBJECT_MODULES = {
    "keras.initializers": (keras.initializers, keras.initializers.Initializer),
    "keras.regularizers": (keras.regularizers, keras.regularizers.Regularizer),
    "keras.constraints": (keras.constraints, keras.constraints.Constraint),
}
_NAMED_KINDS = {  # config keys whose string values Keras resolves by name
    "activation": keras.activations,
    "initializer": keras.initializers,
    "regularizer": keras.regularizers,
    "constraint": keras.constraints,
}


def _fail(problem: str) -> PkzFormatError:
    return PkzFormatError(f"Corrupted file: the architecture section {problem}")


def _show(value: Any) -> str:
    """A file-chosen value for a message: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _public_names(module: Any) -> frozenset[str]:
    return frozenset(
        n for n in dir(module) if not n.startswith("_") and n not in {"get", "serialize",
                                                                       "deserialize"}
    )


def parse_architecture(data: bytes) -> dict:
    """Decode, bound and allow-list-check the architecture section; return the config.

    ``compile_config`` entries are dropped (the format never restores a compile state).

    Raises:
        PkzFormatError: oversized, not UTF-8, not JSON, nested too deeply, too many objects,
            not a model, or naming anything outside the allow-list.

    Example:
        >>> from prunekit.export.architecture import architecture_json
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> parse_architecture(architecture_json(model))["class_name"]
        'Sequential'
    """
    if len(data) > MAX_ARCHITECTURE_BYTES:
        raise _fail(f"is {len(data)} bytes; at most {MAX_ARCHITECTURE_BYTES} are read.")
    data = bytes(data)
    if data.count(b"{") + data.count(b"[") > MAX_CONTAINERS:
        raise _fail(f"holds more than {MAX_CONTAINERS} JSON arrays and objects.")
    try:
        config = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise _fail(f"is not UTF-8 text (byte {err.start}).") from None
    except RecursionError:
        raise _fail(f"is nested more than {MAX_NESTING} levels deep.") from None
    except ValueError as err:  # json.JSONDecodeError
        raise _fail(f"is not valid JSON (line {err.lineno}, column {err.colno}).") from None
    _Checker().model(config)
    return config


class _Checker:
    """One walk over the parsed JSON: nesting depth, object count and the allow-list."""

    def __init__(self) -> None:
        self.objects = 0
        self.custom = keras.saving.get_custom_objects()

    def model(self, config: Any) -> None:
        if not isinstance(config, dict) or "class_name" not in config:
            raise _fail("is not a serialized Keras model.")
        cls = self.resolve_class(config)
        if not (isinstance(cls, type) and issubclass(cls, keras.Model)):
            raise _fail(f"describes a {_show(config.get('class_name'))}, not a model.")
        self.walk(config, 1)

    def walk(self, value: Any, depth: int) -> None:
        if depth > MAX_NESTING:
            raise _fail(f"is nested more than {MAX_NESTING} levels deep.")
        if isinstance(value, dict):
            if "class_name" in value:
                self.object(value, depth)
            else:
                for item in value.values():
                    self.walk(item, depth + 1)
        elif isinstance(value, list):
            for item in value:
                self.walk(item, depth + 1)

    def object(self, obj: dict, depth: int) -> None:
        self.objects += 1
        if self.objects > MAX_OBJECTS:
            raise _fail(f"holds more than {MAX_OBJECTS} serialized objects.")
        unknown = set(obj) - _OBJECT_KEYS
        if unknown:
            raise _fail(f"has unexpected keys {_show(sorted(unknown))} in a serialized object.")
        obj.pop("compile_config", None)
        name = obj["class_name"]
        if not isinstance(name, str) or not isinstance(obj.get("module", ""), (str, type(None))):
            raise _fail("names an object by something other than a string.")
        config = obj.get("config")
        if name in _PLAIN_SPECIALS:
            pass
        elif name in _ARRAY_SPECIALS:
            if not isinstance(config, dict) or config.get("dtype") not in _ARRAY_DTYPES:
                raise _fail(f"holds an array of an unsupported dtype ({name}).")
        elif name == "function":
            self.function(obj)
        else:
            self.resolve_class(obj)
            if not isinstance(config, dict):
                raise _fail(f"gives {_show(name)} a config that is not a JSON object.")
            self.named_values(config)
        for key in ("config", "build_config", "inbound_nodes"):
            self.walk(obj.get(key), depth + 1)

    def function(self, obj: dict) -> None:
        fn = obj.get("config")
        if isinstance(fn, str) and self.is_custom(fn):  # Keras looks functions up by config
            return
        if obj.get("module") in ("keras.activations", "builtins") and fn in _public_names(
            keras.activations
        ):
            return
        raise _fail(
            f"names the function {_show(fn)} of module {_show(obj.get('module'))}; only Keras "
            "activations and registered functions are accepted."
        )

    def is_custom(self, registered: str) -> bool:
        return registered in self.custom and not registered.startswith("prunekit>")

    def resolve_class(self, obj: dict) -> type:
        module, name = obj.get("module"), obj["class_name"]
        registered = obj.get("registered_name")
        if isinstance(registered, str) and self.is_custom(registered):
            return self.custom[registered]
        cls = None
        if module == "keras.layers" and name not in _REFUSED_LAYERS:
            cls = _subclass(getattr(keras.layers, name, None), keras.layers.Layer)
        elif module == "keras":
            cls = _subclass(getattr(keras, name, None), (keras.Model, keras.DTypePolicy))
        elif (module, name) == ("keras.src.models.functional", "Functional"):
            cls = keras.Model
        elif module in _OBJECT_MODULES:
            public, base = _OBJECT_MODULES[module]
            cls = _subclass(getattr(public, name, None), base)
        elif module in _OPS_MODULES and module in sys.modules:
            op = _subclass(vars(sys.modules[module]).get(name), keras.Operation)
            cls = None if op is None or issubclass(op, keras.layers.Layer) else op
        if cls is None:
            raise _fail(
                f"names class {_show(name)} of module {_show(module)} (registered as "
                f"{_show(registered)}), which is not a Keras model, layer, operation, "
                "initializer, regularizer, constraint or dtype policy, nor a registered class."
            )
        return cls

    def named_values(self, config: dict) -> None:
        """String values Keras resolves by name: only the names its own modules export."""
        for key, value in config.items():
            if not isinstance(value, str):
                continue
            for suffix, module in _NAMED_KINDS.items():
                if key.endswith(suffix) and value not in _public_names(module):
                    raise _fail(f"sets {_show(key)} to {_show(value)}, which is not a Keras "
                                f"{suffix}.")


def _subclass(obj: Any, base: type | tuple[type, ...]) -> type | None:
    return obj if isinstance(obj, type) and issubclass(obj, base) else None


def build_shape_only(config: dict) -> tuple[keras.Model, list[keras.Variable]]:
    """Build the model of a checked config without creating any variable's value.

    Args:
        config: the output of :func:`parse_architecture`.

    Returns:
        ``(model, variables)``: the built model and every variable created for it, none of
        them holding a value yet; give each one with :func:`fill_variable` (or
        :func:`initialize_rest`). Nothing else initializes them.

    Raises:
        PkzFormatError: Keras cannot build a model from the config.

    Example:
        >>> config = {"module": "keras", "class_name": "Sequential", "config": {
        ...     "name": "s", "layers": [
        ...     {"module": "keras.layers", "class_name": "InputLayer",
        ...      "config": {"batch_shape": [None, 30000]}},
        ...     {"module": "keras.layers", "class_name": "Dense", "config": {"units": 30000}}]}}
        >>> model, variables = build_shape_only(config)  # 3.6 GB of weights, not allocated
        >>> [tuple(v.shape) for v in variables]
        [(30000, 30000), (30000,)]
    """
    pending = _keras_compat.uninitialized_variables()
    start = len(pending)
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as err:  # noqa: BLE001 -- any failure of Keras on a config is the file's
        for _ in range(8):  # Keras re-raises a layer's error as a vaguer one: show the first
            cause = err.__cause__ or err.__context__
            if cause is None:
                break
            err = cause
        message = " ".join(str(err).split())
        raise _fail(
            f"does not describe a model Keras can build ({type(err).__name__}: "
            f"{message[:200]}{'...' if len(message) > 200 else ''})."
        ) from None
    finally:
        created = pending[start:]
        del pending[start:]  # so that no later scope initializes them
    if not isinstance(model, keras.Model):
        raise _fail(f"describes a {type(model).__name__}, not a model.")
    return model, created


def fill_variable(variable: keras.Variable, value: Any) -> None:
    """Give a variable from :func:`build_shape_only` its value (converted to its dtype).

    Example:
        >>> config = {"module": "keras", "class_name": "Sequential", "config": {
        ...     "name": "s", "layers": [
        ...     {"module": "keras.layers", "class_name": "InputLayer",
        ...      "config": {"batch_shape": [None, 1]}},
        ...     {"module": "keras.layers", "class_name": "Dense", "config": {"units": 1}}]}}
        >>> model, variables = build_shape_only(config)
        >>> for v in variables:
        ...     fill_variable(v, [[2.0]] if len(v.shape) == 2 else [1.0])
        >>> keras.ops.convert_to_numpy(model(keras.ops.ones((1, 1)))).tolist()
        [[3.0]]
    """
    _keras_compat.initialize_deferred(variable, value)


def initialize_rest(
    variables: list[keras.Variable], limit: int | None = MAX_EXTRA_ELEMENTS
) -> None:
    """Run the initializers of variables from :func:`build_shape_only` not given a value.

    These are the random-seed states and the like, outside the model's weights.

    Raises:
        PkzFormatError: they hold more than ``limit`` elements together.
    """
    total = sum(math.prod(v.shape) for v in variables)
    if limit is not None and total > limit:
        raise _fail(
            f"creates {total} elements of state outside the model's weights (at most {limit})."
        )
    for variable in variables:
        _keras_compat.initialize_deferred(variable)

