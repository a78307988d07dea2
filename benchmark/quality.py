"""Synthetic-image quality (FID, KID, precision/recall/density/coverage, MS-SSIM diversity) and a memorisation audit.

Every distance is computed in float64. Pixel distances are Euclidean on raw 0-255 grey levels, flattened over
(C, H, W); integer pixels make float64 squared distances exact, so an exact copy has distance 0.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure,
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance
from tqdm import tqdm

from benchmark.dataset import Split, class_mask
from benchmark.errors import MedAugBenchError
from benchmark.features import FeatureExtractor
from benchmark.grid import render_rows
from benchmark.task import TaskSpec

BATCH_SIZE = 256
PROGRESS_MIN_IMAGES = 1000
PRDC_K = 5
CLOSEST_PAIRS = 16
# Wang, Simoncelli & Bovik 2003, finest scale first; fewer scales keep the first ones, renormalised to sum to 1.
MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# Gaussian window sigmas tried in order: the standard one (11-px window), then a 7-px window for small images.
MS_SSIM_SIGMAS = (1.5, 0.75)
MIN_MS_SSIM_SCALES = 3


@torch.no_grad()
def extract_features(images: Tensor, extractor: FeatureExtractor, batch_size: int = BATCH_SIZE) -> Tensor:
    """Float64 features (N, D) of uint8 images, in batches, with the extractor in eval mode (progress bar over 1000)."""
    device = next(extractor.parameters(), torch.empty(0)).device
    starts = range(0, len(images), batch_size)
    bar = tqdm(starts, desc="features", unit="batch", disable=len(images) <= PROGRESS_MIN_IMAGES, leave=False)
    was_training = extractor.training
    extractor.eval()
    try:
        chunks = [extractor(images[i : i + batch_size].to(device)).double().cpu() for i in bar]
    finally:
        extractor.train(was_training)
    return torch.cat(chunks) if chunks else torch.zeros(0, extractor.num_features, dtype=torch.float64)


class _Precomputed(nn.Module):
    """Identity 'feature network': torchmetrics' FID/KID then accumulate features extracted once, elsewhere."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def fid_kid_features(
    real: Tensor, fake: Tensor, kid_subsets: int = 50, kid_subset_size: int = 1000, seed: int = 0
) -> dict:
    """FID and KID (torchmetrics) between two feature sets (N, D), in float64; KID subsets drawn with `seed`.

    FID states are float64 in torchmetrics and its result takes the features' dtype, float64 here. KID uses
    subsets of min(kid_subset_size, n_real, n_fake); when that is both whole sets a single subset is drawn, since
    all would be the same, and kid_std is 0.
    """
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"FID and KID need at least 2 real and 2 fake samples, got {len(real)} and {len(fake)}")
    real, fake = real.double(), fake.double()
    subset_size = min(kid_subset_size, len(real), len(fake))
    if subset_size == len(real) == len(fake):
        kid_subsets = 1  # every subset would be both whole sets, and the estimate does not depend on order
    fid = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), normalize=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        kid = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=kid_subsets, subset_size=subset_size)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {
        "fid": _number(fid.compute()),
        "kid_mean": _number(kid_mean),
        "kid_std": _number(kid_std),
        "kid_subset_size": subset_size,
        "n_real": len(real),
        "n_fake": len(fake),
    }


