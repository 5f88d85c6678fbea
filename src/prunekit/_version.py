"""The package version: the one place it is written (``pyproject.toml`` reads it from here).

Kept in its own module, without imports, so that ``prunekit --version`` answers without
importing Keras.
"""

__version__ = "0.1.0"
