"""`bench compare`: judge a candidate run against a baseline; exit 1 on any regression.

    bench compare BASELINE CANDIDATE           # run directories or single result files
    bench compare --baseline auto CANDIDATE    # the committed baseline for this hardware
    bench compare --baseline auto latest       # ... against the newest run under results/
    bench compare --save-baseline RUN_DIR      # commit a run as this hardware's baseline
    bench compare A B --format junit --out compare.xml   # JUnit XML for CI (json: a JSON document)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.analysis.gate.against_baseline import DEFAULT_ALPHA, DEFAULT_QUALITY_TOLERANCE, DEFAULT_THRESHOLDS
from bench.analysis.gate.baselines import save_baseline
from bench.analysis.gate.entry import AUTO, LATEST, CompareRequest, compare_with_baseline
from bench.analysis.gate.render import FORMATS
from bench.errors import BenchError
from bench.paths import RESULTS_DIR
from bench.results import write_atomic


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="*", metavar="RUN",
                        help="BASELINE CANDIDATE, or only CANDIDATE with --baseline; a run directory, a result "
                             f"file, '{LATEST}' (newest run under the results dir) or, as baseline, '{AUTO}'")
    parser.add_argument("--baseline", metavar="RUN",
                        help=f"the baseline run; '{AUTO}' picks the committed one from results/baselines/ whose "
                             "hardware matches the candidate's (cores, CPU precision flags, GPUs), else the nearest, "
                             "against which only status and quality are judged")
    parser.add_argument("--threshold", action="append", default=[], metavar="METRIC=FRACTION",
                        help="relative change that counts, per metric (repeatable); defaults: "
                             + ", ".join(f"{k}={v:g}" for k, v in DEFAULT_THRESHOLDS.items()))
    parser.add_argument("--quality-tolerance", type=float, default=DEFAULT_QUALITY_TOLERANCE,
                        help="absolute drop of a quality metric always allowed; the whole allowance with one seed "
                             f"(default {DEFAULT_QUALITY_TOLERANCE:g})")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                        help=f"significance level of the one-sided Mann-Whitney U test, used where a side has one seed; "
                             f"with 2+ seeds on each side the 95%% interval over seeds decides (default {DEFAULT_ALPHA:g})")
    parser.add_argument("--any-hardware", action="store_true",
                        help="judge speed and memory even when the runs' hardware does not match (cores, CPU precision flags, GPUs)")
    parser.add_argument("--recheck", action="store_true",
                        help="re-run, once, the candidate's cells whose only regressions are speed; such a "
                             "regression fails only if the re-run shows it too (the candidate must be a run "
                             "directory made by `bench run`)")
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="text: the Markdown report (default); json: the verdicts as a JSON document; junit: "
                             "JUnit XML, one testcase per cell and metric (a regression fails, speed not judged is "
                             "skipped). Printed on stdout, or with --out written to FILE while stdout shows the text report")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the report, in --format, to FILE")
    parser.add_argument("--save-baseline", type=Path, metavar="RUN_DIR",
                        help="copy RUN_DIR's cells to results/baselines/<hardware-class>/ (the baseline it replaces "
                             "moves to history/ there) and exit")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where run directories and baselines/ live (default: results/)")


def run(args: argparse.Namespace) -> int:
    if args.save_baseline:
        return _save_baseline(args, args.results_dir / "baselines")
    baseline, candidate = _chosen_runs(args)
    outcome = compare_with_baseline(CompareRequest(
        baseline, candidate, results_dir=args.results_dir, thresholds=args.threshold,
        quality_tolerance=args.quality_tolerance, alpha=args.alpha, any_hardware=args.any_hardware,
        recheck=args.recheck, format=args.format))
    _emit(outcome.text, outcome.report, args)
    return 1 if outcome.failed else 0


def _save_baseline(args: argparse.Namespace, baselines_dir: Path) -> int:
    if args.runs or args.baseline:
        raise BenchError("--save-baseline takes only the run directory to save")
    target = save_baseline(args.save_baseline, baselines_dir)
    print(f"saved {args.save_baseline} as the baseline for its hardware: {target}")
    return 0


def _chosen_runs(args: argparse.Namespace) -> tuple[str, str]:
    """(BASELINE, CANDIDATE) as given, once the options are checked."""
    if args.baseline is not None:
        if len(args.runs) != 1:
            raise BenchError("with --baseline, give exactly one CANDIDATE run")
        runs = (args.baseline, args.runs[0])
    elif len(args.runs) == 2:
        runs = (args.runs[0], args.runs[1])
    else:
        raise BenchError("give BASELINE and CANDIDATE (or --baseline BASELINE CANDIDATE)")
    if not 0 < args.alpha < 1:
        raise BenchError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.quality_tolerance < 0:
        raise BenchError(f"--quality-tolerance must be at least 0, got {args.quality_tolerance}")
    return runs


def _emit(text: str, report: str, args: argparse.Namespace) -> None:
    """stdout: the chosen format, unless it goes to --out; then the text report, for people."""
    shown = text if args.out else report
    print(shown, end="" if shown.endswith("\n") else "\n")
    if args.out:
        try:
            write_atomic(args.out, report)
        except OSError as exc:
            raise BenchError(f"{args.out}: cannot write the report ({exc.strerror or exc})") from None
        print(f"{args.format} report written to {args.out}", file=sys.stderr)
