"""What the study, the sweep and the demo share: data, the model, sizes, reports, progress.

============  ===================================================================================
module        what it holds
============  ===================================================================================
choices       datasets, schedules, poolings offered; the block-size parser
data          bundled datasets and users' CSV/NPZ files, split the article's way; scoring
models        the article's model: build, compile, predict, plain copy, summary and picture
sizes         kernel sparsity, zero and weight counts, the int8 ``.pkz`` size
html          the reports' page shell and figures embedded as ``data:`` URIs
progress      live progress on the terminal, the pruning recorder, schedule curves
devices       ``--distribution``: the study and the sweep on every local device
============  ===================================================================================

The article's gzipped size is :func:`prunekit.export.sizes.gzipped_size`, and files are written
through :mod:`prunekit.export.io` (atomic, never over a user's file).
"""
