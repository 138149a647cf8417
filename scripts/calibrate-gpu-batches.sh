#!/usr/bin/env bash
# Does each workload still reach its target when the GPU matrix's weak-scaled cells give every GPU
# the batch that keeps it busy? Trains, in one CPU process, as a scaling=weak cell on 8 GPUs would
# (global batch 8 x device_batch, learning rate by its square root: bench/harness/calibrate.py
# --weak-processes); convergence only, speed is a GPU's to show. docs/gpu.md quotes the output.
#   BENCH_DATA_DIR=... bash scripts/calibrate-gpu-batches.sh > calibration.log
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
calibrate() { "$PY" -m bench.harness.calibrate --weak-processes 8 --seeds 3 --max-seconds 36000 "$@"; }
calibrate --workload maintenance --variant gru --max-epochs 60 --candidates 0.55 --params '{"device_batch": 64}'
calibrate --workload maintenance --variant gru --max-epochs 60 --candidates 0.55 --params '{"device_batch": 256}'
calibrate --workload traffic --variant ae --max-epochs 40 --candidates 0.80 --params '{"device_batch": 512}'
calibrate --workload traffic --variant ae --max-epochs 40 --candidates 0.80 --params '{"device_batch": 2048}'
