"""Helpers for e2e/test_sentiment.py, unit/test_sentiment.py; `offline`, an autouse fixture, applies
where it is imported."""

from __future__ import annotations

import pytest

from workloads.sentiment import resolve_model


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No hub: the model resolves from the packaged copy or the cache, as on these machines."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolve_model.cache_clear()
    yield
    resolve_model.cache_clear()
