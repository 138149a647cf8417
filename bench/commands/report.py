"""`bench report RUN_DIR`: a run's results as a Markdown report with plots, or as CSV/JSON, or as
Parquet (one flat row per cell, bench/analysis/export.py)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench.errors import BenchError
from bench.paths import REPORTS_DIR, RESULTS_DIR
from bench.results import write_atomic

FILES = {"md": "report.md", "csv": "report.csv", "json": "report.json", "parquet": "report.parquet"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="a run directory (results/<run-id>), a run id under results/, or one result file")
    parser.add_argument("--out", metavar="DIR",
                        help="where the report goes (default: reports/<run-id>/); '-' prints CSV or JSON to stdout")
    parser.add_argument("--format", choices=tuple(FILES), default="md",
                        help="md: Markdown with PNG plots (default); csv or json: one row per configuration, for machines; "
                             "parquet: one flat row per cell, every field of its result (needs pyarrow)")
    parser.add_argument("--metrics", default="",
                        help="comma-separated extra test metrics for the Markdown tables (e.g. roc_auc,accuracy)")
    parser.add_argument("--no-peak-measure", action="store_true",
                        help="if run.json holds no peak FLOP/s, leave MFU out instead of measuring this host's peak")


def _resolve_run_dir(raw: Path) -> Path:
    if raw.exists():
        return raw
    under_results = RESULTS_DIR / raw
    if under_results.exists():
        return under_results
    raise BenchError(f"{raw}: no such run directory (nor {under_results})")


def run(args: argparse.Namespace) -> int:
    from bench.analysis.report import build_report
    from bench.analysis.report_render import render_csv, render_json, render_markdown, resolve_metric

    run_dir = _resolve_run_dir(args.run_dir)
    if args.format == "parquet":
        return _parquet(run_dir, args.out)
    extra = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    if args.out == "-" and args.format == "md":
        raise BenchError("--out - prints CSV or JSON only; a Markdown report needs a folder for its plots")
    report = build_report(run_dir, measure_peaks=not args.no_peak_measure)
    if extra:
        present = {key for w in report.workloads for r in w.rows + w.baselines for key in r["quality"]}
        unknown = [m for m in extra if resolve_metric(m, present) is None]
        if unknown:
            known = sorted({k[len("test_"):] for k in present if k.startswith("test_")} | present)
            raise BenchError(f"--metrics: no result carries {', '.join(unknown)}; known: {', '.join(known)}")

    if args.format == "csv":
        text = render_csv(report)
    elif args.format == "json":
        text = render_json(report)
    if args.out == "-":
        sys.stdout.write(text)
        return 0

    out_dir = Path(args.out) if args.out else REPORTS_DIR / report.run_id
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"{out_dir}: cannot create the report folder ({exc.strerror})") from None
    if args.format == "md":
        from bench.analysis.plots import write_plots

        try:
            plots = write_plots(report, out_dir)
        except OSError as exc:
            raise BenchError(f"{out_dir}: cannot write the report's plots ({exc.strerror or exc})") from None
        command = shlex.join(["python", "-m", "bench", "report", *sys.argv[2:]]) if sys.argv[1:2] == ["report"] else None
        text = render_markdown(report, plots, extra, command) + _tune_section(run_dir)
    path = out_dir / FILES[args.format]
    try:
        write_atomic(path, text)  # whole or not at all: a failed write leaves the previous report
    except OSError as exc:
        raise BenchError(f"{path}: cannot write the report ({exc.strerror or exc})") from None
    print(f"report written to {path}")
    return 0


def _tune_section(run_dir: Path) -> str:
    """The tune's own account (its tune.md, one heading level down), when `run_dir` is the
    to-target run of a `bench tune` (bench/analysis/tune/tuner.py): why each setup lost."""
    tune_md = run_dir.parent / "tune.md"
    if run_dir.name != "to-target" or not tune_md.is_file():
        return ""
    lines = tune_md.read_text().splitlines()
    body = ["#" + line if line.startswith("#") else line for line in lines]
    return "\n\n" + "\n".join(body) + "\n"


def _parquet(run_dir: Path, out: str | None) -> int:
    from bench.analysis.export import cells_frame, require, run_id_of, write_parquet

    if out == "-":
        raise BenchError("--out - prints CSV or JSON only; Parquet is binary, give a folder")
    require("pyarrow", "--format parquet")
    frame = cells_frame(run_dir)
    out_dir = Path(out) if out else REPORTS_DIR / run_id_of(run_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"{out_dir}: cannot create the report folder ({exc.strerror})") from None
    path = out_dir / FILES["parquet"]
    write_parquet(frame, path)
    print(f"{len(frame)} cells written to {path}")
    return 0
