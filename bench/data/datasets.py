"""The catalogue of datasets: what each file must be, where it comes from, how to check it.

Every dataset file the workloads read is described once here: its place under the data directory
(BENCH_DATA_DIR, else ~/.cache/bench/data), its columns, numeric columns, label values, expected row
count, and the SHA-256 of the published file where that file is fixed (from shared/data/PROVENANCE.md).

SHA-256 values are of the *content*: for a `.csv.gz` the decompressed CSV. The gzip wrapper is ours
(different gzip implementations write different bytes for the same CSV), the CSV is the publisher's.

`DataFile.load()` is the one checked reader `bench data verify` and `bench eda` use: a bad file gives a
one-line BenchError naming the file and the problem, never a traceback or silently wrong data.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.data.tabular import check_frame, read_csv_frame
from bench.errors import BenchError, first_line, one_of
from bench.paths import DATA_DIR_ENV, data_dir


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset, as the workloads expect it under the data directory."""

    relative: str
    """Path under the data directory, e.g. ai4i2020/ai4i2020.csv."""
    role: str
    """What the file is, in words (shown by `info` and in errors)."""
    columns: tuple[str, ...]
    numeric: tuple[str, ...] = ()
    labels: Mapping[str, frozenset] = field(default_factory=dict)
    rows: int | None = None
    """Exact row count of the published file; None where it is not fixed (a sampled subset)."""
    min_rows: int = 1
    sha256: str | None = None
    """SHA-256 of the published content (decompressed); None where the content is not fixed."""
    published_names: tuple[str, ...] = ()
    """Names the file has at its sources (zip members, Kaggle files), matched case-insensitively."""
    optional: bool = False
    """Not needed by the workloads (they fall back to what is present)."""
    read_kwargs: Mapping[str, Any] = field(default_factory=dict)
    text_columns: tuple[str, ...] = ()
    """Columns that must hold non-empty text."""
    unique: tuple[str, ...] = ()
    """Columns that identify a row: no two rows may share them (a repeated key is a duplicated row)."""
    target: str | None = None
    """The label a workload learns: it must hold at least two classes."""

    @property
    def path(self) -> Path:
        return data_dir() / self.relative

    @property
    def name(self) -> str:
        return Path(self.relative).name

    def load(self, path: Path | None = None, siblings: tuple[DataFile, ...] = ()) -> pd.DataFrame:
        """Read and check the file; BenchError (one line, naming the file) on any problem.

        `siblings` are the other files of the same dataset: a file whose row count is a sibling's
        (the UNSW partitions circulate with their names swapped) is named as such.
        """
        path = path or self.path
        if not path.is_file():
            raise BenchError(f"{path}: not found")
        frame = read_csv_frame(path, **dict(self.read_kwargs))
        check_frame(path, frame, list(self.columns), numeric=[])
        if self.rows is not None and len(frame) != self.rows:
            raise BenchError(f"{path}: {self.row_problem(len(frame), siblings)}")
        if len(frame) < self.min_rows:
            raise BenchError(f"{path}: {len(frame):,} rows, expected at least {self.min_rows:,} (truncated file?)")
        frame = check_frame(path, frame, [], list(self.numeric), {k: set(v) for k, v in self.labels.items()}, 0,
                            list(self.unique), self.target)
        for column in self.text_columns:
            empty = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
            if empty.any():
                raise BenchError(
                    f"{path}: column {column!r} has {int(empty.sum())} empty value(s), first at data row {int(empty.idxmax()) + 1}"
                )
        return frame

    def row_problem(self, rows: int, siblings: tuple[DataFile, ...] = ()) -> str:
        """Why `rows` rows are wrong for this file, naming the sibling it looks like."""
        for sibling in siblings:
            if sibling is not self and sibling.rows == rows:
                return (
                    f"holds {rows:,} rows, which is the {sibling.role}, not the {self.role} ({self.rows:,} rows); "
                    f"the file names circulate swapped: store it as {sibling.name}"
                )
        hint = " (truncated file?)" if rows < (self.rows or 0) else ""
        return f"{rows:,} rows, expected {self.rows:,}{hint}"


