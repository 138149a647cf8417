"""`bench tune` against the exhaustive run it must agree with, side by side on this machine
(docs/tune.md). For each workload: the exhaustive 3-seed run of every setup to target
(`bench run --matrix cpu-exhaustive`), then `bench tune` on the same model, each timed; then
whether the tune recommends the setup the exhaustive run finds fastest to target by median, or one
the statistics cannot tell apart from it, and the ratio of the two wall times.

    python scripts/tune_vs_exhaustive.py                      # both workloads, both runs (about 45 min)
    python scripts/tune_vs_exhaustive.py --judge-only DIR     # compare runs made before
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.analysis import stats
from bench.analysis.tune.space import Candidate
from bench.results import load_run

MODELS = {"traffic": "ae", "maintenance": "lstm"}  # the cpu-exhaustive matrix's one model per workload


def timed(command: list[str], log: Path) -> float:
    start = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed (exit {done.returncode}); see {log}")
    return time.monotonic() - start


def fastest_by_median(run_dir: Path) -> tuple[dict[str, list[float | None]], dict[str, int]]:
    """Each configuration's time-to-target per seed (None: not converged), by the tune's labels."""
    seconds: dict[str, list[float | None]] = {}
    for result in load_run(run_dir):
        if not result.trained:
            continue
        cell = result.cell
        axes = dict(result.key.axes)
        label = Candidate(cell.topology, cell.precision, axes.get("compile", "none"), axes.get("grad_accum", 1),
                          axes.get("checkpointing", "off")).label
        seconds.setdefault(label, []).append(result.timings.time_to_target_s if result.status == "converged" else None)
    return seconds, {k: sum(v is None for v in vals) for k, vals in seconds.items()}


def judge(folder: Path, workload: str, walls: dict[str, float]) -> dict:
    seconds, censored = fastest_by_median(folder / f"exhaustive-{workload}")
    converged = {k: v for k, v in seconds.items() if censored[k] * 2 < len(v)}
    best = min(converged, key=lambda k: stats.median(converged[k]))
    tune = json.loads((folder / f"tune-{workload}" / "tune.json").read_text())
    pick = tune["recommended"]
    test = stats.rank_sum_test(stats.finite(seconds.get(pick, [])), stats.finite(seconds[best]), stats.TWO_SIDED,
                               censored=(censored.get(pick, 0), censored[best])) if pick in seconds else None
    return {
        "workload": workload, "exhaustive_fastest": best, "exhaustive_fastest_median_s": stats.median(converged[best]),
        "tune_recommended": pick, "tune_tied": tune["tied"],
        "recommended_median_s_in_exhaustive": stats.median(seconds.get(pick, [])),
        "same": pick == best, "told_apart_p": None if test is None else test.p_value,
        "agrees": pick == best or best in tune["tied"] or (test is not None and test.p_value > 0.05),
        "exhaustive_wall_s": round(walls[f"exhaustive-{workload}"], 1), "tune_wall_s": round(walls[f"tune-{workload}"], 1),
        "ratio": round(walls[f"tune-{workload}"] / walls[f"exhaustive-{workload}"], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("results") / time.strftime("tune-check-%Y%m%d-%H%M%S"))
    parser.add_argument("--workload", action="append", choices=tuple(MODELS))
    parser.add_argument("--judge-only", type=Path, metavar="DIR")
    args = parser.parse_args()
    folder = args.judge_only or args.folder
    folder.mkdir(parents=True, exist_ok=True)
    walls_file = folder / "walls.json"
    walls = json.loads(walls_file.read_text()) if walls_file.exists() else {}
    for workload in args.workload or list(MODELS):
        if not args.judge_only:
            walls[f"exhaustive-{workload}"] = timed(
                [sys.executable, "-m", "bench", "run", "--matrix", "cpu-exhaustive", "--workload", workload,
                 "--results-dir", str(folder), "--run-id", f"exhaustive-{workload}"], folder / f"exhaustive-{workload}.log")
            walls[f"tune-{workload}"] = timed(
                [sys.executable, "-m", "bench", "tune", "--workload", f"{workload}-{MODELS[workload]}", "--fresh",
                 "--folder", str(folder / f"tune-{workload}")], folder / f"tune-{workload}.log")
            walls_file.write_text(json.dumps(walls, indent=2) + "\n")
        print(json.dumps(judge(folder, workload, walls), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
