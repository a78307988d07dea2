"""Quality records reach every generative run, early stopping uses them, and `medaugbench quality` scores a saved
generator or an image set from another tool."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark.data.dataset import DataOptions, load_dataset
from benchmark.evaluate.features import ship_weights
from benchmark.evaluate.quality import FLOOR_FROM_UNUSED_TRAINING, FLOOR_FROM_VALIDATION
from benchmark.registry import create
from benchmark.train.record import QualityReport
from benchmark.train.strategy import StrategyContext
from tests.helpers import require_medmnist

# A domain network trained for 30 steps: enough for a feature space that separates real from noise, fast on CPU.
QUALITY = dict(quality_extractor="domain", quality_params={"steps": 30}, quality_images=200)
CGAN = dict(generator_steps=30, generator_batch_size=16, generator_params={"base_channels": 8})


@pytest.fixture
def breast(tmp_path):
    require_medmnist("breastmnist")
    data = load_dataset("breastmnist", DataOptions(per_class_cap=60))
    return StrategyContext(dataset=data, device=torch.device("cpu"), seed=0, work_dir=tmp_path, progress=False)


@pytest.mark.slow
def test_generative_run_carries_a_quality_record(breast):
    strategy = create("strategy", "cgan", policy="multiply", multiplier=1.0, **CGAN, **QUALITY)
    strategy.assess(breast, strategy.synthesize(breast))  # the quality step runs after synthesis
    raw = strategy.report()["quality"]
    json.dumps(raw, allow_nan=False)
    assert raw["schema"] == QualityReport.SCHEMA == 3
    quality = QualityReport.from_dict(raw)
    matched = quality.matched
    # 60 synthetic and 60 real training images per class, 42 and 114 test images, 87 and 339 unused training images
    # (the cell trains on 60 per class): 42 + 60 per set
    assert matched.composition == {"malignant": 42, "normal, benign": 60} and matched.n == 102
    assert quality.floor_images == FLOOR_FROM_UNUSED_TRAINING
    assert matched.floor.n_fake == matched.shift.n_fake == 102
    assert matched.fake_vs_real.fid > matched.floor.fid > 0 and matched.shift.fid > 0
    assert quality.extractor["name"] == "domain" and set(quality.per_class) == {"malignant", "normal, benign"}
    assert (quality.memorisation.n_fake, quality.memorisation.n_train) == (120, 120)
    assert quality.to_dict() == raw


@pytest.mark.slow
def test_early_stopping_scores_the_generator_on_the_cells_training_images(breast):
    strategy = create(
        "strategy",
        "cgan",
        early_stop_every=10,
        early_stop_patience=2,
        policy="fixed",
        counts={"0": 4},
        monitor_params={"steps": 30},
        **{**CGAN, "generator_steps": 60},
        **QUALITY,
    )
    strategy.synthesize(breast)
    history = strategy.report()["generator"]["histories"]["all"]
    assert history["quality_step"][:2] == [10, 20] and all(q > 0 for q in history["quality"])
    scores = history["quality"]
    if history["stopped_early"]:  # stopped because the last `patience` evaluations did not beat the best before them
        assert min(scores[-2:]) >= min(scores[:-2]) and history["steps"] < 60
    else:
        assert history["steps"] == 60


@pytest.mark.slow
def test_quality_cli_on_a_saved_generator_and_on_an_npz(cli, tmp_path):
    require_medmnist("breastmnist")
    saved = tmp_path / "cgan-breast"
    result = cli(
        "synth",
        "--dataset",
        "breastmnist",
        "--strategy",
        "cgan",
        "--generator-steps",
        "30",
        "--out",
        str(saved),
        "-S",
        "generator_params.base_channels=8",
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "quality.json"
    result = cli(
        "quality",
        "--dataset",
        "breastmnist",
        "--generator",
        str(saved),
        "--n",
        "100",
        "--out",
        str(out),
        "-E",
        "steps=30",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    # 100 synthetic images in training proportions (27 + 73), limited by the 21 + 57 validation images of the floor
    assert report["matched"]["n"] == 78 and report["memorisation"]["pixel"]["closest_pairs"]
    assert report["floor_images"] == FLOOR_FROM_VALIDATION
    assert report["matched"]["rank_deficient"]  # 78 images, 256 domain features
    assert out.with_suffix(".pairs.png").is_file()
    printed = " ".join(result.output.split())
    assert "matched │ 78 *" in printed and "(floor / shift)" in printed and "all 546 training images" in printed

    # the same FIDs from the extractor's weights shipped elsewhere, with nothing trained
    weights = ship_weights(report["extractor"], tmp_path / "shipped")
    again = tmp_path / "again.json"
    args = ("quality", "--dataset", "breastmnist", "--generator", str(saved), "--n", "100", "--out", str(again))
    result = cli(*args, "--extractor-weights", str(weights))
    assert result.exit_code == 0, result.output
    recomputed = json.loads(again.read_text())
    assert recomputed["extractor"]["weights_sha256"] == report["extractor"]["weights_sha256"]
    assert recomputed["matched"] == report["matched"] and recomputed["per_class"] == report["per_class"]

    real = np.load(require_medmnist("breastmnist"))
    np.savez(tmp_path / "copies.npz", images=real["train_images"][:50], labels=real["train_labels"][:50])
    result = cli(
        "quality",
        "--dataset",
        "breastmnist",
        "--images",
        str(tmp_path / "copies.npz"),
        "--out",
        str(tmp_path / "q2.json"),
        "-E",
        "steps=30",
    )
    assert result.exit_code == 0, result.output
    copies = json.loads((tmp_path / "q2.json").read_text())["memorisation"]["pixel"]
    assert copies["near_copy_fraction"] == 1.0 and copies["exact_copies"] == 50  # exact training images are all flagged
    assert "50 exact copies" in " ".join(result.output.split())


def test_quality_cli_needs_exactly_one_source(cli):
    result = cli("quality", "--dataset", "breastmnist")
    assert result.exit_code == 1 and "exactly one source" in result.output