def fid_kid(
    real: Tensor,
    fake: Tensor,
    extractor: FeatureExtractor,
    kid_subsets: int = 50,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict:
    """FID and KID between uint8 image sets under `extractor` (features extracted once, fed to both metrics)."""
    return fid_kid_features(
        extract_features(real, extractor), extract_features(fake, extractor), kid_subsets, kid_subset_size, seed
    )


def prdc(real_features: Tensor, fake_features: Tensor, k: int = PRDC_K) -> dict:
    """Precision, recall, density and coverage (Naeem et al. 2020) with k-NN balls in float64 Euclidean distance.

    As in the authors' reference code, a sample is inside a ball when its distance is strictly below the radius,
    the distance to the ball centre's k-th nearest neighbour within its own set (itself excluded).
    """
    real, fake = real_features.double(), fake_features.double()
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"PRDC with k={k} needs more than {k} real and fake samples, got {len(real)} and {len(fake)}")
    real_radii, fake_radii = _kth_neighbour_distance(real, k), _kth_neighbour_distance(fake, k)
    distance = torch.cdist(real, fake)  # (n_real, n_fake)
    in_real_ball = distance < real_radii[:, None]
    return {
        "precision": float(in_real_ball.any(dim=0).double().mean()),
        "recall": float((distance < fake_radii[None, :]).any(dim=1).double().mean()),
        "density": int(in_real_ball.sum()) / (k * len(fake)),
        "coverage": float((distance.min(dim=1).values < real_radii).double().mean()),
    }


def _kth_neighbour_distance(points: Tensor, k: int) -> Tensor:
    """Distance from each point to its k-th nearest other point of the same set."""
    return torch.cdist(points, points).kthvalue(k + 1, dim=1).values  # the point itself, at 0, is the first


@dataclass(frozen=True)
class MsSsimSetup:
    """The MS-SSIM settings used for one image size: Gaussian sigma, window width in pixels, per-scale exponents."""

    sigma: float
    window: int
    betas: tuple[float, ...]


def ms_ssim_setup(height: int, width: int) -> MsSsimSetup:
    """The MS-SSIM settings for an image size.

    Scales halve the image (2×2 average pooling). The number of scales is the most (up to 5) for which torchmetrics'
    size checks pass, each contrast map stays non-empty after cropping the window's border, and the coarsest scale is
    larger than the reflection padding. The standard sigma 1.5 (11-px window) is used when it allows 3 scales
    (64 px: 3 scales; 256 px: all 5); otherwise sigma 0.75, a 7-px window (28 px: 3 scales; 8-27 px: 2 scales).
    The betas are the first scales' standard exponents renormalised to sum to 1.
    """
    size = min(height, width)
    options = [(sigma, _scales_that_fit(size, _window(sigma))) for sigma in MS_SSIM_SIGMAS]
    sigma, scales = next((option for option in options if option[1] >= MIN_MS_SSIM_SCALES), options[-1])
    if scales < 2:
        raise MedAugBenchError(f"{height}×{width}-pixel images are too small for MS-SSIM (it needs at least 8 pixels)")
    betas = MS_SSIM_BETAS[:scales]
    return MsSsimSetup(sigma=sigma, window=_window(sigma), betas=tuple(b / sum(betas) for b in betas))


def _window(sigma: float) -> int:
    """The Gaussian window width torchmetrics derives from sigma (it ignores `kernel_size` for Gaussian windows)."""
    return int(3.5 * sigma + 0.5) * 2 + 1


def _scales_that_fit(size: int, window: int) -> int:
    """Most scales (at most 5) whose computation fits an image of `size` pixels with this window."""

    def fits(scales: int) -> bool:
        return (
            size >= 2**scales  # torchmetrics' own checks
            and size // max(1, scales - 1) ** 2 > window - 1
            and all(size >> s > window - 1 for s in range(scales - 1))  # contrast maps are cropped by the window
            and size >> (scales - 1) > window // 2  # reflection padding at the coarsest scale
        )

    return max((s for s in range(1, len(MS_SSIM_BETAS) + 1) if fits(s)), default=0)


