"""Exploring pruning parameters: grid sweeps, trade-off plots, the Pareto front, a report.

``prunekit sweep`` (see :mod:`prunekit.sweep.cli`) trains the study's model under every
combination of pruning parameters in parallel worker processes (or Ray tasks), records each
run as it finishes so that an interrupted sweep resumes, and writes results.csv/.json and a
self-contained report.html.

Example:
    >>> from prunekit.sweep import make_spec, run_sweep
    >>> spec = make_spec(sparsity="0.5,0.8", schedule="constant,polynomial", epochs=2)
    >>> outcome = run_sweep(spec, "sweeps/first", workers=2)  # doctest: +SKIP
    >>> [r["pareto"] for r in outcome.records]  # doctest: +SKIP
"""

from prunekit.lab.data import DataError, load_user_data
from prunekit.sweep.execute import SweepOutcome, plan_sweep, run_sweep
from prunekit.sweep.folder import load_spec
from prunekit.sweep.grid import RunParams, SweepError, expand_grid
from prunekit.sweep.results import pareto_front, write_outputs
from prunekit.sweep.spec import SweepSpec, make_spec, spec_from_toml

__all__ = [
    "DataError",
    "RunParams",
    "SweepError",
    "SweepOutcome",
    "SweepSpec",
    "expand_grid",
    "load_spec",
    "load_user_data",
    "make_spec",
    "pareto_front",
    "plan_sweep",
    "run_sweep",
    "spec_from_toml",
    "write_outputs",
]
