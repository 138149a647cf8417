"""The tests of tests/unit/test_text_cleaning.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.mark.e2e
def test_cleaning_needs_no_nltk_download(tmp_path):
    """Run the cleaning with NLTK's data search paths pointing nowhere: no corpus may be needed."""
    code = "from bench.data.text_cleaning import clean_for_baseline as c; print(c(\"Wasn't the best, not bad\"))"
    env = {**os.environ, "NLTK_DATA": str(tmp_path), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["wa", "not", "best", "not", "bad"]

