"""Synthetic-image quality metrics and the memorisation audit, on real MedMNIST images and hand-checkable cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from benchmark import quality
from benchmark.dataset import Split
from benchmark.errors import MedAugBenchError
from benchmark.features import FeatureExtractor
from benchmark.task import TaskSpec
from tests.conftest import require_medmnist


class TinyExtractor(FeatureExtractor):
    """A fixed random conv net (seed 0) on the grey level: deterministic, fast, independent of real extractors."""

    num_features = 128

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.net = nn.Sequential(
                nn.Conv2d(1, 16, 3, stride=2), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2), nn.ReLU(),
                nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            )  # fmt: skip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return 20 * self.net(images.float().mean(dim=1, keepdim=True) / 255)

    def describe(self) -> dict:
        return {"name": "tiny-random-conv", "weights": "torch.manual_seed(0)"}


def load_split(flag: str, split: str) -> Split:
    """A real MedMNIST split straight from the official file."""
    data = np.load(require_medmnist(flag))
    images = torch.from_numpy(data[f"{split}_images"]).unsqueeze(1)
    return Split(images, torch.from_numpy(data[f"{split}_labels"][:, 0]).long())


def add_noise(images: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """Gaussian noise of `sigma` grey levels, rounded and clipped back to uint8."""
    noise = sigma * torch.randn(images.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (images.double() + noise).round().clamp(0, 255).to(torch.uint8)


def unique_rows(images: torch.Tensor, candidates: range) -> list[int]:
    """Indices among `candidates` whose image occurs exactly once in `images`."""
    flat = images.flatten(1)
    return [i for i in candidates if int((flat == flat[i]).all(dim=1).sum()) == 1]


@pytest.fixture(scope="module")
def extractor() -> TinyExtractor:
    return TinyExtractor()


@pytest.fixture(scope="module")
def pneumonia() -> tuple[Split, Split]:
    return load_split("pneumoniamnist", "train"), load_split("pneumoniamnist", "test")


# FID / KID


def test_fid_of_a_set_against_itself_is_zero(pneumonia, extractor):
    test = pneumonia[1].images
    result = quality.fid_kid(test, test, extractor, kid_subsets=2)
    scale = torch.cov(quality.extract_features(test, extractor).T).trace().item()
    assert scale > 1.0  # the features are not degenerate, so the check below means something
    assert abs(result["fid"]) < 1e-6 * scale
    assert result["n_real"] == result["n_fake"] == 624
    assert result["kid_subset_size"] == 624


def test_fid_grows_monotonically_with_noise(pneumonia, extractor):
    test = pneumonia[1].images
    real = quality.extract_features(test, extractor)
    scores = [
        quality.fid_kid_features(real, quality.extract_features(add_noise(test, sigma), extractor), kid_subsets=2)
        for sigma in (0, 10, 20, 40)
    ]
    fids = [s["fid"] for s in scores]
    assert all(a < b for a, b in zip(fids, fids[1:])), fids
    assert fids[-1] > 10 * fids[1]
    assert scores[-1]["kid_mean"] > scores[0]["kid_mean"] + 0.1


def test_kid_is_unbiased_where_fid_is_biased(pneumonia, extractor):
    # Two disjoint random 624-image draws from the train split: the same distribution, at the test split's size.
    # (The official test split comes from other patients; KID does see that small shift, so it is not used here.)
    train = pneumonia[0].images
    fids, kids = [], []
    for seed in range(6):
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
        a = quality.extract_features(train[perm[:624]], extractor)
        b = quality.extract_features(train[perm[624:1248]], extractor)
        result = quality.fid_kid_features(a, b)
        fids.append(result["fid"])
        kids.append(result["kid_mean"])
    fids_t, kids_t = torch.tensor(fids), torch.tensor(kids)
    sem = lambda x: x.std() / math.sqrt(len(x))  # noqa: E731
    assert (fids_t > 0).all() and fids_t.mean() > 3 * sem(fids_t), fids  # FID is positive on equal distributions
    assert abs(kids_t.mean()) < 2 * sem(kids_t), kids  # KID's mean over draws is 0 within its standard error
    assert (kids_t < 0).any(), kids  # and single estimates can be negative
    # within one draw: KID's mean over random 100-image subsets lies within a few of its subset std of 0
    subsets = quality.fid_kid_features(a, b, kid_subsets=20, kid_subset_size=100)
    assert subsets["kid_subset_size"] == 100 and subsets["kid_std"] > 0
    assert abs(subsets["kid_mean"]) < 3 * subsets["kid_std"]


def test_kid_subsets_are_reproducible_by_seed(extractor):
    generator = torch.Generator().manual_seed(1)
    real, fake = torch.randn(60, 8, generator=generator), torch.randn(80, 8, generator=generator) + 0.3
    first = quality.fid_kid_features(real, fake, kid_subsets=5, kid_subset_size=30, seed=3)
    assert first == quality.fid_kid_features(real, fake, kid_subsets=5, kid_subset_size=30, seed=3)
    assert first != quality.fid_kid_features(real, fake, kid_subsets=5, kid_subset_size=30, seed=4)
    with pytest.raises(ValueError, match="at least 2"):
        quality.fid_kid_features(real[:1], fake)


# precision, recall, density, coverage


def test_prdc_of_identical_sets_is_perfect():
    points = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    result = quality.prdc(points, points.clone())
    assert result["precision"] == result["recall"] == result["coverage"] == 1.0
    assert result["density"] == pytest.approx(1.0, abs=1e-12)


def test_prdc_of_far_disjoint_sets_is_zero():
    points = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    assert quality.prdc(points, points + 100.0) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_hand_computed_case():
    # 1-D, k=1. Real radii: 0→1, 1→1, 10→9; fake radii: 0.5→19.5, 20→19.5, 100→80.
    # Fake 0.5 lies in the balls of reals 0 and 1; fakes 20 and 100 in none (|20-10| = 10 is not < 9).
    real = torch.tensor([[0.0], [1.0], [10.0]])
    fake = torch.tensor([[0.5], [20.0], [100.0]])
    result = quality.prdc(real, fake, k=1)
    assert result["precision"] == pytest.approx(1 / 3)  # 1 of 3 fakes is in some real ball
    assert result["density"] == pytest.approx(2 / 3)  # 2 ball memberships / (k · 3 fakes)
    assert result["coverage"] == pytest.approx(2 / 3)  # reals 0 and 1 have a fake inside their ball
    assert result["recall"] == 1.0  # every real is within 19.5 of fake 0.5
    with pytest.raises(ValueError, match="more than 5"):
        quality.prdc(real, fake)


# MS-SSIM diversity


@pytest.mark.parametrize("size", [28, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_ms_ssim_diversity(pneumonia, size, channels):
    real = pneumonia[1].images[:40]
    if size != 28:
        real = torch.nn.functional.interpolate(real.float(), size=size, mode="bilinear").round().to(torch.uint8)
    real = real.repeat(1, channels, 1, 1)
    noise = torch.randint(0, 256, real.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))

    def score(images: torch.Tensor) -> float:
        return quality.ms_ssim_diversity(images, pairs=40, generator=torch.Generator().manual_seed(0))

    identical, diverse = score(real[:1].repeat(40, 1, 1, 1)), score(real)
    collapsed = score(real[:2].repeat(20, 1, 1, 1))
    assert identical == pytest.approx(1.0, abs=1e-4)
    assert score(noise) < 0.1
    assert 0.2 < diverse < collapsed < 1.0  # two distinct images: half the pairs are identical


def test_ms_ssim_setup_follows_image_size():
    at28, at64, at256 = quality.ms_ssim_setup(28, 28), quality.ms_ssim_setup(64, 64), quality.ms_ssim_setup(256, 256)
    assert (at28.sigma, at28.window, len(at28.betas)) == (0.75, 7, 3)
    assert (at64.sigma, at64.window, len(at64.betas)) == (1.5, 11, 3)
    assert at256.betas == pytest.approx(quality.MS_SSIM_BETAS, rel=1e-3)  # the standard 5 scales
    assert sum(at28.betas) == pytest.approx(1.0) and at28.betas[0] / at28.betas[1] == pytest.approx(0.0448 / 0.2856)
    assert len(quality.ms_ssim_setup(16, 16).betas) == 2
    with pytest.raises(MedAugBenchError, match="too small"):
        quality.ms_ssim_setup(7, 7)


# nearest real image, memorisation


def test_nearest_real_similarity_finds_exact_copies(pneumonia):
    train = pneumonia[0].images[:300]
    copied = unique_rows(train, range(0, 300, 30))
    fake = torch.cat([train[copied], add_noise(pneumonia[1].images[:20], 30)])
    result = quality.nearest_real_similarity(fake, train)
    k = len(copied)
    assert result["nearest_index"][:k].tolist() == copied
    assert (result["nearest_distance"][:k] == 0).all() and (result["nearest_distance"][k:] > 0).all()
    assert torch.allclose(result["ssim"][:k], torch.ones(k, dtype=torch.float64), atol=1e-5)
    assert (result["ssim"][k:] < 0.9).all()
    cap = 10 * math.log10(255**2 * 28 * 28)
    assert result["psnr"][:k].tolist() == [cap] * k and (result["psnr"][k:] < 40).all()
    summary = result["summary"]
    assert summary["exact_copies"] == k and summary["psnr_cap_db"] == pytest.approx(cap)
    json.dumps(summary, allow_nan=False)


def test_memorisation_audit_counts_near_copies(pneumonia, extractor, tmp_path):
    train, test = pneumonia[0].images[:500], pneumonia[1].images[:200]
    copied = unique_rows(train, range(0, 500, 7))[:10]
    noisy = add_noise(pneumonia[1].images[200:240], 40)
    fake = torch.cat([train[copied], noisy])
    features = [quality.extract_features(x, extractor) for x in (fake, train, test)]
    audit = quality.memorisation_audit(fake, train, test, *features)
    pixel = audit["pixel"]
    assert pixel["near_copy_fraction"] == 0.2 and pixel["near_copies"] == 10
    assert 0 < pixel["threshold"] < pixel["test_to_train"]["median"]
    assert sorted((p["fake"], p["train"]) for p in pixel["closest_pairs"][:10]) == list(enumerate(copied))
    assert all(p["distance"] == 0 for p in pixel["closest_pairs"][:10]) and pixel["closest_pairs"][10]["distance"] > 0
    assert audit["feature"]["near_copies"] >= 10 and audit["feature"]["fake_to_train"]["p05"] < 1e-6
    json.dumps(audit, allow_nan=False)
    # without the copies nothing is flagged in pixel space
    clean = quality.memorisation_audit(noisy, train, test, features[0][10:], features[1], features[2])
    assert clean["pixel"]["near_copy_fraction"] == 0.0

    out = quality.save_closest_pairs_png(fake, train, pixel["closest_pairs"], tmp_path / "pairs" / "closest.png", n=12)
    image = np.asarray(Image.open(out).convert("L"), dtype=float)
    assert image.shape[0] == 12 * (64 + 2) + 2
    tiles = image[2:66, 150:150 + 2 * 66]  # first row: the copy and its training image
    assert tiles.std() > 10 and np.array_equal(tiles[:, :64], tiles[:, 66:130])


def test_memorisation_threshold_is_the_test_quantile():
    # 1-pixel images: train is grey level 0, test 1..100, so test → train distances are 1..100 (median 50.5).
    pixels = lambda values: torch.tensor(values, dtype=torch.uint8).view(-1, 1, 1, 1)  # noqa: E731
    train, test, fake = pixels([0]), pixels(range(1, 101)), pixels([0, 50, 51, 200])
    features = lambda values: torch.tensor(values, dtype=torch.float64).view(-1, 1)  # noqa: E731
    fake_features = features([50.5, 50.6, 0.0, 3.0])  # 50.5 is exactly at the threshold: counted
    audit = quality.memorisation_audit(fake, train, test, fake_features, features([0]), features(range(1, 101)), 0.5)
    assert audit["pixel"]["threshold"] == audit["feature"]["threshold"] == 50.5
    assert (audit["pixel"]["near_copies"], audit["feature"]["near_copies"]) == (2, 3)
    assert audit["pixel"]["test_to_train"] == {"mean": 50.5, "median": 50.5, "p05": pytest.approx(5.95)}
    assert [p["fake"] for p in audit["pixel"]["closest_pairs"]] == [0, 1, 2, 3]


# the full report


def test_quality_report_on_breastmnist(extractor):
    train, test = load_split("breastmnist", "train"), load_split("breastmnist", "test")
    fake = Split(add_noise(test.images, 30), test.labels)
    task = TaskSpec("binary", ("malignant", "normal, benign"), channels=1)
    report = quality.quality_report(train, test, fake, task, extractor, kid_subsets=5)
    json.dumps(report, allow_nan=False)
    assert report["extractor"] == extractor.describe() and report["per_class_grouping"] == "class"
    overall = report["overall"]
    assert (overall["n_train"], overall["n_test"], overall["n_fake"]) == (546, 156, 156)
    assert set(report["per_class"]) == set(task.labels)
    assert sum(block["n_fake"] for block in report["per_class"].values()) == 156
    assert [report["per_class"][name]["n_train"] for name in task.labels] == train.class_counts(task)
    for block in [overall, *report["per_class"].values()]:
        assert block["fake_vs_train"]["fid"] > block["test_vs_train"]["fid"] > 0  # noise is worse than real
        assert block["memorisation"]["pixel"]["near_copies"] == 0
        assert 0 < block["ms_ssim_fake"] < 1 and block["nearest_real"]["exact_copies"] == 0
    assert overall["fake_vs_train"]["precision"] < overall["test_vs_train"]["precision"]


def test_quality_report_subsamples_and_groups_multilabel(extractor):
    train, test = load_split("breastmnist", "train"), load_split("breastmnist", "test")
    task = TaskSpec("multilabel", ("a", "b"), channels=1)
    one_hot = lambda split: Split(split.images, torch.nn.functional.one_hot(split.labels, 2).float())  # noqa: E731
    fake = Split(add_noise(test.images[:40], 30), torch.ones(40, 2))  # positive for both labels
    args = (one_hot(train), one_hot(test), fake, task, extractor)
    report = quality.quality_report(*args, max_images=60, seed=1, kid_subsets=2)
    assert report == quality.quality_report(*args, max_images=60, seed=1, kid_subsets=2)
    assert report != quality.quality_report(*args, max_images=60, seed=2, kid_subsets=2)
    assert report["per_class_grouping"] == "positive for the label"
    assert (report["overall"]["n_train"], report["overall"]["n_test"], report["overall"]["n_fake"]) == (60, 60, 40)
    assert [report["per_class"][label]["n_fake"] for label in "ab"] == [40, 40]  # one image counts for both labels
    assert sum(report["per_class"][label]["n_train"] for label in "ab") == 60
    json.dumps(report, allow_nan=False)


def test_report_blocks_skip_metrics_for_tiny_classes(extractor):
    train, test = load_split("breastmnist", "train"), load_split("breastmnist", "test")
    task = TaskSpec("binary", ("malignant", "normal, benign"), channels=1)
    fake = Split(test.images[:4], torch.tensor([0, 1, 1, 1]))  # one malignant fake image
    block = quality.quality_report(train, test, fake, task, extractor, kid_subsets=2)["per_class"]["malignant"]
    assert block["n_fake"] == 1
    assert block["fake_vs_train"]["fid"] is None and block["fake_vs_train"]["precision"] is None
    assert block["ms_ssim_fake"] is None
    assert block["nearest_real"]["n_fake"] == 1 and block["memorisation"]["pixel"]["near_copies"] == 0