@dataclass(frozen=True)
class Dataset:
    """A dataset as a user gets it: its files, its source and how to fetch it."""

    name: str
    title: str
    files: tuple[DataFile, ...]
    source: str
    """Canonical source, in words, with its address."""
    fetch_with: str
    """How `bench data fetch` gets it (the client used)."""
    manual: str
    """What to download by hand when there is no network."""
    licence: str
    citation: str
    aliases: tuple[str, ...] = ()
    url: str | None = None
    """Published download (a zip) fetched with urllib; None when a client library fetches it."""

    def file(self, relative_or_name: str) -> DataFile:
        for f in self.files:
            if relative_or_name in (f.relative, f.name):
                return f
        raise KeyError(relative_or_name)


AI4I_COLUMNS = (
    "UDI", "Product ID", "Type", "Air temperature [K]", "Process temperature [K]", "Rotational speed [rpm]",
    "Torque [Nm]", "Tool wear [min]", "Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF",
)  # fmt: skip
AI4I_SENSORS = AI4I_COLUMNS[3:8]
AI4I_MODES = ("TWF", "HDF", "PWF", "OSF", "RNF")
BINARY = frozenset({0, 1})

UNSW_COLUMNS = tuple(
    "id dur proto service state spkts dpkts sbytes dbytes rate sttl dttl sload dload sloss dloss sinpkt dinpkt "
    "sjit djit swin stcpb dtcpb dwin tcprtt synack ackdat smean dmean trans_depth response_body_len ct_srv_src "
    "ct_state_ttl ct_dst_ltm ct_src_dport_ltm ct_dst_sport_ltm ct_dst_src_ltm is_ftp_login ct_ftp_cmd "
    "ct_flw_http_mthd ct_src_ltm ct_srv_dst is_sm_ips_ports attack_cat label".split()
)
UNSW_CATEGORICAL = ("proto", "service", "state", "attack_cat")
UNSW_NUMERIC = tuple(c for c in UNSW_COLUMNS if c not in UNSW_CATEGORICAL + ("label",))
UNSW_ATTACK_CATS = frozenset(
    {"Normal", "Generic", "Exploits", "Fuzzers", "DoS", "Reconnaissance", "Analysis", "Backdoor", "Shellcode", "Worms"}
)
UNSW_TESTING_ROWS = 82_332
UNSW_TRAINING_ROWS = 175_341

