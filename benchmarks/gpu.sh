#!/usr/bin/env bash
# The GPU benchmark (under 5 minutes on an H100): ours vs torchvision vs timm with AMP bf16,
# channels_last and torch.compile; training FLOP utilization against the card's measured bf16
# peak; and the GPU data path (nvjpeg decode + augmentation on the GPU).
# Usage, from the repository root on the GPU machine: benchmarks/gpu.sh [OUT_DIR]
# then commit benchmarks/results/gpu-cuda.json and run `python -m benchmarks.table`.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-benchmarks/results}"
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch, torchvision, timm; assert torch.cuda.is_available(), 'no CUDA device'"
python3 -m benchmarks.run --profile gpu --device cuda --out "$out/gpu-cuda.json"
python3 -c "
import json, sys
from benchmarks.gpu_data import measure_gpu_data
path = sys.argv[1]
result = json.load(open(path))
result['gpu_data_path'] = measure_gpu_data()
json.dump(result, open(path, 'w'), indent=1)
" "$out/gpu-cuda.json"
python3 -m benchmarks.table --results "$out"
