"""Measure the base commit and the candidate side by side on this host (`bench gate`).

Why side by side: CI runners are shared VMs of changing CPUs. A baseline measured on another
machine, or on this one at another time, differs by more than the changes worth catching. Both
sides measured in one job, on one host, interleaved, leave the machine kind, its load drift and
its thermal state the same for both (as asv continuous and CodSpeed do).

1. The base revision is checked out into a git worktree inside the gate's folder.
2. Its environment: when its requirements.lock is the candidate's, the base runs in this very
   environment, its tree first on PYTHONPATH (so it imports its own code); otherwise a venv is
   built for it from its own lock, and the report names the packages that differ.
3. Both trees are byte-compiled first, so neither side's first launch pays for it.
4. Rounds: round r runs the gate matrix with seeds [r*S, r*S+S-1] on each side, one launch per
   cell whose S seeds share it; the base goes first in even rounds and second in odd ones.
5. A side whose first round produced no result at all (the base predates a feature the matrix
   needs, say) is not run again; the gate then judges the candidate alone, and says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.analysis.gate.judge import Rounds
from bench.errors import BenchError
from bench.results import Result, load_run

BASE, CANDIDATE = "base", "candidate"
LOCK = "requirements.lock"


@dataclass(frozen=True)
class GatePlan:
    """What one gate run measures, and where."""

    repo: Path
    """The candidate: this checkout, as it is on disk (uncommitted changes included)."""
    base_rev: str
    """The git revision of the base, as given (HEAD^, origin/main, a commit)."""
    matrix: Path
    """The gate matrix YAML (bench/configs/matrix/gate.yaml unless --matrix says otherwise)."""
    rounds: int
    seeds_per_launch: int
    folder: Path
    """Where the base's worktree, both sides' runs and the report go."""


@dataclass
class Side:
    """One side of the gate: the tree it runs from, its Python, and its results by round."""

    name: str
    tree: Path
    python: str
    rounds: Rounds = field(default_factory=list)
    failure: str = ""
    """Why the side could not run at all ("" while it can)."""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)}: {(done.stderr or done.stdout).strip().splitlines()[-1:] or ['failed']}")
    return done.stdout.strip()


def repository_root(folder: Path) -> Path:
    """The checkout `folder` is in (the gate may be started from a subfolder)."""
    try:
        return Path(git(folder, "rev-parse", "--show-toplevel"))
    except BenchError:
        raise BenchError(f"{folder} is not inside a git checkout: the gate compares two commits of one") from None


def resolve(repo: Path, rev: str) -> str:
    """The full commit id of `rev`, or a one-line error naming it."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except BenchError:
        raise BenchError(f"the gate's base {rev!r} is not a commit of {repo} (a shallow clone? fetch two commits or more)") from None


def describe_candidate(repo: Path) -> str:
    """HEAD's short id, with '+changes' when the tree differs from it."""
    head = git(repo, "rev-parse", "--short", "HEAD")
    dirty = git(repo, "status", "--porcelain", "--untracked-files=no")
    return f"{head}+changes" if dirty else head


def check_out(repo: Path, commit: str, tree: Path) -> None:
    if tree.exists():
        git(repo, "worktree", "remove", "--force", str(tree))
    git(repo, "worktree", "add", "--detach", "--force", str(tree), commit)


def remove(repo: Path, tree: Path) -> None:
    subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], capture_output=True)


def base_python(repo: Path, tree: Path, folder: Path, log: Callable[[str], None]) -> tuple[str, str]:
    """(the Python the base runs with, a note for the report). The same lock: this Python."""
    ours, theirs = repo / LOCK, tree / LOCK
    if not theirs.exists():
        return sys.executable, f"The base has no {LOCK}: it ran in the candidate's environment."
    if ours.exists() and ours.read_bytes() == theirs.read_bytes():
        return sys.executable, "Both sides have the same lock and ran in one environment."
    venv = folder / "base-venv"
    log(f"the base's lock differs: building its environment in {venv}")
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
    if made.returncode != 0:
        raise BenchError(f"cannot make a venv for the base: {made.stderr.strip()[-300:]}")
    pip = [str(venv / "bin" / "pip"), "install", "-q", "-c", str(theirs)]
    torch = next((line.strip() for line in theirs.read_text().splitlines() if line.startswith("torch==")), "torch")
    for args in ([torch], ["-e", str(tree)]):
        done = subprocess.run([*pip, *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"cannot build the base's environment from its lock: {done.stderr.strip()[-300:]}")
    return str(venv / "bin" / "python"), f"The base's lock differs from the candidate's: it ran in its own venv ({venv})."


def warm_up(python: str, tree: Path) -> None:
    """Byte-compile a tree's packages and import what a launch imports, once, so that neither
    side's first launch alone pays for cold bytecode or a cold page cache (the base goes first in
    round one)."""
    subprocess.run([python, "-m", "compileall", "-q", str(tree / "bench"), str(tree / "workloads")],
                   capture_output=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))}
    subprocess.run([python, "-c", "import torch, accelerate, transformers, sklearn, bench.harness.worker"],
                   cwd=tree, env=env, capture_output=True)


