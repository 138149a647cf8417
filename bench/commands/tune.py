"""`bench tune`: the fastest Accelerate setup to target on this host, with the evidence and the
config file (docs/tune.md).

    bench tune --workload traffic                        # every setup this host could run
    bench tune --workload maintenance-lstm --budget 20m --write-config best.yaml
    bench tune --workload traffic --config cpu-1proc --config my_accelerate.yaml --precision fp32,bf16

The same command again continues (or shows) the tune of the same request on the same hardware
and lock: its folder is named after them (--fresh starts over, --resume DIR continues a folder).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shlex
import sys
import time
from pathlib import Path

from bench.commands.nodes import add_node_flags, planned_nodes
from bench.errors import BenchError, one_of
from bench.harness.host import Host
from bench.paths import PROJECT_ROOT, RESULTS_DIR, safe_run_id_part

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workload", required=True, metavar="W[-VARIANT]",
                        help="the model to tune for: maintenance, traffic or sentiment, optionally with its variant "
                             "(maintenance-lstm; default: the workload's first variant in --matrix)")
    parser.add_argument("--matrix", metavar="NAME|YAML",
                        help="the matrix whose budget and params the workload trains with (default: cpu, or gpu on a GPU host)")
    parser.add_argument("--config", action="append", metavar="NAME|YAML",
                        help="a topology to consider (repeatable): a built-in name or your own accelerate config "
                             "file (default: every built-in of this host's device kind)")
    parser.add_argument("--precision", metavar="LIST", help="precisions to consider, comma-separated (default: all five)")
    parser.add_argument("--compile", metavar="LIST", help="compile values to consider (default: none,inductor)")
    parser.add_argument("--grad-accum", metavar="LIST", help="gradient accumulation steps to consider (default: 1,2)")
    parser.add_argument("--checkpointing", metavar="LIST", help="activation checkpointing values (default: off,on)")
    parser.add_argument("--seeds", type=int, default=5, metavar="N",
                        help="seeds for each run to target: the reference and each finalist (default 5)")
    parser.add_argument("--finalists", type=int, metavar="N", help="candidates run to target after the race, the reference aside (default 2)")
    parser.add_argument("--rounds", type=int, metavar="N", help="race rounds at most (default 1; alpha is split between them)")
    parser.add_argument("--probes", type=int, metavar="N", help="probes per candidate and round (default 2)")
    parser.add_argument("--leader-probes", type=int, metavar="N", help="probes of each round's leader (default 5)")
    parser.add_argument("--probe-steps", type=int, metavar="N", help="optimizer steps a probe trains at most (default 50)")
    parser.add_argument("--alpha", type=float, metavar="A",
                        help="the most often the race may drop the fastest setup, and the finals make any false claim (default 0.05)")
    parser.add_argument("--budget", metavar="DURATION", help="stop racing once the next round would pass it: 90s, 20m, 1h")
    parser.add_argument("--write-config", type=Path, metavar="FILE",
                        help="write the recommended setup's Accelerate config file here")
    parser.add_argument("--folder", type=Path, metavar="DIR", help="where the tune goes (default: results/tune-<request and hardware>)")
    parser.add_argument("--resume", metavar="DIR|ID", help="continue the tune in this folder (or results/ID)")
    parser.add_argument("--fresh", action="store_true", help="start over in a new folder, whatever is cached")
    parser.add_argument("--executor", choices=("local", "slurm"), default="local",
                        help="where the cells run: this host (default) or one SLURM job each (docs/cluster.md)")
    parser.add_argument("--partition", help="slurm: the partition to submit to")
    parser.add_argument("--account", help="slurm: the account to charge")
    parser.add_argument("--cluster", choices=("slurm", "local"),
                        help="slurm: `local` runs the jobs through submitit's LocalExecutor on this host")
    add_node_flags(parser)


def run(args: argparse.Namespace) -> int:
    from bench.analysis.tune import record
    from bench.analysis.tune.race import RaceSettings
    from bench.analysis.tune.space import SearchSpace, default_topologies, validate_space
    from bench.analysis.tune.tuner import TuneRequest, tune
    from bench.harness.host import hardware

    executor = _executor_options(args)
    race = _race_settings(args, RaceSettings)
    if args.seeds < 1:
        raise BenchError(f"--seeds must be at least 1, got {args.seeds}")
    # After the argument checks: --probe-node submits a job. Its node's hardware then names the tune.
    nodes = planned_nodes(args, executor, RESULTS_DIR / "probe-node" / time.strftime("%Y%m%d-%H%M%S"))
    host = nodes.host if nodes is not None else Host.detect()
    machine = nodes.environment if nodes is not None and nodes.environment is not None else hardware()
    workload, variant, matrix = _workload(args.workload, args.matrix or ("gpu" if host.gpus else "cpu"))
    space = SearchSpace(
        topologies=tuple(args.config) if args.config else default_topologies(host),
        **{k: v for k, v in (("precisions", _listed(args.precision, str)), ("compile", _listed(args.compile, str)),
                             ("grad_accum", _listed(args.grad_accum, int, "--grad-accum")),
                             ("checkpointing", _listed(args.checkpointing, str))) if v is not None})
    validate_space(space)
    fingerprint = _fingerprint(machine, workload, variant, matrix, space, race, args.seeds, host)
    folder = _folder(args, workload, variant, fingerprint)
    cached = folder / "tune.json"
    if cached.exists() and not args.resume and not args.fresh:
        print(f"tune: cached for this hardware, lock and request in {folder} (--fresh runs it again)", file=sys.stderr)
        markdown = (folder / "tune.md").read_text()
        print(markdown)
        _copy_config(folder, args.write_config)
        return 0
    _check_fingerprint(folder, fingerprint)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fingerprint.json").write_text(json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")
    from bench.data.datasets import preflight

    preflight([workload])
    request = TuneRequest(workload, variant, space, matrix, folder, args.seeds, race, _seconds(args.budget), executor,
                          nodes.host if nodes is not None else None,
                          planned_for=nodes.planned_for if nodes is not None else None,
                          environment=nodes.environment if nodes is not None else None, command=shlex.join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]))
    print(f"tune: {workload} ({variant}) -> {folder}", file=sys.stderr)
    outcome = tune(request)
    markdown = record.write(outcome, machine["hardware_class"], folder / "best.yaml")
    print(markdown)
    print(f"tune: the full report of the runs to target: python -m bench report {folder / 'to-target'}", file=sys.stderr)
    _copy_config(folder, args.write_config)
    return 0


def _executor_options(args: argparse.Namespace):
    """None for this host's executor; SLURM options checked before anything is planned."""
    if args.executor == "local":
        if args.partition or args.account or args.cluster:
            raise BenchError("--partition, --account and --cluster go with --executor slurm")
        return None
    from bench.harness.config import executor_options
    from bench.harness.executors.slurm import check_cluster

    options = executor_options({}, {"type": "slurm", "partition": args.partition, "account": args.account,
                                    "cluster": args.cluster}, "tune: executor")
    check_cluster(options)
    return options