def ms_ssim_diversity(images: Tensor, pairs: int = 500, generator: torch.Generator | None = None) -> float:
    """Mean MS-SSIM over random pairs of distinct images of one set: higher means less diverse (mode collapse).

    Settings come from `ms_ssim_setup`; images are scaled to [0, 1] with data_range 1, and negative per-scale
    similarities are clipped to 0 (torchmetrics' normalize="relu") so the fractional exponents stay real.
    """
    if len(images) < 2:
        raise ValueError(f"MS-SSIM diversity needs at least 2 images, got {len(images)}")
    setup = ms_ssim_setup(images.shape[-2], images.shape[-1])
    first = torch.randint(len(images), (pairs,), generator=generator)
    second = (first + torch.randint(1, len(images), (pairs,), generator=generator)) % len(images)
    scores = [
        multiscale_structural_similarity_index_measure(
            _unit(images[first[i : i + BATCH_SIZE]]),
            _unit(images[second[i : i + BATCH_SIZE]]),
            sigma=setup.sigma,
            kernel_size=setup.window,
            betas=setup.betas,
            data_range=1.0,
            reduction="none",
        )
        for i in range(0, pairs, BATCH_SIZE)
    ]
    return float(torch.cat(scores).mean())


def nearest_neighbours(query: Tensor, reference: Tensor, chunk: int = 512) -> tuple[Tensor, Tensor]:
    """Index and Euclidean distance of each query row's nearest reference row (float64, in chunks; both non-empty)."""
    query, reference = query.double(), reference.double()
    best = [torch.cdist(query[i : i + chunk], reference).min(dim=1) for i in range(0, len(query), chunk)]
    return torch.cat([b.indices for b in best]), torch.cat([b.values for b in best])


def psnr_cap(shape: torch.Size | tuple[int, ...]) -> float:
    """PSNR (dB) of the smallest possible uint8 error, one grey level in one pixel; exact copies are reported at it."""
    return 10 * math.log10(255**2 * math.prod(shape))


def nearest_real_similarity(fake: Tensor, real: Tensor) -> dict:
    """SSIM and PSNR between each fake image and its nearest real image by pixel L2.

    Returns "summary" (JSON-able: means and standard deviations, the number of exact copies, the PSNR cap) and the
    tensors "nearest_index", "nearest_distance", "ssim" and "psnr" (per fake image). SSIM uses torchmetrics'
    defaults (Gaussian sigma 1.5) on [0, 1] images; an exact copy's infinite PSNR is capped at `psnr_cap`.
    """
    if len(fake) == 0 or len(real) == 0:
        raise ValueError(f"nearest-real similarity needs fake and real images, got {len(fake)} and {len(real)}")
    index, distance = nearest_neighbours(_pixels(fake), _pixels(real))
    ssim, psnr = [], []
    for i in range(0, len(fake), BATCH_SIZE):
        a, b = _unit(fake[i : i + BATCH_SIZE]), _unit(real[index[i : i + BATCH_SIZE]])
        ssim.append(structural_similarity_index_measure(a, b, data_range=1.0, reduction="none"))
        psnr.append(peak_signal_noise_ratio(a, b, data_range=1.0, reduction="none", dim=(1, 2, 3)))
    ssim_all, psnr_all = torch.cat(ssim).double(), torch.cat(psnr).double()
    cap = psnr_cap(fake.shape[1:])
    exact = torch.isinf(psnr_all)
    psnr_all = psnr_all.clamp(max=cap)
    ssim_mean, ssim_std = _mean_std(ssim_all)
    psnr_mean, psnr_std = _mean_std(psnr_all)
    summary = {
        "n_fake": len(fake),
        "n_real": len(real),
        "ssim_mean": ssim_mean,
        "ssim_std": ssim_std,
        "psnr_mean": psnr_mean,
        "psnr_std": psnr_std,
        "psnr_cap_db": cap,
        "exact_copies": int(exact.sum()),
        "pixel_distance_mean": float(distance.mean()),
    }
    tensors = {"nearest_index": index, "nearest_distance": distance, "ssim": ssim_all, "psnr": psnr_all}
    return {"summary": summary, **tensors}


