"""Shared test helpers. The suite runs once per backend: KERAS_BACKEND=jax|tensorflow|torch."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# tests/data holds files and the scripts that wrote them once: never collected (importing a
# script would run it and rewrite the file a test reads).
collect_ignore = ["data"]

BACKEND = keras.backend.backend()


def tfmot_keep_count(size, sparsity):
    """How many of ``size`` weights tfmot keeps at ``sparsity`` (tfmot-behaviour.md §3.1).

    ``max(1, round_half_to_even(float32(size) * (1 - float32(sparsity))))``: this NumPy emulation
    matched TF exactly on 1,500 random cases.
    """
    return max(1, int(np.round(np.float32(size) * (np.float32(1) - np.float32(sparsity)))))


def numpy_global_threshold(scores, sparsity):
    """The global threshold over several score arrays: the k-th largest score of them all.

    ``k = tfmot_keep_count(total size, sparsity)``, found by sorting (the library selects it
    without sorting). For magnitude pruning pass ``[abs(w) for w in weights]``.
    """
    flat = np.concatenate([np.asarray(s, np.float32).ravel() for s in scores])
    return np.sort(flat)[::-1][tfmot_keep_count(flat.size, sparsity) - 1]


def to_numpy(value):
    """Any variable or tensor as a NumPy array."""
    if hasattr(value, "value"):
        value = value.value
    return np.asarray(keras.ops.convert_to_numpy(value))


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a clean Keras session and a fixed seed."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def numpy_initializers(monkeypatch):
    """Random initializers draw their values with NumPy (seeded) instead of the backend.

    For tests of big graphs (ResNet50, MobileNetV2) whose weights only need to be random:
    on JAX every distinct weight shape costs one compilation of the random generator, most of
    the time such a model takes to build. Values follow Glorot-uniform bounds
    (``sqrt(6 / (fan_in + fan_out))``, Keras's fan rule), whatever the initializer.
    """
    rng = np.random.default_rng(0)

    def draw(self, shape, dtype=None):
        shape = tuple(int(d) for d in shape)
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in = shape[-2] * receptive if len(shape) > 1 else shape[0]
        fan_out = shape[-1] * receptive if len(shape) > 1 else shape[0]
        limit = np.sqrt(6.0 / max(1, fan_in + fan_out))
        value = rng.uniform(-limit, limit, shape).astype(dtype or "float32")
        return keras.ops.convert_to_tensor(value)

    for name in ("VarianceScaling", "RandomUniform", "RandomNormal", "TruncatedNormal",
                 "Orthogonal"):
        monkeypatch.setattr(getattr(keras.initializers, name), "__call__", draw)


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {BACKEND}"


# -- reports in headless Chromium -------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Appended to a copy of a report: once the page has loaded, count its images (all of them, and
# the plots: img.plot) and the rows of the #results table, merge what the test's own script
# returns, and write it all as JSON into <pre id="probe"> for --dump-dom to show.
_PROBE = """
<script>
window.addEventListener("load", function () {
  function loaded(images) {
    return images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  }
  var all = Array.prototype.slice.call(document.images);
  var plots = Array.prototype.slice.call(document.querySelectorAll("img.plot"));
  var out = {images: all.length, loaded: loaded(all), plots: plots.length,
             plots_loaded: loaded(plots),
             rows: document.querySelectorAll("#results tbody tr").length};
  var extra = (function () { %s })() || {};
  Object.keys(extra).forEach(function (k) { out[k] = extra[k]; });
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


class HeadlessChromium:
    """Renders the self-contained HTML reports the way a user's browser would."""

    def __init__(self, profile: str) -> None:
        self.profile = profile

    def run(self, *args: str) -> subprocess.CompletedProcess:
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync",
                   f"--user-data-dir={self.profile}", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    def probe(self, page: Path, script: str = "") -> dict:
        """Load a copy of ``page`` with the probe; return what it found (see ``_PROBE``).

        ``script`` is the body of a JavaScript function run after the counts; the object it
        returns is merged into the result.
        """
        text = page.read_text(encoding="utf-8")
        copy = page.with_name(f"probe-{page.name}")
        copy.write_text(text.replace("</body>", _PROBE % script + "</body>"), encoding="utf-8")
        result = self.run("--virtual-time-budget=5000", "--dump-dom", copy.as_uri())
        found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.DOTALL)
        assert found, result.stderr[-2000:]
        return json.loads(html.unescape(found.group(1)))

    def screenshot(self, page: Path, shot: Path, width: int = 1280, height: int = 1600) -> Path:
        """Screenshot ``page`` in a ``width`` x ``height`` window into ``shot`` (a PNG)."""
        result = self.run("--hide-scrollbars", f"--window-size={width},{height}",
                          f"--screenshot={shot}", page.as_uri())
        assert shot.exists(), result.stderr[-2000:]
        return shot


@pytest.fixture
def chromium(tmp_path):
    """A :class:`HeadlessChromium`; the test is skipped where Chromium is not installed."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    return HeadlessChromium(str(tmp_path / "chromium-profile"))