def _workload(name: str, matrix: str) -> tuple[str, str, str]:
    """(workload, variant, matrix) from `W` or `W-VARIANT`; the variant defaults to the matrix's first."""
    from bench.harness.matrix import load_matrix
    from workloads import workload_class

    workload, _, variant = name.partition("-")
    workload_class(workload)  # an unknown name fails here, in one line
    variants = [c.variant for c in load_matrix(matrix, seeds=1) if c.kind == "train" and c.workload == workload]
    if not variants:
        raise BenchError(f"matrix {matrix!r} does not train workload {workload}; name a matrix that does (--matrix)")
    if variant and variant not in variants:
        raise one_of(f"variant of {workload} in matrix {matrix!r}", variant, sorted(set(variants)))
    return workload, variant or variants[0], matrix


def _listed(raw: str | None, kind: type, flag: str = "") -> tuple | None:
    if raw is None:
        return None
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not values:
        raise BenchError(f"{flag or 'a list option'}: expected comma-separated values, got {raw!r}")
    try:
        return tuple(kind(v) for v in values)
    except ValueError:
        raise BenchError(f"{flag}: expected whole numbers, got {raw!r}") from None


def _race_settings(args: argparse.Namespace, settings_class: type):
    given = {name: getattr(args, name) for name in ("finalists", "rounds", "probes", "leader_probes", "probe_steps", "alpha")
             if getattr(args, name) is not None}
    for name, value in given.items():
        low = 0 if name == "finalists" else 1
        if name == "alpha":
            if not 0 < value < 1:
                raise BenchError(f"--alpha must lie between 0 and 1, got {value}")
        elif value < low:
            raise BenchError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")
    settings = settings_class(**given)
    if not settings.can_decide():
        raise BenchError(f"--probes {settings.probes} against --leader-probes {settings.leader_probes} can never reach the "
                         f"race's level {settings.level:.3g} (alpha over rounds): the race could drop nothing; "
                         "give more probes or fewer rounds")
    return settings


