"""The tests of tests/unit/test_verify.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import pytest

REDUCE_SCRIPT = '''
import json, sys
import torch
import torch.distributed as dist
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from bench.harness.verify import grad_reduce_of_model

dist.init_process_group("gloo", store=dist.FileStore(sys.argv[1], 1), rank=0, world_size=1)
seen = {"plain": grad_reduce_of_model(torch.nn.Linear(8, 8))}
seen["ddp"] = grad_reduce_of_model(torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(8, 8)))
fsdp = torch.nn.Sequential(torch.nn.Linear(8, 8))
fully_shard(fsdp, mp_policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16))
seen["fsdp2_bf16"] = grad_reduce_of_model(fsdp)
plain_fsdp = torch.nn.Sequential(torch.nn.Linear(8, 8))
fully_shard(plain_fsdp)
seen["fsdp2_none"] = grad_reduce_of_model(plain_fsdp)
dist.destroy_process_group()
print(json.dumps(seen))
'''


@pytest.mark.e2e
def test_the_reduction_dtype_is_read_from_the_prepared_model(tmp_path):
    """Real DDP and FSDP2 wrappers (gloo, one rank, in a child process so no process group stays in
    this one): DDP reduces the fp32 gradients; FSDP2 in its policy's reduce_dtype."""
    import json
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    done = subprocess.run([sys.executable, "-c", REDUCE_SCRIPT, str(tmp_path / "store")], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert (seen["plain"]["by"], seen["plain"]["dtype"]) == (None, None)
    assert (seen["ddp"]["by"], seen["ddp"]["dtype"]) == ("DDP", "fp32")
    assert seen["fsdp2_bf16"] | {"source": None} == {"by": "FSDP2", "dtype": "bf16", "param_dtype": "bf16",
                                                      "reduce_dtype": "bf16", "source": None}
    assert (seen["fsdp2_none"]["by"], seen["fsdp2_none"]["dtype"]) == ("FSDP2", "fp32")


FSDP_ON_CPU_SCRIPT = '''
import json, sys
from accelerate import Accelerator
from bench.harness.verify import grad_reduce_dtype

accelerator = Accelerator()
if accelerator.is_main_process:
    with open(sys.argv[1], "w") as out:
        json.dump({"distributed_type": accelerator.distributed_type.name, **grad_reduce_dtype(accelerator)}, out)
'''


@pytest.mark.e2e
def test_an_fsdp_config_on_the_cpu_records_ddp_in_fp32(tmp_path):
    """The CPU FSDP2 config launched in bf16, as the runner launches it (ACCELERATE_USE_CPU=1):
    accelerate runs it as MULTI_CPU, plain DDP, so the gradients are reduced in fp32, and that is
    what the cell records (the low-precision reduction of real FSDP shows on a GPU only)."""
    import json
    import os
    import subprocess
    import sys

    from bench.harness.launch import free_port
    from bench.paths import ACCELERATE_CONFIGS_DIR
    from tests.conftest import PROJECT_ROOT

    script, out = tmp_path / "probe.py", tmp_path / "seen.json"
    script.write_text(FSDP_ON_CPU_SCRIPT)
    accelerate = [sys.executable, "-m", "accelerate.commands.launch"]
    done = subprocess.run([*accelerate, "--config_file", str(ACCELERATE_CONFIGS_DIR / "cpu-fsdp2-reshard-x2.yaml"),
                           "--mixed_precision", "bf16", "--main_process_port", str(free_port()), str(script), str(out)],
                          cwd=PROJECT_ROOT, env={**os.environ, "ACCELERATE_USE_CPU": "1", "PYTHONPATH": str(PROJECT_ROOT)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(out.read_text())
    assert (seen["distributed_type"], seen["by"], seen["dtype"]) == ("MULTI_CPU", "DDP", "fp32")

