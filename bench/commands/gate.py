"""`bench gate`: the base commit and the candidate measured side by side on this host, judged
over seeds at a stated false-alarm rate; exit 1 on a regression (docs/gate.md).

    bench gate                          # base: $BENCH_GATE_BASE, else HEAD^
    bench gate --base origin/main       # a pull request against its target branch
    bench gate --judge-only results/gate-20261207-0130   # judge a measured gate folder again
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench.analysis.gate.judge import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_CHANGE,
    GateSettings,
    judge,
    judge_alone,
    package_differences,
)
from bench.analysis.gate.render import FORMATS, RENDERERS, render_markdown
from bench.analysis.gate.side_by_side import BASE, CANDIDATE, GatePlan, load_folder, measure, repository_root
from bench.errors import BenchError
from bench.paths import MATRIX_CONFIGS_DIR, RESULTS_DIR
from bench.results import write_atomic

DEFAULT_BASE = "HEAD^"
BASE_VARIABLE = "BENCH_GATE_BASE"
# Eight rounds of one seed per launch: launch-to-launch noise (the host's load) dominates a seed's
# own, so a round buys more power than a second seed in a launch, at the same cost; at 8 v 8
# launches a slowdown is still caught with 6 of the 64 base-candidate pairs out of order.
DEFAULT_ROUNDS = 8
DEFAULT_SEEDS_PER_LAUNCH = 1


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", default=os.environ.get(BASE_VARIABLE) or DEFAULT_BASE, metavar="REV",
                        help=f"the git revision to compare with (default: ${BASE_VARIABLE}, else {DEFAULT_BASE})")
    parser.add_argument("--matrix", type=Path, default=MATRIX_CONFIGS_DIR / "gate.yaml", metavar="YAML",
                        help="the cells the gate runs (default: the built-in gate matrix)")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, metavar="N",
                        help=f"interleaved rounds, one launch per cell and side each (default {DEFAULT_ROUNDS})")
    parser.add_argument("--seeds-per-launch", type=int, default=DEFAULT_SEEDS_PER_LAUNCH, metavar="S",
                        help=f"seeds sharing each launch (default {DEFAULT_SEEDS_PER_LAUNCH})")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                        help=f"the most often an unchanged commit may fail, over every check together (default {DEFAULT_ALPHA:g})")
    parser.add_argument("--min-change", type=float, default=DEFAULT_MIN_CHANGE,
                        help=f"the smallest significant slow-down that fails (default {DEFAULT_MIN_CHANGE:g} = "
                             f"{DEFAULT_MIN_CHANGE:.0%})")
    parser.add_argument("--folder", type=Path, metavar="DIR",
                        help="where the runs and the report go (default: results/gate-<time>)")
    parser.add_argument("--allow-no-base", action="store_true",
                        help="when the base cannot run, pass on the candidate's own targets alone (default: fail, inconclusive)")
    parser.add_argument("--judge-only", type=Path, metavar="DIR", help="judge a gate folder measured before; run nothing")
    parser.add_argument("--format", choices=FORMATS, default="text", help="the format of --out (default text)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the report, in --format, to FILE")


def _checked(args: argparse.Namespace) -> None:
    if args.rounds < 2:
        raise BenchError(f"--rounds must be at least 2 (one launch per side cannot be compared), got {args.rounds}")
    if args.seeds_per_launch < 1:
        raise BenchError(f"--seeds-per-launch must be at least 1, got {args.seeds_per_launch}")
    if not 0 < args.alpha < 1:
        raise BenchError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.min_change < 0:
        raise BenchError(f"--min-change must be at least 0, got {args.min_change}")
    if not args.judge_only and not args.matrix.is_file():
        raise BenchError(f"--matrix {args.matrix}: no such file")


def run(args: argparse.Namespace) -> int:
    _checked(args)
    settings = GateSettings(alpha=args.alpha, min_change=args.min_change)
    if args.judge_only:
        folder = args.judge_only
        base_rounds, cand_rounds = load_folder(folder)
        notes = [f"Judged again from {folder}."]
        base_failure = "" if any(base_rounds) else "no base results in the folder"
    else:
        folder = args.folder or RESULTS_DIR / f"gate-{time.strftime('%Y%m%d-%H%M%S')}"
        plan = GatePlan(repository_root(Path.cwd()), args.base, args.matrix.resolve(), args.rounds, args.seeds_per_launch, folder.resolve())
        started = time.monotonic()
        base, candidate, notes = measure(plan, log=lambda line: print(f"gate: {line}", file=sys.stderr, flush=True))
        notes.append(f"Measured in {time.monotonic() - started:.0f} s.")
        base_rounds, cand_rounds, base_failure = base.rounds, candidate.rounds, base.failure
        if candidate.failure:
            raise BenchError(f"the candidate could not run: {candidate.failure}")
    if base_failure:
        judgement = judge_alone(cand_rounds, base_failure, allowed=args.allow_no_base)
    else:
        judgement = judge(base_rounds, cand_rounds, settings)
        judgement.notes += package_differences(sum(base_rounds, []), sum(cand_rounds, []))
    judgement.notes[:0] = notes
    names = (BASE, CANDIDATE)
    text = render_markdown(judgement, *names)
    print(text)
    write_atomic(folder / "gate.md", text)
    if args.out:
        write_atomic(args.out, RENDERERS[args.format](judgement, *names))
    return 0 if judgement.passed else 1
