"""What bad input gets: one line `error: ...` naming the file (or the valid choices), exit code 2.

The table below is the contract documented in docs/data.md. Each case builds a corrupted copy of a
real dataset file (or a bad config) in tmp_path, points BENCH_DATA_DIR there and runs the command.

The table runs in-process through `bench.cli.main` (an uncaught exception fails the test, which is
what a traceback would be): every `python -m bench` subprocess pays several seconds importing torch
and scipy for the whole CLI, too slow for 25 cases. A few cases of each kind are then run again as a
user runs them, in a subprocess, to check exit code, a single stderr line and no traceback.

The tests that start processes are in tests/e2e/test_bad_inputs.py."""

from __future__ import annotations

import pytest

from bench.cli import main
from tests.helpers.bad_inputs import (
    CASES,
    RUN,
    _argv,
)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_error(case, tmp_path, monkeypatch, capsys):
    name, build, _, message, code = case
    root = tmp_path / "data"
    root.mkdir()
    made = build(root)
    argv = _argv(case, root, made)
    monkeypatch.setenv("BENCH_DATA_DIR", str(root))
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    # one error line, last; before it at most progress lines (fetch says what it is trying)
    assert err[-1].startswith("error: ") and not any(line.startswith("error") for line in err[:-1]), err
    assert message in err[-1]
    if case[2] is RUN:  # refused before launching: no run directory, no cell
        assert not (root / "runs").exists()


def test_the_table_is_at_least_15_distinct_inputs():
    assert len({c[0] for c in CASES}) == len(CASES) >= 15


def test_accelerate_config_with_unknown_key(tmp_path):
    """Topologies are read by accelerate's own ClusterConfig, which rejects unknown keys."""
    from bench.errors import BenchError
    from bench.harness.topology import load_topology
    from bench.paths import ACCELERATE_CONFIGS_DIR

    text = (ACCELERATE_CONFIGS_DIR / "cpu-1proc.yaml").read_text() + "num_gpus_please: 3\n"
    (tmp_path / "odd.yaml").write_text(text)
    with pytest.raises(BenchError, match=r"odd.yaml: not a valid accelerate config .*unknown keys \(\['num_gpus_please'\]\)"):
        load_topology("odd", tmp_path)
    (tmp_path / "broken.yaml").write_text("distributed_type: [NO\n")
    with pytest.raises(BenchError, match="broken.yaml: malformed YAML"):
        load_topology("broken", tmp_path)

