#!/usr/bin/env bash
# The device check as one command, for the `device` tool when a GPU is lent: install, run the GPU check, then the
# `standard` preset (resumable: rerun to continue), leaving everything to publish under $OUT.
#   bash benchmarks/on_gpu.sh                  # gpu_check only (under 10 minutes)
#   bash benchmarks/on_gpu.sh standard         # then `medaugbench run standard` into $OUT/standard
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$(pwd)/gpu-out}"
mkdir -p "$OUT"
python3 -m venv .venv-gpu && . .venv-gpu/bin/activate
pip install -q torch==2.14.1 torchvision==0.29.1 && pip install -q -e .
export MEDAUGBENCH_DATA_DIR="${MEDAUGBENCH_DATA_DIR:-$(pwd)/../shared/data/medmnist}"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
python benchmarks/gpu_check.py > "$OUT/gpu_check.json" 2> "$OUT/gpu_check.log"
cat "$OUT/gpu_check.json"
if [ "${1:-}" = standard ]; then
  medaugbench run standard -o "$OUT/standard" --workers-per-gpu 4 > "$OUT/standard.log" 2>&1 || tail -20 "$OUT/standard.log"
fi
