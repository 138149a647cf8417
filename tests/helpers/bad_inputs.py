"""Helpers for e2e/test_bad_inputs.py, unit/test_bad_inputs.py."""

from __future__ import annotations

import gzip
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pandas as pd

AI4I = "ai4i2020/ai4i2020.csv"


UNSW_TEST = "unsw_nb15/UNSW_NB15_testing-set.csv.gz"


UNSW_TRAIN = "unsw_nb15/UNSW_NB15_training-set.csv.gz"


POLARITY = "amazon_reviews/amazon_polarity_subset.csv.gz"


def _real(name: str) -> Path:
    from bench.paths import data_dir

    return data_dir() / name


def _write(root: Path, relative: str, content: bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _ai4i_lines() -> list[str]:
    """The real AI4I file as lines (BOM and CRLF kept, so untouched lines stay byte-identical)."""
    return _real(AI4I).read_bytes().decode("utf-8").split("\r\n")


def _ai4i_edit(edit: Callable[[list[list[str]]], None]) -> Callable[[Path], None]:
    """A builder that writes the AI4I file after `edit` changed its cells (row 0 = header)."""

    def build(root: Path) -> None:
        lines = _ai4i_lines()
        cells = [line.split(",") for line in lines if line]
        edit(cells)
        _write(root, AI4I, ("\r\n".join(",".join(c) for c in cells) + "\r\n").encode("utf-8"))

    return build


def _set(row: int, column: str, value: str) -> Callable[[list[list[str]]], None]:
    def edit(cells: list[list[str]]) -> None:
        header = [h.lstrip("\ufeff") for h in cells[0]]
        cells[row][header.index(column)] = value

    return edit


def _drop_column(column: str) -> Callable[[list[list[str]]], None]:
    def edit(cells: list[list[str]]) -> None:
        index = [h.lstrip("\ufeff") for h in cells[0]].index(column)
        for row in cells:
            del row[index]

    return edit


def _rename_column(old: str, new: str) -> Callable[[list[list[str]]], None]:
    def edit(cells: list[list[str]]) -> None:
        cells[0][[h.lstrip("\ufeff") for h in cells[0]].index(old)] = new

    return edit


def _copy_row(row: int, source: int) -> Callable[[list[list[str]]], None]:
    """Data row `row` becomes a copy of data row `source` (row count unchanged: a duplicated row)."""

    def edit(cells: list[list[str]]) -> None:
        cells[row] = list(cells[source])

    return edit


def _first_rows(n: int) -> Callable[[list[list[str]]], None]:
    """Keep the header and the first `n` data rows: a file cut at a line boundary, every row whole."""

    def edit(cells: list[list[str]]) -> None:
        del cells[n + 1 :]

    return edit


def _no_failures(cells: list[list[str]]) -> None:
    """Every row healthy: `Machine failure` and the five failure modes all 0 (one class)."""
    header = [h.lstrip("\ufeff") for h in cells[0]]
    for column in ("Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF"):
        index = header.index(column)
        for row in cells[1:]:
            row[index] = "0"


def _polarity_frame_edit(edit: Callable[[pd.DataFrame], None]) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        frame = pd.read_csv(_real(POLARITY))
        edit(frame)
        _write(root, POLARITY, gzip.compress(frame.to_csv(index=False).encode()))

    return build


def _all_positive(frame: pd.DataFrame) -> None:
    frame["label"] = 1


def _unsw_blank_number(root: Path) -> None:
    frame = pd.read_csv(_real(UNSW_TEST))
    frame["sbytes"] = frame["sbytes"].astype(object)
    frame.loc[40, "sbytes"] = ""
    _write(root, UNSW_TEST, gzip.compress(frame.to_csv(index=False).encode(), compresslevel=1))


def _run_matrix(build_data: Callable[[Path], None], workload: str, variant: str) -> Callable[[Path], Path]:
    """Bad data plus a one-cell matrix that would train on it for one step."""

    def build(root: Path) -> Path:
        build_data(root)
        text = (
            f"name: t\ntopologies: [cpu-1proc]\nprecisions: [fp32]\nworkloads:\n  {workload}:\n"
            f"    variants: [{variant}]\n    baselines: false\n    budget: {{max_steps: 1, max_seconds: 60}}\n"
        )
        return _write(root, "m.yaml", text.encode())

    return build


def _empty_ai4i(root: Path) -> None:
    _write(root, AI4I, b"")


def _truncated_ai4i(root: Path) -> None:
    raw = _real(AI4I).read_bytes()
    _write(root, AI4I, raw[: len(raw) // 2])


def _truncated_unsw(root: Path) -> None:
    raw = _real(UNSW_TEST).read_bytes()
    _write(root, UNSW_TEST, raw[: len(raw) // 3])


def _swapped_unsw(root: Path) -> None:
    """The 82,332-row testing partition stored under the training partition's name (Kaggle naming)."""
    shutil.copyfile(_real(UNSW_TEST), _write(root, UNSW_TEST, b""))
    shutil.copyfile(_real(UNSW_TEST), _write(root, UNSW_TRAIN, b""))


def _polarity_empty_text(root: Path) -> None:
    lines = gzip.decompress(_real(POLARITY).read_bytes()).decode().split("\n")
    lines[3] = '1,"",train,x,3'
    _write(root, POLARITY, gzip.compress("\n".join(lines).encode()))


def _nothing(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)


def _matrix(text: str) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        return _write(root, "m.yaml", textwrap.dedent(text).encode())

    return build


GOOD_MATRIX = """\
    name: t
    topologies: [cpu-1proc]
    precisions: [fp32]
    workloads:
      maintenance:
        budget: {BUDGET}
"""


RUN = ["run", "--matrix", "{m}", "--results-dir", "{root}/runs"]


# (id, builder of the data dir (or of a matrix file, returned), argv ({m} = that file), message, exit code)
CASES: list[tuple[str, Callable[[Path], object], list[str], str, int]] = [
    ("empty file", _empty_ai4i, ["data", "verify", "ai4i2020"], "ai4i2020/ai4i2020.csv: the file is empty", 2),
    ("truncated csv", _truncated_ai4i, ["data", "verify", "ai4i2020"],
     "ai4i2020/ai4i2020.csv: 5,008 rows, expected 10,000 (truncated file?)", 2),
    ("truncated csv.gz", _truncated_unsw, ["data", "verify", "unsw_nb15"],
     "UNSW_NB15_testing-set.csv.gz: cannot be read (Compressed file ended before the end-of-stream marker was reached; "
     "truncated or corrupt file?)", 2),
    ("missing column", _ai4i_edit(_drop_column("Tool wear [min]")), ["data", "verify", "ai4i2020"],
     "ai4i2020.csv: missing column(s) 'Tool wear [min]'", 2),
    ("renamed column", _ai4i_edit(_rename_column("Torque [Nm]", "Torque")), ["data", "verify", "ai4i2020"],
     "ai4i2020.csv: missing column(s) 'Torque [Nm]' (unexpected column(s) 'Torque': renamed?)", 2),
    ("non-numeric sensor", _ai4i_edit(_set(5, "Air temperature [K]", "hot")), ["data", "verify", "ai4i2020"],
     "ai4i2020.csv: column 'Air temperature [K]' has 1 non-numeric value(s), first at data row 5: 'hot'", 2),
    ("NaN label", _ai4i_edit(_set(7, "Machine failure", "")), ["data", "verify", "ai4i2020"],
     "ai4i2020.csv: label column 'Machine failure' has 1 NaN value(s)", 2),
    ("unexpected label", _ai4i_edit(_set(7, "Machine failure", "2")), ["data", "verify", "ai4i2020"],
     "ai4i2020.csv: label column 'Machine failure' has unexpected value(s) [2]; expected [0, 1]", 2),
    ("edited copy", _ai4i_edit(_set(9, "Tool wear [min]", "1")), ["data", "verify", "ai4i2020"],
     "differs from the published file's dc6630cd9b1f0f85... (edited or re-saved copy?)", 2),
    ("UNSW swapped name", _swapped_unsw, ["data", "verify", "unsw_nb15"],
     "UNSW_NB15_training-set.csv.gz: holds 82,332 rows, which is the official testing partition, not the official "
     "training partition (175,341 rows); the file names circulate swapped: store it as UNSW_NB15_testing-set.csv.gz", 2),
    ("empty review text", _polarity_empty_text, ["data", "verify", "amazon_polarity"],
     "amazon_polarity_subset.csv.gz: column 'text' has 1 empty value(s), first at data row 3", 2),
    ("non-finite sensor", _ai4i_edit(_set(5, "Torque [Nm]", "inf")), ["data", "verify", "ai4i2020"],
     "ai4i2020.csv: column 'Torque [Nm]' has 1 non-finite value(s), first at data row 5: inf", 2),
    ("duplicated row", _ai4i_edit(_copy_row(100, 99)), ["data", "verify", "ai4i2020"],
     "ai4i2020.csv: 1 row(s) repeat another row's UDI (duplicated rows?), first at data row 100: UDI 99", 2),
    ("one-class labels", _polarity_frame_edit(_all_positive), ["data", "verify", "amazon_polarity"],
     "amazon_polarity_subset.csv.gz: label column 'label' holds one class only (1 in all 12,443 rows); "
     "a classifier needs both classes to learn and to be judged", 2),
    ("run on truncated rows", _run_matrix(_ai4i_edit(_first_rows(5000)), "maintenance", "gru"), RUN,
     "ai4i2020.csv: 5,000 rows, expected 10,000 (truncated file?)", 2),
    ("run on duplicated rows", _run_matrix(_ai4i_edit(_copy_row(100, 99)), "maintenance", "gru"), RUN,
     "ai4i2020.csv: 1 row(s) repeat another row's UDI (duplicated rows?)", 2),
    ("run on non-finite sensor", _run_matrix(_ai4i_edit(_set(8000, "Air temperature [K]", "-inf")), "maintenance", "gru"),
     RUN, "ai4i2020.csv: column 'Air temperature [K]' has 1 non-finite value(s), first at data row 8000: -inf", 2),
    ("run on one-class labels", _run_matrix(_ai4i_edit(_no_failures), "maintenance", "gru"), RUN,
     "ai4i2020.csv: label column 'Machine failure' holds one class only (0 in all 10,000 rows)", 2),
    ("run on blank numbers", _run_matrix(_unsw_blank_number, "traffic", "ae"), RUN,
     "UNSW_NB15_testing-set.csv.gz: column 'sbytes' has 1 missing value(s)", 2),
    ("missing dataset", _nothing, ["data", "verify", "ai4i2020"],
     "ai4i2020/ai4i2020.csv not found; run `python -m bench data fetch ai4i2020`", 2),
    ("eda on bad data", _ai4i_edit(_set(7, "Machine failure", "")), ["eda", "maintenance", "--out", "{root}/eda"],
     "ai4i2020.csv: label column 'Machine failure' has 1 NaN value(s)", 2),
    ("eda, no data", _nothing, ["eda", "traffic", "--out", "{root}/eda"],
     "UNSW_NB15_testing-set.csv.gz not found; run `python -m bench data fetch unsw_nb15`", 2),
    ("offline fetch", _nothing, ["data", "fetch", "ai4i2020", "--url", "http://127.0.0.1:9/ai4i.zip"],
     "cannot fetch ai4i2020 from http://127.0.0.1:9/ai4i.zip", 2),
    ("--from wrong dataset", _nothing, ["data", "fetch", "amazon_polarity", "--from", "{real}/" + AI4I],
     "ai4i2020.csv: missing column(s) 'label', 'text'", 2),
    ("--from not a UNSW partition", _nothing, ["data", "fetch", "unsw_nb15", "--from", "{real}/" + AI4I],
     "ai4i2020.csv: 10,000 data rows, expected 82,332 (official testing partition) or 175,341 (official training partition)", 2),
    ("--from missing path", _nothing, ["data", "fetch", "unsw_nb15", "--from", "{root}/nope.zip"],
     "nope.zip: no such file or folder", 2),
    ("unknown dataset", _nothing, ["data", "verify", "nope"],
     "unknown dataset 'nope'; valid choices: ai4i2020, amazon_cells, amazon_polarity, unsw_nb15", 2),
    ("unknown EDA", _nothing, ["eda", "nope"], "unknown EDA 'nope'; valid choices: maintenance, sentiment, traffic", 2),
    ("unknown workload", _nothing, ["run", "--workload", "nope", "--dry-run"], "unknown workload 'nope'; valid choices: ", 2),
    ("unknown topology", _nothing, ["run", "--config", "nope", "--dry-run"],
     "unknown topology 'nope'; valid choices: cpu-1proc, ", 2),
    ("unknown precision", _nothing, ["run", "--precision", "fp64", "--dry-run"],
     "unknown precision 'fp64'; valid choices: bf16, fp16, fp32, fp8", 2),
    ("unknown matrix", _nothing, ["run", "--matrix", "nope", "--dry-run"], "unknown matrix 'nope'; valid choices: ", 2),
    ("malformed YAML", _matrix("workloads: [maintenance\n"), ["run", "--matrix", "{m}", "--dry-run"],
     "m.yaml: malformed YAML (while parsing a flow sequence)", 2),
    ("zero budget", _matrix(GOOD_MATRIX.replace("{BUDGET}", "{max_epochs: 0}")), ["run", "--matrix", "{m}", "--dry-run"],
     "m.yaml: workload maintenance: budget max_epochs must be a positive number, got 0", 2),
    ("negative budget", _matrix(GOOD_MATRIX.replace("{BUDGET}", "{max_seconds: -5}")), ["run", "--matrix", "{m}", "--dry-run"],
     "m.yaml: workload maintenance: budget max_seconds must be a positive number, got -5", 2),
    ("unknown budget key", _matrix(GOOD_MATRIX.replace("{BUDGET}", "{epochs: 3}")), ["run", "--matrix", "{m}", "--dry-run"],
     "unknown budget key(s) epochs; valid: ", 2),
    ("zero seeds", _nothing, ["run", "--seeds", "0", "--dry-run"], "--seeds must be at least 1, got 0", 2),
]


def _argv(case: tuple, root: Path, made: object) -> list[str]:
    real = str(_real(".").resolve())
    return [a.format(root=root, real=real, m=made) for a in case[2]]

