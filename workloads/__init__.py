"""Workload registry: name -> Workload class. The harness only ever looks workloads up here."""

from __future__ import annotations

import importlib

from bench.errors import one_of

# name -> "module:Class"; imported lazily so that `bench --help` does not import torch models.
REGISTRY = {
    "maintenance": "workloads.maintenance:Maintenance",
    "traffic": "workloads.traffic:Traffic",
    "sentiment": "workloads.sentiment:Sentiment",
}


def workload_class(name: str):
    if name not in REGISTRY:
        raise one_of("workload", name, list(REGISTRY))
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_workload(name: str, variant: str | None = None, params: dict | None = None):
    return workload_class(name)(variant=variant, params=params)