def round_matrix(plan: GatePlan, index: int) -> Path:
    """The gate matrix with this round's seeds, written into the gate's folder."""
    spec = yaml.safe_load(plan.matrix.read_text())
    if not isinstance(spec, dict):
        raise BenchError(f"{plan.matrix}: not a matrix (a YAML mapping)")
    first = index * plan.seeds_per_launch
    spec["seeds"] = list(range(first, first + plan.seeds_per_launch))
    spec["name"] = f"{spec.get('name', 'gate')}-round{index}"
    path = plan.folder / "matrices" / f"round-{index:02d}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_round(side: Side, plan: GatePlan, index: int, log: Callable[[str], None]) -> None:
    """Run one round of the gate matrix on one side, into <folder>/<side>/round-NN/."""
    run_id = f"round-{index:02d}"
    results_dir = plan.folder / side.name
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(side.tree), os.environ.get("PYTHONPATH")]))}
    command = [side.python, "-m", "bench", "run", "--matrix", str(round_matrix(plan, index)),
               "--run-id", run_id, "--results-dir", str(results_dir)]
    started = time.monotonic()
    with open(plan.folder / f"{side.name}-{run_id}.log", "w") as out:
        code = subprocess.run(command, cwd=side.tree, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    try:
        results: list[Result] = load_run(results_dir / run_id)
    except BenchError:
        results = []
        if index == 0:
            said = [line for line in Path(out.name).read_text().splitlines() if line.strip()]
            side.failure = f"`bench run` exited {code} with no result: {said[-1] if said else 'no output'} (log: {out.name})"
    side.rounds.append(results)
    log(f"{side.name} round {index + 1}/{plan.rounds}: {len(results)} result(s), exit {code}, "
        f"{time.monotonic() - started:.0f} s")


def measure(plan: GatePlan, log: Callable[[str], None] = print) -> tuple[Side, Side, list[str]]:
    """Check the base out, run the interleaved rounds, and return both sides and notes."""
    base_commit = resolve(plan.repo, plan.base_rev)
    plan.folder.mkdir(parents=True, exist_ok=True)
    tree = plan.folder / "base-src"
    check_out(plan.repo, base_commit, tree)
    try:
        candidate = Side(CANDIDATE, plan.repo, sys.executable)
        try:
            python, env_note = base_python(plan.repo, tree, plan.folder, log)
            base = Side(BASE, tree, python)
        except BenchError as exc:  # the base cannot be installed: it cannot run
            base, env_note = Side(BASE, tree, sys.executable, failure=str(exc)), str(exc)
        for side in (base, candidate):
            warm_up(side.python, side.tree)
        for index in range(plan.rounds):
            order = (base, candidate) if index % 2 == 0 else (candidate, base)
            for side in order:
                if not side.failure:
                    run_round(side, plan, index, log)
    finally:
        remove(plan.repo, tree)
        shutil.rmtree(plan.folder / "base-venv", ignore_errors=True)
    notes = [f"Base {plan.base_rev} = {base_commit[:12]}; candidate {describe_candidate(plan.repo)}. {env_note}",
             f"{plan.rounds} interleaved rounds, {plan.seeds_per_launch} seed(s) per launch, matrix {plan.matrix.name}."]
    return base, candidate, notes


def load_folder(folder: Path) -> tuple[Rounds, Rounds]:
    """Both sides' results by round from a gate folder already measured (`bench gate --judge-only`)."""
    sides = []
    for name in (BASE, CANDIDATE):
        rounds = []
        for run in sorted((folder / name).glob("round-*")):
            try:
                rounds.append(load_run(run))
            except BenchError:
                rounds.append([])
        sides.append(rounds)
    if not any(sides[1]):
        raise BenchError(f"{folder}: no candidate results under {folder / CANDIDATE}/round-*/ (not a gate folder?)")
    return sides[0], sides[1]
