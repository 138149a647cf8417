"""Traffic workload: preprocessing, layouts, duplicates, the anomaly report, baselines, e2e runs.

The tests that start processes are in tests/e2e/test_traffic.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.errors import BenchError
from tests.conftest import cpu_runs_a_bf16_lstm
from workloads import traffic_data as td
from workloads.traffic import Traffic
from workloads.traffic_report import full_report, max_f1_threshold, split_report

COLUMNS = [td.ID, *td.FEATURES, td.LABEL, td.CATEGORY]


def synthetic_frame(n: int, seed: int = 0, start_id: int = 1) -> pd.DataFrame:
    """UNSW-shaped rows: normals and attacks (two categories) drawn from different distributions."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.4).astype(int)
    frame = pd.DataFrame({td.ID: np.arange(start_id, start_id + n)})
    for column in td.NUMERIC:
        frame[column] = np.round(rng.lognormal(1.0 + 2.0 * label, 0.5), 3)
    frame["proto"] = np.where(label == 1, rng.choice(["tcp", "udp", "sctp"], n), rng.choice(["tcp", "udp"], n))
    frame["service"] = rng.choice(["-", "dns", "http"], n)
    frame["state"] = rng.choice(["FIN", "INT", "CON"], n)
    frame[td.LABEL] = label
    frame[td.CATEGORY] = np.where(label == 1, rng.choice(["Exploits", "DoS"], n), "Normal")
    return frame[COLUMNS]


@pytest.fixture
def synthetic_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / td.FOLDER
    folder.mkdir()
    synthetic_frame(600).to_csv(folder / "UNSW_NB15_testing-set.csv", index=False)
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    return folder


def test_inputs_never_include_identifiers_or_labels(synthetic_dir: Path) -> None:
    prepared = td.prepare(0, True, 0.2, 0.2, 0.002)
    names = prepared.feature_names
    assert not {td.ID, td.LABEL, td.CATEGORY} & set(names)
    assert not any(n.startswith(f"{td.CATEGORY}_") or n.startswith(f"{td.LABEL}_") for n in names)
    assert prepared.train.x.shape[1] == len(names) == prepared.info["inputs"]
    # every numeric column enters once; categories one-hot
    assert set(td.NUMERIC) <= set(names)
    assert "service_none" in names  # the "-" placeholder is its own category, not a missing value


