#!/usr/bin/env bash
# Does each workload still reach its target when the GPU matrix's weak-scaled cells give every GPU
# the batch that keeps it busy? Trains, in one CPU process, as a scaling=weak cell on N GPUs would
# (global batch N x device_batch, learning rate by its square root: bench/harness/calibrate.py
# --weak-processes N); convergence only, speed is a GPU's to show. docs/gpu.md quotes the output.
#   BENCH_DATA_DIR=... bash scripts/calibrate-gpu-batches.sh > calibration.log
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
calibrate() { local gpus=$1; shift; "$PY" -m bench.harness.calibrate --weak-processes "$gpus" --seeds 3 --max-seconds 36000 "$@"; }
for gpus in 8 4 1; do
  calibrate "$gpus" --workload maintenance --variant gru --max-epochs 60 --candidates 0.55 --params '{"device_batch": 256}'
  calibrate "$gpus" --workload maintenance --variant lstm --max-epochs 60 --candidates 0.55 --params '{"device_batch": 256}'
  calibrate "$gpus" --workload traffic --variant ae --max-epochs 40 --candidates 0.80 --params '{"device_batch": 256}'
  calibrate "$gpus" --workload traffic --variant lstm_ae --max-epochs 40 --candidates 0.76 --params '{"device_batch": 256}'
done
# the batches not chosen, at 8 GPUs
calibrate 8 --workload maintenance --variant gru --max-epochs 60 --candidates 0.55 --params '{"device_batch": 64}'
calibrate 8 --workload traffic --variant ae --max-epochs 80 --candidates 0.80 --params '{"device_batch": 512}'
calibrate 8 --workload traffic --variant ae --max-epochs 40 --candidates 0.80 --params '{"device_batch": 2048}'
# sentiment: one seed, 30 CPU minutes of its training clock (about 60 of the 600 steps), on 500 validation reviews
"$PY" -m bench.harness.calibrate --workload sentiment --weak-processes 8 --seeds 1 --max-steps 600 --max-seconds 1800 \
    --candidates 0.88,0.90 --params '{"target": 0.9, "max_length": 128, "global_batch": 128, "lr": 1.0e-4,
    "device_batch": 32, "eval_every_steps": 10, "val_subset": 500}'
