"""tfmot-style namespace: ``prunekit.sparsity.keras`` mirrors ``tfmot.sparsity.keras``."""

from prunekit.sparsity import keras

__all__ = ["keras"]