def test_encoder_is_fitted_on_training_normals_only(synthetic_dir: Path) -> None:
    first = td.prepare(0, True, 0.2, 0.2, 0.002)
    normals = first.train.x[first.train.y == 0]
    numeric = slice(0, len(td.NUMERIC))
    np.testing.assert_allclose(normals[:, numeric].mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(normals[:, numeric].std(axis=0), 1.0, atol=1e-3)

    # Rewriting every attack row (and every val/test row) must not move the encoding of the
    # training normals: nothing but them is fitted on.
    path = synthetic_dir / "UNSW_NB15_testing-set.csv"
    frame = pd.read_csv(path)
    attack = frame[td.LABEL] == 1
    frame.loc[attack, td.NUMERIC] = frame.loc[attack, td.NUMERIC] * 1000 + 7
    frame.loc[attack, "proto"] = "gre"
    frame.to_csv(path, index=False)
    second = td.prepare(0, True, 0.2, 0.2, 0.002)
    np.testing.assert_array_equal(second.train.x[second.train.y == 0], normals)
    assert "proto_gre" not in second.feature_names


def test_unseen_and_rare_categories_are_pooled() -> None:
    train = synthetic_frame(400, seed=1)
    train = td.read_partition_frame(train)
    train.loc[train.index[:1], "state"] = "rare"  # 1 of 400 rows: below rare_fraction
    encoder = td.make_encoder(rare_fraction=0.01).fit(train[td.FEATURES])
    names = list(encoder.get_feature_names_out())
    assert "state_rare" not in names and "state_infrequent_sklearn" in names

    unseen = train.head(3).copy()
    unseen["proto"] = "never-seen-proto"
    part = td.encode(encoder, unseen, ["Normal", "DoS", "Exploits"])
    proto = [i for i, n in enumerate(names) if n.startswith("proto_")]
    assert np.isfinite(part.x).all()
    # An unseen category is not any known proto: its row sums to at most the pooled column.
    assert (part.x[:, proto].sum(axis=1) <= 1).all()
    known = [i for i, n in enumerate(names) if n.startswith("proto_") and "infrequent" not in n]
    assert (part.x[:, known] == 0).all()


def test_missing_numbers_are_imputed_and_text_in_numbers_is_refused(synthetic_dir: Path) -> None:
    path = synthetic_dir / "UNSW_NB15_testing-set.csv"
    frame = pd.read_csv(path)
    frame.loc[3, "sbytes"] = np.nan
    frame.loc[5, "service"] = np.nan
    frame.to_csv(path, index=False)
    prepared = td.prepare(0, True, 0.2, 0.2, 0.002)
    assert all(np.isfinite(p.x).all() for p in (prepared.train, prepared.val, prepared.test))

    frame["dur"] = frame["dur"].astype(object)
    frame.loc[7, "dur"] = "abc"
    frame.to_csv(path, index=False)
    with pytest.raises(BenchError, match="'dur' has 1 non-numeric"):
        td.prepare(0, True, 0.2, 0.2, 0.002)


def test_blank_values_are_filled_and_counted(synthetic_dir: Path) -> None:
    path = synthetic_dir / "UNSW_NB15_testing-set.csv"
    frame = pd.read_csv(path)
    frame.loc[[3, 8], "sbytes"] = np.nan
    frame.loc[8, "dur"] = np.nan
    frame.loc[5, "service"] = np.nan
    frame.to_csv(path, index=False)
    cleaning = td.prepare(0, True, 0.2, 0.2, 0.002).info["cleaning"]
    steps = {step["step"]: step for step in cleaning}
    assert steps["fill blank numbers with the median of the training normals"] == {
        "step": "fill blank numbers with the median of the training normals",
        "rows_changed": 2,
        "values_changed": 3,
        "columns": {"dur": 1, "sbytes": 2},
    }
    assert steps["fill blank proto/service/state with the category 'none'"]["rows_changed"] == 1
    assert steps["drop exact feature duplicates, first in id order kept"]["rows_changed"] == 0


def test_non_finite_numbers_and_repeated_ids_are_refused(synthetic_dir: Path) -> None:
    path = synthetic_dir / "UNSW_NB15_testing-set.csv"
    frame = pd.read_csv(path)
    inf = frame.copy()
    inf.loc[4, "rate"] = np.inf
    inf.to_csv(path, index=False)
    with pytest.raises(BenchError, match=r"'rate' has 1 non-finite value\(s\), first at data row 5: inf"):
        td.prepare(0, True, 0.2, 0.2, 0.002)
    repeated = frame.copy()
    repeated.loc[9, td.ID] = repeated.loc[8, td.ID]
    repeated.to_csv(path, index=False)
    with pytest.raises(BenchError, match=r"1 row\(s\) repeat another row's id \(duplicated rows\?\), first at data row 10"):
        td.prepare(0, True, 0.2, 0.2, 0.002)


def test_a_split_holding_one_class_is_refused(synthetic_dir: Path) -> None:
    frame = synthetic_frame(600)
    frame[td.LABEL] = 0
    frame[td.CATEGORY] = "Normal"
    frame.to_csv(synthetic_dir / "UNSW_NB15_testing-set.csv", index=False)
    with pytest.raises(BenchError, match=r"label column 'label' holds one class only \(0 in all 600 rows\)"):
        Traffic().load(0)


def test_missing_dataset_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(BenchError, match="UNSW_NB15_testing-set.csv.gz not found") as info:
        td.prepare(0, True, 0.2, 0.2, 0.002)
    assert "\n" not in str(info.value)


def test_deduplicate_keeps_first_and_drops_label_conflicts() -> None:
    frame = td.read_partition_frame(synthetic_frame(50, seed=2))
    copies = frame.iloc[[0, 0, 1]].copy()
    copies[td.ID] = [100, 101, 102]
    copies.iloc[2, copies.columns.get_loc(td.LABEL)] = 1 - copies.iloc[2][td.LABEL]  # row 1: label conflict
    kept, facts = td.deduplicate(pd.concat([frame, copies], ignore_index=True))
    assert facts == {
        "rows_read": 53,
        "label_conflicting_rows_dropped": 2,
        "duplicate_rows_dropped": 2,
        "groups_with_several_attack_cat_kept_first": 0,
        "rows_kept": 49,
    }
    assert not kept.duplicated(td.FEATURES).any()
    assert frame[td.ID].iloc[0] in set(kept[td.ID]) and frame[td.ID].iloc[1] not in set(kept[td.ID])


def test_two_partitions_are_told_apart_by_row_count(synthetic_dir: Path) -> None:
    # Swapped names: the file called "testing" is the larger one, so it is the training partition.
    synthetic_frame(900, seed=3).to_csv(synthetic_dir / "UNSW_NB15_testing-set.csv", index=False)
    held_out = synthetic_frame(300, seed=4, start_id=1)
    copies = pd.read_csv(synthetic_dir / "UNSW_NB15_testing-set.csv").head(5).assign(**{td.ID: range(301, 306)})
    held_out = pd.concat([held_out, copies])  # copies of training rows under their own ids
    held_out.to_csv(synthetic_dir / "UNSW_NB15_training-set.csv.gz", index=False)
    prepared = td.prepare(0, True, 0.2, 0.2, 0.002)
    info = prepared.info
    assert info["layout"] == "official-partitions" and info["names_swapped"] is True
    assert info["testing_rows_copying_training_rows_dropped"] == 5
    assert len(prepared.test) == 300 - info["duplicates_testing_file"]["duplicate_rows_dropped"] - info[
        "duplicates_testing_file"]["label_conflicting_rows_dropped"]
    assert len(prepared.train) + len(prepared.val) == info["duplicates_training_file"]["rows_kept"]


def test_equal_row_counts_cannot_be_told_apart(synthetic_dir: Path) -> None:
    synthetic_frame(600, seed=5).to_csv(synthetic_dir / "UNSW_NB15_training-set.csv", index=False)
    with pytest.raises(BenchError, match="same number of rows"):
        td.prepare(0, True, 0.2, 0.2, 0.002)


def test_real_data_split_has_no_copies_across_parts(data_dir: Path) -> None:
    prepared = td.prepare(0, True, 0.2, 0.2, 0.002)
    info = prepared.info
    assert info["layout"] == "single-partition"
    assert info["files"]["UNSW_NB15_testing-set.csv.gz"]["recognised_as"] == "official testing partition"
    assert info["duplicates"]["rows_read"] == 82_332
    raw = td.read_partition(td.partition_files()[0]).set_index(td.ID)[td.FEATURES]
    train = set(raw.loc[prepared.train.ids].itertuples(index=False))
    assert not any(row in train for row in raw.loc[prepared.test.ids].itertuples(index=False))
    assert len(set(prepared.train.ids) | set(prepared.val.ids) | set(prepared.test.ids)) == info["duplicates"]["rows_kept"]
    assert sum(info["rows"].values()) == info["duplicates"]["rows_kept"]
    # stratified: every attack category in every split
    assert set(info["per_category_rows"]["train"]) == set(info["per_category_rows"]["test"])


def test_per_category_report() -> None:
    names = ["Normal", "DoS", "Worms"]
    outputs = {
        "score": np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.25, 0.95]),
        "label": np.array([0, 0, 0, 1, 1, 1, 1]),
        "category": np.array([0, 0, 0, 1, 1, 1, 2]),
    }
    report = split_report(outputs, {"val_max_f1": 0.5, "train_p99": 0.22}, names)
    rates = report["detection_rate"]["val_max_f1"]
    assert rates == {
        "Normal": {"rows": 3, "flagged": 0.0},
        "DoS": {"rows": 3, "flagged": pytest.approx(2 / 3)},
        "Worms": {"rows": 1, "flagged": 1.0},
    }
    assert report["detection_rate"]["train_p99"]["Normal"]["flagged"] == pytest.approx(1 / 3)
    assert report["recall"] == pytest.approx(0.75) and report["precision"] == 1.0
    assert report["roc_auc"] == pytest.approx(11 / 12)


