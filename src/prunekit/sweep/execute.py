"""Running a sweep: worker processes or Ray tasks, one record per finished run, resumable.

A run is identified by a hash of its parameters (:meth:`RunParams.key`). Starting a sweep on a
folder that already holds ``runs.jsonl`` (``--resume FOLDER``, or the same ``--out``) skips the
runs recorded there, so an interrupted sweep loses at most the runs in flight. The settings
that change results (data, epochs, seed, backend...) must match the folder's; the folder's
layout is described in :mod:`prunekit.sweep.folder`.

Local runs use a ``ProcessPoolExecutor`` with the ``spawn`` start method; each worker gets
``KERAS_BACKEND`` and thread limits (OpenMP, XLA, TensorFlow) in its environment before it
imports Keras, so that ``workers x threads`` does not exceed the cores. Workers stay up for the
whole sweep: each imports Keras and prunekit once (the pool's initializer), keeps the loaded data,
and runs one run after another. On JAX they share a persistent compilation cache,
``<out>/.jax-cache``: a program one worker compiled is read from disk by the others (and by a
resumed sweep). With ``ray=...`` the same runs are submitted as Ray tasks instead
(``pip install ray``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import multiprocessing
import os
import signal
import traceback
from collections.abc import Iterator
from typing import Any

from prunekit.sweep.folder import (
    append_record,
    check_folder,
    end_torn_line,
    fingerprint,
    read_records,
    write_meta,
)
from prunekit.sweep.grid import RunParams, SweepError, expand_grid
from prunekit.sweep.spec import SweepSpec, spec_from_dict

_DATA_CACHE: dict[str, Any] = {}
#: The ``--distribution`` this process was prepared with (see :func:`prepare_worker`).
_PREPARED: list[str | None] = []
#: The sweep folder's JAX compilation cache.
JAX_CACHE = ".jax-cache"


@dataclasses.dataclass
class SweepOutcome:
    """What :func:`run_sweep` did.

    Attributes:
        folder: The sweep folder.
        records: Every finished run's record (this grid's in grid order, then older ones).
        ran: Runs executed by this call.
        skipped: Runs of the grid already recorded in the folder.
        failed: ``(params, error text)`` of runs that raised.
        pending: Runs of the grid still missing (``max_runs`` stopped early, or failures).
        files: Paths of ``results.csv``, ``results.json`` and ``report.html``.

    Example:
        >>> SweepOutcome("s", [], 0, 0, [], 0, {}).ran
        0
    """

    folder: str
    records: list[dict[str, Any]]
    ran: int
    skipped: int
    failed: list[tuple[RunParams, str]]
    pending: int
    files: dict[str, str]


def default_workers() -> int:
    """Cores this process may use.

    Example:
        >>> default_workers() >= 1
        True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_env(backend: str, threads: int, jax_cache: str | None = None) -> dict[str, str]:
    """Environment of a worker: its Keras backend and at most ``threads`` compute threads.

    Args:
        backend: The Keras backend.
        threads: Compute threads per worker.
        jax_cache: On JAX, a folder for JAX's persistent compilation cache, shared by the
            workers; every program is cached, however small or quick to compile.

    Example:
        >>> worker_env("jax", 1)["OMP_NUM_THREADS"]
        '1'
        >>> worker_env("jax", 1, "s/.jax-cache")["JAX_COMPILATION_CACHE_DIR"]
        's/.jax-cache'
    """
    n = str(max(1, threads))
    env = {"KERAS_BACKEND": backend, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n,
           "OPENBLAS_NUM_THREADS": n, "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": "1",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    if threads <= 1:
        xla = os.environ.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = (xla + " --xla_cpu_multi_thread_eigen=false "
                            "intra_op_parallelism_threads=1").strip()
    if backend == "jax" and jax_cache:
        # Read by JAX when it is imported (jax.config's environment defaults).
        env.update({"JAX_COMPILATION_CACHE_DIR": jax_cache,
                    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"})
    return env


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the processes started inside the block (spawn inherits)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def prepare_worker(distribution: str | None = None) -> None:
    """Import Keras and prunekit and set the distribution, once per process.

    Args:
        distribution: ``None`` or ``"data-parallel"`` (every local device; JAX).

    Example:
        >>> prepare_worker()
    """
    if _PREPARED:
        return
    import keras  # noqa: F401 - imported once, here, not in the first run

    import prunekit  # noqa: F401
    from prunekit.lab.devices import use_distribution

    use_distribution(distribution)
    _PREPARED.append(distribution)


def execute_run(params: dict[str, Any], spec: dict[str, Any],
                distribution: str | None = None) -> dict[str, Any]:
    """Run one sweep run in this process (the body of a worker or Ray task).

    Args:
        params: ``RunParams.as_dict()``.
        spec: ``SweepSpec.to_dict()``.
        distribution: ``None`` or ``"data-parallel"``, set in this process before its first
            run (see :func:`prepare_worker`).

    Returns:
        The run's record (see :func:`prunekit.sweep.run.run_one`).

    Example:
        >>> from prunekit.sweep.grid import dense_run
        >>> from prunekit.sweep.spec import make_spec
        >>> execute_run(dense_run().as_dict(), make_spec(epochs=1).to_dict())  # doctest: +SKIP
    """
    from prunekit.sweep.run import run_one
    from prunekit.sweep.spec import load_data

    prepare_worker(distribution)
    sweep = spec_from_dict(spec)
    data_id = json.dumps([sweep.dataset, sweep.data, sweep.target, sweep.task])
    if data_id not in _DATA_CACHE:
        _DATA_CACHE[data_id] = load_data(sweep)
    return run_one(RunParams(**params), sweep, _DATA_CACHE[data_id])


# -- executors ------------------------------------------------------------------------------

Result = tuple[RunParams, "dict[str, Any] | None", "str | None"]


def _local_runs(pending: list[RunParams], spec: SweepSpec, workers: int,
                env: dict[str, str], distribution: str | None) -> Iterator[Result]:
    context = multiprocessing.get_context("spawn")
    with _environment(env):
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_start_worker,
            initargs=(distribution,))
        try:
            futures = {pool.submit(execute_run, p.as_dict(), spec.to_dict(), distribution): p
                       for p in pending}
            for future in concurrent.futures.as_completed(futures):
                try:
                    yield futures[future], future.result(), None
                except Exception as error:  # noqa: BLE001 - recorded as a failed run
                    yield futures[future], None, _describe(error)
        except BaseException:  # Ctrl-C, SIGTERM, or the caller stopped early: end the runs
            _end_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _start_worker(distribution: str | None) -> None:
    """Worker initializer: Ctrl-C reaches the whole process group, but only the parent acts
    on it (it records what finished and ends the workers), so workers print no tracebacks.
    Then the worker warms up: Keras, prunekit and the distribution, once for all its runs."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    prepare_worker(distribution)


def _end_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Terminate a pool's worker processes now (runs in flight are lost, as documented)."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    # Why: before 3.14 the executor has no public way to end busy workers; `_processes` is
    # its {pid: Process} table (CPython 3.10-3.13).
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()


def _inline_runs(pending: list[RunParams], spec: SweepSpec) -> Iterator[Result]:
    """Run in this process, one after another (``workers=0``: debugging, notebooks)."""
    for params in pending:
        try:
            yield params, execute_run(params.as_dict(), spec.to_dict()), None
        except Exception as error:  # noqa: BLE001 - recorded as a failed run
            yield params, None, _describe(error)


def _describe(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()


def check_ray_installed() -> None:
    """Raise :class:`SweepError` naming the extra to install if Ray cannot be imported.

    Example:
        >>> import importlib.util
        >>> if importlib.util.find_spec("ray"): check_ray_installed()
    """
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise SweepError("--ray needs Ray, which is not installed: pip install 'prunekit[ray]' "
                         "(or pip install ray).")


def _ray_runs(pending: list[RunParams], spec: SweepSpec, address: str,
              env: dict[str, str], workers: int, distribution: str | None) -> Iterator[Result]:
    import ray

    started = not ray.is_initialized()
    if started:
        try:
            if address == "local":
                ray.init(address="local", num_cpus=workers, include_dashboard=False,
                         log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise SweepError(f"--ray {address}: could not start or reach Ray ({error}). Use "
                             "--ray local for a new local instance.") from None
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(execute_run)
        options = task.options(runtime_env={"env_vars": env})
        refs = {options.remote(p.as_dict(), spec.to_dict(), distribution): p for p in pending}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                params = refs.pop(ref)
                try:
                    yield params, ray.get(ref), None
                except Exception as error:  # noqa: BLE001 - recorded as a failed run
                    yield params, None, _describe(error)
    finally:
        if started:
            ray.shutdown()


# -- the sweep ------------------------------------------------------------------------------

def plan_sweep(spec: SweepSpec) -> tuple[Any, list[RunParams]]:
    """Load the data and expand the grid (raises :class:`SweepError` before any training).

    Returns:
        ``(dataset, runs)``.

    Example:
        >>> from prunekit.sweep.spec import make_spec
        >>> _, runs = plan_sweep(make_spec(sparsity="0.5,0.9", epochs=1))
        >>> len(runs)
        3
    """
    from prunekit.sweep.run import model_facts
    from prunekit.sweep.spec import load_data

    data = load_data(spec)
    return data, expand_grid(spec.axes, model_facts(data, spec), spec.where, dense=spec.dense)


def run_sweep(spec: SweepSpec, out: str, workers: int | None = None, ray: str | None = None,
              max_runs: int | None = None, pareto_size: str = "gz_bytes",
              verbose: bool = False, console: Any = None,
              distribution: str | None = None) -> SweepOutcome:
    """Run every run of the grid not yet recorded in ``out``; write the tables and the report.

    Args:
        spec: A validated :class:`~prunekit.sweep.spec.SweepSpec`.
        out: The sweep folder (created if needed; resumed if it holds runs).
        workers: Parallel worker processes (default: the cores available); ``0`` runs
            every run in this process, one after another.
        ray: ``None`` for local processes; ``"local"`` (a new local Ray instance), ``"auto"``
            (the running cluster) or a cluster address to run the runs as Ray tasks. A Ray
            instance already initialised in this process is used as it is.
        max_runs: Run at most this many of the missing runs (the rest stay for a resume).
        pareto_size: Size column of the Pareto front: ``gz_bytes``, ``int8_bytes`` or
            ``nonzeros``.
        verbose: Draw a progress bar (runs done, ETA) on ``console``.
        console: A ``rich.console.Console`` (default: a new one).
        distribution: ``"data-parallel"`` to train every run on all local devices
            (``keras.distribution.DataParallel``; JAX only), set in each worker before its
            first run (with ``workers=0``: in this process, for good).

    Returns:
        The :class:`SweepOutcome`.

    Raises:
        SweepError: For an invalid grid, a ``distribution`` this backend cannot run, unusable
            data or a folder with other settings -- before anything is trained.

    Example:
        >>> from prunekit.sweep.spec import make_spec
        >>> outcome = run_sweep(make_spec(sparsity="0.5,0.8", epochs=1), "/tmp/s")  # doctest: +SKIP
        >>> len(outcome.records)  # doctest: +SKIP
        3
    """
    import keras

    from prunekit.lab.devices import check_distribution, use_distribution
    from prunekit.lab.progress import RunsProgress
    from prunekit.sweep.grid import describe
    from prunekit.sweep.results import SIZE_COLUMNS, write_outputs

    if pareto_size not in SIZE_COLUMNS:
        raise SweepError(f"--pareto-size must be one of {', '.join(SIZE_COLUMNS)}. "
                         f"Received: {pareto_size!r}")
    if ray:
        check_ray_installed()
    backend = keras.backend.backend()
    try:
        check_distribution(distribution, backend)
    except ValueError as error:
        raise SweepError(str(error)) from None
    data, runs = plan_sweep(spec)
    check_folder(out, fingerprint(spec, backend))
    os.makedirs(out, exist_ok=True)
    meta = write_meta(out, spec, runs, data, backend)
    jsonl = os.path.join(out, "runs.jsonl")
    end_torn_line(jsonl)
    done = read_records(out)
    todo = [p for p in runs if p.key() not in done]
    pending = todo if max_runs is None else todo[:max(0, max_runs)]
    inline = workers == 0 and not ray
    workers = max(1, min(workers or default_workers(), len(pending) or 1))
    env = worker_env(backend, max(1, default_workers() // workers),
                     os.path.abspath(os.path.join(out, JAX_CACHE)))
    failed: list[tuple[RunParams, str]] = []
    with RunsProgress("sweep", len(runs), len(runs) - len(todo), verbose, console) as progress:
        if pending:
            if ray:
                results = _ray_runs(pending, spec, ray, env, workers, distribution)
            elif inline:
                use_distribution(distribution)
                results = _inline_runs(pending, spec)
            else:
                results = _local_runs(pending, spec, workers, env, distribution)
            with contextlib.closing(results):  # an interrupt ends the workers at once
                for params, record, error in results:
                    if record is not None:
                        append_record(jsonl, record)
                        done[record["key"]] = record
                    else:
                        failed.append((params, error or "unknown error"))
                        append_record(os.path.join(out, "failures.jsonl"),
                                      {"key": params.key(), **params.as_dict(), "error": error})
                    outcome = (f"{record['metric']} {record['test_metric']:.4g}"
                               if record is not None else (error or "")[:60])
                    progress.advance(f"{describe(params)}: {outcome}", failed=record is None)
    keys = [p.key() for p in runs]
    records = [done[k] for k in keys if k in done] + [r for k, r in done.items() if k not in keys]
    files = write_outputs(out, records, meta, pareto_size)
    missing = sum(1 for k in keys if k not in done)
    return SweepOutcome(out, records, len(pending) - len(failed), len(runs) - len(todo), failed,
                        missing, files)
