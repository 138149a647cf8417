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
from pathlib import Path

from bench.analysis.gate.entry import GateRequest, gate_side_by_side
from bench.analysis.gate.judge import DEFAULT_ALPHA, DEFAULT_MIN_CHANGE, GateSettings
from bench.analysis.gate.render import FORMATS
from bench.errors import BenchError
from bench.paths import MATRIX_CONFIGS_DIR
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
    outcome = gate_side_by_side(
        GateRequest(args.base, args.matrix, args.rounds, args.seeds_per_launch,
                    GateSettings(alpha=args.alpha, min_change=args.min_change), folder=args.folder,
                    allow_no_base=args.allow_no_base, judge_only=args.judge_only, format=args.format),
        log=lambda line: print(f"gate: {line}", file=sys.stderr, flush=True))
    print(outcome.text)
    write_atomic(outcome.folder / "gate.md", outcome.text)
    if args.out:
        write_atomic(args.out, outcome.report)
    return 0 if outcome.judgement.passed else 1
