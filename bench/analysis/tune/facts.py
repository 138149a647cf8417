"""Host facts `bench tune` measures before racing: the cheapest cold compile this host makes.

Every compiled training step traces the model with dynamo, builds forward and backward graphs and
has inductor generate and compile at least one kernel. A one-kernel function compiled from a cold
cache in a fresh process does strictly less, so its time is a floor under any compile cell's
compile time on this host. Measured in a child process (the runner must stay free of inductor's
threads and caches); a candidate is pruned by it only when the floor exceeds the reference's
slowest run to target COMPILE_MARGIN times over, far beyond the launch-to-launch spread of these
hosts (12-24%, docs/gate.md), so that a busy moment during the measurement cannot prune a
candidate that could have paid back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

# The cache is cold unless the user keeps theirs warm, exactly as the worker does for compile cells
# (bench/harness/worker.py cold_inductor_cache).
_ONE_KERNEL = (
    "import json, os, tempfile, time, torch\n"
    "if os.environ.get('BENCH_INDUCTOR_CACHE') != 'warm':\n"
    "    os.environ['TORCHINDUCTOR_CACHE_DIR'] = tempfile.mkdtemp(prefix='bench-inductor-floor-')\n"
    "x = torch.randn(64)\n"
    "f = torch.compile(lambda t: (t * 2.0 + 1.0).sum(), backend='inductor')\n"
    "start = time.perf_counter(); f(x); print(json.dumps({'seconds': time.perf_counter() - start}))\n"
)
TRIES = 1
COMPILE_MARGIN = 2.0


def cold_compile_floor(timeout_s: float = 300.0) -> float | None:
    """The least time of TRIES one-kernel compiles in fresh processes; None when none succeeded
    (then no candidate is pruned by it)."""
    times = []
    for _ in range(TRIES):
        env = {**os.environ, "TMPDIR": tempfile.gettempdir()}
        try:
            done = subprocess.run([sys.executable, "-c", _ONE_KERNEL], capture_output=True, text=True,
                                  timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            continue
        if done.returncode == 0:
            try:
                times.append(float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"]))
            except (ValueError, IndexError, KeyError):
                continue
    return min(times) if times else None
