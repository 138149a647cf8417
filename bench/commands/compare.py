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
from typing import Any

from bench.analysis.compare import (
    DEFAULT_ALPHA,
    DEFAULT_QUALITY_TOLERANCE,
    DEFAULT_THRESHOLDS,
    FORMATS,
    REGRESSION,
    RENDERERS,
    BaselineChoice,
    GateSettings,
    Hardware,
    compare_hardware,
    compare_results,
    data_differences,
    find_baseline,
    hardware_of,
    latest_run,
    load,
    parse_thresholds,
    render_gate_markdown,
    run_hardware,
    save_baseline,
    speed_not_judged,
)
from bench.analysis.gate.judge import package_differences
from bench.errors import BenchError
from bench.paths import RESULTS_DIR
from bench.results import Result, write_atomic

AUTO, LATEST = "auto", "latest"


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
    baselines_dir = args.results_dir / "baselines"
    if args.save_baseline:
        return _save_baseline(args, baselines_dir)
    baseline_arg, candidate_arg = _chosen_runs(args)
    candidate_path = latest_run(args.results_dir) if candidate_arg == LATEST else Path(candidate_arg)
    candidate = load(candidate_path)
    notes: list[str] = []
    choice = None
    if baseline_arg == AUTO:
        choice = _committed_baseline(candidate, baselines_dir, notes)
        baseline_path = choice.path
    else:
        baseline_path = Path(baseline_arg)
    baseline = load(baseline_path)

    same_hardware, how = _hardware_match(baseline, candidate, choice)
    notes.append(_hardware_note(same_hardware, how, args.any_hardware))
    judge_speed = same_hardware or args.any_hardware
    settings = GateSettings(
        thresholds=parse_thresholds(args.threshold),
        quality_tolerance=args.quality_tolerance,
        alpha=args.alpha,
        judge_speed=judge_speed,
        same_hardware=same_hardware,
    )
    verdicts = compare_results(baseline, candidate, settings)
    notes += data_differences(baseline, candidate)  # data files read with different content (SHA-256)
    notes += package_differences(map(Result.from_dict, baseline), map(Result.from_dict, candidate))  # two locks
    if args.recheck:
        from bench.analysis.recheck import recheck

        verdicts, recheck_notes = recheck(baseline, candidate_path, verdicts, settings)
        notes += recheck_notes
    names = (str(baseline_path), str(candidate_path))
    text = render_gate_markdown(verdicts, *names, notes, speed_judged=judge_speed)
    report = text
    if args.format != "text":
        # JSON and JUnit also list the speed and memory checks left unjudged (different hardware).
        unjudged = [] if judge_speed else speed_not_judged(
            baseline, candidate, f"speed and memory not judged: different hardware ({how})")
        report = RENDERERS[args.format](verdicts + unjudged, *names, notes, speed_judged=judge_speed)
    _emit(text, report, args)
    return 1 if any(v.verdict == REGRESSION for v in verdicts) else 0


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


def _committed_baseline(candidate: list[dict[str, Any]], baselines_dir: Path, notes: list[str]) -> BaselineChoice:
    """The committed baseline for the hardware the candidate ran on (this host's, if its results
    record none); a note in `notes` when none matches and the nearest is used."""
    from bench.harness.host import hardware

    wanted = hardware_of(candidate) or Hardware.of_environment(hardware())
    choice = find_baseline(baselines_dir, wanted)
    if not choice.matched:
        notes.append(f"No committed baseline matches the candidate's hardware ({wanted.describe()}); "
                     f"judged against the nearest, {choice.path.name} ({choice.hardware.describe()}).")
    return choice


def _hardware_match(
    baseline: list[dict[str, Any]], candidate: list[dict[str, Any]], choice: BaselineChoice | None
) -> tuple[bool, str]:
    """(whether speed and memory compare, why). A committed baseline's hardware is its baseline.json's,
    which may record what its cells' environments predate (the CPU flags of the first baselines)."""
    if choice is not None and len(run_hardware(candidate)) <= 1:  # a run measured on several machines matches none
        return choice.matched, choice.how
    return compare_hardware(baseline, candidate)


def _hardware_note(same_hardware: bool, how: str, any_hardware: bool) -> str:
    if same_hardware:
        return f"Hardware matches ({how}): speed and memory judged."
    if any_hardware:
        return f"Different hardware ({how}); speed and memory judged anyway (--any-hardware)."
    return (f"Different hardware ({how}): speed and memory not judged, only status and quality; "
            "the difference alone never fails the comparison.")


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
