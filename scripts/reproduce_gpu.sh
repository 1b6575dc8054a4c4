#!/usr/bin/env bash
# The `gpu` budget of `inception-v3 reproduce` on one H100: full-width models on Fashion-MNIST at the
# 79, 151 and 299 receptive fields (table2), the Table 3 ladder and label smoothing, one seed each
# (about 1.5 minutes a run, estimated), then the report. Records land beside the committed CPU ones.
# Usage, from the repository root on the GPU machine: scripts/reproduce_gpu.sh [SEEDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
for experiment in table2 table3 label-smoothing; do
    python3 -m inception_v3.cli reproduce "$experiment" --budget gpu --seeds "${1:-1}" \
        --records docs/reproduction/records --report docs/reproduction.md
done
