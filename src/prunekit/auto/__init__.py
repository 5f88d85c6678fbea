"""``prunekit prune`` and :func:`auto_prune`: a user's model pruned to an error budget.

============  ===================================================================================
module        what it holds
============  ===================================================================================
data          the user's CSV/NPZ file read and checked; the held-out split
model         the user's model loaded safely, checked against the data, copied, predicted
metric        the budgeted metric, drops, ``--max-drop`` parsing
scan          the sensitivity scan: one-shot magnitude masks, one layer at a time
allocate      per-layer sparsities under a budget (greedy on the scan curves)
run           the end-to-end job: scan, allocate, fine-tune, verify, back off
structured    ``--structured``: whole units removed, the model rebuilt smaller and timed
report        ``AutoPruneReport``: results.json, the report page and its plots
cli           the ``prunekit prune`` command
============  ===================================================================================
"""

from prunekit.auto.data import AutoPruneError
from prunekit.auto.report import AutoPruneReport
from prunekit.auto.run import auto_prune

__all__ = ["AutoPruneError", "AutoPruneReport", "auto_prune"]