def memorisation_audit(
    fake: Tensor,
    train: Tensor,
    test: Tensor,
    fake_features: Tensor,
    train_features: Tensor,
    test_features: Tensor,
    quantile: float = 0.01,
) -> dict:
    """Near-copies of training images among synthetic ones, in pixel space and in feature space.

    Per space: each synthetic image's distance to its nearest training image, and each real test image's (test →
    train, the same distance for images the generator never saw). A synthetic image is a near-copy when its distance
    is at or below the `quantile` of the test → train distances ("at or below" so that exact copies still count when
    that quantile is 0 because test images duplicate training images). JSON-able.
    """
    if min(len(fake), len(train), len(test)) == 0:
        raise ValueError(f"the audit needs fake, train and test images, got {len(fake)}, {len(train)}, {len(test)}")
    spaces = {
        "pixel": (_pixels(fake), _pixels(train), _pixels(test)),
        "feature": (fake_features, train_features, test_features),
    }
    counts = {"n_fake": len(fake), "n_train": len(train), "n_test": len(test), "quantile": quantile}
    return counts | {name: _audit_space(*vectors, quantile) for name, vectors in spaces.items()}


def _audit_space(fake: Tensor, train: Tensor, test: Tensor, quantile: float) -> dict:
    """The memorisation audit in one space (rows are vectors)."""
    fake_index, fake_distance = nearest_neighbours(fake, train)
    _, test_distance = nearest_neighbours(test, train)
    threshold = torch.quantile(test_distance, quantile)
    near = fake_distance <= threshold
    closest = torch.argsort(fake_distance, stable=True)[:CLOSEST_PAIRS]
    return {
        "threshold": float(threshold),
        "near_copies": int(near.sum()),
        "near_copy_fraction": float(near.double().mean()),
        "fake_to_train": _distribution(fake_distance),
        "test_to_train": _distribution(test_distance),
        "closest_pairs": [
            {"fake": int(i), "train": int(fake_index[i]), "distance": float(fake_distance[i])} for i in closest
        ],
    }


