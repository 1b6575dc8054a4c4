#!/usr/bin/env bash
# The GPU benchmark, at most 4 minutes on one GPU (run scripts/gpu_check.sh first): ours vs torchvision vs timm
# in eager bf16/fp32 x NCHW/channels_last, compiled bf16 channels_last inference, training FLOP utilization
# against the card's measured peak, and the GPU data path (nvjpeg decode + augmentation on the GPU). Each
# measured row is saved as it comes, so the time limits below keep what was measured.
# Usage, from the repository root on the GPU machine: benchmarks/gpu.sh [OUT_DIR]
# then commit benchmarks/results/gpu-cuda.json and docs/performance.md.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-benchmarks/results}"
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch, torchvision, timm; assert torch.cuda.is_available(), 'no CUDA device'" || exit 2
timeout 190 python3 -m benchmarks.run --profile gpu --device cuda --out "$out/gpu-cuda.json"
rc=$?
if [ $rc -eq 124 ]; then echo "benchmarks/gpu.sh: the model benchmark stopped at its 190 s limit; the rows measured so far are kept"
elif [ $rc -ne 0 ]; then echo "benchmarks/gpu.sh: the model benchmark failed (exit $rc)"; fi
timeout 30 python3 -c "
import json, sys
from benchmarks.gpu_data import measure_gpu_data
path = sys.argv[1]
result = json.load(open(path))
result['gpu_data_path'] = measure_gpu_data()
json.dump(result, open(path, 'w'), indent=1)
" "$out/gpu-cuda.json" || echo "benchmarks/gpu.sh: the GPU data path was not measured (time limit or error)"
python3 -m benchmarks.table --results "$out"