POLARITY_COLUMNS = ("label", "text", "split", "subset", "source_line")

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="ai4i2020",
            title="AI4I 2020 Predictive Maintenance Dataset (UCI 601)",
            aliases=("ai4i", "maintenance"),
            files=(
                DataFile(
                    relative="ai4i2020/ai4i2020.csv",
                    role="AI4I 2020 table",
                    columns=AI4I_COLUMNS,
                    numeric=("UDI", *AI4I_SENSORS),
                    labels={"Machine failure": BINARY, "Type": frozenset("LMH"), **{m: BINARY for m in AI4I_MODES}},
                    rows=10_000,
                    sha256="dc6630cd9b1f0f853922fad78a1b6436570d3f1ec863f1dd5c4340ac56bc8a8e",
                    published_names=("ai4i2020.csv",),
                    unique=("UDI",),
                    target="Machine failure",
                ),
            ),
            source="UCI Machine Learning Repository, dataset 601, https://doi.org/10.24432/C5HS5C",
            url="https://archive.ics.uci.edu/static/public/601/ai4i+2020+predictive+maintenance+dataset.zip",
            fetch_with="the published UCI zip (urllib)",
            manual="ai4i2020.csv (or the UCI zip holding it) from https://archive.ics.uci.edu/dataset/601",
            licence="CC BY 4.0 (as stated by UCI)",
            citation="S. Matzka, Explainable Artificial Intelligence for Predictive Maintenance Applications, AI4I 2020",
        ),
        Dataset(
            name="unsw_nb15",
            title="UNSW-NB15 network intrusion data, official training/testing partitions",
            aliases=("unsw", "unsw-nb15", "traffic"),
            files=(
                DataFile(
                    relative="unsw_nb15/UNSW_NB15_testing-set.csv.gz",
                    role="official testing partition",
                    columns=UNSW_COLUMNS,
                    numeric=UNSW_NUMERIC,
                    labels={"label": BINARY, "attack_cat": UNSW_ATTACK_CATS},
                    rows=UNSW_TESTING_ROWS,
                    sha256="734fe6642edf758f7c94d7d9149426b49d202fe8e7bf0bef47392489c3c0a559",
                    unique=("id",),
                    target="label",
                    published_names=("UNSW_NB15_testing-set.csv", "UNSW_NB15_training-set.csv"),
                ),
                DataFile(
                    relative="unsw_nb15/UNSW_NB15_training-set.csv.gz",
                    role="official training partition",
                    columns=UNSW_COLUMNS,
                    numeric=UNSW_NUMERIC,
                    labels={"label": BINARY, "attack_cat": UNSW_ATTACK_CATS},
                    rows=UNSW_TRAINING_ROWS,
                    sha256="bec7dd5ec88dc2a0ccc7a07879d338395ed7421750f675fd0339e07dfe0648fa",
                    unique=("id",),
                    target="label",
                    published_names=("UNSW_NB15_training-set.csv", "UNSW_NB15_testing-set.csv"),
                    optional=True,
                ),
            ),
            source="UNSW Canberra Cyber Range Lab, https://research.unsw.edu.au/projects/unsw-nb15-dataset "
            "(mirrored on Kaggle as mrwellsdavid/unsw-nb15)",
            fetch_with="kagglehub (Kaggle dataset mrwellsdavid/unsw-nb15)",
            manual="UNSW_NB15_testing-set.csv and UNSW_NB15_training-set.csv from "
            "https://research.unsw.edu.au/projects/unsw-nb15-dataset or https://www.kaggle.com/datasets/mrwellsdavid/unsw-nb15",
            licence="free for academic research; commercial use needs the authors' agreement (no open licence)",
            citation="N. Moustafa, J. Slay, UNSW-NB15: a comprehensive data set for network intrusion detection systems, MilCIS 2015",
        ),
        Dataset(
            name="amazon_polarity",
            title="Amazon Review Polarity (Zhang et al. 2015), a seeded subset",
            aliases=("polarity", "sentiment"),
            files=(
                DataFile(
                    relative="amazon_reviews/amazon_polarity_subset.csv.gz",
                    role="amazon_polarity subset",
                    columns=POLARITY_COLUMNS,
                    numeric=("source_line",),
                    labels={"label": BINARY, "split": frozenset({"train", "test"})},
                    min_rows=100,
                    published_names=("amazon_polarity_subset.csv",),
                    text_columns=("text",),
                    unique=("split", "subset", "source_line"),
                    target="label",
                ),
            ),
            source="Hugging Face Hub dataset fancyzhx/amazon_polarity (3.6 M train / 400 k test reviews)",
            fetch_with="the datasets library (a seeded random subset, --subset-size rows per split)",
            manual="a CSV with columns label,text[,split,subset,source_line] (label 0 negative / 1 positive)",
            licence="Apache-2.0 (Hugging Face dataset card); the underlying SNAP reviews state no licence",
            citation="X. Zhang, J. Zhao, Y. LeCun, Character-level Convolutional Networks for Text Classification, NeurIPS 2015",
        ),
        Dataset(
            name="amazon_cells",
            title="UCI Sentiment Labelled Sentences, Amazon part (out-of-domain sentiment test)",
            aliases=("amazon_cells_labelled", "sentiment_sentences"),
            files=(
                DataFile(
                    relative="amazon_reviews/amazon_cells_labelled.txt",
                    role="Amazon labelled sentences",
                    columns=("sentence", "label"),
                    labels={"label": BINARY},
                    rows=1_000,
                    sha256="47003fc0a0d4840b00e96e715b6189bad09e7443a3da41c4cbe12ffc79f86ae3",
                    published_names=("amazon_cells_labelled.txt",),
                    read_kwargs={"sep": "\t", "header": None, "names": ["sentence", "label"]},
                    text_columns=("sentence",),
                    target="label",
                ),
            ),
            source="UCI Machine Learning Repository, dataset 331, https://doi.org/10.24432/C57604",
            url="https://archive.ics.uci.edu/static/public/331/sentiment+labelled+sentences.zip",
            fetch_with="the published UCI zip (urllib)",
            manual="amazon_cells_labelled.txt (or the UCI zip holding it) from https://archive.ics.uci.edu/dataset/331",
            licence="CC BY 4.0 (as stated by UCI)",
            citation="D. Kotzias, M. Denil, N. de Freitas, P. Smyth, From Group to Individual Labels using Deep Features, KDD 2015",
        ),
    )
}


def dataset(name: str) -> Dataset:
    """Look a dataset up by name or alias; unknown names list the valid choices."""
    key = name.lower()
    for d in DATASETS.values():
        if key == d.name or key in d.aliases:
            return d
    raise one_of("dataset", name, list(DATASETS))


GROUPS = {"amazon_reviews": ("amazon_polarity", "amazon_cells")}
"""Names that stand for several datasets (the folder the sentiment workload reads)."""


