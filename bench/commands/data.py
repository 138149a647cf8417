"""`bench data fetch|verify|info [DATASET ...]`: get the datasets, check them, say where they come from."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

from bench.data.datasets import DATASETS, GROUPS, Dataset, check_file, selected
from bench.errors import BenchError
from bench.paths import DATA_DIR_ENV, data_dir


def configure(parser: argparse.ArgumentParser) -> None:
    names = ", ".join([*DATASETS, *GROUPS])
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = actions.add_parser("fetch", help="download datasets from their canonical sources (or import --from a file)")
    fetch.add_argument("datasets", nargs="*", metavar="DATASET", help=f"{names} (default: all)")
    fetch.add_argument("--from", dest="source", type=Path, metavar="PATH",
                       help="import a file you downloaded by hand (csv, csv.gz, txt, zip or a folder) for one DATASET")
    fetch.add_argument("--url", help="download the published zip/file from this URL instead (a mirror)")
    fetch.add_argument("--force", action="store_true",
                       help="import a file that parses correctly even if its SHA-256 differs from the published one")
    fetch.add_argument("--subset-size", type=int, default=6000, metavar="N",
                       help="amazon_polarity: rows drawn from each of train and test (default 6000)")
    fetch.add_argument("--seed", type=int, default=42, help="amazon_polarity: seed of the subset draw (default 42)")
    verify = actions.add_parser("verify", help="check the files present: columns, values, rows, SHA-256")
    verify.add_argument("datasets", nargs="*", metavar="DATASET", help=f"{names} (default: all)")
    info = actions.add_parser("info", help="provenance, licence, rows and location of each dataset")
    info.add_argument("datasets", nargs="*", metavar="DATASET", help=f"{names} (default: all)")


def run(args: argparse.Namespace) -> int:
    return {"fetch": _fetch, "verify": _verify, "info": _info}[args.action](args)


def _fetch(args: argparse.Namespace) -> int:
    from bench.data.fetch import fetch, import_path, present_and_valid

    chosen = selected(args.datasets)
    if args.source is not None:
        if len(args.datasets) != 1 or len(chosen) != 1:
            raise BenchError(f"--from needs exactly one DATASET ({', '.join(DATASETS)})")
        done = import_path(chosen[0], args.source, args.force)
        _print_done(chosen[0], done)
        return 0
    if args.url and len(chosen) != 1:
        raise BenchError(f"--url needs exactly one DATASET ({', '.join(DATASETS)})")
    for ds in chosen:
        if not args.url and present_and_valid(ds):
            print(f"{ds.name}: already present and verified in {data_dir()}")
            continue
        print(f"{ds.name}: fetching with {ds.fetch_with} ...", file=sys.stderr)
        _print_done(ds, fetch(ds, args.url, args.force, args.subset_size, args.seed))
    return 0


def _print_done(ds: Dataset, done) -> None:
    for data_file, path, note in done:
        print(f"{ds.name}: {data_file.role} -> {path} ({note})")
    missing = [f for f in ds.files if f.optional and not f.path.is_file()]
    for f in missing:
        print(f"{ds.name}: note: the optional {f.role} ({f.rows:,} rows) is not present; "
              f"add it with `python -m bench data fetch {ds.name} --from FILE`")


def _verify(args: argparse.Namespace) -> int:
    rows, problems = [], []
    for ds in selected(args.datasets):
        for f in ds.files:
            if not f.path.is_file():
                status = "absent (optional)" if f.optional else "MISSING"
                rows.append([ds.name, f.relative, status, "", ""])
                if not f.optional:
                    problems.append(f"{f.path} not found; run `python -m bench data fetch {ds.name}` "
                                    f"or set {DATA_DIR_ENV} to a directory holding {f.relative}")
                continue
            try:
                frame = check_file(ds, f)
            except BenchError as exc:
                rows.append([ds.name, f.relative, "BAD", "", ""])
                problems.append(str(exc))
                continue
            rows.append([ds.name, f.relative, "ok", f"{len(frame):,}", "matches" if f.sha256 else "not fixed"])
    print(f"data directory: {data_dir()}")
    print(tabulate(rows, headers=["dataset", "file", "status", "rows", "sha256"]))
    if problems:
        more = f" (and {len(problems) - 1} more problem(s), see the table)" if len(problems) > 1 else ""
        raise BenchError(problems[0] + more)
    return 0


def _info(args: argparse.Namespace) -> int:
    for ds in selected(args.datasets):
        print(f"{ds.name}: {ds.title}")
        print(f"  source:     {ds.source}")
        print(f"  fetch:      {ds.fetch_with}" + (f", {ds.url}" if ds.url else ""))
        print(f"  by hand:    {ds.manual}")
        print(f"  licence:    {ds.licence}")
        print(f"  cite:       {ds.citation}")
        for f in ds.files:
            state = "present" if f.path.is_file() else ("absent, optional" if f.optional else "absent")
            rows = f"{f.rows:,} rows" if f.rows else f"at least {f.min_rows:,} rows (not fixed)"
            sha = f"sha256 {f.sha256}" if f.sha256 else "sha256 not fixed"
            print(f"  file:       {f.path} [{state}]")
            print(f"              {f.role}; {len(f.columns)} columns; {rows}; {sha}")
        print()
    return 0
