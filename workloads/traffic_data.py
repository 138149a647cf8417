"""UNSW-NB15 for the traffic workload: find the partitions, read, de-duplicate, split, encode.

Layouts. The official release has a training partition (175,341 rows) and a testing partition
(82,332 rows); the files circulate with their names swapped (Kaggle), so a file's role is taken
from its row count, never from its name. With both present they are used as published: the
model is fitted on the training partition (a stratified part of it held out for validation)
and tested on the testing partition. With one present (as on the project machines: the testing
partition only) that file is split three ways, seeded and stratified by `attack_cat`.

Duplicates. About a third of the rows repeat another row's features exactly. Left in, a random
split puts copies of test rows into training, so test scores would partly measure memory. By
default (`dedup`), exact feature duplicates are dropped before splitting, keeping the first row
in `id` order, and groups whose copies disagree on `label` are dropped entirely (their label is
undecidable); in the two-file layout, testing rows that copy a training row are dropped too.

Encoding. `proto`/`service`/`state` are one-hot encoded with rare categories pooled into one
"infrequent" column, which also takes categories never seen in fitting; `service` "-" (no
application protocol identified) and missing categorical values are the category "none".
Heavy-tailed counts, bytes, rates and times go through log1p; missing numbers are imputed with
the median; all numbers are standardised. Every statistic (medians, means, deviations, the
category list) is fitted on the NORMAL rows of the training part only, exactly the rows the
autoencoder learns from. `id`, `label` and `attack_cat` are never inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from bench.data.tabular import check_classes, check_finite, cleaning_step, dataset_file, read_csv_checked
from bench.errors import BenchError

FOLDER = "unsw_nb15"
FETCH_NAME = "unsw_nb15"
STEMS = {"training": "UNSW_NB15_training-set", "testing": "UNSW_NB15_testing-set"}
SUFFIXES = (".csv.gz", ".csv")
OFFICIAL_ROWS = {"training": 175_341, "testing": 82_332}

ID, LABEL, CATEGORY = "id", "label", "attack_cat"
NORMAL = "Normal"
CATEGORICAL = ["proto", "service", "state"]
# Counts, bytes, rates, times and jitters span many orders of magnitude: log1p.
LOG_NUMERIC = [
    "dur", "spkts", "dpkts", "sbytes", "dbytes", "rate", "sload", "dload", "sloss", "dloss",
    "sinpkt", "dinpkt", "sjit", "djit", "stcpb", "dtcpb", "tcprtt", "synack", "ackdat",
    "smean", "dmean", "trans_depth", "response_body_len", "ct_srv_src", "ct_dst_ltm",
    "ct_src_dport_ltm", "ct_dst_sport_ltm", "ct_dst_src_ltm", "ct_flw_http_mthd", "ct_src_ltm",
    "ct_srv_dst",
]  # fmt: skip
# TTLs, TCP window sizes, small codes and flags: bounded, kept linear.
PLAIN_NUMERIC = ["sttl", "dttl", "swin", "dwin", "ct_state_ttl", "is_ftp_login", "ct_ftp_cmd", "is_sm_ips_ports"]
NUMERIC = LOG_NUMERIC + PLAIN_NUMERIC
FEATURES = CATEGORICAL + NUMERIC
NO_SERVICE = "none"


@dataclass
class Part:
    """Rows of one split: encoded inputs, labels, attack-category indices, in `id` order."""

    x: np.ndarray
    y: np.ndarray
    category: np.ndarray
    ids: np.ndarray

    def where(self, mask: np.ndarray) -> Part:
        return Part(self.x[mask], self.y[mask], self.category[mask], self.ids[mask])

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Prepared:
    """The encoded splits plus what the preprocessing decided (recorded in the result)."""

    train: Part  # the whole training part, both classes (the autoencoder uses its normals)
    val: Part
    test: Part
    categories: list[str]
    feature_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)


# -- finding and reading the files --------------------------------------------------------------


def partition_files() -> list[Path]:
    """The UNSW-NB15 partition files present (at most one per official name)."""
    found = []
    for stem in STEMS.values():
        for suffix in SUFFIXES:
            path = _existing(f"{FOLDER}/{stem}{suffix}")
            if path is not None:
                found.append(path)
                break
    if not found:
        dataset_file(f"{FOLDER}/{STEMS['testing']}.csv.gz", FETCH_NAME)  # raises the one-line error
    return found


def _existing(relative: str) -> Path | None:
    try:
        return dataset_file(relative, FETCH_NAME)
    except BenchError:
        return None


def read_partition(path: Path, cleaning: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """One partition file, checked: columns, numeric values, labels (both classes), unique `id`.
    Missing numbers stay NaN (imputed at encoding, counted); infinite ones are refused."""
    frame = read_csv_checked(
        path, required=[ID, *FEATURES, LABEL, CATEGORY], numeric=[ID], labels={LABEL: {0, 1}}, min_rows=50,
        unique=[ID], target=LABEL,
    )
    return read_partition_frame(frame, str(path), cleaning)


def read_partition_frame(
    frame: pd.DataFrame, source: str = "data", cleaning: list[dict[str, Any]] | None = None
) -> pd.DataFrame:
    """Normalise a partition's table: numbers as floats (blank = NaN, text or inf = error), categories
    lower-cased with "-"/blank as "none", attack_cat stripped, rows in `id` order. The blanks filled
    are appended to `cleaning`, with the file's name."""
    frame = frame.copy()
    for column in NUMERIC:
        if pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype(np.float64)
            check_finite(source, column, frame[column])
            continue
        converted = pd.to_numeric(frame[column], errors="coerce")
        bad = converted.isna() & frame[column].notna() & (frame[column].astype(str).str.strip() != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise BenchError(
                f"{source}: column {column!r} has {int(bad.sum())} non-numeric value(s), "
                f"first at data row {row + 1}: {frame[column].iloc[row]!r}"
            )
        check_finite(source, column, converted)
        frame[column] = converted.astype(np.float64)
    blank_rows = np.zeros(len(frame), dtype=bool)
    for column in CATEGORICAL:
        values = frame[column].astype("string").str.strip().str.lower()
        blank = (values.isna() | (values == "")).to_numpy(dtype=bool)
        blank_rows |= blank
        frame[column] = values.mask(values.isna() | (values == "") | (values == "-"), NO_SERVICE).astype(str)
    category = frame[CATEGORY].astype("string").str.strip()
    # The raw UNSW files leave attack_cat empty for normal traffic; the partitions say "Normal".
    category = category.mask(category.isna() | (category == ""), None)
    blank_category = int(category.isna().sum())
    category = category.fillna(pd.Series(np.where(frame[LABEL] == 0, NORMAL, "Unknown"), index=frame.index))
    frame[CATEGORY] = category.astype(str)
    if cleaning is not None:
        name = Path(source).name
        cleaning.append(cleaning_step(f"fill blank {'/'.join(CATEGORICAL)} with the category '{NO_SERVICE}'",
                                      int(blank_rows.sum()), file=name))
        cleaning.append(cleaning_step(f"fill blank {CATEGORY} from the label ({NORMAL} if 0, else Unknown)",
                                      blank_category, file=name))
    return frame.sort_values(ID, kind="stable").reset_index(drop=True)


def identify(frames: dict[Path, pd.DataFrame]) -> dict[str, Any]:
    """Which file plays which role, from row counts; records whether names were swapped."""
    def official(rows: int) -> str:
        for role, count in OFFICIAL_ROWS.items():
            if rows == count:
                return f"official {role} partition"
        return "not an official partition row count"

    described = {path.name: {"rows": len(f), "recognised_as": official(len(f))} for path, f in frames.items()}
    if len(frames) == 1:
        (path,) = frames
        return {"layout": "single-partition", "files": described, "partition": path}
    (a, fa), (b, fb) = frames.items()
    if len(fa) == len(fb):
        raise BenchError(f"{a} and {b} have the same number of rows ({len(fa)}); cannot tell training from testing")
    train_path, test_path = (a, b) if len(fa) > len(fb) else (b, a)
    swapped = STEMS["training"] not in train_path.name
    return {
        "layout": "official-partitions",
        "files": described,
        "training_file": train_path,
        "testing_file": test_path,
        "names_swapped": swapped,
    }


# -- duplicates and splits --------------------------------------------------------------------


def deduplicate(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop exact feature duplicates (keep the first in `id` order) and label-conflicting groups."""
    group = frame.groupby(FEATURES, dropna=False, sort=False).ngroup()
    labels_per_group = frame[LABEL].groupby(group).transform("nunique")
    cats_per_group = frame[CATEGORY].groupby(group).nunique()
    conflicting = labels_per_group.to_numpy() > 1
    kept = frame[~conflicting & ~group.duplicated().to_numpy()]
    facts = {
        "rows_read": len(frame),
        "label_conflicting_rows_dropped": int(conflicting.sum()),
        "duplicate_rows_dropped": int(len(frame) - conflicting.sum() - len(kept)),
        "groups_with_several_attack_cat_kept_first": int((cats_per_group > 1).sum()),
        "rows_kept": len(kept),
    }
    return kept.reset_index(drop=True), facts


def drop_copies_of(frame: pd.DataFrame, reference: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows of `frame` whose features do not appear in `reference`."""
    keys = pd.MultiIndex.from_frame(reference[FEATURES])
    copies = pd.MultiIndex.from_frame(frame[FEATURES]).isin(keys)
    return frame[~copies].reset_index(drop=True), int(copies.sum())


def stratified_split(frame: pd.DataFrame, fractions: tuple[float, ...], seed: int) -> list[pd.DataFrame]:
    """Seeded split stratified by attack_cat; each part back in `id` order."""
    parts, rest = [], frame
    remaining = 1.0
    for fraction in fractions[:-1]:
        counts = rest[CATEGORY].value_counts()
        strata = rest[CATEGORY].where(~rest[CATEGORY].isin(counts[counts < 2].index), "_rare")
        take, rest = train_test_split(rest, train_size=fraction / remaining, random_state=seed, stratify=strata)
        parts.append(take)
        remaining -= fraction
    parts.append(rest)
    return [p.sort_values(ID, kind="stable").reset_index(drop=True) for p in parts]


def _dedup_steps(facts: dict[str, int], file: str) -> list[dict[str, Any]]:
    """`deduplicate`'s counts as cleaning steps."""
    return [
        cleaning_step("drop exact feature duplicates, first in id order kept", facts["duplicate_rows_dropped"], file=file),
        cleaning_step("drop duplicate groups whose copies disagree on the label", facts["label_conflicting_rows_dropped"],
                      file=file),
    ]


def _imputation_step(rows: pd.DataFrame) -> dict[str, Any]:
    """What the encoder's median imputation fills in the rows it encodes (every split)."""
    blank = rows[NUMERIC].isna()
    columns = {column: int(n) for column, n in blank.sum().items() if n}
    return cleaning_step("fill blank numbers with the median of the training normals", int(blank.any(axis=1).sum()),
                         values_changed=int(blank.to_numpy().sum()), columns=dict(sorted(columns.items())))


# -- encoding ------------------------------------------------------------------------------------


def make_encoder(rare_fraction: float) -> ColumnTransformer:
    """log1p/impute/scale the numbers, one-hot the categories with rare ones pooled."""
    log = make_pipeline(
        SimpleImputer(strategy="median"),
        FunctionTransformer(lambda v: np.log1p(np.clip(v, 0.0, None)), feature_names_out="one-to-one"),
        StandardScaler(),
    )
    plain = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    onehot = OneHotEncoder(
        handle_unknown="infrequent_if_exist", min_frequency=rare_fraction, sparse_output=False, dtype=np.float32
    )
    return ColumnTransformer(
        [("log", log, LOG_NUMERIC), ("num", plain, PLAIN_NUMERIC), ("cat", onehot, CATEGORICAL)],
        verbose_feature_names_out=False,
    )


def encode(encoder: ColumnTransformer | Pipeline, frame: pd.DataFrame, categories: list[str]) -> Part:
    x = np.asarray(encoder.transform(frame[FEATURES]), dtype=np.float32)
    index = {name: i for i, name in enumerate(categories)}
    category = frame[CATEGORY].map(index).fillna(-1).to_numpy(dtype=np.int64, copy=True)
    ids = frame[ID].to_numpy(dtype=np.int64, copy=True)
    return Part(x, frame[LABEL].to_numpy(dtype=np.float32, copy=True), category, ids)


def prepare(seed: int, dedup: bool, val_fraction: float, test_fraction: float, rare_fraction: float) -> Prepared:
    """Read whichever partitions are present and return the encoded train/val/test parts."""
    files = partition_files()
    cleaning: list[dict[str, Any]] = []
    frames = {path: read_partition(path, cleaning) for path in files}
    layout = identify(frames)
    info: dict[str, Any] = {"layout": layout["layout"], "files": layout["files"], "dedup": dedup}
    if layout["layout"] == "single-partition":
        frame = frames[layout["partition"]]
        if dedup:
            frame, info["duplicates"] = deduplicate(frame)
            cleaning += _dedup_steps(info["duplicates"], layout["partition"].name)
        train_fraction = 1.0 - val_fraction - test_fraction
        train, val, test = stratified_split(frame, (train_fraction, val_fraction, test_fraction), seed)
        info["split"] = (
            f"one partition split {train_fraction:.0%}/{val_fraction:.0%}/{test_fraction:.0%} "
            f"(train/val/test), seeded, stratified by {CATEGORY}"
            + (", after dropping exact duplicates" if dedup else ", duplicates left in")
        )
    else:
        info["names_swapped"] = layout["names_swapped"]
        published, held = frames[layout["training_file"]], frames[layout["testing_file"]]
        if dedup:
            published, info["duplicates_training_file"] = deduplicate(published)
            held, info["duplicates_testing_file"] = deduplicate(held)
            held, info["testing_rows_copying_training_rows_dropped"] = drop_copies_of(held, published)
            cleaning += _dedup_steps(info["duplicates_training_file"], layout["training_file"].name)
            cleaning += _dedup_steps(info["duplicates_testing_file"], layout["testing_file"].name)
            cleaning.append(cleaning_step("drop testing rows that copy a training row",
                                          info["testing_rows_copying_training_rows_dropped"],
                                          file=layout["testing_file"].name))
        train, val = stratified_split(published, (1.0 - val_fraction, val_fraction), seed)
        test = held
        info["split"] = (
            f"official partitions: train/val = {1 - val_fraction:.0%}/{val_fraction:.0%} of the training "
            f"partition (seeded, stratified by {CATEGORY}); test = the testing partition"
        )
    for name, part in (("train", train), ("val", val), ("test", test)):
        # val and test are scored by ROC-AUC; the supervised baseline fits on train's two classes
        check_classes(", ".join(p.name for p in files), part[LABEL], LABEL, f"{name} split ({len(part):,} rows)")
    normal_train = train[train[LABEL] == 0]
    if len(normal_train) < 10:
        raise BenchError(f"only {len(normal_train)} normal rows in the training part; cannot fit the autoencoder")
    cleaning.append(_imputation_step(pd.concat([train, val, test])))
    encoder = make_encoder(rare_fraction).fit(normal_train[FEATURES])
    categories = [NORMAL] + sorted(set(pd.concat([train, val, test])[CATEGORY]) - {NORMAL})
    parts = {name: encode(encoder, frame, categories) for name, frame in (("train", train), ("val", val), ("test", test))}
    names = [str(n) for n in encoder.get_feature_names_out()]
    info.update(
        {
            "rows": {name: len(p) for name, p in parts.items()},
            "attacks": {name: int(p.y.sum()) for name, p in parts.items()},
            "per_category_rows": {
                name: {categories[i]: int(n) for i, n in zip(*np.unique(p.category, return_counts=True), strict=True)}
                for name, p in parts.items()
            },
            "inputs": len(names),
            "feature_names": names,
            "encoder_fitted_on": f"the {len(normal_train)} normal rows of the training part",
            "cleaning": cleaning,
            "pooled_categories": {
                column: [str(c) for c in (cats if cats is not None else [])]
                for column, cats in zip(CATEGORICAL, encoder.named_transformers_["cat"].infrequent_categories_, strict=True)
            },
        }
    )
    return Prepared(parts["train"], parts["val"], parts["test"], categories, names, info)
