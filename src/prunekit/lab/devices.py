"""``--distribution``: the study and the sweep on every local device (``keras.distribution``).

Only ``data-parallel`` is offered, and only on JAX (the backend whose ``keras.distribution``
prunekit supports, see docs/distribution.md): each batch is split over the devices, the model's
variables (masks included) are replicated.
"""

from __future__ import annotations

DISTRIBUTIONS = ("data-parallel",)


def check_distribution(name: str | None, backend: str) -> None:
    """Refuse a ``--distribution`` that this backend cannot run (before anything is built).

    Args:
        name: ``None`` (one device) or one of :data:`DISTRIBUTIONS`.
        backend: The Keras backend in use.

    Raises:
        ValueError: For an unknown name, or a distribution on a backend other than JAX.

    Example:
        >>> check_distribution("data-parallel", "jax")
        >>> check_distribution("data-parallel", "torch")
        Traceback (most recent call last):
        ...
        ValueError: --distribution data-parallel runs on JAX only. Received: backend torch
    """
    if name is None:
        return
    if name not in DISTRIBUTIONS:
        raise ValueError(f"--distribution must be one of {', '.join(DISTRIBUTIONS)}. "
                         f"Received: {name!r}")
    if backend != "jax":
        raise ValueError(f"--distribution {name} runs on JAX only. Received: backend {backend}")


def use_distribution(name: str | None) -> int:
    """Set the Keras distribution ``name`` over every local device; call it before building.

    Args:
        name: ``None`` (nothing is changed) or ``"data-parallel"``.

    Returns:
        The number of devices the models will run on (1 when ``name`` is ``None``).

    Example:
        >>> use_distribution(None)
        1
    """
    if name is None:
        return 1
    import keras

    check_distribution(name, keras.backend.backend())
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return len(devices)


def fresh_session() -> None:
    """``keras.backend.clear_session()``, keeping the distribution set by :func:`use_distribution`.

    Keras keeps its distribution in the global state that ``clear_session`` drops.

    Example:
        >>> fresh_session()
    """
    import keras

    distribution = keras.distribution.distribution()
    keras.backend.clear_session()
    if distribution is not None:
        keras.distribution.set_distribution(distribution)


def devices_in_use() -> int:
    """Devices the models built now are spread over: those of the Keras distribution, else 1.

    Example:
        >>> devices_in_use()
        1
    """
    import keras

    distribution = keras.distribution.distribution()
    return 1 if distribution is None else len(distribution.device_mesh.devices.flatten())
