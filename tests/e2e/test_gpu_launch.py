"""The tests of tests/unit/test_gpu_launch.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bench.harness.launch import accelerate_executable
from bench.paths import ACCELERATE_CONFIGS_DIR

PRINT_VISIBLE = 'import os; print("visible=" + os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))\n'


def _visible_devices_under(config: Path, given: str, tmp_path: Path) -> str:
    """CUDA_VISIBLE_DEVICES as a script launched by `accelerate launch --config_file config` sees
    it, when the launcher itself was given `given`."""
    script = tmp_path / "print_visible.py"
    script.write_text(PRINT_VISIBLE)
    base = accelerate_executable()
    base = base if base[-1] == "accelerate.commands.launch" else [*base, "launch"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": given}
    done = subprocess.run([*base, "--config_file", str(config), "--mixed_precision", "no", str(script)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return [line for line in done.stdout.splitlines() if line.startswith("visible=")][-1].removeprefix("visible=")


@pytest.mark.e2e
def test_the_one_gpu_cell_runs_on_the_gpu_it_was_given_not_on_gpu_0(tmp_path):
    # bench's side of it: the built-in config leaves the GPU it was given alone. Whether accelerate
    # would overwrite a pinned `gpu_ids` is accelerate's behaviour (1.15 did on any torch, 1.16 only
    # when torch reports an accelerator), so no test here rests on it.
    assert _visible_devices_under(ACCELERATE_CONFIGS_DIR / "gpu-1.yaml", "3", tmp_path) == "3"


@pytest.mark.e2e
def test_the_bf16_probe_runs_apart_and_counts_no_emulation():
    """The runner's capability check asks a child process (no CUDA context in the runner) whether
    the GPU has native bf16; on a host without a GPU the answer is no, and this process has not
    initialised CUDA for it."""
    import torch

    from bench.harness.host import _BF16_PROBE, gpu_runs_bf16_natively

    assert "including_emulation=False" in _BF16_PROBE
    assert gpu_runs_bf16_natively() == (torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))
    if not torch.cuda.is_available():
        assert not torch.cuda.is_initialized()

