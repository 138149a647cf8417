"""How often the gate fails an unchanged commit, and how often it catches a slower step, on this host.

    python -m bench.analysis.gate.calibrate --rounds 10 --folder results/gate-calibration

The checkout is copied into a scratch git repository (tracked and untracked files, as they are
on disk) and committed as the base; on top of it, one commit per slow-down makes every training
step spin for that fraction of its own time longer (`slow_step`: a real slower step, not edited
results). Then `--rounds` rounds of the gate matrix run each variant in turn (base twice, A and
A2, then each slow-down; the order rotates every round), with the seeds of the round shared by all.

The figures come from the gate's own judge over subsets of those rounds, as many gates as there
are ways to choose `GATE_ROUNDS` of them (up to 500): A against A2 is an unchanged commit, A
against a slow-down a real regression. Subsets overlap, so the estimates are of the rate, not
from independent runs; docs/gate.md says so next to the figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

from bench.analysis.gate.judge import judge
from bench.analysis.gate.side_by_side import GatePlan, Side, git, run_round, warm_up
from bench.errors import BenchError
from bench.paths import MATRIX_CONFIGS_DIR
from bench.results import load_run

GATE_ROUNDS = 8
SUBSETS = 500
TRAIN_STEP = "bench/harness/train.py"
_STEP_START = "    with accelerator.autocast():\n        loss = workload.loss(model, batch)\n"
_STEP_END = "    optimizer.zero_grad(set_to_none=True)\n    return loss.detach()\n"


def slow_step(source: str, fraction: float) -> str:
    """bench/harness/train.py with every training step spinning `fraction` of its time longer."""
    if _STEP_START not in source or _STEP_END not in source:
        raise BenchError(f"{TRAIN_STEP}: train_step is not as calibrate.slow_step expects; update the patch")
    start = "    import time as _slow\n\n    _began = _slow.perf_counter()\n" + _STEP_START
    end = ("    optimizer.zero_grad(set_to_none=True)\n"
           f"    _until = _slow.perf_counter() + {fraction!r} * (_slow.perf_counter() - _began)\n"
           "    while _slow.perf_counter() < _until:  # a slower step, on purpose (gate calibration)\n"
           "        pass\n"
           "    return loss.detach()\n")
    return source.replace(_STEP_START, start, 1).replace(_STEP_END, end, 1)


def copy_checkout(source: Path, target: Path) -> str:
    """Copy the checkout's files (tracked and untracked, not ignored) into a new git repository at
    `target`, commit them, and return the commit."""
    listed = git(source, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, listed):
        path = source / name
        if path.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / name)
    git(target, "init", "-q")
    commit(target, "base: the checkout as it is")
    return git(target, "rev-parse", "HEAD")


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "--allow-empty", "-m", message)


def slow_commit(repo: Path, fraction: float) -> str:
    """A commit on top of HEAD that makes the training step `fraction` slower; returns it."""
    path = repo / TRAIN_STEP
    path.write_text(slow_step(path.read_text(), fraction))
    commit(repo, f"a {fraction:.0%} slower training step (gate calibration)")
    return git(repo, "rev-parse", "HEAD")


def variants(scratch: Path, fractions: list[float]) -> dict[str, str]:
    """name -> commit: 'A' and 'A2' at the base, 'slow-10' ... each on top of the base."""
    base = git(scratch, "rev-parse", "HEAD")
    found = {"A": base, "A2": base}
    for fraction in fractions:
        git(scratch, "checkout", "-q", "--detach", base)
        found[f"slow-{round(fraction * 100)}"] = slow_commit(scratch, fraction)
    return found


def measure(folder: Path, rounds: int, seeds_per_launch: int, fractions: list[float], matrix: Path) -> dict[str, Side]:
    scratch = folder / "scratch"
    scratch.mkdir(parents=True)
    copy_checkout(Path.cwd(), scratch)
    sides: dict[str, Side] = {}
    for name, rev in variants(scratch, fractions).items():
        tree = folder / "trees" / name
        git(scratch, "worktree", "add", "-q", "--detach", str(tree), rev)
        sides[name] = Side(name, tree, sys.executable)
        warm_up(sys.executable, tree)
    plan = GatePlan(scratch, "HEAD", matrix, rounds, seeds_per_launch, folder)
    names = list(sides)
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            run_round(sides[name], plan, index, log=lambda line: print(f"calibrate: {line}", file=sys.stderr, flush=True))
    return sides


def load_sides(folder: Path) -> dict[str, Side]:
    """The sides of a calibration measured before (`--judge-only`), by the names `measure` gave them."""
    sides = {}
    for name in ("A", "A2", *sorted((p.name for p in folder.glob("slow-*") if p.is_dir()), key=lambda n: int(n[5:]))):
        side = Side(name, folder, sys.executable)
        side.rounds = [load_run(run) for run in sorted((folder / name).glob("round-*"))]
        sides[name] = side
    if not sides["A"].rounds:
        raise BenchError(f"{folder}: no calibration rounds under {folder / 'A'}/round-*/")
    return sides


def rates(sides: dict[str, Side], gate_rounds: int = GATE_ROUNDS, seed: int = 0) -> dict[str, dict[str, float]]:
    """For A2 and each slow-down: the share of round subsets whose gate against A fails."""
    total = len(sides["A"].rounds)
    if total < gate_rounds:
        raise BenchError(f"{total} calibration rounds: at least {gate_rounds} are needed to form one gate")
    subsets = list(itertools.combinations(range(total), gate_rounds))
    if len(subsets) > SUBSETS:
        subsets = random.Random(seed).sample(subsets, SUBSETS)
    figures = {}
    for name, side in sides.items():
        if name == "A":
            continue
        failed = 0
        for subset in subsets:
            base = [sides["A"].rounds[i] for i in subset]
            cand = [side.rounds[i] for i in subset]
            failed += not judge(base, cand).passed
        figures["unchanged (A against A2)" if name == "A2" else f"{name}% slower step"] = {
            "failed": failed, "gates": len(subsets), "rate": failed / len(subsets)}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analysis.gate.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seeds-per-launch", type=int, default=1)
    parser.add_argument("--slowdowns", default="0.1,0.2,0.3", help="comma-separated fractions (0.2 = 20%% slower)")
    parser.add_argument("--matrix", type=Path, default=MATRIX_CONFIGS_DIR / "gate.yaml")
    parser.add_argument("--folder", type=Path, default=Path("results/gate-calibration"))
    parser.add_argument("--judge-only", action="store_true", help="judge the rounds already in --folder again")
    args = parser.parse_args(argv)
    if args.judge_only:
        sides = load_sides(args.folder)
    elif args.folder.exists():
        print(f"error: {args.folder} exists; choose another --folder, or --judge-only", file=sys.stderr)
        return 2
    else:
        fractions = [float(f) for f in args.slowdowns.split(",") if f.strip()]
        sides = measure(args.folder.resolve(), args.rounds, args.seeds_per_launch, fractions, args.matrix.resolve())
    figures = rates(sides)
    (args.folder / "calibration.json").write_text(json.dumps(figures, indent=2) + "\n")
    for name, figure in figures.items():
        print(f"{name}: the gate failed {figure['failed']} of {figure['gates']} ({figure['rate']:.1%})")
    subprocess.run(["git", "-C", str(args.folder / "scratch"), "worktree", "prune"], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
