"""`bench serve`: answer sentiment predictions over HTTP from a fine-tuned checkpoint (bench/serving/serve.py)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from bench.serving.serve import (
    DEFAULT_CHANNEL_TIMEOUT,
    DEFAULT_CONNECTION_LIMIT,
    DEFAULT_THREADS,
    SERVING_DEVICES,
    SERVING_PRECISIONS,
    ServingLimits,
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, metavar="DIR",
                        help="a checkpoint folder written by `bench run --save-checkpoint`")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one (default: 8000)")
    parser.add_argument("--precision", choices=SERVING_PRECISIONS, default="fp32",
                        help="fp32, or bf16 autocast around the forward pass (default: fp32)")
    parser.add_argument("--device", choices=SERVING_DEVICES, default="auto",
                        help="where the model runs: auto (the first visible CUDA GPU, else the CPU), cpu or cuda")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"waitress worker threads, the most requests handled at once (default: {DEFAULT_THREADS})")
    parser.add_argument("--connection-limit", type=int, default=DEFAULT_CONNECTION_LIMIT, metavar="N",
                        help="most open client connections; past it new ones wait in the listen backlog until some "
                             f"close (default: {DEFAULT_CONNECTION_LIMIT}; waitress's own is 100)")
    parser.add_argument("--channel-timeout", type=int, default=DEFAULT_CHANNEL_TIMEOUT, metavar="SECONDS",
                        help="close a connection that has sent and received nothing for this long, a half-sent "
                             f"request included (default: {DEFAULT_CHANNEL_TIMEOUT}; waitress's own is 120)")
    parser.add_argument("--max-body-bytes", type=int, default=ServingLimits.max_body_bytes, metavar="N",
                        help="largest /predict body; larger ones get a 413 (default: "
                             f"{ServingLimits.max_body_bytes}, 2 MiB)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="PyTorch intra-op threads per forward pass (default: 1; see docs/serving.md)")
    parser.add_argument("--micro-batch", type=int, default=16, metavar="N",
                        help="run the texts of concurrent requests together, up to N per forward pass; 0 = off "
                             "(default: 16)")


def run(args: argparse.Namespace) -> int:
    from bench.serving.serve import (
        MicroBatcher,
        Predictor,
        check_server_settings,
        create_app,
        ensure_open_files,
        make_server,
        server_url,
    )

    # Settings first, so that a typo costs no model load.
    check_server_settings(args.threads, args.connection_limit, args.channel_timeout, args.max_body_bytes)
    ensure_open_files(args.connection_limit)
    limits = ServingLimits(max_body_bytes=args.max_body_bytes)
    predictor = Predictor(args.checkpoint, precision=args.precision, torch_threads=args.torch_threads,
                          device=args.device)
    batcher = MicroBatcher(predictor, args.micro_batch) if args.micro_batch else None
    server = make_server(create_app(predictor, limits, batcher), host=args.host, port=args.port, threads=args.threads,
                         limits=limits, connection_limit=args.connection_limit, channel_timeout=args.channel_timeout)

    def stop(signum, frame):  # SIGTERM -> the same clean shutdown as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    # One line on stdout, read by `bench loadtest` and the tests to find a --port 0 server.
    print(f"serving on {server_url(server)}", flush=True)
    print(f"model {predictor.checkpoint} ({predictor.precision}, {predictor.torch_threads} torch thread(s), "
          f"{predictor.inference_slots} concurrent forward pass(es), {args.threads} waitress threads, "
          f"up to {args.connection_limit} connections, idle ones closed after {args.channel_timeout} s, "
          f"micro-batching {f'up to {args.micro_batch} texts' if batcher else 'off'}); "
          "Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        server.run()  # returns after SIGINT/SIGTERM, once waitress has shut its worker threads down
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        if batcher:
            batcher.close()
    return 0
