"""Getting datasets into the data directory: download from the canonical source, or import a file.

Every path ends in `import_content`: a candidate file's bytes are matched to the catalogue entry they
belong to, written to a temporary file, checked exactly as `bench data verify` checks (columns, numbers,
labels, rows, then the published SHA-256), and only then moved into place. A file that fails never
lands in the data directory.

The clients of the sources (kagglehub, datasets) are optional extras (`pip install 'accelerate-bench[fetch]'`),
imported only when their dataset is fetched. The UCI zips need nothing beyond urllib.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.data.datasets import DataFile, Dataset, check_file
from bench.errors import BenchError, first_line
from bench.paths import data_dir

KAGGLE_UNSW = "mrwellsdavid/unsw-nb15"
HF_POLARITY = "fancyzhx/amazon_polarity"
DOWNLOAD_TIMEOUT_S = 60
SOURCE_SUFFIXES = (".csv", ".csv.gz", ".txt", ".gz")


@dataclass(frozen=True)
class Candidate:
    """A file found in what the user or a client gave us: its label (for messages) and content."""

    label: str
    name: str
    content: bytes


# ---------------------------------------------------------------------------------------------
# Reading sources: a file (csv, csv.gz, txt), a zip, or a directory (what kagglehub returns).
# ---------------------------------------------------------------------------------------------


def candidates(source: Path, wanted: Iterable[str] = ()) -> list[Candidate]:
    """The data files in `source`, keeping only those named in `wanted` when any is (zips, folders).

    A single file is always taken, whatever its name: users rename downloads, and the UNSW files
    circulate with their names swapped, so content decides where a file goes, not its name.
    """
    wanted = {w.lower() for w in wanted}
    if source.is_dir():
        paths = [p for p in sorted(source.rglob("*")) if p.is_file() and _is_data_name(p.name)]
        # Name the files before reading any: the Kaggle UNSW folder also holds ~600 MB of raw captures.
        paths = _prefer_wanted(paths, lambda p: p.name, wanted, f"folder {source}")
        return [Candidate(str(p), p.name, _decompressed(p.read_bytes(), str(p))) for p in paths]
    if not source.is_file():
        raise BenchError(f"{source}: no such file or folder")
    if source.stat().st_size == 0:
        raise BenchError(f"{source}: the file is empty")
    if not zipfile.is_zipfile(source):
        raw = source.read_bytes()
        if raw[:4] == b"PK\x03\x04":
            raise BenchError(f"{source}: a zip without its central directory (truncated download?)")
        return [Candidate(str(source), source.name, _decompressed(raw, str(source)))]
    try:
        with zipfile.ZipFile(source) as archive:
            members = [
                info for info in archive.infolist()
                if not info.is_dir() and "__MACOSX" not in info.filename and _is_data_name(Path(info.filename).name)
            ]
            members = _prefer_wanted(members, lambda i: Path(i.filename).name, wanted, f"zip {source}")
            return [
                Candidate(f"{source}:{i.filename}", Path(i.filename).name,
                          _decompressed(archive.read(i), f"{source}:{i.filename}"))
                for i in members
            ]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise BenchError(f"{source}: cannot be read as a zip ({exc}; truncated download?)") from None


def _prefer_wanted(items: list, name_of: Callable[[Any], str], wanted: set[str], where: str) -> list:
    """The items named in `wanted` if any is; else the only item; else a one-line error."""
    if not items:
        raise BenchError(f"{where} holds no csv, csv.gz or txt file")
    named = [i for i in items if _base_name(name_of(i)) in wanted]
    if named or not wanted or len(items) == 1:
        return named or items
    names = ", ".join(sorted(name_of(i) for i in items)[:8])
    raise BenchError(f"{where} holds none of {', '.join(sorted(wanted))} (found: {names})")


def _is_data_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(SOURCE_SUFFIXES)


def _base_name(name: str) -> str:
    name = name.lower()
    return name[:-3] if name.endswith(".gz") else name


def _decompressed(raw: bytes, label: str) -> bytes:
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise BenchError(f"{label}: cannot be decompressed ({exc}; truncated download?)") from None


# ---------------------------------------------------------------------------------------------
# Importing: match each candidate to its catalogue file, check it, then move it into place.
# ---------------------------------------------------------------------------------------------


def target_of(ds: Dataset, candidate: Candidate) -> DataFile:
    """Which file of the dataset this content is: by published hash, else by row count."""
    if len(ds.files) == 1:
        return ds.files[0]
    digest = _sha256(candidate.content)
    for f in ds.files:
        if f.sha256 == digest:
            return f
    rows = _data_lines(candidate.content)
    for f in ds.files:
        if f.rows == rows:
            return f
    expected = " or ".join(f"{f.rows:,} ({f.role})" for f in ds.files if f.rows)
    raise BenchError(f"{candidate.label}: {rows:,} data rows, expected {expected}")


def import_content(ds: Dataset, candidate: Candidate, force: bool = False) -> tuple[DataFile, Path, str]:
    """Check one candidate as its catalogue file and write it there; returns (file, path, note)."""
    data_file = target_of(ds, candidate)
    final = data_file.path
    final.parent.mkdir(parents=True, exist_ok=True)
    plain_suffix = ".csv" if data_file.relative.endswith((".csv", ".csv.gz")) else ".txt"
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".import-") as tmp:
        plain = Path(tmp) / f"{candidate.name.removesuffix('.gz')}{'' if candidate.name.endswith(plain_suffix) else plain_suffix}"
        plain.write_bytes(candidate.content)
        try:
            frame = data_file.load(plain, ds.files)
        except BenchError as exc:
            raise BenchError(str(exc).replace(str(plain), candidate.label), exc.exit_code) from None
        digest = _sha256(candidate.content)
        if data_file.sha256 and digest != data_file.sha256:
            if not force:
                raise BenchError(
                    f"{candidate.label}: content SHA-256 {digest[:16]}... differs from the published "
                    f"{data_file.role} ({data_file.sha256[:16]}...); it parses as a valid table, so "
                    f"`--force` imports it anyway"
                )
            note = "SHA-256 differs from the published file (imported with --force)"
        elif data_file.sha256:
            note = "SHA-256 matches the published file"
        else:
            note = "content not fixed by its publisher (no SHA-256 to compare)"
        staged = Path(tmp) / data_file.name
        if data_file.relative.endswith(".gz"):
            # mtime=0 and no file name in the header: the same CSV always gives the same .gz bytes.
            with open(staged, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
                gz.write(candidate.content)
        else:
            staged.write_bytes(candidate.content)
        os.replace(staged, final)
    return data_file, final, f"{len(frame):,} rows; {note}"


def import_path(ds: Dataset, source: Path, force: bool = False) -> list[tuple[DataFile, Path, str]]:
    """`--from PATH`: import a hand-downloaded file, zip or folder into the data directory."""
    wanted = {n for f in ds.files for n in f.published_names}
    found = candidates(source, wanted)
    done = [import_content(ds, c, force) for c in found]
    seen = [d.relative for d, _, _ in done]
    duplicated = {r for r in seen if seen.count(r) > 1}
    if duplicated:
        raise BenchError(f"{source}: more than one file is the {ds.file(duplicated.pop()).role}")
    return done


# ---------------------------------------------------------------------------------------------
# Fetching from the canonical sources.
# ---------------------------------------------------------------------------------------------


def offline_error(ds: Dataset, what: str, reason: str) -> BenchError:
    return BenchError(
        f"cannot fetch {ds.name} from {what} ({reason}); offline? download {ds.manual} "
        f"and run `python -m bench data fetch {ds.name} --from FILE`"
    )


def download(url: str, dest: Path, ds: Dataset) -> Path:
    """Download `url` to `dest` with urllib; a network failure is a one-line error saying what to get."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(dest, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
    except urllib.error.HTTPError as exc:
        raise offline_error(ds, url, f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise offline_error(ds, url, str(reason)) from None
    return dest


def import_client(module: str, ds: Dataset) -> Any:
    """Import an optional fetch client, or a one-line error naming the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise BenchError(
            f"fetching {ds.name} needs the {module} package: pip install {module} (or pip install 'accelerate-bench[fetch]'); "
            f"or download {ds.manual} and run `python -m bench data fetch {ds.name} --from FILE`"
        ) from None


def fetch_url(ds: Dataset, url: str | None = None, force: bool = False) -> list[tuple[DataFile, Path, str]]:
    """A dataset published as a zip (the UCI ones): download, then import its member."""
    url = url or ds.url
    if not url:
        raise BenchError(f"{ds.name} has no download URL; it is fetched with {ds.fetch_with}")
    data_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir(), prefix=".download-") as tmp:
        name = Path(urllib.request.url2pathname(url.rsplit("/", 1)[-1])).name or "download"
        return import_path(ds, download(url, Path(tmp) / name, ds), force)


def fetch_unsw(ds: Dataset, force: bool = False) -> list[tuple[DataFile, Path, str]]:
    """Both official partitions from Kaggle via kagglehub (its own cache, then imported here)."""
    kagglehub = import_client("kagglehub", ds)
    try:
        folder = Path(kagglehub.dataset_download(KAGGLE_UNSW))
    except Exception as exc:  # noqa: BLE001 - any client/network failure becomes the same one-line error
        raise offline_error(ds, f"Kaggle ({KAGGLE_UNSW})", first_line(exc)) from None
    return import_path(ds, folder, force)


def polarity_subset(splits: Mapping[str, Any], size: int, seed: int) -> pd.DataFrame:
    """A seeded random subset of amazon_polarity in the project's CSV layout.

    `splits` maps "train"/"test" to Hugging Face datasets (anything with len() and select() whose
    selection indexes by column name). `size` rows are drawn without replacement from each split with
    numpy's default_rng(seed); rows are kept in source order. `text` is "title: content", as in the
    fastText rendering of the same data; `source_line` is the 1-based row index in the split.
    """
    if size < 1:
        raise BenchError(f"--subset-size must be at least 1, got {size}")
    rng = np.random.default_rng(seed)
    parts = []
    for split in ("train", "test"):
        data = splits[split]
        n = min(size, len(data))
        index = np.sort(rng.choice(len(data), size=n, replace=False))
        rows = data.select(index.tolist())
        parts.append(
            pd.DataFrame(
                {
                    "label": [int(v) for v in rows["label"]],
                    "text": [f"{t}: {c}" for t, c in zip(rows["title"], rows["content"], strict=True)],
                    "split": split,
                    "subset": f"random_sample_{n}_seed{seed}",
                    "source_line": index + 1,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def fetch_polarity(ds: Dataset, size: int, seed: int) -> list[tuple[DataFile, Path, str]]:
    """amazon_polarity from the Hugging Face Hub via datasets, cut to a seeded subset."""
    if size < 1:
        raise BenchError(f"--subset-size must be at least 1, got {size}")
    datasets = import_client("datasets", ds)
    try:
        splits = datasets.load_dataset(HF_POLARITY)
    except Exception as exc:  # noqa: BLE001 - any client/network failure becomes the same one-line error
        raise offline_error(ds, f"the Hugging Face Hub ({HF_POLARITY})", first_line(exc)) from None
    frame = polarity_subset(splits, size, seed)
    content = frame.to_csv(index=False, lineterminator="\n").encode()
    return [import_content(ds, Candidate(f"{HF_POLARITY} subset", "amazon_polarity_subset.csv", content))]


FETCHERS: dict[str, Callable[..., list[tuple[DataFile, Path, str]]]] = {
    "ai4i2020": lambda ds, url, force, size, seed: fetch_url(ds, url, force),
    "amazon_cells": lambda ds, url, force, size, seed: fetch_url(ds, url, force),
    "unsw_nb15": lambda ds, url, force, size, seed: fetch_url(ds, url, force) if url else fetch_unsw(ds, force),
    "amazon_polarity": lambda ds, url, force, size, seed: (
        fetch_url(ds, url, force) if url else fetch_polarity(ds, size, seed)
    ),
}


def fetch(ds: Dataset, url: str | None = None, force: bool = False, size: int = 6000, seed: int = 42):
    """Fetch a dataset from its canonical source (or `url`, a mirror of the published file)."""
    return FETCHERS[ds.name](ds, url, force, size, seed)


def present_and_valid(ds: Dataset) -> bool:
    """Whether every required file is present and passes its checks (then fetch has nothing to do)."""
    for f in ds.files:
        if f.optional:
            continue
        if not f.path.is_file():
            return False
        try:
            check_file(ds, f)
        except BenchError:
            return False
    return True


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _data_lines(content: bytes) -> int:
    """Rows of a one-header-line CSV, counted cheaply (no quoted newlines in the UNSW files)."""
    lines = content.count(b"\n") + (0 if content.endswith(b"\n") else 1)
    return max(lines - 1, 0)


