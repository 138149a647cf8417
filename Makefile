# Two commands set everything up on a fresh machine:
#   make smoke   install, then run the smoke matrix and write its report
#   make test    install (with test tools), then run the unit and end-to-end tests
# Data: BENCH_DATA_DIR must name the datasets folder (`python -m bench data fetch` fills the
# default cache); inside this repository's workspace it defaults to ../shared/data.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned: on these machines 2.13.0 is the CPU wheel on disk. Installing the project
# with no torch present would pull a multi-GB CUDA build. Override TORCH_SPEC for a GPU machine.
TORCH_SPEC ?= torch==2.13.0
# Every install takes its exact versions from the lock (a pip constraints file); `make lock`
# regenerates it and `make test-latest` tests the newest allowed versions on purpose (docs/install.md).
# LOCK= (empty) installs without it, e.g. with another TORCH_SPEC on a GPU host.
LOCK ?= requirements.lock
PIP_LOCKED = $(BIN)/pip install -q $(if $(LOCK),-c $(LOCK))
export BENCH_DATA_DIR ?= $(abspath ../shared/data)
RUN_ID := $(shell date -u +%Y%m%d-%H%M%S)

.PHONY: install install-test smoke test gate benchmarks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(PIP_LOCKED) "$(TORCH_SPEC)"
	$(PIP_LOCKED) -e .

install-test: $(BIN)/python
	$(PIP_LOCKED) "$(TORCH_SPEC)"
	$(PIP_LOCKED) -e ".[test]"

# The lock: a fresh venv takes the newest versions pyproject.toml allows (torch as TORCH_SPEC),
# and its freeze becomes requirements.lock. Review the diff, run `make test`, commit.
.PHONY: lock test-latest
LOCK_VENV := $(shell mktemp -u -d /tmp/bench-lock.XXXXXX)
lock:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q "$(TORCH_SPEC)"
	$(LOCK_VENV)/bin/pip install -q -e ".[test,deepspeed]"  # deepspeed locked too, for '.[deepspeed]' installs
	$(LOCK_VENV)/bin/python scripts/write_lock.py $(LOCK_VENV) requirements.lock
	rm -rf $(LOCK_VENV)

# The unit and end-to-end tests against the newest versions the ranges allow, in .venv-latest
# (the lock untouched): drift is found here, on purpose, and not by a fresh clone.
test-latest:
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install -q "$(TORCH_SPEC)"
	.venv-latest/bin/pip install -q --upgrade --upgrade-strategy eager -e ".[test]"
	.venv-latest/bin/python scripts/write_lock.py .venv-latest - | diff requirements.lock - || true
	.venv-latest/bin/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not slow"

smoke: install
	$(BIN)/python -m bench run --matrix smoke --run-id smoke-$(RUN_ID); status=$$?; \
	$(BIN)/python -m bench report results/smoke-$(RUN_ID) --out reports/smoke-$(RUN_ID); exit $$status

# Two pytest workers (pytest-xdist), each taking the next test as it frees up: most tests wait on
# a launched cell's imports and rendezvous, so two keep a 2-core machine busy (23.8 min for the whole
# suite against about 45 one at a time, measured). `make test` leaves out the tests marked slow (the
# heaviest end-to-end paths, each also covered more cheaply: see pyproject.toml's markers);
# `make test-all` runs every test, before a release or after touching SLURM, packaging or --parallel.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

.PHONY: test-all test-unit
# The fast tier, tests/unit: every test that starts no process. tests/e2e holds the ones that
# launch cells, servers or scripts (marked e2e); a test in the wrong folder fails the collection,
# and in this tier a test that starts a process fails, naming itself (tests/conftest.py).
test-unit: install-test
	BENCH_TEST_TIER=unit $(PYTEST) tests/unit -m "not slow"

test: install-test
	$(PYTEST) -m "not slow"

test-all: install-test
	$(PYTEST)

# The CI regression gate (docs/gate.md): the base commit (BENCH_GATE_BASE, else HEAD^) and this
# checkout measured side by side on this host, in interleaved rounds of the gate matrix, judged over
# launches and seeds at a family-wise false-alarm rate of at most 5%. The report goes to
# results/gate-<time>/gate.md and, as JUnit XML, to results/gate.xml.
gate: install-test
	$(BIN)/python -m bench gate --folder results/gate-$(RUN_ID) --format junit --out results/gate.xml

# The committed per-hardware baselines, for a machine of your own: the smoke matrix against the
# baseline of this hardware (bench compare --baseline auto), and the micro-benchmarks.
.PHONY: gate-baseline
gate-baseline: install-test
	$(BIN)/python -m bench run --matrix smoke --run-id smoke-$(RUN_ID) || true
	status=0; \
	$(BIN)/python -m bench compare --baseline auto results/smoke-$(RUN_ID) || status=$$?; \
	$(BIN)/python -m tests.benchmarks.gate || status=$$?; \
	exit $$status

benchmarks: install-test
	$(BIN)/python -m pytest tests/benchmarks --benchmark-enable --benchmark-json=results/benchmarks.json