def _seconds(raw: str | None) -> float | None:
    if raw is None:
        return None
    match = _DURATION.match(raw.strip())
    if not match or float(match.group(1)) <= 0:
        raise BenchError(f"--budget: expected a positive duration such as 90s, 20m or 1h, got {raw!r}")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _fingerprint(hardware: dict, workload: str, variant: str, matrix: str, space, race, seeds: int, host) -> dict:
    """What the tune's answer depends on: the hardware (cores, flags, GPUs), the lock, the request."""
    from dataclasses import asdict

    lock = PROJECT_ROOT / "requirements.lock"
    return {"hardware": {k: hardware[k] for k in ("cpu_model", "cpu_count", "cpu_precision_flags", "gpus")},
            "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.exists() else None,
            "request": {"workload": workload, "variant": variant, "matrix": matrix, "space": asdict(space),
                        "race": asdict(race), "seeds": seeds, "planned_for": asdict(host)}}


def _folder(args: argparse.Namespace, workload: str, variant: str, fingerprint: dict) -> Path:
    if args.resume:
        folder = Path(args.resume) if ("/" in args.resume or Path(args.resume).is_dir()) else RESULTS_DIR / args.resume
        if not folder.is_dir():
            raise BenchError(f"--resume {args.resume}: no tune folder {folder}")
        return folder
    if args.folder:
        return args.folder
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:12]
    name = safe_run_id_part(f"tune-{workload}-{variant}-{digest}")
    return RESULTS_DIR / (name + (time.strftime("-%Y%m%d-%H%M%S") if args.fresh else ""))


def _check_fingerprint(folder: Path, fingerprint: dict) -> None:
    """A folder tuned on other hardware, another lock or another request is not continued."""
    stored = folder / "fingerprint.json"
    if not stored.exists():
        return
    try:
        before = json.loads(stored.read_text())
    except ValueError:
        raise BenchError(f"{stored}: damaged; start over with --fresh") from None
    changed = sorted(k for k in fingerprint if before.get(k) != fingerprint[k])
    if changed:
        raise BenchError(f"{folder}: tuned for another {' and '.join(changed)}; continue it with the same request on the "
                         "same hardware and lock, or start over with --fresh")


def _copy_config(folder: Path, target: Path | None) -> None:
    source = folder / "best.yaml"
    if target is None:
        return
    if not source.exists():
        raise BenchError("no setup was recommended, so no config file was written")
    target.write_text(source.read_text())
    print(f"tune: wrote the recommended setup's Accelerate config to {target}", file=sys.stderr)
