"""Topologies: Accelerate's own config YAMLs in bench/configs/accelerate/, and what each promises.

A topology is named by a built-in config (`cpu-ddp2`), or is the path of a user's own file
(`~/.cache/huggingface/accelerate/default_config.yaml`, what `accelerate config` writes).

A topology file is exactly what `accelerate config` writes and `accelerate launch --config_file`
reads; it is loaded with Accelerate's own `ClusterConfig`, which rejects unknown keys. From it we
derive what the host needs (GPUs, nodes) and what the worker must observe at run time.

The CPU multi-process files say `distributed_type: MULTI_GPU` with `use_cpu: true`. That is not a
typo: on these machines `MULTI_CPU` in a YAML starts a single process (that path wants mpirun),
while the torchrun path (`MULTI_GPU`) starts N processes; and `use_cpu` from the YAML is not
passed through on that path, so the launcher also sets ACCELERATE_USE_CPU=1. With both, every rank
reports MULTI_CPU over gloo. See ../shared/docs/accelerate-on-cpu.md.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cells import is_config_path, topology_label
from bench.errors import BenchError, first_line, one_of, read_yaml_file
from bench.paths import ACCELERATE_CONFIGS_DIR

PRECISIONS = ("fp32", "fp16", "bf16", "fp8", "tf32")
"""fp32 is strict IEEE fp32 (TF32 off for matmuls and cuDNN); tf32 is fp32 storage with no autocast and
TF32 on for both (Ampere or later NVIDIA GPUs). The worker's verify sets the switches for both."""
# accelerate's own spelling of each precision, for --mixed_precision (tf32 is no mixed precision at all)
ACCELERATE_PRECISION = {"fp32": "no", "fp16": "fp16", "bf16": "bf16", "fp8": "fp8", "tf32": "no"}


@dataclass(frozen=True)
class Expected:
    """What the cell's topology and precision promise."""

    num_processes: int
    distributed_types: tuple[str, ...]
    """Acceptable accelerate DistributedType names (e.g. ('MULTI_CPU',) or ('NO',))."""
    device: str  # "cpu" or "cuda"
    precision: str  # fp32 / bf16 / fp16 / fp8 / tf32
    sharding: dict[str, Any] | None = None
    """What the config asks to shard (Topology.sharding), checked from what each rank holds."""
    num_machines: int = 1
    """Nodes the ranks must be spread over, num_processes / num_machines on each."""


@dataclass(frozen=True)
class Topology:
    name: str
    path: Path
    distributed_type: str
    num_processes: int
    """Total processes over all machines (accelerate's meaning)."""
    num_machines: int
    use_cpu: bool
    main_process_port: int | None
    sharding: dict[str, Any] | None = None
    """{"family": "fsdp"|"deepspeed", "version"/"stage", "shards": "params"|"optimizer", ...}; None for data parallel."""
    enable_cpu_affinity: bool = False

    @property
    def needs_deepspeed(self) -> bool:
        return bool(self.sharding and self.sharding["family"] == "deepspeed")

    @property
    def processes_per_machine(self) -> int:
        return self.num_processes // self.num_machines

    @property
    def gpus_needed(self) -> int:
        """GPUs this topology needs on one host to run all its ranks there."""
        return 0 if self.use_cpu else self.num_processes

    def expected(self, precision: str) -> Expected:
        if self.use_cpu:
            # A sharding config on the CPU runs as MULTI_CPU too (accelerate turns FSDP and DeepSpeed
            # on only off the CPU): the launch is valid, the sharding check then says what ran.
            types = ("MULTI_CPU",) if self.num_processes > 1 else ("NO",)
        elif self.distributed_type in ("FSDP", "DEEPSPEED"):
            types = (self.distributed_type,)
        else:
            types = ("MULTI_GPU",) if self.num_processes > 1 else ("NO",)
        return Expected(
            num_processes=self.num_processes,
            distributed_types=types,
            device="cpu" if self.use_cpu else "cuda",
            precision=precision,
            sharding=self.sharding,
            num_machines=self.num_machines,
        )

    def describe(self) -> dict:
        builtin = self.path.parent == ACCELERATE_CONFIGS_DIR
        return {
            "name": self.name,
            # A built-in config as the results have always named it; a user's own file by its path.
            "config_file": f"configs/accelerate/{self.path.name}" if builtin else str(self.path),
            "distributed_type": self.distributed_type,
            "num_processes": self.num_processes,
            "num_machines": self.num_machines,
            "use_cpu": self.use_cpu,
            # Only where set, so that the topology of every data-parallel result reads as before.
            **({"sharding": self.sharding} if self.sharding else {}),
            **({"enable_cpu_affinity": True} if self.enable_cpu_affinity else {}),
        }


