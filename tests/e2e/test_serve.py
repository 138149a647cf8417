"""The tests of tests/unit/test_serve.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys

import pytest

from bench.serving.loadtest import ServerProcess, get_json, loopback_address, measure, write_report
from tests.helpers.serve import open_slow_clients


@pytest.mark.e2e
def test_real_server_answers_concurrent_clients_and_stops_cleanly(checkpoint, tmp_path):
    server = ServerProcess(checkpoint, threads=32, torch_threads=1, micro_batch=16, startup_timeout=180)
    with server:
        host, port = loopback_address(server.url)
        assert host == "127.0.0.1"
        assert get_json(server.url, "/health") == {"status": "ok"}

        # A client mistake over the wire is a JSON 400 too.
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("POST", "/predict", body=b'{"text": 3}', headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 400 and "must be a string" in json.loads(response.read())["error"]
        conn.close()

        texts = ["great", "broke fast", "love it", "meh", "awful sound", "works fine"]
        result = measure(server.url, texts, concurrency=8, requests=500, max_seconds=300, precision="fp32",
                         micro_batch=16)
        assert (result.requests, result.errors) == (500, 0)
        assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms

        readme, raw = write_report(tmp_path, [result], {
            "command": "test", "texts": "test texts", "mean_chars": 7.0, "requests": 500, "max_seconds": 300,
            "server": {"checkpoint": "c", "base_model": "b", "max_length": 128, "trained": "untrained",
                       "threads": 32, "torch_threads": 1, "inference_slots": 2, "packages": {}},
            "environment": {"date_utc": "now", "cpu_model": "cpu", "cpu_count": 2, "python": "3"},
            "loadavg_before": 0.0, "loadavg_after": 0.0})
        row = next(line for line in readme.read_text().splitlines() if line.startswith("| fp32"))
        assert [cell.strip() for cell in row.split("|")[1:6]] == ["fp32", "16", "8", "500", "0"]
        assert json.loads(raw.read_text())["results"][0]["requests"] == 500

    assert server.process.returncode == 0  # SIGTERM -> clean waitress shutdown, exit 0
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2)


@pytest.mark.e2e
def test_real_server_answers_past_hundreds_of_idle_and_half_sent_connections(checkpoint):
    """With waitress's defaults (at most 100 connections, idle ones closed after 120 s) 100 idle
    sockets shut /health out for two minutes; `bench serve`'s defaults keep it answering."""
    server = ServerProcess(checkpoint, threads=8, torch_threads=1, micro_batch=16, startup_timeout=180,
                           extra_args=["--max-body-bytes", "2048"])
    with server:
        host, port = loopback_address(server.url)
        sockets = open_slow_clients(host, port, 250)
        try:
            assert get_json(server.url, "/health", timeout=30) == {"status": "ok"}
            conn = http.client.HTTPConnection(host, port, timeout=60)
            conn.request("POST", "/predict", body=json.dumps({"text": "works great"}),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            assert response.status == 200 and "label" in json.loads(response.read())
            # --max-body-bytes reaches the app: a 3 kB body is over the 2048 bytes asked for.
            conn.request("POST", "/predict", body=json.dumps({"text": "a" * 3000}),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            assert response.status == 413 and "2048" in json.loads(response.read())["error"]
            conn.close()
        finally:
            for sock in sockets:
                sock.close()
    assert server.process.returncode == 0


@pytest.mark.e2e
def test_serve_refuses_a_connection_limit_beyond_the_open_file_limit(tmp_path):
    resource = pytest.importorskip("resource")
    from tests.conftest import PROJECT_ROOT

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    result = subprocess.run([sys.executable, "-m", "bench", "serve", "--checkpoint", str(tmp_path), "--port", "0",
                             "--connection-limit", "1000"], preexec_fn=low_limit, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and "open files" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.e2e
def test_serve_raises_its_soft_open_file_limit_to_fit_its_connections():
    pytest.importorskip("resource")
    from tests.conftest import PROJECT_ROOT

    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096)); "
            "from bench.serving.serve import ensure_open_files; ensure_open_files(1000); "
            "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert 1000 < int(result.stdout) <= 4096

