"""Load benchmark for `bench serve`: latency percentiles and requests/s under concurrent clients.

Each client is a thread holding one keep-alive HTTP/1.1 connection (http.client) that posts
`{"text": ...}` to /predict, one request after another, until the level's request count or time
budget is spent. Only loopback servers are measured: the figures are about the service on this
machine, not about a network. The client threads share the machine's cores with the server, as
any load generator on the same host does; docs/serving.md says how to read the numbers.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.errors import BenchError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
UCI_SENTENCES = Path("amazon_reviews") / "amazon_cells_labelled.txt"

# Used only where the UCI sentences are not available (no BENCH_DATA_DIR); the report says which.
FALLBACK_TEXTS = (
    "Great phone, the battery lasts all day.",
    "The headset broke after two days, very disappointed.",
    "Works as described and shipping was fast.",
    "Terrible sound quality, I returned it.",
    "I love the design, and the screen is bright and sharp.",
    "Does not charge anymore. Waste of money.",
    "Good value for the price.",
    "The case cracked the first time I dropped it.",
)


@dataclass
class LevelResult:
    """One (precision, concurrency) level of the benchmark."""

    precision: str
    micro_batch: int
    """Most texts per forward pass of the server's micro-batcher; 0 = micro-batching off."""
    concurrency: int
    requests: int
    """Successful (HTTP 200) requests measured."""
    errors: int
    """Requests that failed: a status other than 200, a malformed answer or a connection error."""
    seconds: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float


