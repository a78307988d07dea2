"""Quality records reach every generative run, early stopping uses them, and `medaugbench quality` scores a saved
generator or an image set from another tool."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark.dataset import DataOptions, load_dataset
from benchmark.registry import create_strategy
from benchmark.strategy import StrategyContext
from tests.conftest import require_medmnist

# A domain network trained for 30 steps: enough for a feature space that separates real from noise, fast on CPU.
QUALITY = dict(quality_extractor="domain", quality_params={"steps": 30}, quality_images=200)
CGAN = dict(generator_steps=30, generator_batch_size=16, generator_params={"base_channels": 8})


@pytest.fixture
def breast(tmp_path):
    require_medmnist("breastmnist")
    data = load_dataset("breastmnist", DataOptions(per_class_cap=60))
    return StrategyContext(dataset=data, device=torch.device("cpu"), seed=0, work_dir=tmp_path, progress=False)


def test_generative_run_carries_a_quality_record(breast):
    strategy = create_strategy("cgan", policy="multiply", multiplier=1.0, **CGAN, **QUALITY)
    strategy.synthesize(breast)
    quality = strategy.report()["quality"]
    json.dumps(quality, allow_nan=False)
    overall = quality["overall"]
    assert overall["fake_vs_train"]["fid"] > overall["test_vs_train"]["fid"] > 0 and overall["n_fake"] == 120
    assert quality["extractor"]["name"] == "domain"
    assert set(quality["per_class"]) == {"malignant", "normal, benign"}


def test_early_stopping_scores_the_generator_on_held_out_images(breast):
    strategy = create_strategy("cgan", early_stop_every=10, early_stop_patience=2, policy="fixed", counts={"0": 4},
                               **{**CGAN, "generator_steps": 60}, **QUALITY)
    strategy.synthesize(breast)
    history = strategy.report()["generator"]["histories"]["all"]
    assert history["quality_step"][:2] == [10, 20] and all(q > 0 for q in history["quality"])
    scores = history["quality"]
    if history["stopped_early"]:  # stopped because the last `patience` evaluations did not beat the best before them
        assert min(scores[-2:]) >= min(scores[:-2]) and history["steps"] < 60
    else:
        assert history["steps"] == 60


def test_quality_cli_on_a_saved_generator_and_on_an_npz(cli, tmp_path):
    require_medmnist("breastmnist")
    saved = tmp_path / "cgan-breast"
    result = cli("synth", "--dataset", "breastmnist", "--strategy", "cgan", "--generator-steps", "30", "--out", str(saved),
                 "-S", "generator_params.base_channels=8")
    assert result.exit_code == 0, result.output
    out = tmp_path / "quality.json"
    result = cli("quality", "--dataset", "breastmnist", "--generator", str(saved), "--n", "100", "--out", str(out), "-E", "steps=30")
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["overall"]["n_fake"] == 100 and report["overall"]["memorisation"]["pixel"]["closest_pairs"]
    assert out.with_suffix(".pairs.png").is_file()

    real = np.load(require_medmnist("breastmnist"))
    np.savez(tmp_path / "copies.npz", images=real["train_images"][:50], labels=real["train_labels"][:50])
    result = cli("quality", "--dataset", "breastmnist", "--images", str(tmp_path / "copies.npz"), "--out", str(tmp_path / "q2.json"),
                 "-E", "steps=30")
    assert result.exit_code == 0, result.output
    copies = json.loads((tmp_path / "q2.json").read_text())
    assert copies["overall"]["memorisation"]["pixel"]["near_copy_fraction"] == 1.0  # exact training images are all flagged


def test_quality_cli_needs_exactly_one_source(cli):
    result = cli("quality", "--dataset", "breastmnist")
    assert result.exit_code == 1 and "exactly one source" in result.output
