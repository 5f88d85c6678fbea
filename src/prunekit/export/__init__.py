"""Making pruning pay: compressed sparse export, quantization and honest size figures.

The handoff from pruning is a plain Keras model whose pruned weights are exact zeros (the
output of ``prunekit.strip_pruning``). From there:

- :func:`save_compressed` / :func:`load_compressed` write and read the ``.pkz`` format:
  architecture plus, per tensor, the nonzero pattern and values, in float32 (exact),
  float16 or int8; see docs/export.md for the byte layout. Loading is safe on any file: a
  malformed or hostile one raises :class:`PkzFormatError` (a ``ValueError``) naming the
  section, within memory proportional to the model the file describes.
- :func:`model_sizes` measures ``.keras``, zipped ``.keras`` and ``.pkz`` sizes against an
  entropy bound; :func:`reconstruction_error` reports what a weight mode loses.
- :func:`export_deployable` wraps ``model.export`` (LiteRT, SavedModel, ONNX, ...).

Example:
    >>> import keras, prunekit.export as pkx
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> pkx.encode_model(model, "int8").data[:4]
    b'\\x89PKZ'
"""

from prunekit.export.container import PkzFormatError
from prunekit.export.deploy import DEPLOY_FORMATS, DeployedArtifact, export_deployable
from prunekit.export.format import (
    WEIGHT_MODES,
    Encoded,
    decode_model,
    encode_model,
    load_compressed,
    save_compressed,
)
from prunekit.export.quantize import dequantize_int8, quantize_int8
from prunekit.export.sizes import (
    ModelSizes,
    binary_entropy,
    gzipped_size,
    keras_file_sizes,
    model_sizes,
    reconstruction_error,
)

__all__ = [
    "DEPLOY_FORMATS",
    "WEIGHT_MODES",
    "DeployedArtifact",
    "Encoded",
    "ModelSizes",
    "PkzFormatError",
    "binary_entropy",
    "decode_model",
    "dequantize_int8",
    "encode_model",
    "export_deployable",
    "gzipped_size",
    "keras_file_sizes",
    "load_compressed",
    "model_sizes",
    "quantize_int8",
    "reconstruction_error",
    "save_compressed",
]
