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
