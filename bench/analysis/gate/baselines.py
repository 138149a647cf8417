"""The committed baselines of `bench compare`, and the hardware they are matched on.

Committed baselines live in results/baselines/<hardware-class>/ (one run's cells plus a
baseline.json naming its hardware; the ones it replaced under history/). `find_baseline` picks one
whose hardware matches on what decides the figures (`match_hardware`: cores, the CPU flags that
decide precision, GPUs), else the nearest, against which only status and quality are judged.
Also here: loading a run to compare (`load`, `latest_run`).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.results import Environment, Result, as_results, load_run, write_atomic, write_json_atomic


def hardware_classes(results: list[Result]) -> set[str]:
    return {r.environment.hardware_class for r in results if r.environment.hardware_class}


@dataclass(frozen=True)
class Hardware:
    """What decides a run's speed and memory figures: core count, the CPU flags that decide
    precision (bench.harness.host.PRECISION_FLAGS) and the GPU models. The CPU model string does not
    (one VM class reports "Intel(R) Xeon(R) Processor @ 2.50GHz" or "AMD EPYC"); it is kept in
    `name` (the hardware class) for people and takes no part in equality."""

    cpu_count: int | None
    flags: tuple[str, ...] | None
    """None: not recorded (results measured before bench recorded them)."""
    gpus: tuple[str, ...]
    """One model name per device, sorted; () on a CPU-only host."""
    name: str = field(default="", compare=False)

    @classmethod
    def of_environment(cls, env: Environment | dict[str, Any] | None) -> Hardware | None:
        """From a result's `environment`, or a dict of its fields (bench.harness.host.hardware(),
        a baseline.json's `hardware`); None if it records none."""
        if isinstance(env, dict):
            env = Environment.from_dict(env)
        if not isinstance(env, Environment) or not (env.hardware_class or env.cpu_count):
            return None
        name = str(env.hardware_class or "")
        gpus = tuple(sorted(str(g) for g in env.gpus or ()))
        if not gpus and name.startswith("gpu-"):
            gpus = (name[len("gpu-"):],)  # a result that names its GPUs only in its class
        flags = env.cpu_precision_flags
        return cls(env.cpu_count, None if flags is None else tuple(sorted(flags)), gpus, name)

    def to_json(self) -> dict[str, Any]:
        return {"cpu_count": self.cpu_count, "cpu_precision_flags": None if self.flags is None else list(self.flags),
                "gpus": list(self.gpus), "hardware_class": self.name}

    def describe(self) -> str:
        cores = f"{self.cpu_count} cores" if self.cpu_count else "core count unknown"
        flags = ("CPU precision flags not recorded" if self.flags is None
                 else f"CPU precision flags: {', '.join(self.flags) or 'none'}")
        return f"{cores}, {flags}, {_gpu_text(self.gpus) or 'no GPU'}"


def _gpu_text(gpus: tuple[str, ...]) -> str:
    counts: dict[str, int] = {}
    for g in gpus:
        counts[g] = counts.get(g, 0) + 1
    return " + ".join(f"{n}x {g}" for g, n in counts.items())


def run_hardware(results: list[Result]) -> list[Hardware]:
    """The distinct hardware a run's results were measured on (none where no result records it)."""
    found = (Hardware.of_environment(r.environment) for r in results)
    return list(dict.fromkeys(h for h in found if h is not None))


def hardware_of(results: list[Result] | list[dict[str, Any]]) -> Hardware | None:
    """The one hardware of a run (its results, or their dicts as the result files hold them); None when
    its results record none or more than one."""
    found = run_hardware(as_results(results))
    return found[0] if len(found) == 1 else None


