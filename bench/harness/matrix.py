"""Matrix YAML -> cells, and the capability check that turns unrunnable cells into `skipped`.

A matrix file (bench/configs/matrix/NAME.yaml, or the path of your own):

    name: smoke
    timeout_s: 300              # per cell, wall clock, every process included
    seeds: 1                    # or a list: [0, 1, 2]
    topologies: [cpu-1proc, cpu-ddp2]
    precisions: [fp32, bf16]
    workloads:
      maintenance:
        variants: [gru]          # model variants; default: the workload's first
        budget: {max_epochs: 60, max_seconds: 120}
        params: {target: 0.5}   # overrides of the workload's Params dataclass
        baselines: true         # also fit the classical reference models once per seed
        topologies: [...]       # optional per-workload override
        precisions: [...]       # optional per-workload override
    compile: [none, inductor]   # the knob axes (docs/knobs.md), top level or per workload;
    grad_accum: [1, 4]          # each defaults to its AXIS_DEFAULTS value alone
    checkpointing: [off, on]
    exclude:                    # drop the combinations that would say nothing; a rule matches a
      - {compile: inductor, topology: cpu-ddp2}   # cell when every key it names matches (a list = any of)

Cells are the product of variants, topologies, precisions and the knob axes, less the excluded ones.
Refused before anything launches (one line, exit 2): an unknown axis value, a workload whose own
list asks for a value that the exclude rules remove entirely, a knob the workload cannot take
(checkpointing on an autoencoder or an RNN), a global batch that does not divide into
processes x grad_accum micro-batches.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import math
from pathlib import Path
from typing import Any

from bench.cells import AXIS_DEFAULTS, Budget, Cell, is_config_path, topology_label
from bench.errors import BenchError, one_of, read_yaml_file
from bench.harness.config import SECTION_KEYS, ExecutorOptions, MatrixConfig, executor_options
from bench.harness.host import Host
from bench.harness.topology import PRECISIONS, Topology, load_topology
from bench.paths import MATRIX_CONFIGS_DIR

# `executor:` (where cells run: local, slurm) is checked here too, into MatrixConfig (bench/harness/config.py).
AXES = tuple(AXIS_DEFAULTS)
MATRIX_KEYS = {"name", "description", "timeout_s", "seeds", "topologies", "precisions", "workloads", "executor",
               "exclude", *AXES}
WORKLOAD_KEYS = {"variants", "budget", "params", "baselines", "topologies", "precisions", "timeout_s", "exclude", *AXES}
AXIS_CHOICES: dict[str, tuple[str, ...]] = {"compile": ("none", "inductor"), "checkpointing": ("off", "on"),
                                             "scaling": ("strong", "weak")}
"""The values of the named knob axes; grad_accum takes any whole number >= 1."""
RULE_KEYS = ("workload", "variant", "topology", "precision", *AXES)


def available_matrices(directory: Path = MATRIX_CONFIGS_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def _listed(value: Any, where: str, key: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BenchError(f"{where}: {key} must be a list, got {value!r}")
    return value


def load_matrix(name_or_path: str, seeds: int | None = None) -> list[Cell]:
    """Expand a matrix into cells (train cells, then one baseline cell per workload and seed)."""
    return load_config(name_or_path, seeds).cells


def load_config(name_or_path: str, seeds: int | None = None) -> MatrixConfig:
    """Read a matrix (a name or a YAML path) once and check all of it: its cells (with `seeds`
    instead of the matrix's own, when given) and its `executor:` section."""
    from workloads import REGISTRY, workload_class

    path = Path(name_or_path)
    if not path.suffix:
        path = MATRIX_CONFIGS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise one_of("matrix", name_or_path, available_matrices())
    spec = read_yaml_file(path, "a matrix")
    if not isinstance(spec, dict) or not isinstance(spec.get("workloads"), dict) or not spec["workloads"]:
        raise BenchError(f"{path}: a matrix needs a 'workloads' mapping with at least one workload")
    unknown = set(spec) - MATRIX_KEYS
    if unknown:
        raise BenchError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(MATRIX_KEYS))}")

    seed_spec = spec.get("seeds", 1) if seeds is None else seeds
    counted = isinstance(seed_spec, int) and not isinstance(seed_spec, bool)
    seed_list = list(range(seed_spec)) if counted else _listed(seed_spec, str(path), "seeds") if isinstance(seed_spec, list) else []
    if not seed_list or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seed_list):
        raise BenchError(f"{path}: seeds must be a positive count or a list of non-negative integers, got {seed_spec!r}")
    repeated = next((s for i, s in enumerate(seed_list) if s in seed_list[:i]), None)
    if repeated is not None:
        raise BenchError(f"{path}: seeds must not repeat: {repeated} is listed twice in {seed_spec}")
    timeout = _positive(spec.get("timeout_s", 600), f"{path}: timeout_s")
    executor = _executor_section(spec.get("executor"), path, name_or_path)

    cells: list[Cell] = []
    for workload, wspec in spec["workloads"].items():
        where = f"{path}: workload {workload}"
        if workload not in REGISTRY:
            raise one_of("workload", workload, list(REGISTRY))
        wspec = wspec or {}
        if not isinstance(wspec, dict):
            raise BenchError(f"{where}: expected a mapping of {', '.join(sorted(WORKLOAD_KEYS))}, got {wspec!r}")
        unknown = set(wspec) - WORKLOAD_KEYS
        if unknown:
            raise BenchError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(WORKLOAD_KEYS))}")
        cls = workload_class(workload)
        params = wspec.get("params") or {}
        if not isinstance(params, dict):
            raise BenchError(f"{where}: params must be a mapping")
        variants = _listed(wspec.get("variants"), where, "variants") or [cls.variants[0]]
        for variant in variants:
            cls(variant=variant, params=params)  # validates variant and params now, not mid-run
        budget = _budget(wspec.get("budget") or {}, where)
        topologies = _listed(wspec.get("topologies", spec.get("topologies")), where, "topologies")
        # A config file the matrix names by path is found beside the matrix; cells carry it absolute.
        topologies = [str((path.parent / Path(t).expanduser()).absolute()) if is_config_path(t) else t for t in topologies]
        precisions = _listed(wspec.get("precisions", spec.get("precisions")), where, "precisions")
        if not topologies or not precisions:
            raise BenchError(f"{where}: needs at least one topology and one precision")
        for t in topologies:
            load_topology(t)  # unknown or malformed topology files fail at load
        for p in precisions:
            if p not in PRECISIONS:
                raise one_of("precision", p, PRECISIONS)
        cell_timeout = _positive(wspec.get("timeout_s", timeout), f"{where}: timeout_s")
        combos = knob_combinations(spec, wspec, workload, variants, topologies, precisions, where)
        for seed in seed_list:
            for variant, topology, precision, knobs in combos:
                cells.append(Cell(workload, variant, topology, precision, seed, budget, cell_params(params, knobs["scaling"]),
                                  "train", cell_timeout, **knobs))
            if wspec.get("baselines", True):
                cells.append(Cell(workload, "baselines", "host", "fp32", seed, budget, cell_params(params, "strong"),
                                  "baseline", cell_timeout))
    return MatrixConfig(name_or_path, path, cells, executor)


