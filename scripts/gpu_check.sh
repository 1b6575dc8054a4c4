#!/usr/bin/env bash
# The first-GPU-run check (at most 5 minutes on one GPU): training in fp16/bf16 with channels_last and
# torch.compile, SIGKILL + --resume bit-identical, evaluate/predict/features/fid/export and the fast path on
# CUDA. One line per check, then "gpu_check: N passed, M failed"; results in benchmarks/results/gpu-check-cuda.json.
# Usage, from the repository root on the GPU machine: scripts/gpu_check.sh [RESULTS_JSON]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
timeout 300 python3 scripts/gpu_check.py "${1:-benchmarks/results/gpu-check-cuda.json}"
