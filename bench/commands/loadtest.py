"""`bench loadtest`: latency p50/p95/p99 and requests/s of `bench serve` at 1, 8 and 32 clients (bench/serving/loadtest.py)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench.paths import REPORTS_DIR
from bench.serving.serve import SERVING_PRECISIONS


def configure(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--checkpoint", type=Path, metavar="DIR",
                        help="start `bench serve` on this checkpoint (on a free loopback port), once per precision")
    target.add_argument("--url", help="measure an already running server instead, e.g. http://127.0.0.1:8000")
    parser.add_argument("--precision", nargs="+", choices=SERVING_PRECISIONS, default=list(SERVING_PRECISIONS),
                        help="precisions to serve with --checkpoint (default: fp32 bf16)")
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 32], help="client counts (default: 1 8 32)")
    parser.add_argument("--requests", type=int, default=300, help="measured requests per level (default: 300)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time budget per level (default: 60)")
    parser.add_argument("--threads", type=int, default=32, help="waitress threads of the started server (default: 32)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch threads per forward pass of the started server (default: 1)")
    parser.add_argument("--micro-batch", nargs="+", type=int, default=[16], metavar="N",
                        help="micro-batching settings of the started server, each a run: up to N texts per forward "
                             "pass, 0 = off (default: 16)")
    parser.add_argument("--out", type=Path, default=REPORTS_DIR / "serving",
                        help="folder for README.md and loadtest.json (default: reports/serving)")


def run(args: argparse.Namespace) -> int:
    from bench.errors import BenchError
    from bench.harness.measure import environment
    from bench.serving.loadtest import (
        ServerProcess,
        bf16_support,
        get_json,
        load_texts,
        loadavg,
        loopback_address,
        measure,
        server_context,
        write_report,
    )

    if args.requests < 1 or args.max_seconds <= 0 or min(args.concurrency) < 1 or min(args.micro_batch) < 0:
        raise BenchError("--requests, --max-seconds and every --concurrency must be positive, --micro-batch at least 0")
    if args.url:
        loopback_address(args.url)
    texts, source = load_texts()
    results, server = [], {}
    before = loadavg()

    def measure_server(url: str, threads: int | None) -> None:
        nonlocal server
        meta = get_json(url, "/metadata")
        server = server_context(meta, threads)
        precision = meta.get("serving", {}).get("precision", "?")
        micro_batch = meta.get("serving", {}).get("micro_batch") or 0
        for clients in args.concurrency:
            result = measure(url, texts, clients, args.requests, args.max_seconds, precision=precision,
                             micro_batch=micro_batch)
            print(f"{precision} micro-batch {micro_batch or 'off'} {clients:>3} clients: {result.requests_per_s:6.1f} req/s, p50 {result.p50_ms:.1f} ms, "
                  f"p95 {result.p95_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, {result.errors} errors", file=sys.stderr)
            results.append(result)

    if args.url:
        measure_server(args.url, None)
    else:
        for precision in args.precision:
            for micro_batch in args.micro_batch:
                with ServerProcess(args.checkpoint, precision, args.threads, args.torch_threads,
                                   micro_batch=micro_batch) as process:
                    measure_server(process.url, args.threads)

    context = {
        "command": shlex.join(["python", "-m", "bench", *sys.argv[1:]]),
        "texts": source,
        "mean_chars": sum(map(len, texts)) / len(texts),
        "requests": args.requests,
        "max_seconds": args.max_seconds,
        "server": server,
        "environment": environment(),
        "bf16_support": bf16_support(),
        "loadavg_before": before,
        "loadavg_after": loadavg(),
    }
    markdown, raw = write_report(args.out, results, context)
    print(markdown.read_text())
    print(f"wrote {markdown} and {raw}", file=sys.stderr)
    failed = sum(r.errors for r in results)
    return 1 if failed else 0
