"""Reading and checking CSV inputs: one-line errors naming the file and the problem."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
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
    **read_kwargs,
) -> pd.DataFrame:
    """Read a CSV and check its columns, numeric columns and label values.

    Raises BenchError (one line, naming the file) on an unreadable, empty or truncated file,
    missing columns, non-numeric values in numeric columns, or NaN / unexpected labels.
    """
    frame = read_csv_frame(path, **read_kwargs)
    return check_frame(path, frame, required, numeric, labels, min_rows)


def read_csv_frame(path: Path, **read_kwargs) -> pd.DataFrame:
    """pd.read_csv with its failures turned into one-line errors naming the file."""
    try:
        return pd.read_csv(path, **read_kwargs)
    except pd.errors.EmptyDataError:
        raise BenchError(f"{path}: the file is empty") from None
    except (EOFError, gzip.BadGzipFile) as exc:
        raise BenchError(f"{path}: cannot be read ({_first_line(exc)}; truncated or corrupt file?)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise BenchError(f"{path}: cannot be parsed as CSV ({_first_line(exc)})") from None


def check_frame(
    path: Path,
    frame: pd.DataFrame,
    required: list[str],
    numeric: list[str],
    labels: dict[str, set] | None = None,
    min_rows: int = 1,
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
    return frame


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