def test_thresholds_come_from_validation_and_training_normals() -> None:
    val = {"score": np.array([0.1, 0.2, 0.7, 0.8]), "label": np.array([0, 0, 1, 1]), "category": np.array([0, 0, 1, 1])}
    threshold, f1 = max_f1_threshold(val["label"], val["score"])
    assert f1 == 1.0 and 0.2 < threshold <= 0.7
    train_normal = np.linspace(0.0, 1.0, 101)
    report = full_report(val, val, train_normal, ["Normal", "DoS"])
    assert report["thresholds"]["train_p99"] == pytest.approx(0.99)
    assert report["test"]["f1"] == 1.0


@pytest.mark.parametrize("variant", ["ae", "lstm_ae"])
def test_train_holds_normals_and_scores_are_fp32_under_bf16(synthetic_dir: Path, variant: str) -> None:
    if variant == "lstm_ae" and not cpu_runs_a_bf16_lstm():
        pytest.skip("this CPU has no bf16 LSTM kernel (AVX2 only): such cells are unsupported, tests/{unit,e2e}/test_verify.py")
    workload = Traffic(variant, {"window": 3})
    splits = workload.load(0)
    assert float(splits.train.y.sum()) == 0.0  # the autoencoder never sees an attack
    assert splits.val.y.sum() > 0 and (splits.val.y == 0).any()
    model = workload.build_model()
    loader = torch.utils.data.DataLoader(splits.val, batch_size=16, collate_fn=workload.collate)
    batch = next(iter(loader))
    if variant == "lstm_ae":
        assert batch[0].shape[1:] == (3, workload._n_features)
        # window = the last 3 records of the split in id order, left-padded by the first record
        np.testing.assert_array_equal(batch[0][0].numpy(), np.repeat(splits.val.x[:1].numpy(), 3, axis=0))
        np.testing.assert_array_equal(batch[0][5].numpy(), splits.val.x[3:6].numpy())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = workload.eval_outputs(model, batch)
        loss = workload.loss(model, batch)
    assert out["score"].dtype == torch.float32 and out["score"].shape == (16,)
    assert loss.dtype == torch.float32
    assert set(out) == {"score", "label", "category"}


def test_baselines_rows(synthetic_dir: Path) -> None:
    workload = Traffic()
    rows = workload.baselines(workload.load(0), seed=0)
    assert [r["name"] for r in rows] == ["isolation_forest", "random_forest"]
    for row in rows:
        assert row["fit_seconds"] > 0
        for split in ("val", "test"):
            metrics = row["metrics"][split]
            assert 0.0 <= metrics["roc_auc"] <= 1.0 and "pr_auc" in metrics
            assert set(metrics["at_threshold"]) == {"val_max_f1", "train_p99"}
            assert set(metrics["detection_rate"]["val_max_f1"]) == {"Normal", "DoS", "Exploits"}
    # the synthetic attacks are easy: the supervised forest separates them
    assert rows[1]["metrics"]["test"]["roc_auc"] > 0.95