def _executor_section(section: Any, path: Path, name: str) -> ExecutorOptions:
    """The matrix's `executor:` section, checked (bench/harness/config.py executor_options)."""
    if section is None:
        return ExecutorOptions()
    if not isinstance(section, dict):
        raise BenchError(f"{path}: executor must be a mapping of {', '.join(sorted(SECTION_KEYS))}, got {section!r}")
    return executor_options(section, {}, f"{name}: executor")


def cell_params(params: dict[str, Any], scaling: str) -> dict[str, Any]:
    """A cell's params overrides: `device_batch` only where it is used (scaling=weak), so that a
    strong cell records no batch it never trained at, and reads as it did before the axis (--resume
    compares a cell's params with the run's)."""
    if scaling == "weak":
        return params
    return {k: v for k, v in params.items() if k != "device_batch"}


def axis_values(name: str, raw: Any, where: str) -> list[Any]:
    """The values an axis lists, each checked: an unknown value is refused with the valid ones."""
    values = _listed(raw, where, name) if raw is not None else [AXIS_DEFAULTS[name]]
    # YAML 1.1 reads a bare on/off as a boolean: `checkpointing: [off, on]` means the words.
    values = [("on" if v else "off") if name == "checkpointing" and isinstance(v, bool) else v for v in values]
    if not values:
        raise BenchError(f"{where}: {name} needs at least one value")
    for value in values:
        if name == "grad_accum":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BenchError(f"{where}: grad_accum must be a whole number >= 1, got {value!r}")
        elif value not in AXIS_CHOICES[name]:
            raise BenchError(f"{where}: unknown {name} value {value!r}; valid choices: {', '.join(AXIS_CHOICES[name])}")
    return values


def _rules(raw: Any, where: str) -> list[dict[str, list[Any]]]:
    """`exclude:` as a list of {key: [values]}; every key one of RULE_KEYS."""
    rules = []
    for i, rule in enumerate(_listed(raw, where, "exclude")):
        if not isinstance(rule, dict) or not rule:
            raise BenchError(f"{where}: exclude rule {i + 1} must be a mapping like {{compile: inductor, topology: cpu-ddp2}}")
        unknown = set(rule) - set(RULE_KEYS)
        if unknown:
            raise BenchError(f"{where}: exclude rule {i + 1}: unknown key(s) {', '.join(sorted(unknown))}; "
                             f"valid: {', '.join(RULE_KEYS)}")
        for key, value in rule.items():
            values = value if isinstance(value, list) else [value]
            rule[key] = axis_values(key, values, f"{where}: exclude rule {i + 1}") if key in AXES else values
        rules.append(rule)
    return rules


