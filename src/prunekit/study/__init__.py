"""The pruning study: the article's experiment end to end (``prunekit study``).

Example:
    >>> from prunekit.study import make_config, run_study
    >>> outcome = run_study(make_config(runs="a,b", epochs=3), out="/tmp/study")  # doctest: +SKIP
    >>> outcome.results[1].sparsity  # doctest: +SKIP
    {'hidden': 0.5, 'output': 0.5}
"""

from prunekit.study.config import StudyConfig, StudyConfigError, make_config
from prunekit.lab.data import Dataset, load_dataset, score
from prunekit.study.execute import StudyOutcome, run_study
from prunekit.study.results import RunResult, load_results

__all__ = [
    "Dataset",
    "RunResult",
    "StudyConfig",
    "StudyConfigError",
    "StudyOutcome",
    "load_dataset",
    "load_results",
    "make_config",
    "run_study",
    "score",
]
