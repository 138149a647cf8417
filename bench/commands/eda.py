"""`bench eda maintenance|traffic|sentiment`: exploratory analysis as Markdown + PNG figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.errors import BenchError, one_of
from bench.paths import REPORTS_DIR

NAMES = ("maintenance", "traffic", "sentiment")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME", help=f"one or more of: {', '.join(NAMES)}")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where reports go, one folder per NAME (default: reports/eda/)")


def run(args: argparse.Namespace) -> int:
    for name in args.names:
        if name not in NAMES:
            raise one_of("EDA", name, NAMES)
    from bench.data.eda import run_eda  # matplotlib and pandas only when a report is made

    root = args.out or REPORTS_DIR / "eda"
    for name in args.names:
        try:
            path = run_eda(name, root / name)
        except OSError as exc:
            raise BenchError(f"cannot write the {name} report under {root} ({exc.strerror or exc})") from None
        print(f"{name}: {path}")
    return 0