def available_topologies(directory: Path = ACCELERATE_CONFIGS_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_topology(name: str, directory: Path = ACCELERATE_CONFIGS_DIR) -> Topology:
    """Load <directory>/<name>.yaml, or the config file `name` is the path of, through accelerate's ClusterConfig."""
    from accelerate.commands.config.config_args import ClusterConfig

    if is_config_path(name):
        # Absolute: the launchers and workers run in another folder than the user's.
        path = Path(name).expanduser().absolute()
        if not path.is_file():
            raise BenchError(f"{name}: no such accelerate config file "
                             f"(built-in topologies: {', '.join(available_topologies(directory))})")
    else:
        path = directory / f"{name}.yaml"
        if not path.is_file():
            raise one_of("topology", name, available_topologies(directory))
    raw = read_yaml_file(path, "an accelerate config")
    if not isinstance(raw, dict):
        raise BenchError(f"{path}: expected a mapping of accelerate config keys")
    problem = _mistyped(raw)
    if problem:
        raise BenchError(f"{path}: not a valid accelerate config ({problem})")
    try:
        config = ClusterConfig.from_yaml_file(path)
    except (ValueError, TypeError) as exc:
        raise BenchError(f"{path}: not a valid accelerate config ({first_line(exc)})") from None
    distributed_type = getattr(config.distributed_type, "value", str(config.distributed_type))
    num_processes = int(config.num_processes or 1)
    num_machines = int(config.num_machines or 1)
    if num_processes < 1 or num_machines < 1 or num_processes % num_machines:
        raise BenchError(f"{path}: num_processes ({num_processes}) must be a positive multiple of num_machines ({num_machines})")
    return Topology(
        name=topology_label(name),
        path=path,
        distributed_type=distributed_type,
        num_processes=num_processes,
        num_machines=num_machines,
        use_cpu=bool(config.use_cpu),
        main_process_port=config.main_process_port,
        sharding=sharding_of(distributed_type, config.fsdp_config or {}, config.deepspeed_config or {}),
        enable_cpu_affinity=bool(config.enable_cpu_affinity),
    )


def sharding_of(distributed_type: str, fsdp: dict[str, Any], deepspeed: dict[str, Any]) -> dict[str, Any] | None:
    """What a config asks to shard. `shards` is what each rank must hold less of than the whole:
    "params" (FSDP full shard / resharding, ZeRO-3) or "optimizer" (ZeRO-1/2, FSDP SHARD_GRAD_OP:
    optimizer state sharded, parameters whole between steps)."""
    if distributed_type == "FSDP":
        version = int(fsdp.get("fsdp_version", 1))
        if version == 2:
            reshard = fsdp.get("fsdp_reshard_after_forward", True)
            reshard = reshard if isinstance(reshard, bool) else str(reshard).lower() in ("true", "full_shard")
            # FSDP2 keeps its parameters sharded as DTensors either way; resharding decides only
            # whether they are gathered again for backward.
            return {"family": "fsdp", "version": 2, "reshard_after_forward": reshard, "shards": "params"}
        strategy = str(fsdp.get("fsdp_sharding_strategy", "FULL_SHARD"))
        return {"family": "fsdp", "version": 1, "strategy": strategy,
                "shards": "params" if strategy in ("FULL_SHARD", "1", "HYBRID_SHARD") else "optimizer"}
    if distributed_type == "DEEPSPEED":
        stage = int(deepspeed.get("zero_stage", 0))
        return {"family": "deepspeed", "stage": stage, "shards": "params" if stage == 3 else "optimizer",
                "gradient_clipping": deepspeed.get("gradient_clipping")}
    return None


# Keys whose value `accelerate config` itself writes off its own annotation (downcast_bf16: 'no').
_TOLERATED = {"downcast_bf16": (bool, str)}
_TYPE_WORDS = {int: "int", float: "float", str: "str", bool: "bool", dict: "a mapping", list: "a list"}


def _mistyped(raw: dict[str, Any]) -> str | None:
    """The first key whose value has the wrong type for accelerate's own ClusterConfig annotation
    (num_processes: "two", use_cpu: "yes"...), which ClusterConfig itself takes as given and
    `accelerate launch` trips over later; None when every known key is well typed."""
    from accelerate.commands.config.config_args import ClusterConfig

    hints = typing.get_type_hints(ClusterConfig)
    for key, value in raw.items():
        if key == "mixed_precision":
            spellings = list(dict.fromkeys(ACCELERATE_PRECISION.values()))
            if value not in spellings:
                return f"mixed_precision must be one of {', '.join(spellings)}, got {value!r}"
            continue
        if key not in hints:
            continue  # unknown keys: ClusterConfig names them
        args = typing.get_args(hints[key]) if typing.get_origin(hints[key]) in (typing.Union, types.UnionType) else ()
        optional = type(None) in args
        plain = [typing.get_origin(t) or t for t in (args or (hints[key],)) if t is not type(None)]
        if len(plain) != 1 or plain[0] not in _TYPE_WORDS:
            continue  # enums (distributed_type...): ClusterConfig converts and checks them
        expected = _TOLERATED.get(key, (plain[0],))
        if value is None and optional:
            continue
        if isinstance(value, bool) and bool not in expected or not isinstance(value, expected):
            return f"{key} must be {_TYPE_WORDS[plain[0]]}, got {value!r}"
        if key == "main_process_port" and not 1 <= value <= 65535:
            return f"main_process_port must be a port number 1-65535, got {value!r}"
    return None
