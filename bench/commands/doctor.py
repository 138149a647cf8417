"""`bench doctor`: assert, then record, the facts every verdict on this host rests on (docs/gpu.md).

    bench doctor                      # every check; the record goes to results/doctor/
    bench doctor --skip cells         # leave out the real cells (the slowest check)

Exit 0 when every check passes or is skipped with its reason, 1 when one fails.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tabulate import tabulate

from bench.errors import BenchError
from bench.paths import RESULTS_DIR
from bench.results import write_atomic, write_json_atomic

CHECKS = ("peaks", "tf32", "autocast", "fully_shard", "cells", "no_cuda_context")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip", action="append", default=[], metavar="CHECK",
                        help=f"leave a check out (repeatable): {', '.join(CHECKS)}")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "doctor", metavar="DIR",
                        help="where the record goes (default results/doctor/)")


def run(args: argparse.Namespace) -> int:
    from bench.harness import doctor
    from bench.harness.host import Host
    from bench.harness.matrix import expected_verdict
    from bench.harness.peak import measure_host_apart
    from bench.harness.topology import load_topology

    unknown = sorted(set(args.skip) - set(CHECKS))
    if unknown:
        raise BenchError(f"--skip: unknown check(s) {', '.join(unknown)}; the checks are {', '.join(CHECKS)}")
    started = time.monotonic()
    host = measure_host_apart()  # peaks and hardware from a child process: no CUDA context here
    gpus = Host.detect().gpus
    checks = []
    if "peaks" not in args.skip:
        checks.append(doctor.check_peaks(host["peak_flops"]))
    probe = doctor.probe_apart() if {"tf32", "autocast"} - set(args.skip) else {}
    if "tf32" not in args.skip:
        checks.append(doctor.check_tf32(probe))
    if "autocast" not in args.skip:
        from bench.cells import Cell

        predicted = expected_verdict(Cell("maintenance", "lstm", "gpu-1", "bf16", 0), load_topology("gpu-1")) is not None
        checks.append(doctor.check_autocast(probe, predicted))
    if "fully_shard" not in args.skip:
        checks.append(doctor.check_fully_shard())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = args.out / f"{host['hardware_class']}-{stamp}"
    if "cells" not in args.skip:
        checks.append(doctor.check_cells(folder, gpus))
    if "no_cuda_context" not in args.skip:
        checks.append(doctor.check_no_cuda_context())
    environment = {**host["hardware"], "load_average": host.get("load_average"), "gpus_visible": gpus,
                   "seconds": round(time.monotonic() - started, 1)}
    record = doctor.as_record(checks, environment)
    table = tabulate([[c.name, c.status, c.detail] for c in checks], headers=["check", "status", "detail"],
                     tablefmt="github", maxcolwidths=[None, None, 100])
    text = (f"# bench doctor: {host['hardware_class']}\n\n**{'PASS' if record['passed'] else 'FAIL'}** in "
            f"{environment['seconds']:.0f} s on {host['hardware']['cpu_count']} cores, {gpus} GPU(s).\n\n{table}\n")
    print(text)
    write_json_atomic(folder / "doctor.json", record)
    write_atomic(folder / "doctor.md", text)
    print(f"record written to {folder}/doctor.json and doctor.md")
    return 0 if record["passed"] else 1
