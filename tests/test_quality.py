"""Synthetic-image quality metrics and the memorisation audit, on real MedMNIST images and hand-checkable cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from benchmark.data.dataset import DataOptions, Split, load_dataset
from benchmark.data.task import TaskSpec
from benchmark.errors import MedAugBenchError
from benchmark.evaluate import quality
from benchmark.evaluate.features import FeatureExtractor
from benchmark.train.record import QualityReport
from tests.helpers import require_medmnist


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


def as_heldout(train: Split, test: Split) -> quality.RealImages:
    """Real sets for tests of the machinery, with the test images also standing in for the held-out ones."""
    return quality.RealImages(train, test, test, "test images (a test of the machinery)")


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


def test_nearest_neighbours_in_chunks_match_one_search(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    reference = torch.randint(0, 4, (50, 3), generator=generator, dtype=torch.uint8)  # many ties among 64 values
    query = torch.cat([reference[[7, 31, 49]], torch.randint(0, 4, (20, 3), generator=generator, dtype=torch.uint8)])
    distance = torch.cdist(query.double(), reference.double())
    lowest_nearest = [int((row == row.min()).nonzero()[0]) for row in distance]
    monkeypatch.setattr(quality, "NN_QUERY_ROWS", 4)
    monkeypatch.setattr(quality, "NN_REFERENCE_ROWS", 7)  # chunks that split ties across reference chunks
    index, nearest = quality.nearest_neighbours(query, reference, torch.device("cpu"))
    assert index.tolist() == lowest_nearest and torch.equal(nearest, distance.min(dim=1).values)
    assert nearest.dtype == torch.float64 and nearest[:3].tolist() == [0.0, 0.0, 0.0]
    monkeypatch.setattr(quality, "NN_CHUNK_VALUES", 5)  # rows longer than the budget: one row per chunk
    assert quality.nearest_neighbours(query, reference)[0].tolist() == lowest_nearest


def test_memorisation_audit_counts_near_copies(pneumonia, extractor, tmp_path):
    train, test = pneumonia[0].images[:500], pneumonia[1].images[:200]
    copied = unique_rows(train, range(0, 500, 7))[:10]
    noisy = add_noise(pneumonia[1].images[200:240], 40)
    fake = torch.cat([train[copied], noisy])
    features = [quality.extract_features(x, extractor) for x in (fake, train, test)]
    audit = quality.memorisation_audit(fake, train, test, *features)
    pixel = audit["pixel"]
    assert pixel["near_copy_fraction"] == 0.2 and pixel["near_copies"] == pixel["exact_copies"] == 10
    assert [(c["fake"], c["train"], c["distance"], c["exact"]) for c in pixel["copies"]] == [
        (i, j, 0.0, True) for i, j in enumerate(copied)
    ]
    assert 0 < pixel["threshold"] < pixel["test_to_train"]["median"]
    assert sorted((p["fake"], p["train"]) for p in pixel["closest_pairs"][:10]) == list(enumerate(copied))
    assert all(p["distance"] == 0 for p in pixel["closest_pairs"][:10]) and pixel["closest_pairs"][10]["distance"] > 0
    assert audit["feature"]["near_copies"] >= audit["feature"]["exact_copies"] == 10
    assert audit["feature"]["fake_to_train"]["p05"] < 1e-6
    json.dumps(audit, allow_nan=False)
    # without the copies nothing is flagged in pixel space
    clean = quality.memorisation_audit(noisy, train, test, features[0][10:], features[1], features[2])
    assert clean["pixel"]["near_copy_fraction"] == 0.0 and clean["pixel"]["copies"] == []

    out = quality.save_closest_pairs_png(fake, train, pixel["closest_pairs"], tmp_path / "pairs" / "closest.png", n=12)
    image = np.asarray(Image.open(out).convert("L"), dtype=float)
    assert image.shape[0] == 12 * (64 + 2) + 2
    tiles = image[2:66, 150 : 150 + 2 * 66]  # first row: the copy and its training image
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
    assert [(c["fake"], c["exact"]) for c in audit["pixel"]["copies"]] == [(0, True), (1, False)]
    assert [(c["fake"], c["exact"]) for c in audit["feature"]["copies"]] == [(0, True), (2, False), (3, False)]
    assert audit["pixel"]["test_to_train"] == {"mean": 50.5, "median": 50.5, "p05": pytest.approx(5.95)}
    assert [p["fake"] for p in audit["pixel"]["closest_pairs"]] == [0, 1, 2, 3]


def test_real_test_images_are_flagged_at_about_the_quantile(pneumonia, extractor):
    # Two random halves of the test split: one sets the threshold, the other is passed as synthetic. Neither was
    # trained on, so about `quantile` of the second half lies within the threshold of its nearest training image.
    train, test = pneumonia[0].images, pneumonia[1].images
    perm = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    held_out, as_fake = test[perm[:312]], test[perm[312:]]
    features = [quality.extract_features(x, extractor) for x in (as_fake, train, held_out)]
    audit = quality.memorisation_audit(as_fake, train, held_out, *features, quantile=0.1)
    assert audit["n_train"] == len(train) == 4708
    for space in ("pixel", "feature"):
        assert 0.05 <= audit[space]["near_copy_fraction"] <= 0.17, (space, audit[space]["near_copy_fraction"])
        assert len(audit[space]["copies"]) == audit[space]["near_copies"] and audit[space]["exact_copies"] == 0


# the full report

BINARY = TaskSpec("binary", ("malignant", "normal, benign"), channels=1)


@pytest.fixture(scope="module")
def breast() -> tuple[Split, Split]:
    return load_split("breastmnist", "train"), load_split("breastmnist", "test")


@pytest.fixture(scope="module")
def pneumonia_val_normal() -> Split:
    """Real PneumoniaMNIST validation images of the minority class 0 (normal): a perfect minority-class generator."""
    val = load_split("pneumoniamnist", "val")
    return val.subset(val.labels == 0)


PNEUMONIA = TaskSpec("binary", ("normal", "pneumonia"), channels=1)


def test_a_perfect_minority_class_generator_scores_near_its_floor(pneumonia, pneumonia_val_normal, extractor):
    report = quality.quality_report(
        as_heldout(*pneumonia), pneumonia_val_normal, PNEUMONIA, extractor, kid_subsets=5
    ).to_dict()
    matched = report["matched"]
    assert matched["n"] == len(pneumonia_val_normal) == 135 and matched["composition"] == {"normal": 135}
    assert matched["feature_dim"] == 128 and not matched["rank_deficient"]
    for metrics in (matched["fake_vs_real"], matched["floor"]):
        assert metrics["n_real"] == metrics["n_fake"] == 135
    assert 0 < matched["fake_vs_real"]["fid"] <= 1.5 * matched["floor"]["fid"], matched
    # scored as schema 1 did, against 2,000 training images of every class, with the whole test split as the floor,
    # the same images score several times that floor
    draw = torch.randperm(len(pneumonia[0]), generator=torch.Generator().manual_seed(0))[:2000]
    mixed, test, fake = (
        quality.extract_features(images, extractor)
        for images in (pneumonia[0].images[draw], pneumonia[1].images, pneumonia_val_normal.images)
    )
    assert quality.fid_kid_features(mixed, fake)["fid"] > 3 * quality.fid_kid_features(mixed, test)["fid"]
    pneumonia_block = report["per_class"]["pneumonia"]
    assert pneumonia_block["n"] == 0 and pneumonia_block["fake_vs_real"]["fid"] is None
    json.dumps(report, allow_nan=False)


def test_the_same_images_labelled_as_the_other_class_score_far_above_its_floor(
    pneumonia, pneumonia_val_normal, extractor
):
    mislabelled = Split(pneumonia_val_normal.images, torch.ones(len(pneumonia_val_normal), dtype=torch.long))
    matched = quality.quality_report(
        as_heldout(*pneumonia), mislabelled, PNEUMONIA, extractor, kid_subsets=5
    ).to_dict()["matched"]
    assert matched["composition"] == {"pneumonia": 135}
    assert matched["fake_vs_real"]["fid"] > 2.5 * matched["floor"]["fid"], matched
    assert matched["fake_vs_real"]["precision"] < matched["floor"]["precision"]


def test_audit_flags_exact_and_noisy_copies_from_the_whole_training_split(pneumonia, extractor):
    # copies of training images beyond index max_images, which a max_images draw of the training split would miss
    train, test = pneumonia
    max_images = 300
    copied = unique_rows(train.images, range(max_images, 4708, 71))[:30]
    noisy = unique_rows(train.images, range(max_images + 1, 4708, 97))[:20]
    fake_images = torch.cat([
        train.images[copied], add_noise(train.images[noisy], 4), add_noise(train.images[noisy], 16, seed=1),
        add_noise(test.images[:30], 40),
    ])  # fmt: skip
    fake = Split(fake_images, torch.zeros(len(fake_images), dtype=torch.long))
    report = quality.quality_report(
        as_heldout(train, test), fake, PNEUMONIA, extractor, max_images, kid_subsets=2
    ).to_dict()
    audit, pixel = report["memorisation"], report["memorisation"]["pixel"]
    assert (audit["n_train"], audit["n_fake"], audit["n_test"]) == (4708, 100, 300)
    assert pixel["exact_copies"] == 30 and pixel["near_copies"] == 50  # σ = 4 copies are within the threshold
    exact = [(c["fake"], c["train"]) for c in pixel["copies"] if c["exact"]]
    assert exact == list(enumerate(copied))
    near = [(c["fake"], c["train"]) for c in pixel["copies"] if not c["exact"]]
    assert near == [(30 + i, j) for i, j in enumerate(noisy)]
    assert all(c["distance"] <= pixel["threshold"] for c in pixel["copies"])
    # σ grey levels of noise move a 28×28 image about 28·σ away: σ = 4 stays within the threshold (the 1 % quantile
    # of held-out → train distances), σ = 16 does not, and those copies are not flagged (50 near copies above)
    assert 4 * 28 < pixel["threshold"] < 14 * 28
    assert audit["feature"]["exact_copies"] == 30
    json.dumps(audit, allow_nan=False)


def test_audit_indices_name_the_callers_synthetic_images(pneumonia, extractor):
    train, test = pneumonia
    copied = unique_rows(train.images, range(0, 4708, 157))[:20]
    fake_images = torch.cat([add_noise(test.images[:40], 40), train.images[copied]])
    fake = Split(fake_images, torch.zeros(len(fake_images), dtype=torch.long))
    report = quality.quality_report(
        as_heldout(train, test), fake, PNEUMONIA, extractor, max_images=30, kid_subsets=2
    ).to_dict()
    audit = report["memorisation"]
    assert audit["n_fake"] == 30 and audit["pixel"]["exact_copies"] > 0
    for pair in audit["pixel"]["copies"] + audit["pixel"]["closest_pairs"][:1]:
        assert pair["fake"] >= 40 and torch.equal(fake_images[pair["fake"]], train.images[pair["train"]])


def test_quality_report_on_breastmnist(breast, extractor):
    train, test = breast
    fake = Split(add_noise(test.images, 30), test.labels)
    report = quality.quality_report(as_heldout(train, test), fake, BINARY, extractor, kid_subsets=5).to_dict()
    json.dumps(report, allow_nan=False)
    assert report["schema"] == 3 and report["reference"] and "overall" not in report
    assert report["extractor"] == extractor.describe() and report["per_class_grouping"] == "class"
    matched = report["matched"]
    assert matched["n"] == 156 and matched["composition"] == {"malignant": 42, "normal, benign": 114}
    assert [report["per_class"][name]["composition"] for name in BINARY.labels] == [
        {"malignant": 42},
        {"normal, benign": 114},
    ]
    assert report["memorisation"]["n_train"] == 546 and report["memorisation"]["pixel"]["near_copies"] == 0
    for block in [matched, *report["per_class"].values()]:
        assert block["fake_vs_real"]["fid"] > block["floor"]["fid"] > 0  # noise is worse than real
        assert block["fake_vs_real"]["precision"] < block["floor"]["precision"]
        assert 0 < block["ms_ssim_fake"] < 1 and 0 < block["ms_ssim_real"] < 1
        assert block["nearest_real"]["exact_copies"] == 0
        assert block["rank_deficient"] == (block["n"] - 1 < 128)
    assert report["per_class"]["malignant"]["nearest_real"]["n_real"] == train.class_counts(BINARY)[0]


@pytest.mark.slow
def test_matched_draw_is_scaled_to_max_images_and_seeded(breast, extractor):
    train, test = breast
    fake = Split(add_noise(test.images, 30), test.labels)  # 42 malignant, 114 benign
    args = (as_heldout(train, test), fake, BINARY, extractor)
    report = quality.quality_report(*args, max_images=60, seed=1, kid_subsets=2).to_dict()
    matched = report["matched"]
    # 60 · (42, 114) / 156 = (16.15, 43.85): largest remainder gives the spare image to the second class
    assert matched["composition"] == {"malignant": 16, "normal, benign": 44} and matched["n"] == 60
    assert matched["rank_deficient"] and matched["feature_dim"] == 128  # 59 < 128 features
    assert matched["fake_vs_real"]["n_real"] == matched["floor"]["n_fake"] == 60
    assert report["per_class"]["normal, benign"]["n"] == 60  # each class block is scaled on its own
    assert report["memorisation"]["n_train"] == 546 and report["memorisation"]["n_fake"] == 60
    assert report == quality.quality_report(*args, max_images=60, seed=1, kid_subsets=2).to_dict()
    assert report != quality.quality_report(*args, max_images=60, seed=2, kid_subsets=2).to_dict()


def test_multilabel_blocks_match_exact_label_rows(breast, extractor):
    train, test = breast
    task = TaskSpec("multilabel", ("a", "b"), channels=1)
    one_hot = lambda split: Split(split.images, torch.nn.functional.one_hot(split.labels, 2).float())  # noqa: E731
    rows = torch.tensor([[1.0, 0.0]] * 20 + [[0.0, 1.0]] * 30 + [[1.0, 1.0]] * 10)  # no real image is "11"
    fake = Split(add_noise(test.images[:60], 30), rows)
    report = quality.quality_report(
        as_heldout(one_hot(train), one_hot(test)), fake, task, extractor, kid_subsets=2
    ).to_dict()
    assert report["per_class_grouping"] == "positive for the label"
    assert report["matched"]["composition"] == {"01": 30, "10": 20}
    assert [report["per_class"][label]["composition"] for label in "ab"] == [{"10": 20}, {"01": 30}]
    assert report["memorisation"]["n_fake"] == 60  # the audit covers every synthetic image, matched or not
    json.dumps(report, allow_nan=False)


def test_report_blocks_skip_metrics_for_tiny_classes(breast, extractor):
    train, test = breast
    fake = Split(test.images[:4], torch.tensor([0, 1, 1, 1]))  # one malignant fake image
    block = quality.quality_report(as_heldout(train, test), fake, BINARY, extractor, kid_subsets=2).to_dict()[
        "per_class"
    ]["malignant"]
    assert block["n"] == 1 and block["composition"] == {"malignant": 1} and block["rank_deficient"]
    assert block["fake_vs_real"]["fid"] is None and block["floor"]["precision"] is None
    assert block["ms_ssim_fake"] is None and block["nearest_real"]["n_fake"] == 1


# The in-distribution floor and the train→test shift


def pixel_rows(images: torch.Tensor) -> list[bytes]:
    return [image.numpy().tobytes() for image in images]


def test_a_whole_split_cell_draws_its_floor_from_validation_images():
    require_medmnist("breastmnist")
    data = load_dataset("breastmnist", DataOptions())
    real = quality.real_images(data)
    assert real.train is data.train and real.heldout is data.val and real.test is data.test
    assert real.heldout_source == quality.FLOOR_FROM_VALIDATION


def test_a_fraction_cell_draws_its_floor_from_training_images_outside_its_subset():
    require_medmnist("pneumoniamnist")
    data = load_dataset("pneumoniamnist", DataOptions(train_fraction=0.1))
    real = quality.real_images(data)
    assert real.heldout_source == quality.FLOOR_FROM_UNUSED_TRAINING and real.test is data.test
    seen = set(pixel_rows(data.train.images))
    unused = [i for i, row in enumerate(pixel_rows(data.full_train.images)) if row not in seen]
    # exactly the training images the cell did not train on (3 duplicates of subset images count as seen)
    assert len(unused) == len(real.heldout) == 4708 - 470 - 3
    assert torch.equal(real.heldout.images, data.full_train.images[unused])
    assert torch.equal(real.heldout.labels, data.full_train.labels[unused])


def test_real_training_distribution_images_score_at_the_floor_far_below_the_test_shift(extractor):
    """PneumoniaMNIST's test split is shifted: real validation images, standing in for a generator that samples the
    training distribution exactly, score at the floor of unused training images and far below the test images (the
    old floor, which they would have 'beaten')."""
    require_medmnist("pneumoniamnist")
    data = load_dataset("pneumoniamnist", DataOptions(train_fraction=0.1))
    report = quality.quality_report(quality.real_images(data), data.val, data.task, extractor, kid_subsets=5)
    assert report.floor_images == quality.FLOOR_FROM_UNUSED_TRAINING and "floor" in report.reference
    matched = report.matched
    assert matched.n == 470 and matched.composition == {"normal": 121, "pneumonia": 349}
    for scores in (matched.fake_vs_real, matched.floor, matched.shift):
        assert scores.n_real == scores.n_fake == 470
    assert matched.fake_vs_real.fid < 1.2 * matched.floor.fid
    assert matched.shift.fid > 2 * matched.floor.fid and matched.shift.fid > 2 * matched.fake_vs_real.fid
    for block in report.per_class.values():
        assert block.shift.fid > block.floor.fid


def test_schema_2_reports_are_upgraded_their_test_image_floor_becoming_the_shift(breast, extractor):
    train, test = breast
    fake = Split(add_noise(test.images[:60], 30), test.labels[:60])
    current = quality.quality_report(as_heldout(train, test), fake, BINARY, extractor, kid_subsets=2).to_dict()
    old = {key: value for key, value in current.items() if key != "floor_images"} | {"schema": 2}
    for block in [old["matched"], *old["per_class"].values()]:
        del block["shift"]
    upgraded = QualityReport.from_dict(json.loads(json.dumps(old)))
    assert upgraded.floor_images is None and upgraded.to_dict()["schema"] == 3
    assert upgraded.matched.floor is None and upgraded.matched.shift.fid == current["matched"]["floor"]["fid"]
    assert upgraded.per_class["malignant"].shift.n_fake == current["per_class"]["malignant"]["floor"]["n_fake"]
