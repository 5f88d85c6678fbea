"""Choosing the Keras backend before Keras is imported (Keras fixes it at its first import).

The order of precedence is Keras's own: ``--backend``, then ``KERAS_BACKEND``, then the
``backend`` of ``keras.json`` in Keras's folder. Where none of them chooses, Keras would fall
back to TensorFlow even where TensorFlow is not installed (``make run`` installs JAX only), so
the command line picks the first installed of :data:`PREFERENCE` and says so. Whether a backend
is installed is asked of the import system (``importlib.util.find_spec``), without importing it.
"""

from __future__ import annotations

import importlib.util
import json
import os

BACKENDS = ("jax", "tensorflow", "torch")
#: The backend picked when nothing chooses one: the first of these that is installed.
PREFERENCE = ("jax", "torch", "tensorflow")


class BackendError(ValueError):
    """The backend chosen is not installed, or none is."""


def installed_backends() -> tuple[str, ...]:
    """The backends of :data:`PREFERENCE` whose package can be imported, in that order.

    Example:
        >>> set(installed_backends()) <= set(BACKENDS)
        True
    """
    return tuple(name for name in PREFERENCE if importlib.util.find_spec(name) is not None)


def install_hint(backend: str) -> str:
    """How to install ``backend`` with prunekit's extras.

    Example:
        >>> install_hint("torch")
        "pip install 'prunekit[torch]'"
    """
    return f"pip install 'prunekit[{backend}]'"


def keras_json_backend() -> tuple[str | None, str]:
    """The backend named by Keras's ``keras.json``, and the file's path.

    The folder is found as Keras finds it: ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras``
    where the home folder is not writable). A missing or unreadable file names no backend.

    Example:
        >>> isinstance(keras_json_backend()[1], str)
        True
    """
    folder = os.environ.get("KERAS_HOME")
    if not folder:
        home = os.path.expanduser("~")
        folder = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    path = os.path.join(folder, "keras.json")
    try:
        with open(path, encoding="utf-8") as file:
            backend = json.load(file).get("backend")
    except (OSError, ValueError, AttributeError):
        return None, path
    return (backend if isinstance(backend, str) else None), path


def choose_backend(requested: str | None) -> tuple[str | None, str | None]:
    """The backend to run on, and a note for the user when it was picked for them.

    Args:
        requested: The ``--backend`` value, or ``None``.

    Returns:
        ``(backend, note)``: ``backend`` is ``None`` where the choice is left to Keras (a
        backend prunekit does not know, named by ``KERAS_BACKEND``); ``note`` is ``None``
        unless the backend was picked here.

    Raises:
        BackendError: The backend asked for is not installed, or no backend is.

    Example:
        >>> choose_backend(installed_backends()[0])[1] is None
        True
    """
    installed = installed_backends()
    for source, name in (("--backend", requested), ("KERAS_BACKEND",
                                                    os.environ.get("KERAS_BACKEND"))):
        if name:
            if name in BACKENDS and name not in installed:
                raise BackendError(f"the {name} backend is not installed; install it with "
                                   f"{install_hint(name)} or choose an installed one "
                                   f"({', '.join(installed) or 'none'}). Received: "
                                   f"{source}={name}")
            return (name if name in BACKENDS else None), None
    named, path = keras_json_backend()
    if named and (named not in BACKENDS or named in installed):
        return named if named in BACKENDS else None, None
    if not installed:
        raise BackendError("no Keras backend is installed; install one with "
                           f"{install_hint('jax')} (or [torch], [tensorflow])")
    why = (f"{path} names {named}, which is not installed" if named
           else "KERAS_BACKEND is not set")
    others = [name for name in PREFERENCE if name != installed[0]]
    return installed[0], (f"{why}; using the {installed[0]} backend (others: --backend "
                          f"{'|'.join(others)} or KERAS_BACKEND=..., after "
                          f"{install_hint(others[0])} or [{others[1]}])")