def match_hardware(base: Hardware, cand: Hardware) -> tuple[bool, str]:
    """(whether speed and memory figures are comparable, why). A GPU run never matches a CPU run.
    A side that records no precision flags matches on core count and GPUs only, and `why` says so."""
    if base.gpus != cand.gpus:
        if not base.gpus or not cand.gpus:
            return False, (f"a GPU run against a CPU run: baseline {_gpu_text(base.gpus) or 'no GPU'}, "
                           f"candidate {_gpu_text(cand.gpus) or 'no GPU'}")
        return False, f"GPUs differ: baseline {_gpu_text(base.gpus)}, candidate {_gpu_text(cand.gpus)}"
    if base.cpu_count != cand.cpu_count:
        return False, f"core counts differ: baseline {base.cpu_count}, candidate {cand.cpu_count}"
    if base.flags is not None and cand.flags is not None and base.flags != cand.flags:
        return False, (f"CPU precision flags differ: baseline {', '.join(base.flags) or 'none'}, "
                       f"candidate {', '.join(cand.flags) or 'none'}")
    names = (f"; the hardware classes {base.name} and {cand.name} differ only in the CPU model string, "
             "which does not decide the figures") if base.name != cand.name else ""
    if base.flags is None or cand.flags is None:
        who = ("neither run records its" if base.flags is None and cand.flags is None
               else f"{'the baseline' if base.flags is None else 'the candidate'} records no")
        return True, (f"{who} CPU precision flags (measured before bench recorded them), so matched on core count "
                      f"and GPUs only: {cand.cpu_count} cores, {_gpu_text(cand.gpus) or 'no GPU'}{names}")
    return True, f"same core count, CPU precision flags and GPUs: {cand.describe()}{names}"


def compare_hardware(baseline: list[Result], candidate: list[Result]) -> tuple[bool, str]:
    """(whether the two runs' speed and memory are comparable, why), from their results' environments."""
    base, cand = run_hardware(baseline), run_hardware(candidate)
    if not base and not cand:
        return True, "neither run records its hardware"
    if len(base) != 1 or len(cand) != 1:
        def listed(hw: list[Hardware]) -> str:
            return "; ".join(h.describe() for h in hw) or "not recorded"

        return False, f"the runs do not each come from one hardware: baseline {listed(base)}; candidate {listed(cand)}"
    return match_hardware(base[0], cand[0])


def load(path: Path) -> list[Result]:
    """A run directory or a single result file (bench.results checks the schema)."""
    if not Path(path).exists():
        raise BenchError(f"{path}: no such run directory or result file")
    return load_run(Path(path))


def latest_run(results_dir: Path) -> Path:
    """The most recently started run directory under results/ (by its run.json, else the folder).

    Not by name: run ids may be given by hand (`--run-id`)."""

    def started(run: Path) -> float:
        meta = run / "run.json"
        return (meta if meta.exists() else run).stat().st_mtime

    runs = sorted((p for p in results_dir.glob("*") if (p / "cells").is_dir() and p.name != "baselines"), key=started)
    if not runs:
        raise BenchError(f"no run directories under {results_dir}")
    return runs[-1]


BASELINE_META = "baseline.json"


def baseline_slug(hardware_class: str) -> str:
    """A folder name for a hardware class (its exact string is kept in baseline.json)."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", hardware_class).strip("-")


HISTORY = "history"
"""Inside a baseline's folder: the baselines it replaced, one folder each, named by when they were
saved. `--baseline auto` never looks there."""


@dataclass
class BaselineChoice:
    path: Path
    hardware: Hardware
    matched: bool
    """Whether speed and memory are comparable (`match_hardware`); if not, this is the nearest."""
    how: str


def baseline_hardware(folder: Path, meta: dict[str, Any]) -> Hardware | None:
    """A committed baseline's hardware: from its baseline.json, or, for one saved before
    baseline.json recorded it, from its cells' environments."""
    hardware = Hardware.of_environment(meta.get("hardware"))
    if hardware is not None:
        return hardware
    try:
        return hardware_of(load_run(folder))
    except BenchError:
        return None


def _distance(base: Hardware, want: Hardware) -> tuple:
    """How far a baseline's hardware is from the wanted one, for picking the nearest: a GPU host
    is farther than any CPU of another size; then other GPUs; then the ratio of core counts;
    then the precision flags that differ."""
    kind = bool(base.gpus) != bool(want.gpus)
    cores = abs(math.log2(base.cpu_count / want.cpu_count)) if base.cpu_count and want.cpu_count else math.inf
    flags = len(set(base.flags) ^ set(want.flags)) if base.flags is not None and want.flags is not None else 0
    return kind, base.gpus != want.gpus, cores, flags


