"""`benchmarks/gpu_check.py --device cpu --tiny` runs end to end and prints one valid JSON report, so the GPU check
is known to work before a GPU is lent: its reduced grid reuses a generator across classifier seeds, chooses a DDPM
guidance weight and scores class fidelity, and its robustness cell is scored on MedMNIST-C (or says why not)."""

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
    require_medmnist("breastmnist")  # the tiny robustness cell
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
    sampling = report["ddpm_sampling"]
    assert sampling["ddim_50"] > sampling["ddpm_1000"] > 0 and sampling["dpm_solver_20"] > sampling["ddpm_1000"]
    assert sampling["ddim_50"] > sampling["ddim_50_guided"] > 0  # a guided step runs the denoiser twice
    grid = report["grid"]
    assert grid["cells"] == 6 and grid["cpu_workers"] == 2 and grid["seconds_1"] > 0 and grid["seconds_2"] > 0
    assert set(grid["synthesis"]) == {"ddpm 0/0", "ddpm 0/1000"}  # one generator seed, two classifier seeds
    runs = grid["synthesis"].values()
    assert len({run["generator"] for run in runs}) == 1 and any(run["generator_reused"] for run in runs)
    for run in grid["synthesis"].values():
        assert list(run["guidance_chosen"].values())[0] in (0.0, 0.5, 1.0, 2.0)
        assert 0 <= run["fidelity"] <= 1
    assert_robustness(report["robustness"])


def assert_robustness(robustness: dict) -> None:
    """The robustness cell was scored on BreastMNIST's 7 corruptions × 5 severities, or says it needs medmnistc."""
    if "skipped" in robustness:
        assert "medmnistc" in robustness["skipped"]
        return
    assert robustness["corrupted_sets"] == 35 and robustness["images_per_set"] == 156
    assert 0 <= robustness["mean_corrupted_balanced_error"] <= 1 and robustness["scoring_seconds"] > 0
