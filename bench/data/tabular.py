"""Reading and checking CSV inputs: one-line errors naming the file and the problem."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import BenchError, first_line
from bench.paths import DATA_DIR_ENV, data_dir


def dataset_file(relative: str, fetch_name: str) -> Path:
    """Path of a dataset file in the data directory, or a one-line error saying how to get it."""
    path = data_dir() / relative
    if not path.is_file():
        raise BenchError(
            f"dataset file {path} not found; run `python -m bench data fetch {fetch_name}` "
            f"or set {DATA_DIR_ENV} to a directory holding {relative}"
        )
    return path


def read_csv_checked(
    path: Path,
    required: list[str],
    numeric: list[str],
    labels: dict[str, set] | None = None,
    min_rows: int = 1,
    unique: list[str] | None = None,
    target: str | None = None,
    **read_kwargs,
) -> pd.DataFrame:
    """Read a CSV and check its columns, numeric columns and label values.

    Raises BenchError (one line, naming the file) on an unreadable, empty or truncated file,
    missing columns, non-numeric, missing or non-finite values in numeric columns, NaN /
    unexpected labels, rows repeating the `unique` key, or a `target` label of one class only.
    """
    frame = read_csv_frame(path, **read_kwargs)
    return check_frame(path, frame, required, numeric, labels, min_rows, unique, target)


def read_csv_frame(path: Path, **read_kwargs) -> pd.DataFrame:
    """pd.read_csv with its failures turned into one-line errors naming the file."""
    try:
        return pd.read_csv(path, **read_kwargs)
    except pd.errors.EmptyDataError:
        raise BenchError(f"{path}: the file is empty") from None
    except (EOFError, gzip.BadGzipFile) as exc:
        raise BenchError(f"{path}: cannot be read ({first_line(exc)}; truncated or corrupt file?)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise BenchError(f"{path}: cannot be parsed as CSV ({first_line(exc)})") from None


def check_frame(
    path: Path,
    frame: pd.DataFrame,
    required: list[str],
    numeric: list[str],
    labels: dict[str, set] | None = None,
    min_rows: int = 1,
    unique: list[str] | None = None,
    target: str | None = None,
) -> pd.DataFrame:
    """The checks of read_csv_checked on a table already read; numeric columns come back converted."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        extra = [str(c) for c in frame.columns if c not in required]
        found = f" (unexpected column(s) {', '.join(repr(c) for c in extra[:5])}: renamed?)" if extra else ""
        raise BenchError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}{found}")
    if len(frame) < min_rows:
        raise BenchError(f"{path}: {len(frame)} rows, expected at least {min_rows} (truncated file?)")
    for column in numeric:
        converted = pd.to_numeric(frame[column], errors="coerce")
        bad = converted.isna() & frame[column].notna()
        if bad.any():
            row = int(bad.idxmax())
            raise BenchError(
                f"{path}: column {column!r} has {int(bad.sum())} non-numeric value(s), "
                f"first at data row {row + 1}: {frame[column][row]!r}"
            )
        if converted.isna().any():
            only_last = bool(converted.isna().sum() == 1 and converted.isna().iloc[-1])
            hint = " (in the last row only: truncated file?)" if only_last else ""
            raise BenchError(f"{path}: column {column!r} has {int(converted.isna().sum())} missing value(s){hint}")
        check_finite(path, column, converted)
        frame[column] = converted
    for column, allowed in (labels or {}).items():
        values = frame[column]
        if values.isna().any():
            raise BenchError(f"{path}: label column {column!r} has {int(values.isna().sum())} NaN value(s)")
        unexpected = sorted({v.item() if hasattr(v, "item") else v for v in values.unique()} - allowed, key=str)
        if unexpected:
            raise BenchError(
                f"{path}: label column {column!r} has unexpected value(s) {unexpected[:5]}; "
                f"expected {sorted(allowed, key=str)}"
            )
    if unique:
        check_unique(path, frame, unique)
    if target is not None:
        check_classes(path, frame[target], target)
    return frame


def check_finite(source: Path | str, column: str, values: pd.Series) -> None:
    """Numbers must be finite: an inf reading scores NaN downstream and counts as neither class."""
    infinite = np.isinf(values.to_numpy(dtype=np.float64, na_value=np.nan))
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise BenchError(
            f"{source}: column {column!r} has {int(infinite.sum())} non-finite value(s), "
            f"first at data row {row + 1}: {float(values.iloc[row])!r}"
        )


def check_unique(source: Path | str, frame: pd.DataFrame, key: list[str]) -> None:
    """No two rows may share the key (the row identifier): a repeated key is a duplicated row."""
    repeated = frame.duplicated(key).to_numpy()
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        where = ", ".join(f"{c} {_plain(frame[c].iloc[row])}" for c in key)
        raise BenchError(
            f"{source}: {int(repeated.sum())} row(s) repeat another row's {', '.join(key)} (duplicated rows?), "
            f"first at data row {row + 1}: {where}"
        )


def check_classes(source: Path | str, labels: pd.Series | np.ndarray, column: str, part: str = "") -> None:
    """A label column must hold at least two classes: on one class a classifier learns nothing, its
    accuracy is 1.0 by construction and ROC-AUC is undefined, and baselines refuse to fit.
    `part` names the split or block checked ("" = the whole file)."""
    values = pd.Series(np.asarray(labels)).dropna()
    classes = values.unique()
    if len(classes) == 1:
        where = f"the {part} holds" if part else f"label column {column!r} holds"
        what = f"{column} {_plain(classes[0])}" if part else f"{_plain(classes[0])}"
        raise BenchError(
            f"{source}: {where} one class only ({what} in all {len(values):,} rows); "
            "a classifier needs both classes to learn and to be judged"
        )


def cleaning_step(step: str, rows_changed: int, **details: Any) -> dict[str, Any]:
    """One entry of a result's `data.cleaning`: what a cleaning step did, and to how many rows."""
    return {"step": step, "rows_changed": int(rows_changed), **details}


def _plain(value: Any) -> str:
    """A value as a person writes it: 99 rather than 99.0 or np.int64(99)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)

