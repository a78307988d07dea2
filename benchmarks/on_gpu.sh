#!/usr/bin/env bash
# The device check as one command, for the `device` tool when a GPU is lent: install, run the GPU check, then the
# `standard` preset (resumable: rerun to continue), leaving everything to publish under $OUT.
#   bash benchmarks/on_gpu.sh                  # gpu_check only (under 10 minutes)
#   bash benchmarks/on_gpu.sh standard         # then `medaugbench run standard` into $OUT/standard
# Offline machines (the device tool's): carry in .whl a wheel of this project (pip wheel --no-deps -w .whl .) and
# the packages the image lacks (diffusers, medmnist, pydicom, torch-fidelity, pluggy, wand, medmnistc ...; the device
# tool's notes say how); they are installed from there beside the image's own torch, the working tree first on the
# path. Robustness scoring (standard's `robustness = true`, gpu_check's robustness cell) also
# needs ImageMagick's MagickWand library: without it gpu_check reports the cell skipped and why, and `run standard`
# stops before training with the install message.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$(pwd)/gpu-out}"
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH="$(pwd):/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  medaugbench() { python3 -m benchmark.cli "$@"; }
else
  python3 -m venv .venv-gpu && . .venv-gpu/bin/activate
  pip install -q torch==2.14.1 torchvision==0.29.1 && pip install -q -e ".[robustness]" \
    && pip install -q --no-deps medmnistc==0.1.0
fi
export MEDAUGBENCH_DATA_DIR="${MEDAUGBENCH_DATA_DIR:-$(pwd)/../shared/data/medmnist}"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
python3 benchmarks/gpu_check.py > "$OUT/gpu_check.json" 2> "$OUT/gpu_check.log"
cat "$OUT/gpu_check.json"
if [ "${1:-}" = standard ]; then
  medaugbench run standard -o "$OUT/standard" --workers-per-gpu 4 > "$OUT/standard.log" 2>&1 || tail -20 "$OUT/standard.log"
fi