def load_texts() -> tuple[list[str], str]:
    """(texts, where they came from): the 1,000 UCI Amazon sentences if the data dir has them."""
    from bench.paths import data_dir

    path = data_dir() / UCI_SENTENCES
    if path.is_file():
        texts = [line.split("\t")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
        texts = [t for t in texts if t]
        if texts:
            return texts, f"UCI Sentiment Labelled Sentences, Amazon part ({len(texts)} sentences)"
    return list(FALLBACK_TEXTS), f"{len(FALLBACK_TEXTS)} built-in short review sentences (UCI file not found)"


def loopback_address(url: str) -> tuple[str, int]:
    """(host, port) of an http:// URL on the loopback interface, else BenchError."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise BenchError(f"--url must look like http://127.0.0.1:PORT, got {url!r}")
    if parts.hostname not in LOOPBACK_HOSTS:
        raise BenchError(f"--url must point at this machine's loopback ({', '.join(LOOPBACK_HOSTS)}), got {parts.hostname!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise BenchError(f"--url has an invalid port: {url!r}") from None
    return parts.hostname, port


def get_json(url: str, path: str, timeout: float = 10.0) -> dict[str, Any]:
    host, port = loopback_address(url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise BenchError(f"{url}{path} answered HTTP {response.status}")
        return json.loads(body)
    except (OSError, http.client.HTTPException, json.JSONDecodeError) as exc:
        raise BenchError(f"cannot reach {url}{path} ({exc})") from None
    finally:
        conn.close()


class ServerProcess:
    """`python -m bench serve --port 0` in a subprocess, for as long as the `with` block lasts.

    The server picks a free loopback port and prints it; stop() sends SIGTERM (a clean waitress
    shutdown) and waits, killing the process only if it does not exit in time. `extra_args` are
    more `bench serve` flags (e.g. --connection-limit, --channel-timeout, --max-body-bytes).
    """

    def __init__(self, checkpoint: Path, precision: str = "fp32", threads: int = 32, torch_threads: int = 1,
                 startup_timeout: float = 300.0, micro_batch: int = 16, extra_args: list[str] | tuple[str, ...] = ()) -> None:
        self.command = [sys.executable, "-m", "bench", "serve", "--checkpoint", str(checkpoint), "--host", "127.0.0.1",
                        "--port", "0", "--precision", precision, "--threads", str(threads),
                        "--torch-threads", str(torch_threads), "--micro-batch", str(micro_batch), *extra_args]
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.url = ""
        self._logs = tempfile.TemporaryDirectory(prefix="bench-serve-")

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        stdout_path, stderr_path = (Path(self._logs.name) / name for name in ("stdout", "stderr"))
        with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(self.command, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            for line in stdout_path.read_text().splitlines():
                if line.startswith("serving on "):
                    self.url = line.removeprefix("serving on ").strip()
                    return
            if self.process.poll() is not None:
                tail = stderr_path.read_text().strip().splitlines()[-5:]
                self.stop()
                raise BenchError(f"the server exited with code {self.process.returncode}: {' | '.join(tail)}")
            time.sleep(0.1)
        self.stop()
        raise BenchError(f"the server did not start within {self.startup_timeout:.0f} s")

    def stop(self, timeout: float = 30.0) -> int | None:
        """Stop the server; its exit code (0 after a clean shutdown)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._logs.cleanup()
        return self.process.returncode


def measure(url: str, texts: list[str], concurrency: int, requests: int, max_seconds: float,
            precision: str = "", micro_batch: int = 0, warmup: int | None = None) -> LevelResult:
    """Run `requests` POST /predict calls from `concurrency` client threads (or until `max_seconds`).

    A warm-up of max(10, concurrency) requests at the same concurrency comes first and is not
    measured: it opens the connections and gets past the server's first-call costs.
    """
    import numpy as np

    host, port = loopback_address(url)
    if concurrency < 1 or requests < 1:
        raise BenchError("concurrency and request count must be at least 1")
    bodies = [json.dumps({"text": t}).encode() for t in texts]
    _drive(host, port, bodies, concurrency, warmup if warmup is not None else max(10, concurrency), max_seconds)
    started = time.perf_counter()
    latencies, errors = _drive(host, port, bodies, concurrency, requests, max_seconds)
    seconds = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000.0 if latencies else np.asarray([float("nan")])
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return LevelResult(
        precision=precision, micro_batch=micro_batch, concurrency=concurrency, requests=len(latencies), errors=errors,
        seconds=round(seconds, 3), requests_per_s=len(latencies) / seconds,
        p50_ms=float(p50), p95_ms=float(p95), p99_ms=float(p99), mean_ms=float(ms.mean()),
    )


def _drive(host: str, port: int, bodies: list[bytes], concurrency: int, requests: int,
           max_seconds: float) -> tuple[list[float], int]:
    """(latencies in seconds of the successful requests, error count) for up to `requests` requests."""
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + max_seconds

    def next_index() -> int | None:
        nonlocal issued
        with lock:
            if issued >= requests or time.monotonic() >= deadline:
                return None
            issued += 1
            return issued - 1

    def client() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection(host, port, timeout=60)
        while (i := next_index()) is not None:
            ok = False
            start = time.perf_counter()
            try:
                conn.request("POST", "/predict", body=bodies[i % len(bodies)],
                             headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                answer = response.read()
                elapsed = time.perf_counter() - start
                ok = response.status == 200 and "label" in json.loads(answer)
            except (OSError, http.client.HTTPException, ValueError):
                conn.close()  # reconnect on the next request
                conn = http.client.HTTPConnection(host, port, timeout=60)
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors += 1
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


def render_loadtest_markdown(results: list[LevelResult], context: dict[str, Any]) -> str:
    """The serving report: one table of every level, and what it was measured on."""
    from tabulate import tabulate

    rows = [[r.precision, r.micro_batch or "off", r.concurrency, r.requests, r.errors, r.requests_per_s, r.p50_ms, r.p95_ms, r.p99_ms,
             r.mean_ms] for r in results]
    table = tabulate(rows, headers=["precision", "micro-batch", "clients", "requests", "errors", "requests/s", "p50 ms", "p95 ms",
                                    "p99 ms", "mean ms"], tablefmt="github", floatfmt=".1f")
    env = context["environment"]
    server = context["server"]
    lines = [
        "# Serving: latency and throughput of `bench serve`",
        "",
        f"Generated by `{context['command']}` on {env['date_utc']}.",
        "",
        table,
        "",
        "- Each request: `POST /predict` with one text, `{\"text\": ...}`, over a keep-alive HTTP/1.1 "
        "connection per client on loopback (127.0.0.1); latency is client-side, send to last byte read.",
        f"- Texts: {context['texts']}, mean {context['mean_chars']:.0f} characters, sent in file order.",
        f"- Per level: up to {context['requests']} measured requests or {context['max_seconds']:.0f} s, after "
        "an unmeasured warm-up of max(10, clients) requests.",
        f"- Model: checkpoint `{server['checkpoint']}` ({server['base_model']}, max_length {server['max_length']}); "
        f"{server['trained']}.",
        f"- Server: waitress {server['threads']} threads, {server['torch_threads']} torch thread(s) per forward "
        f"pass, {server['inference_slots']} forward pass(es) at once; micro-batch N = up to N texts of concurrent "
        "requests per forward pass.",
        f"- Machine: {env['cpu_model']}, {env['cpu_count']} cores, no GPU used; client threads and server share "
        f"these cores. Load average (1 min) before / after: {context['loadavg_before']:.2f} / "
        f"{context['loadavg_after']:.2f}.",
        f"- bf16: {context.get('bf16_support', 'not recorded')}.",
        f"- Software: Python {env['python']}, " + ", ".join(f"{k} {v}" for k, v in server["packages"].items()) + ".",
        "",
    ]
    return "\n".join(lines)


def write_report(out_dir: Path, results: list[LevelResult], context: dict[str, Any]) -> tuple[Path, Path]:
    """README.md (the table) and loadtest.json (every figure and its context) under out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / "README.md"
    raw = out_dir / "loadtest.json"
    markdown.write_text(render_loadtest_markdown(results, context))
    raw.write_text(json.dumps({"context": context, "results": [asdict(r) for r in results]}, indent=2) + "\n")
    return markdown, raw


def server_context(meta: dict[str, Any], threads: int | None) -> dict[str, Any]:
    """What the report says about the server, from its GET /metadata answer."""
    serving = meta.get("serving", {})
    return {
        "checkpoint": meta.get("checkpoint"),
        "base_model": meta.get("base_model"),
        "max_length": meta.get("max_length"),
        "trained": ("fine-tuned, checkpoint metrics " + json.dumps(meta["metrics"])) if meta.get("metrics")
        else "no checkpoint metrics (an untrained classification head; latency does not depend on its training)",
        "threads": threads if threads is not None else "(unknown: server started elsewhere)",
        "torch_threads": serving.get("torch_threads"),
        "inference_slots": serving.get("inference_slots"),
        "packages": serving.get("packages", {}),
    }


def bf16_support() -> str:
    """Whether this CPU has bf16 instructions; without them bf16 autocast is emulated and slower."""
    from bench.harness.host import cpu_flags

    native = sorted(cpu_flags() & {"avx512_bf16", "amx_bf16"})
    if native:
        return f"the CPU has native bf16 instructions ({', '.join(native)})"
    return ("the CPU has no bf16 instructions (no avx512_bf16 or amx_bf16): bf16 matrix products are emulated "
            "through fp32 and autocast adds casts around them, so bf16 is expected to be slower here")


def loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")
