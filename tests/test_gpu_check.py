"""`benchmarks/gpu_check.py --device cpu --tiny` runs end to end and prints one valid JSON report, so the GPU check
is known to work before a GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import require_medmnist

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_gpu_check_tiny_on_cpu_prints_its_json_report(tmp_path):
    require_medmnist("pneumoniamnist")
    env = os.environ | {"MEDAUGBENCH_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny"], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["benchmark"] == "gpu_check" and report["tiny"] and report["environment"]["device"] == "cpu"
    for setting in report["train"]["settings"].values():
        assert setting["ours_images_per_s"] > 0 and setting["compute_limit_images_per_s"] > 0
        assert setting["dataloader_images_per_s"] > 0
    assert set(report["generators"]) == {"cgan", "dcgan", "vae", "ddpm"}
    assert all(g["train_steps_per_s"] > 0 and g["sample_images_per_s"] > 0 for g in report["generators"].values())
    assert report["ddpm_sampling"]["ddim_50"] > report["ddpm_sampling"]["ddpm_1000"] > 0
    grid = report["grid"]
    assert grid["cells"] == 6 and grid["cpu_workers"] == 2 and grid["seconds_1"] > 0 and grid["seconds_2"] > 0