def save_closest_pairs_png(fake: Tensor, train: Tensor, pairs: list[dict], out: Path, n: int = CLOSEST_PAIRS) -> Path:
    """Write a PNG with one row per closest pair (synthetic left, training image right), labelled with the distance."""
    rows = [
        (f"syn {i} / train {j}\nd = {d:.4g}", torch.stack([fake[i], train[j]]))
        for i, j, d in ((p["fake"], p["train"], p["distance"]) for p in pairs[:n])
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    render_rows(rows, columns=2).save(out, format="PNG")
    return out


@dataclass
class _Set:
    """Images, labels, their features and their indices in the caller's split, kept aligned in class subsets."""

    images: Tensor
    labels: Tensor
    features: Tensor
    index: Tensor

    def __len__(self) -> int:
        return len(self.images)

    def where(self, mask: Tensor) -> "_Set":
        return _Set(self.images[mask], self.labels[mask], self.features[mask], self.index[mask])


def quality_report(
    real_train: Split,
    real_test: Split,
    fake: Split,
    task: TaskSpec,
    extractor: FeatureExtractor,
    max_images: int = 2000,
    seed: int = 0,
    kid_subsets: int = 50,
) -> dict:
    """Every quality metric and the memorisation audit, overall and per class, as a JSON-able dict.

    Each split is first subsampled to `max_images` (random, by `seed`); closest pairs in the audit are named by
    their indices in the given splits. Per-class blocks compare the images of that
    class only (multi-label: the images positive for that label, so an image can be in several blocks), including
    the nearest-neighbour searches. Every block also scores real test against real train with the same metrics and
    sample sizes ("test_vs_train"), the floor FID/KID a perfect generator would reach at that n. Metrics that need
    more images than a block has are None (FID/KID: 2 per set; PRDC: k + 1; MS-SSIM: 2); FID is biased upwards for
    small n, so compare it only at equal n (reported).
    """
    generator = torch.Generator().manual_seed(seed)
    sets = {}
    for name, split in (("train", real_train), ("test", real_test), ("fake", fake)):
        index = torch.randperm(len(split), generator=generator)[:max_images].sort().values
        images, labels = split.images[index], split.labels[index]
        sets[name] = _Set(images, labels, extract_features(images, extractor), index)
    masks = {name: _class_masks(s.labels, task) for name, s in sets.items()}
    per_class = {
        label: _block(*(sets[name].where(masks[name][c]) for name in ("train", "test", "fake")), kid_subsets, seed)
        for c, label in enumerate(task.labels)
    }
    return {
        "extractor": extractor.describe(),
        "seed": seed,
        "max_images": max_images,
        "per_class_grouping": "positive for the label" if task.multilabel else "class",
        "ms_ssim_setup": asdict(ms_ssim_setup(*fake.images.shape[-2:])),
        "overall": _block(sets["train"], sets["test"], sets["fake"], kid_subsets, seed),
        "per_class": per_class,
    }


def _class_masks(labels: Tensor, task: TaskSpec) -> list[Tensor]:
    """One boolean mask per class, or per label (positives) for a multi-label task."""
    return [class_mask(labels, task, i) for i in range(task.num_outputs)]


def _block(train: _Set, test: _Set, fake: _Set, kid_subsets: int, seed: int) -> dict:
    """All metrics for one group of images; those the group is too small for are None."""
    nonempty = min(len(train), len(test), len(fake)) > 0
    return {
        "n_train": len(train),
        "n_test": len(test),
        "n_fake": len(fake),
        "fake_vs_train": _distribution_metrics(train.features, fake.features, kid_subsets, seed),
        "test_vs_train": _distribution_metrics(train.features, test.features, kid_subsets, seed),
        "ms_ssim_fake": _diversity(fake.images, seed),
        "ms_ssim_train": _diversity(train.images, seed),
        "nearest_real": nearest_real_similarity(fake.images, train.images)["summary"] if nonempty else None,
        "memorisation": _audit_in_split_indices(fake, train, test) if nonempty else None,
    }


def _audit_in_split_indices(fake: _Set, train: _Set, test: _Set) -> dict:
    """The memorisation audit, with closest pairs named by their indices in the caller's fake and train splits."""
    audit = memorisation_audit(fake.images, train.images, test.images, fake.features, train.features, test.features)
    for space in ("pixel", "feature"):
        for pair in audit[space]["closest_pairs"]:
            pair["fake"], pair["train"] = int(fake.index[pair["fake"]]), int(train.index[pair["train"]])
    return audit


def _distribution_metrics(real: Tensor, other: Tensor, kid_subsets: int, seed: int) -> dict:
    """FID, KID and PRDC of `other` against `real` features, None where there are too few samples."""
    metrics: dict = {"n_real": len(real), "n_fake": len(other)}
    metrics |= dict.fromkeys(("fid", "kid_mean", "kid_std", "kid_subset_size"))
    metrics |= dict.fromkeys(("precision", "recall", "density", "coverage"))
    if min(len(real), len(other)) >= 2:
        metrics |= fid_kid_features(real, other, kid_subsets=kid_subsets, seed=seed)
    if min(len(real), len(other)) > PRDC_K:
        metrics |= prdc(real, other)
    return metrics


def _diversity(images: Tensor, seed: int) -> float | None:
    """MS-SSIM diversity with a seeded pair sampler, or None for fewer than 2 images."""
    return ms_ssim_diversity(images, generator=torch.Generator().manual_seed(seed)) if len(images) >= 2 else None


def _pixels(images: Tensor) -> Tensor:
    """Images flattened to float64 rows of grey levels 0-255."""
    return images.flatten(1).double()


def _unit(images: Tensor) -> Tensor:
    """uint8 images as float32 in [0, 1]."""
    return images.float() / 255


def _number(value: Tensor | float) -> float | None:
    """A python float, or None when not finite (JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _mean_std(values: Tensor) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    return float(values.mean()), float(values.std()) if len(values) > 1 else None


def _distribution(distances: Tensor) -> dict:
    """Mean, median and 5th percentile of a set of distances."""
    return {
        "mean": float(distances.mean()),
        "median": float(torch.quantile(distances, 0.5)),
        "p05": float(torch.quantile(distances, 0.05)),
    }
