"""Every Keras internal prunekit relies on still exists in the installed Keras.

A Keras upgrade that removes or renames one fails here with its name and what prunekit uses it
for, instead of somewhere deep in a pruning run.
"""

from __future__ import annotations

import keras
import pytest

from prunekit import _keras_compat


@pytest.mark.parametrize("internal", _keras_compat.REQUIRED, ids=lambda i: i.name)
def test_internal_exists(internal):
    assert internal.exists(), (
        f"Keras {keras.__version__} no longer provides {internal.name}, which prunekit uses "
        f"for {internal.used_for}. Checked versions: {_keras_compat.CHECKED_VERSIONS}. "
        "Update prunekit/_keras_compat.py.")


def test_missing_internals_names_a_removed_one(monkeypatch):
    gone = _keras_compat.Internal("Layer._gone", "a test", lambda: hasattr(keras.layers.Dense(2),
                                                                            "_gone"))
    broken = _keras_compat.Internal("Layer._broken", "a test", lambda: 1 / 0)
    monkeypatch.setattr(_keras_compat, "REQUIRED", (*_keras_compat.REQUIRED, gone, broken))
    assert _keras_compat.missing_internals() == ["Layer._gone (used for a test)",
                                                 "Layer._broken (used for a test)"]


def test_every_compat_name_is_checked():
    """Each internal the module exposes is covered by an entry of REQUIRED."""
    checked = " ".join(internal.name for internal in _keras_compat.REQUIRED)
    for name in ("Functional", "ConvLSTMCell", "get_stateless_scope", "DotNotTrackScope",
                 "AutocastScope", "Add", "_flatten_layers", "_trainable_variables",
                 "_inbound_nodes", "_keras_history", "_tracker", "_call_has_training_arg",
                 "_call_signature", "_maybe_build", "_input_shape_arg", "_direct_assign",
                 "_modules", "state", "self.call"):
        assert name in checked, name
