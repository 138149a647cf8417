"""Maintenance data: no leakage, disjoint contiguous blocks, scaler fitted on train only."""

from __future__ import annotations

import numpy as np
import pytest

from workloads.maintenance import (
    IDENTIFIERS,
    LABEL,
    LEAKY,
    Maintenance,
    WindowDataset,
    block_bounds,
    feature_matrix,
    load_frame,
    scale_with_train,
)
from workloads.metrics import binary_metrics


@pytest.fixture(scope="module")
def frame():
    return load_frame()


@pytest.fixture(scope="module")
def splits():
    return Maintenance("gru").load(seed=0)


def test_real_file_is_read_in_udi_order(frame):
    assert len(frame) == 10_000
    assert frame["UDI"].is_monotonic_increasing
    assert int(frame[LABEL].sum()) == 339


def test_no_label_leak_or_identifier_among_inputs(frame):
    _, names = feature_matrix(frame)
    forbidden = set(LEAKY) | set(IDENTIFIERS) | {LABEL}
    assert not forbidden & set(names)
    assert {"Type_L", "Type_M", "Type_H"} <= set(names)


def test_features_do_not_change_when_label_columns_change(frame):
    poisoned = frame.copy()
    for column in [*LEAKY, LABEL]:
        poisoned[column] = 1 - poisoned[column]
    assert np.array_equal(feature_matrix(frame)[0], feature_matrix(poisoned)[0])


def test_blocks_are_contiguous_disjoint_and_cover_all_rows():
    bounds = block_bounds(10_000)
    assert bounds["train"][0] == 0
    assert bounds["train"][1] == bounds["val"][0]
    assert bounds["val"][1] == bounds["test"][0]
    assert bounds["test"][1] == 10_000


def test_windows_never_cross_a_block(splits):
    w = 20
    bounds = block_bounds(10_000)
    for name in ("train", "val", "test"):
        dataset = getattr(splits, name)
        start, stop = bounds[name]
        assert len(dataset) == (stop - start) - w + 1
        assert dataset.x.shape[0] == stop - start  # the dataset only holds its own block's rows
    info = splits.info["blocks"]
    assert info["train"]["udi"][1] < info["val"]["udi"][0] <= info["val"]["udi"][1] < info["test"]["udi"][0]


def test_window_label_is_the_last_rows_label():
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.zeros(10, dtype=np.float32)
    y[6] = 1
    dataset = WindowDataset(x, y, window=4)
    window, label = dataset[3]  # rows 3..6
    assert window.shape == (4, 3)
    assert window[-1, 0].item() == 18.0  # row 6
    assert label.item() == 1.0


def test_scaler_uses_training_rows_only(frame):
    features, names = feature_matrix(frame)
    n_numeric = len(names) - 3
    train = block_bounds(len(frame))["train"]
    scaled = scale_with_train(features, n_numeric, train)
    block = scaled[train[0] : train[1], :n_numeric]
    assert np.allclose(block.mean(axis=0), 0, atol=1e-9)
    assert np.allclose(block.std(axis=0), 1, atol=1e-9)
    # Changing rows outside the training block must not change how anything is scaled.
    shifted = features.copy()
    shifted[train[1] :, :n_numeric] += 1000.0
    rescaled = scale_with_train(shifted, n_numeric, train)
    assert np.allclose(rescaled[: train[1]], scaled[: train[1]], rtol=0, atol=1e-9)
    # one-hot columns are left as they are
    assert set(np.unique(scaled[:, n_numeric:])) <= {0.0, 1.0}


def test_pos_weight_is_the_setting_or_else_the_training_block_ratio(splits):
    assert splits.info["pos_weight"] == 5.0
    auto = Maintenance("gru", {"pos_weight": 0.0}).load(seed=0)
    train_labels = auto.train.y.numpy()
    expected = (len(train_labels) - train_labels.sum()) / train_labels.sum()
    assert auto.info["pos_weight"] == pytest.approx(expected)


def test_majority_class_scores_zero_f1():
    y = np.array([0] * 29 + [1])
    m = binary_metrics(y, np.zeros_like(y), np.zeros(len(y)))
    assert m["accuracy"] == pytest.approx(29 / 30)
    assert m["f1"] == 0.0


def test_unknown_variant_and_parameter_are_one_line_errors():
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="valid choices: gru, lstm"):
        Maintenance("transformer")
    with pytest.raises(BenchError, match="unknown parameter"):
        Maintenance("gru", {"hiddne": 3})


def _ai4i_copy(tmp_path, monkeypatch, edit) -> None:
    """A copy of the real AI4I table with `edit` applied (rows 0-based), as the data directory."""
    import pandas as pd

    from bench.paths import data_dir

    frame = pd.read_csv(data_dir() / "ai4i2020" / "ai4i2020.csv")
    edit(frame)
    (tmp_path / "ai4i2020").mkdir()
    frame.to_csv(tmp_path / "ai4i2020" / "ai4i2020.csv", index=False)
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))


def test_non_finite_sensor_value_is_refused_not_scored_as_negative(tmp_path, monkeypatch):
    # A row of the validation block: its windows would score NaN, and NaN >= 0.5 is "no failure".
    _ai4i_copy(tmp_path, monkeypatch, lambda f: f.__setitem__("Torque [Nm]", f["Torque [Nm]"].where(f.index != 7999, np.inf)))
    from bench.errors import BenchError

    with pytest.raises(BenchError, match=r"column 'Torque \[Nm\]' has 1 non-finite value\(s\), first at data row 8000: inf"):
        Maintenance("gru").load(seed=0)


def test_duplicated_rows_are_refused(tmp_path, monkeypatch):
    def duplicate(frame):
        frame.iloc[100] = frame.iloc[99]

    _ai4i_copy(tmp_path, monkeypatch, duplicate)
    from bench.errors import BenchError

    with pytest.raises(BenchError, match=r"1 row\(s\) repeat another row's UDI \(duplicated rows\?\), first at data row 101: UDI 100"):
        Maintenance("gru").load(seed=0)


def test_a_block_holding_one_class_is_refused(tmp_path, monkeypatch):
    _ai4i_copy(tmp_path, monkeypatch, lambda f: f.__setitem__(LABEL, f[LABEL].where(f.index < 8500, 0)))
    from bench.errors import BenchError

    with pytest.raises(BenchError, match=r"ai4i2020.csv: the test block \(UDI 8501-10000\) holds one class only \(Machine failure 0 in all 1,500 rows\)"):
        Maintenance("gru").load(seed=0)


def test_reordering_by_udi_is_recorded_as_cleaning(tmp_path, monkeypatch):
    def swap(frame):
        frame.iloc[[10, 11]] = frame.iloc[[11, 10]].to_numpy()

    _ai4i_copy(tmp_path, monkeypatch, swap)
    splits = Maintenance("gru").load(seed=0)
    assert splits.info["cleaning"] == [{"step": "sort rows by UDI", "rows_changed": 2}]