def selected(names: list[str] | None) -> list[Dataset]:
    """The named datasets (all of them when none is named), each once; group names expand."""
    if not names:
        return list(DATASETS.values())
    out: list[Dataset] = []
    for n in names:
        for d in [DATASETS[g] for g in GROUPS[n.lower()]] if n.lower() in GROUPS else [dataset(n)]:
            if d not in out:
                out.append(d)
    return out


WORKLOAD_DATA: dict[str, tuple[str, ...]] = {
    "maintenance": ("ai4i2020",),
    "traffic": ("unsw_nb15",),
    "sentiment": ("amazon_polarity", "amazon_cells"),
}
"""The datasets each built-in workload reads (every file present; optional ones only when present).
A workload added through an entry point (docs/extending.md) is not listed: it reads no bench
dataset, or checks its own files in its `load()`. Unknown names never get this far: the matrix
refuses them against the workload registry."""


def check_workload_data(workload: str) -> dict[str, str]:
    """Check every file `workload` reads as `bench data verify` checks it; {relative path: content SHA-256}.

    Run by `bench run` before launching anything and by each cell before it loads its data, so that
    a run never trains on a file verify rejects: missing, truncated, duplicated rows, non-numeric,
    missing or non-finite numbers, unexpected or one-class labels, empty texts. A file whose content
    is the published one (same SHA-256) is that file, which passes every check: it is not parsed again.
    A file whose SHA-256 differs from the published one (imported with `fetch --force`) runs if its
    table passes; its hash goes in the result, where report and compare show that the data differ.
    """
    hashes: dict[str, str] = {}
    for name in WORKLOAD_DATA.get(workload, ()):
        ds = DATASETS[name]
        for data_file in ds.files:
            if data_file.optional and not data_file.path.is_file():
                continue
            path = require(ds, data_file)
            digest = file_sha256(path)
            if digest != data_file.sha256:
                data_file.load(path, ds.files)
            hashes[data_file.relative] = digest
    return hashes


def preflight(workloads: Iterable[str]) -> None:
    """`bench run`, before launching any cell: the data of every workload of the run, as verify checks it."""
    for workload in sorted(set(workloads)):
        check_workload_data(workload)


_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """`content_sha256`, remembered per (path, size, modification time) for this process.

    Cheap enough that a cell hashes its files itself (figures in docs/data.md)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256_CACHE:
        _SHA256_CACHE[key] = content_sha256(path)
    return _SHA256_CACHE[key]


def published_sha256(relative: str) -> str | None:
    """The published content SHA-256 of a catalogue file (by its path under the data directory), if fixed."""
    for ds in DATASETS.values():
        for data_file in ds.files:
            if data_file.relative == relative:
                return data_file.sha256
    return None


def content_sha256(path: Path) -> str:
    """SHA-256 of the file's content: decompressed for .gz, raw bytes otherwise."""
    digest = hashlib.sha256()
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except (OSError, EOFError) as exc:
        raise BenchError(f"{path}: cannot be read ({first_line(exc)}; truncated or corrupt?)") from None
    return digest.hexdigest()


def check_file(ds: Dataset, data_file: DataFile, path: Path | None = None) -> pd.DataFrame:
    """Validate one file fully (structure, rows, then content hash); return its table."""
    path = path or data_file.path
    frame = data_file.load(path, ds.files)
    if data_file.sha256:
        actual = content_sha256(path)
        if actual != data_file.sha256:
            raise BenchError(
                f"{path}: content SHA-256 {actual[:16]}... differs from the published file's "
                f"{data_file.sha256[:16]}... (edited or re-saved copy?); get it again with "
                f"`python -m bench data fetch {ds.name}`"
            )
    return frame


def require(ds: Dataset, data_file: DataFile) -> Path:
    """Path of a file that must be present, or a one-line error saying how to get it."""
    path = data_file.path
    if not path.is_file():
        raise BenchError(
            f"{path} not found; run `python -m bench data fetch {ds.name}` (or `--from FILE` with {ds.manual}), "
            f"or set {DATA_DIR_ENV} to a directory holding {data_file.relative}"
        )
    return path


def load_checked(name: str, file_name: str | None = None) -> pd.DataFrame:
    """The checked table of a dataset's file (its first file by default), for EDA and tools."""
    ds = dataset(name)
    data_file = ds.file(file_name) if file_name else ds.files[0]
    require(ds, data_file)
    return data_file.load(None, ds.files)