def find_baseline(baselines_dir: Path, hardware: Hardware) -> BaselineChoice:
    """The committed baseline for `hardware`: one that matches it (`match_hardware`), preferring a
    match on recorded precision flags, then the same hardware class, then the newest; where none
    matches, the nearest, with `matched` False (judge status and quality only). An error only
    when there is no baseline at all."""
    candidates = []
    for meta_path in sorted(baselines_dir.glob(f"*/{BASELINE_META}")):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(meta, dict):
            continue
        found = baseline_hardware(meta_path.parent, meta)
        if found is None:
            continue
        matched, how = match_hardware(found, hardware)
        full = found.flags is not None and hardware.flags is not None
        saved = str(meta.get("saved_utc") or "")
        rank = (not matched, not full, _distance(found, hardware), found.name != hardware.name)
        candidates.append((rank, saved, BaselineChoice(meta_path.parent, found, matched, how)))
    if not candidates:
        raise BenchError(
            f"no committed baseline fits this hardware ({hardware.name or hardware.describe()}): none under {baselines_dir}; "
            "save one with `bench compare --save-baseline RUN_DIR`",
            exit_code=2,
        )
    candidates.sort(key=lambda c: c[1], reverse=True)  # the newest first among equals (the sort is stable)
    candidates.sort(key=lambda c: c[0])
    return candidates[0][2]


def save_baseline(run_dir: Path, baselines_dir: Path) -> Path:
    """Make a run the committed baseline of its hardware: baselines_dir/<hardware-class>/.

    The previous baseline of that folder is kept under its history/<saved time>/. Nothing is
    written in place: the new cells and baseline.json are written whole into a hidden folder
    beside them, the previous baseline is copied whole into history/, and only then do two
    renames swap the new cells in and one replaces baseline.json. A failure before the swap
    leaves the previous baseline as it was."""
    results = load(run_dir)
    if not Path(run_dir).is_dir():
        raise BenchError(f"{run_dir}: --save-baseline wants a run directory, not a single file")
    classes = hardware_classes(results)
    hardware = hardware_of(results)
    if len(classes) != 1 or hardware is None:
        raise BenchError(f"{run_dir}: a baseline needs results from one hardware class, found {max(len(classes), len(run_hardware(results)))}")
    hardware_class = classes.pop()
    target = baselines_dir / baseline_slug(hardware_class)
    commits = sorted({str(r.environment.git_commit) for r in results})
    meta: dict[str, Any] = {
        "hardware_class": hardware_class,
        "hardware": hardware.to_json(),
        "source_run": Path(run_dir).resolve().name,
        "git_commits": commits,
        "cells": len(results),
        "saved_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=target))
        try:
            for cell in sorted((Path(run_dir) / "cells").glob("*.json")):
                write_atomic(staging / "cells" / cell.name, cell.read_bytes())
            (staging / "cells").mkdir(exist_ok=True)
            previous = _archive(target)
            if previous:
                meta["previous"] = f"{HISTORY}/{previous.name}"
            write_json_atomic(staging / BASELINE_META, meta)
            if (target / "cells").exists():
                os.rename(target / "cells", staging / "replaced-cells")
            try:
                os.rename(staging / "cells", target / "cells")
            except OSError:
                if (staging / "replaced-cells").exists():  # put the previous cells back before staging goes
                    os.rename(staging / "replaced-cells", target / "cells")
                raise
            os.replace(staging / BASELINE_META, target / BASELINE_META)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise BenchError(f"cannot save the baseline in {target}: {exc.strerror or exc}") from None
    return target


def _archive(target: Path) -> Path | None:
    """Copy the baseline in `target` (if any) whole into target/history/<saved time>/."""
    meta_path = target / BASELINE_META
    if not meta_path.exists() and not (target / "cells").is_dir():
        return None
    try:
        saved = str(json.loads(meta_path.read_text()).get("saved_utc") or "")
    except (OSError, json.JSONDecodeError, AttributeError):
        saved = ""
    stamp = re.sub(r"[^0-9A-Za-z]", "", saved) or time.strftime(
        "%Y%m%dT%H%M%SZ", time.gmtime(meta_path.stat().st_mtime if meta_path.exists() else time.time()))
    history = target / HISTORY
    history.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".archiving-", dir=history))
    try:
        for path in sorted((target / "cells").glob("*.json")):
            write_atomic(staging / "cells" / path.name, path.read_bytes())
        if meta_path.exists():
            write_atomic(staging / BASELINE_META, meta_path.read_bytes())
        final, n = history / stamp, 1
        while final.exists():
            n += 1
            final = history / f"{stamp}-{n}"
        os.rename(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
