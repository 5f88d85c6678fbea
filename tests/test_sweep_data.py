"""prunekit.lab.data: the user's CSV and NPZ files, and their error messages."""

from __future__ import annotations

import numpy as np
import pytest

from prunekit.lab.data import MIN_ROWS, DataError, load_user_data


def _table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0]
    y = x @ [1.0, 0.1, 0.01]
    return x, y


def _write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(map(str, r)) for r in rows)
                    + "\n")
    return str(path)


def test_csv_split_and_standardised(tmp_path):
    x, y = _table()
    path = _write_csv(tmp_path / "d.csv", ["a", "b", "y", "c"],
                      [[a, b, t, c] for (a, b, c), t in zip(x, y)])
    data = load_user_data(path, target="y")
    n_test = int(np.ceil(0.33 * len(x)))  # train_test_split's rule for a float test_size
    assert (len(data.x_train), len(data.x_test)) == (len(x) - n_test, n_test)
    assert data.task == "regression" and data.metric == "mse" and data.n_features == 3
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1.0, atol=1e-5)
    # The target column is taken out, whatever its position; rows keep their target.
    np.testing.assert_allclose(np.sort(np.r_[data.y_train, data.y_test]), np.sort(y), rtol=1e-6)


def test_csv_target_defaults_to_last_column_and_labels_for_classification(tmp_path):
    x, _ = _table()
    labels = np.where(x[:, 0] > 0, "cat", "dog")
    path = _write_csv(tmp_path / "c.csv", ["a", "b", "c", "kind"],
                      [[*row, lab] for row, lab in zip(x, labels)])
    data = load_user_data(path, task="classification")
    assert data.n_classes == 2 and data.metric == "accuracy"
    assert set(np.unique(np.r_[data.y_train, data.y_test])) == {0, 1}
    assert np.sum(np.r_[data.y_train, data.y_test] == 0) == np.sum(labels == "cat")


def test_npz_matrix_and_columns(tmp_path):
    x, y = _table()
    np.savez(tmp_path / "m.npz", x=x, y=y)
    assert load_user_data(str(tmp_path / "m.npz")).n_features == 3
    np.savez(tmp_path / "cols.npz", a=x[:, 0], b=x[:, 1], price=y)
    data = load_user_data(str(tmp_path / "cols.npz"), target="price")
    assert data.n_features == 2


@pytest.mark.parametrize("header, rows, target, message", [
    (["a", "b", "y"], [[1, 2, 3]] * 30, "price",
     "has no column 'price' (--target). Columns: a, b, y"),
    (["a", "b", "y"], [[1, "abc", 3]] + [[1, 2, 3]] * 29, "y",
     "line 2, column 'b': 'abc' is not a finite number"),
    (["a", "b", "y"], [[1, 2, 3]] * 5 + [[1, "", 3]] + [[1, 2, 3]] * 24, "y",
     "line 7, column 'b': an empty value is not a finite number"),
    (["a", "b", "y"], [[1, 2, 3]] * 5, "y", f"has 5 rows; expected at least {MIN_ROWS}"),
    (["a", "b", "y"], [[1, 2, 3]] * 3 + [[1, 2]] + [[1, 2, 3]] * 26, "y",
     "line 5: 2 values, expected 3"),
    (["a", "b", "y"], [[1, 2, "nan"]] + [[1, 2, 3]] * 29, "y",
     "line 2, column 'y': 'nan' is not a finite number"),
    (["1", "2", "3"], [[1, 2, 3]] * 30, None, "looks like data; expected a header row"),
])
def test_csv_errors_name_file_column_and_expectation(tmp_path, header, rows, target, message):
    path = _write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(DataError) as error:
        load_user_data(path, target=target)
    assert "bad.csv" in str(error.value) and message in str(error.value)


def test_file_errors(tmp_path):
    with pytest.raises(DataError, match=r"--data: no such file. Received: --data='.*nope.csv'"):
        load_user_data(str(tmp_path / "nope.csv"))
    (tmp_path / "d.parquet").write_bytes(b"x")
    with pytest.raises(DataError, match=r"expected a .csv or .npz file"):
        load_user_data(str(tmp_path / "d.parquet"))
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="e.csv is empty"):
        load_user_data(str(tmp_path / "e.csv"))


def test_npz_errors(tmp_path):
    x, y = _table()
    np.savez(tmp_path / "a.npz", x=x, target=y)
    with pytest.raises(DataError, match=r"a.npz has no array 'y' \(--target\). Arrays: x, target"):
        load_user_data(str(tmp_path / "a.npz"))
    np.savez(tmp_path / "b.npz", x=x, y=y[:10])
    with pytest.raises(DataError, match=r"target 'y' has shape \(10,\); expected \(40,\)"):
        load_user_data(str(tmp_path / "b.npz"))
    np.savez(tmp_path / "c.npz", x=x.astype(str), y=y)
    with pytest.raises(DataError, match="feature 'x\\[0\\]' holds non-numeric"):
        load_user_data(str(tmp_path / "c.npz"))
    np.savez(tmp_path / "d.npz", x=x, y=np.array(["a"] * 40))
    with pytest.raises(DataError, match="target 'y' holds non-numeric.*--task classification"):
        load_user_data(str(tmp_path / "d.npz"))
    (tmp_path / "e.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="e.npz: not a readable .npz archive"):
        load_user_data(str(tmp_path / "e.npz"))
    np.savez(tmp_path / "f.npz", x=x, y=np.zeros(40))
    with pytest.raises(DataError, match="has 1 class; classification needs at least 2"):
        load_user_data(str(tmp_path / "f.npz"), task="classification")
