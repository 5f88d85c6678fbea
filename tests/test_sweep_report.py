"""prunekit.sweep results: the Pareto front on a hand example, the tables, and the HTML report
rendered in headless Chromium (plots load, the table renders and sorts)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from prunekit.sweep.results import pareto_front, write_outputs


# (name, error, size): the front, worked out by hand, is A, B, C, F and G.
#   D has C's size and a higher error; E has A's size and a higher error; H has no error;
#   C and G are equal, so neither is strictly better than the other.
POINTS = [("A", 1.0, 100), ("B", 0.9, 120), ("C", 1.2, 60), ("D", 1.3, 60), ("E", 1.1, 100),
          ("F", 2.0, 50), ("G", 1.2, 60), ("H", None, 10)]
FRONT = {"A", "B", "C", "F", "G"}


def test_pareto_front_hand_example():
    names = [p[0] for p in POINTS]
    mask = pareto_front([p[1] for p in POINTS], [p[2] for p in POINTS])
    assert {n for n, on in zip(names, mask) if on} == FRONT


def test_pareto_front_edge_cases():
    assert pareto_front([], []).tolist() == []
    assert pareto_front([3.0], [7]).tolist() == [True]
    assert pareto_front([1.0, 1.0], [5, 6]).tolist() == [True, False]
    assert pareto_front([float("nan"), 2.0], [1, 9]).tolist() == [False, True]


def _record(name, error, size, i):
    schedule = "none" if name == "A" else ("constant", "polynomial")[i % 2]
    sparsity = 0.0 if name == "A" else 0.5 + 0.05 * i
    return {
        "key": f"key-{name}", "seed": i, "schedule": schedule, "sparsity": sparsity,
        "initial_sparsity": 0.1 if schedule == "polynomial" else None, "begin_step": 0,
        "end_step": 300 if schedule == "polynomial" else -1,
        "frequency": 0 if schedule == "none" else 100,
        "power": 3.0 if schedule == "polynomial" else None, "block_size": "1x1",
        "pooling": "AVG", "layers": "none" if name == "A" else "all",
        "pruned_layers": "" if name == "A" else "hidden,output", "scope": "layer",
        "metric": "mse", "test_metric": error, "error": error, "achieved_sparsity": sparsity,
        "layer_sparsity": {"hidden": sparsity, "output": sparsity}, "weights": 1537,
        "nonzeros": round(1537 * (1 - sparsity)), "gz_bytes": size, "int8_bytes": size // 4,
        "train_time_s": 1.0 + i, "run_time_s": 2.0 + i, "epochs": 2, "steps": 336,
        "loss": 0.1, "val_loss": 0.2, "notes": [],
    }


@pytest.fixture
def sweep_folder(tmp_path):
    records = [_record(n, e, s, i) for i, (n, e, s) in enumerate(POINTS)]
    meta = {"spec": {"epochs": 2, "batch_size": 32, "seed": 0}, "metric": "mse",
            "fingerprint": {"backend": "test"}, "data": "hand-made records"}
    files = write_outputs(str(tmp_path), records, meta)
    return tmp_path, files


def test_tables_hold_every_run_with_its_pareto_flag(sweep_folder):
    _, files = sweep_folder
    with open(files["csv"], newline="") as file:
        rows = list(csv.DictReader(file))
    assert [r["key"] for r in rows] == [f"key-{p[0]}" for p in POINTS]
    assert {r["key"][4:] for r in rows if r["pareto"] == "True"} == FRONT
    assert rows[1]["layer_sparsity"] == "hidden=0.5500;output=0.5500"
    with open(files["json"], encoding="utf-8") as file:
        document = json.load(file)
    assert {r["key"][4:] for r in document["runs"] if r["pareto"]} == FRONT
    assert document["runs"][7]["error"] is None  # written as null, not NaN


# Run in the report by the shared probe: sort the table by clicking headers the way a user
# would, and return the first row's key after each click.
_SORT_BY_CLICKS = """
  var heads = Array.prototype.slice.call(document.querySelectorAll("#results th"));
  var names = heads.map(function (h) { return h.textContent.trim(); });
  var keyCol = names.indexOf("key");
  function first() {
    return document.querySelector("#results tbody tr").cells[keyCol].textContent;
  }
  var sorts = {};
  ["error", "gzipped .h5 (B)"].forEach(function (name) {
    var th = heads[names.indexOf(name)];
    th.click(); var asc = first();
    th.click(); var desc = first();
    sorts[name] = [asc, desc];
  });
  return {sorts: sorts, front: document.querySelectorAll("#results tbody tr.front").length};
"""


def test_report_renders_plots_and_sorts_in_chromium(sweep_folder, chromium):
    folder, files = sweep_folder
    with open(files["report"], encoding="utf-8") as file:
        page = file.read()
    assert "http://" not in page and "https://" not in page  # self-contained
    out = chromium.probe(folder / "report.html", _SORT_BY_CLICKS)
    assert out["images"] == 4 and out["loaded"] == 4
    assert out["rows"] == len(POINTS) and out["front"] == len(FRONT)
    # Lowest error is B (0.9), highest F (2.0); H has no error and sorts last either way,
    # so the descending order starts at F. Smallest zip is H (10 B), largest B (120 B).
    assert out["sorts"]["error"] == ["key-B", "key-F"]
    assert out["sorts"]["gzipped .h5 (B)"] == ["key-H", "key-B"]


def test_report_screenshot(sweep_folder, chromium):
    folder, files = sweep_folder
    shot = chromium.screenshot(folder / "report.html", folder / "report.png")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))[..., :3].reshape(-1, 3)
    assert pixels.shape[0] == 1280 * 1600
    # Not a blank page: plots and table shading give many distinct colours.
    assert len(np.unique(np.round(pixels * 255).astype(np.uint8), axis=0)) > 50