def _excluded_by(rules: list[dict[str, list[Any]]], combo: dict[str, Any]) -> int | None:
    """The number (1-based) of the first rule that matches the combination, or None."""
    for i, rule in enumerate(rules):
        if all(combo.get(key) in values for key, values in rule.items()):
            return i + 1
    return None


def knob_combinations(spec: dict[str, Any], wspec: dict[str, Any], workload: str, variants: list[str],
                      topologies: list[str], precisions: list[str], where: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(variant, topology, precision, knobs) for every combination the matrix keeps, checked."""
    from workloads import workload_class

    axes = {name: axis_values(name, wspec.get(name, spec.get(name)), where) for name in AXES}
    rules = _rules(spec.get("exclude"), "exclude (top level)") + _rules(wspec.get("exclude"), where)
    kept: list[tuple[str, str, str, dict[str, Any]]] = []
    for variant, topology, precision, *values in itertools.product(variants, topologies, precisions, *axes.values()):
        knobs = dict(zip(AXES, values, strict=True))
        combo = {"workload": workload, "variant": variant, "topology": topology_label(topology), "precision": precision, **knobs}
        if _excluded_by(rules, combo) is None:
            kept.append((variant, topology, precision, knobs))
    # A value the workload's own section lists is asked for explicitly: excluding all of it is a contradiction.
    for name in ("topologies", "precisions", "variants", *AXES):
        for value in axis_values(name, wspec[name], where) if name in AXES and name in wspec else \
                _listed(wspec.get(name), where, name):
            position = {"variants": 0, "topologies": 1, "precisions": 2}.get(name)
            hit = [c for c in kept if (c[position] == value if position is not None else c[3][name] == value)]
            if not hit:
                raise BenchError(f"{where}: asks for {name}={value} but the matrix's exclude rules remove every such cell")
    cls = workload_class(workload)
    worlds = {t: load_topology(t).num_processes for t in topologies}
    params = {v: cls(variant=v, params=wspec.get("params") or {}).params for v in variants}
    for variant, topology, _precision, knobs in kept:
        refusal = cls.knob_refusal(variant, knobs)
        if refusal:
            raise BenchError(f"{where}: {refusal} (exclude it, or list only the values it takes)")
        world, p, micro = worlds[topology], params[variant], knobs["grad_accum"]
        if knobs["scaling"] == "weak":  # each process keeps its batch: only accumulation divides it
            if (p.device_batch or p.global_batch) % micro:
                raise BenchError(f"{where}: device_batch {p.device_batch or p.global_batch} (scaling=weak) does not "
                                 f"divide into grad_accum {micro} micro-batches")
        elif p.global_batch % (world * micro):
            raise BenchError(f"{where}: global_batch {p.global_batch} does not divide into {world} process(es) x "
                             f"grad_accum {micro} micro-batches")
    return kept


def _positive(value: Any, where: str) -> float:
    # NaN compares false with everything: `nan <= 0` is False, and a NaN timeout never expires.
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isfinite(value):
        raise BenchError(f"{where} must be a positive finite number, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise BenchError(f"{where} must be a positive number, got {value!r}")
    return float(value)


def _budget(raw: dict[str, Any], where: str) -> Budget:
    if not isinstance(raw, dict):
        raise BenchError(f"{where}: budget must be a mapping like {{max_epochs: 20, max_seconds: 120}}, got {raw!r}")
    fields = {f.name for f in dataclasses.fields(Budget)}
    unknown = set(raw) - fields
    if unknown:
        raise BenchError(f"{where}: unknown budget key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(fields))}")
    kinds = {f.name: str(f.type) for f in dataclasses.fields(Budget)}
    for key, value in raw.items():
        if value is None:
            continue
        # Counts (epochs, steps) are whole numbers: the annotation says which keys count.
        if "int" in kinds[key] and (isinstance(value, bool) or not isinstance(value, int)):
            raise BenchError(f"{where}: budget {key} must be a whole number, got {value!r}")
        _positive(value, f"{where}: budget {key}")
    return Budget(**raw)


def filter_cells(
    cells: list[Cell], workload: str | None = None, topology: str | None = None, precision: str | None = None
) -> list[Cell]:
    """Keep the cells matching the CLI filters; baseline cells follow their workload only."""
    from workloads import REGISTRY

    if workload and workload not in REGISTRY:
        raise one_of("workload", workload, list(REGISTRY))
    if precision and precision not in PRECISIONS:
        raise one_of("precision", precision, PRECISIONS)
    if topology:
        load_topology(topology)
    kept = []
    for cell in cells:
        if workload and cell.workload != workload:
            continue
        if cell.kind == "train" and topology and cell.topology != topology:
            continue
        if cell.kind == "train" and precision and cell.precision != precision:
            continue
        kept.append(cell)
    if not kept:
        raise BenchError("no cell of the matrix matches the given --workload/--config/--precision filters")
    return kept


# ---------------------------------------------------------------------------------------------
# Capability check: what this host can run, decided before launching anything.
# ---------------------------------------------------------------------------------------------


def _capability(host: Host) -> str:
    return f"{host.gpu_capability[0]}.{host.gpu_capability[1]}" if host.gpu_capability else "unknown"


def expected_verdict(cell: Cell, topology: Topology | None) -> str | None:
    """What a runnable cell is known to come out as, when that is not a result: for the dry run.

    The cell is still launched, so that the worker's check sees the fallback for itself.
    """
    if topology is not None and topology.use_cpu and cell.precision == "fp16":
        return "unsupported (fp16 on CPU computes in fp32)"
    if topology is not None and topology.use_cpu and topology.sharding:
        return "unsupported (accelerate runs FSDP and DeepSpeed configs as plain DDP on the CPU: nothing sharded)"
    from workloads import workload_class

    rnn = cell.variant in workload_class(cell.workload).rnn_variants
    if cell.compile != "none" and rnn and cell.precision in ("fp32", "tf32"):
        # Under CPU bf16 autocast dynamo still compiles graphs around the RNN (2 graphs, 4 breaks for
        # the maintenance LSTM, measured): such a cell runs, partly compiled, and converges.
        return "unsupported (dynamo runs an RNN eagerly: nothing compiles)"
    if rnn and cell.precision == "bf16" and topology is not None and not topology.use_cpu:
        return "unsupported (CUDA autocast runs cuDNN GRU/LSTM in fp16 under bf16: torch's AutocastRNN hard-codes Half)"
    if (topology is not None and topology.needs_deepspeed and cell.precision in ("bf16", "fp16")
            and workload_class(cell.workload).float_inputs):
        return (f"unsupported (DeepSpeed casts the model's weights to {cell.precision}, not its float inputs: "
                "the first matmul fails)")
    return None


def skip_reason(cell: Cell, topology: Topology | None, host: Host) -> str | None:
    """Why this host cannot run the cell, or None if it can be launched.

    fp16 on CPU is deliberately NOT skipped here: accelerate accepts it and silently computes in
    fp32, so it is launched and the worker's verification records it as `unsupported`. That keeps
    the check that catches the silent fallback exercised on every run.
    """
    if cell.kind == "baseline" or topology is None:
        return None
    if topology.gpus_needed:
        if topology.num_machines > 1 and host.gpus < topology.gpus_needed:
            return (
                f"needs {topology.num_machines} nodes x {topology.processes_per_machine} GPUs, "
                f"found {host.gpus} GPU(s) on this host; run per node on a cluster (scripts/slurm-multinode.sbatch)"
            )
        if host.gpus < topology.gpus_needed:
            return f"needs {topology.gpus_needed} GPU(s), found {host.gpus}"
        if cell.precision == "bf16" and not host.bf16_gpu:
            return "needs a GPU with native bf16 (this one has none, or only emulates it)"
    if cell.precision == "tf32" and (topology.use_cpu or host.gpu_capability is None or host.gpu_capability < (8, 0)):
        found = "runs on the CPU" if topology.use_cpu else f"this host's GPU has compute capability {_capability(host)}"
        return f"tf32 needs an NVIDIA GPU of compute capability 8.0 or newer (Ampere); {found}"
    if topology.needs_deepspeed and importlib.util.find_spec("deepspeed") is None:
        return "needs DeepSpeed, an optional extra: pip install 'accelerate-bench[deepspeed]'"
    if cell.precision == "fp8":
        if topology.use_cpu:
            return "fp8 needs a GPU (and torchao, transformer_engine or MS-AMP)"
        if host.fp8_backend is None:
            return "fp8 needs torchao, transformer_engine or MS-AMP installed, found none"
        if host.gpu_capability is not None and host.gpu_capability < (8, 9):
            # accelerate itself would switch such a cell to fp16 with only a log line
            return (f"fp8 needs a GPU of compute capability 8.9 or newer (Ada, Hopper); this one has "
                    f"{_capability(host)} (accelerate would run fp16 instead)")
        if host.fp8_backend == "msamp" and topology.distributed_type == "FSDP":
            return "fp8 with MS-AMP under FSDP: accelerate refuses it (MS-AMP + FSDP is not supported; use DeepSpeed)"
    from workloads import workload_class

    return workload_class(cell.workload).unavailable_reason(cell.params)
