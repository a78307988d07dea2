"""Synthetic-image quality (FID, KID, precision/recall/density/coverage, MS-SSIM diversity), scored against a real
reference of the same class composition next to two real-vs-real scores (the in-distribution floor and the
train→test shift), and a memorisation audit over every training image.

Every distance is computed in float64. Pixel distances are Euclidean on raw 0-255 grey levels, flattened over
(C, H, W); integer pixels make float64 squared distances exact, so an exact copy has distance 0.
"""

from __future__ import annotations

import hashlib
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

from benchmark.data.apportion import proportional
from benchmark.data.dataset import LoadedDataset, Split, class_mask
from benchmark.data.images import render_rows
from benchmark.data.task import TaskSpec
from benchmark.data.versioned import build
from benchmark.errors import MedAugBenchError
from benchmark.evaluate.features import FeatureExtractor
from benchmark.train.record import DistributionScores, MemorisationAudit, QualityBlock, QualityReport

BATCH_SIZE = 256
PROGRESS_MIN_IMAGES = 1000
PRDC_K = 5
CLOSEST_PAIRS = 16
# Nearest-neighbour chunks: query and reference rows per chunk, and at most this many values per chunk (128 MiB).
NN_QUERY_ROWS = 1024
NN_REFERENCE_ROWS = 4096
NN_CHUNK_VALUES = 2**24
# Wang, Simoncelli & Bovik 2003, finest scale first; fewer scales keep the first ones, renormalised to sum to 1.
MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# Gaussian window sigmas tried in order: the standard one (11-px window), then a 7-px window for small images.
MS_SSIM_SIGMAS = (1.5, 0.75)
MIN_MS_SSIM_SCALES = 3


@torch.no_grad()
def extract_features(images: Tensor, extractor: FeatureExtractor, batch_size: int = BATCH_SIZE) -> Tensor:
    """Float64 features (N, D) of uint8 images, in batches, with the extractor in eval mode (progress bar over 1000)."""
    device = _device_of(extractor)
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


def nearest_neighbours(query: Tensor, reference: Tensor, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Index and Euclidean distance (float64, on the CPU) of each query row's nearest reference row.

    Rows of any dtype are converted to float64 chunk by chunk on `device` (default CPU), over the queries and over
    the reference, so memory stays bounded for splits of any size; ties go to the lowest reference index.
    """
    if len(query) == 0 or len(reference) == 0:
        raise ValueError(f"a nearest-neighbour search needs queries and references, got {len(query)}, {len(reference)}")
    device = device or torch.device("cpu")
    query_rows, reference_rows = _chunk_rows(query, NN_QUERY_ROWS), _chunk_rows(reference, NN_REFERENCE_ROWS)
    indices, distances = [], []
    for i in range(0, len(query), query_rows):
        chunk = query[i : i + query_rows].to(device).double()
        best = torch.full((len(chunk),), math.inf, dtype=torch.float64, device=device)
        best_index = torch.zeros(len(chunk), dtype=torch.long, device=device)
        for j in range(0, len(reference), reference_rows):
            nearest = torch.cdist(chunk, reference[j : j + reference_rows].to(device).double()).min(dim=1)
            closer = nearest.values < best  # strict: an equal distance keeps the earlier (lower) index
            best = torch.where(closer, nearest.values, best)
            best_index = torch.where(closer, nearest.indices + j, best_index)
        indices.append(best_index.cpu())
        distances.append(best.cpu())
    return torch.cat(indices), torch.cat(distances)


def _chunk_rows(rows: Tensor, most: int) -> int:
    """Rows per chunk: at most `most`, and fewer for long rows so a chunk holds at most NN_CHUNK_VALUES values."""
    return max(1, min(most, NN_CHUNK_VALUES // max(1, rows[0].numel())))


def psnr_cap(shape: torch.Size | tuple[int, ...]) -> float:
    """PSNR (dB) of the smallest possible uint8 error, one grey level in one pixel; exact copies are reported at it."""
    return 10 * math.log10(255**2 * math.prod(shape))


def nearest_real_similarity(fake: Tensor, real: Tensor, device: torch.device | None = None) -> dict:
    """SSIM and PSNR between each fake image and its nearest real image by pixel L2 (searched on `device`).

    Returns "summary" (JSON-able: means and standard deviations, the number of exact copies, the PSNR cap) and the
    tensors "nearest_index", "nearest_distance", "ssim" and "psnr" (per fake image). SSIM uses torchmetrics'
    defaults (Gaussian sigma 1.5) on [0, 1] images; an exact copy's infinite PSNR is capped at `psnr_cap`.
    """
    if len(fake) == 0 or len(real) == 0:
        raise ValueError(f"nearest-real similarity needs fake and real images, got {len(fake)} and {len(real)}")
    index, distance = nearest_neighbours(fake.flatten(1), real.flatten(1), device)
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
    device: torch.device | None = None,
) -> dict:
    """Exact and near copies of training images among synthetic ones, in pixel space and in feature space.

    Per space: each synthetic image's distance to its nearest image among ALL of `train` (searched in chunks on
    `device`), and each real test image's (test → train, the same distance for images the generator never saw). A
    synthetic image is a near copy when its distance is at or below the `quantile` of the test → train distances
    ("at or below", so exact copies count even when test images duplicate training images and that quantile is 0);
    an exact copy (counted among the near copies too) is pixel-identical to the training image it was matched with.
    "copies" lists every near copy as (fake, train) indices into the given tensors. JSON-able.
    """
    if min(len(fake), len(train), len(test)) == 0:
        raise ValueError(f"the audit needs fake, train and test images, got {len(fake)}, {len(train)}, {len(test)}")
    spaces = {
        "pixel": (fake.flatten(1), train.flatten(1), test.flatten(1)),
        "feature": (fake_features, train_features, test_features),
    }
    counts = {"n_fake": len(fake), "n_train": len(train), "n_test": len(test), "quantile": quantile}
    return counts | {
        name: _audit_space(*vectors, images=(fake, train), quantile=quantile, device=device)
        for name, vectors in spaces.items()
    }


def _audit_space(
    fake: Tensor,
    train: Tensor,
    test: Tensor,
    images: tuple[Tensor, Tensor],
    quantile: float,
    device: torch.device | None,
) -> dict:
    """The memorisation audit in one space (rows are vectors; `images`: the fake and train images they stand for)."""
    fake_index, fake_distance = nearest_neighbours(fake, train, device)
    _, test_distance = nearest_neighbours(test, train, device)
    threshold = torch.quantile(test_distance, quantile)
    flagged = (fake_distance <= threshold).nonzero().flatten()
    exact = (images[0][flagged].flatten(1) == images[1][fake_index[flagged]].flatten(1)).all(dim=1)
    closest = torch.argsort(fake_distance, stable=True)[:CLOSEST_PAIRS]
    return {
        "threshold": float(threshold),
        "near_copies": len(flagged),
        "near_copy_fraction": len(flagged) / len(fake),
        "exact_copies": int(exact.sum()),
        "copies": [
            {"fake": int(i), "train": int(fake_index[i]), "distance": float(fake_distance[i]), "exact": bool(e)}
            for i, e in zip(flagged, exact)
        ],
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


REFERENCE = (
    "per class (multi-label: per exact label row) the same number of synthetic images, real training images (the "
    "reference), real held-out images from the generator's training distribution (the floor; floor_images says which) "
    "and real test images (the train→test shift), min(available in each) scaled to max_images by largest remainder, "
    "drawn without replacement with the seed; floor and shift score their real images against the same reference: "
    "the floor is the score of a fresh sample of the training distribution, the shift that of the test distribution"
)
FLOOR_FROM_VALIDATION = "validation images (the cell trains on the whole training split)"
FLOOR_FROM_UNUSED_TRAINING = (
    "training images outside the cell's subset (it trains on part of the training split); "
    "an image whose pixels equal a subset image's counts as seen"
)


@dataclass(frozen=True)
class RealImages:
    """The real images a quality report compares with: `train`, what the generator learned from (the reference);
    `heldout`, unseen images of the same distribution (the floor; `heldout_source` says which); `test`, the test split
    (the train→test shift, and the unseen images of the memorisation audit)."""

    train: Split
    heldout: Split
    test: Split
    heldout_source: str


def real_images(data: LoadedDataset) -> RealImages:
    """The real sets for a cell of `data`: held-out images are the training images outside the cell's subset when it
    trains on part of the training split (a fraction or a per-class cap), else the validation split."""
    if len(data.full_train) > len(data.train):
        return RealImages(
            data.train, outside_subset(data.full_train, data.train), data.test, FLOOR_FROM_UNUSED_TRAINING
        )
    return RealImages(data.train, data.val, data.test, FLOOR_FROM_VALIDATION)


def outside_subset(full: Split, subset: Split) -> Split:
    """The images of `full` whose pixels equal no image of `subset` (so a duplicate of a subset image is left out)."""
    seen = {_pixel_key(image) for image in subset.images}
    keep = torch.tensor([_pixel_key(image) not in seen for image in full.images], dtype=torch.bool)
    return full.subset(keep.nonzero().flatten())


def _pixel_key(image: Tensor) -> bytes:
    """A digest of one image's shape and pixels."""
    return hashlib.blake2b(str(tuple(image.shape)).encode() + image.contiguous().numpy().tobytes()).digest()


@dataclass(frozen=True)
class _Draw:
    """Indices drawn from the training, held-out, test and synthetic splits with one shared class composition."""

    composition: dict[str, int]
    train: Tensor
    heldout: Tensor
    test: Tensor
    fake: Tensor


@dataclass(frozen=True)
class _Pool:
    """One split's images and the features of the images some measurement uses (image i's are row `row[i]`)."""

    images: Tensor
    features: Tensor
    row: Tensor

    def features_of(self, index: Tensor) -> Tensor:
        return self.features[self.row[index]]


@dataclass(frozen=True)
class _Pools:
    """The four splits of a report with the features its draws and its audit use."""

    train: _Pool
    heldout: _Pool
    test: _Pool
    fake: _Pool


def quality_report(
    real: RealImages,
    fake: Split,
    task: TaskSpec,
    extractor: FeatureExtractor,
    max_images: int = 2000,
    seed: int = 0,
    kid_subsets: int = 50,
    device: torch.device | None = None,
) -> QualityReport:
    """Class-matched quality metrics, per-class blocks and the memorisation audit, as a `QualityReport` (schema 3;
    `to_dict()` is what strategy reports and the CLI store).

    Every block scores a synthetic draw against a real training draw of the same class (label-row) composition and
    n, next to two real draws of that composition and n against the same reference ("reference" says how): the
    floor (held-out images of the training distribution, `real.heldout`) and the train→test shift (`real.test`).
    "matched" covers the whole synthetic set; "per_class" one class each (multi-label: the images positive for the
    label). The audit searches every training image, with test images as the unseen ones; only the synthetic and
    test sets are subsampled to `max_images`. Draws come from a torch.Generator seeded with `seed`; nearest-neighbour
    searches run on `device` (default: the extractor's). Metrics a block has too few images for are None (FID/KID:
    2; PRDC: k+1); FID is biased upwards at small n and unreliable when n - 1 < feature dim ("rank_deficient").
    """
    device = device or _device_of(extractor)
    generator = torch.Generator().manual_seed(seed)
    splits = (real.train, real.heldout, real.test, fake)
    groups = _block_masks(splits, task)
    draws = _matched_draws(splits, task, groups, max_images, generator)
    audit_fake, audit_test = (_subsample(len(split), max_images, generator) for split in (fake, real.test))
    pools = _Pools(
        _pool(real.train.images, [torch.arange(len(real.train))], extractor),
        _pool(real.heldout.images, [d.heldout for d in draws], extractor),
        _pool(real.test.images, [audit_test, *(d.test for d in draws)], extractor),
        _pool(fake.images, [audit_fake, *(d.fake for d in draws)], extractor),
    )
    blocks = [_block(draw, pools, masks[0], kid_subsets, seed, device) for draw, masks in zip(draws, groups)]
    audit_images = (fake.images[audit_fake], real.train.images, real.test.images[audit_test])
    audit_features = (pools.fake.features_of(audit_fake), pools.train.features, pools.test.features_of(audit_test))
    audit = memorisation_audit(*audit_images, *audit_features, device=device)
    return QualityReport(
        extractor=extractor.describe(),
        seed=seed,
        max_images=max_images,
        per_class_grouping="positive for the label" if task.multilabel else "class",
        reference=REFERENCE,
        floor_images=real.heldout_source,
        ms_ssim_setup=asdict(ms_ssim_setup(*fake.images.shape[-2:])),
        matched=blocks[0],
        per_class=dict(zip(task.labels, blocks[1:])),
        memorisation=build(MemorisationAudit, _in_fake_split_indices(audit, audit_fake)),
    )


def _block_masks(splits: tuple[Split, ...], task: TaskSpec) -> list[list[Tensor]]:
    """The masks (one per split) of each block: all images, then each class (multi-label: each label's positives)."""
    everything = [torch.ones(len(split), dtype=torch.bool) for split in splits]
    per_class = [[class_mask(split.labels, task, c) for split in splits] for c in range(task.num_outputs)]
    return [everything, *per_class]


def _matched_draws(
    splits: tuple[Split, ...], task: TaskSpec, groups: list[list[Tensor]], max_images: int, generator: torch.Generator
) -> list[_Draw]:
    """One class-matched draw per block (see `_matched_draw`), in the order of `groups`."""
    codes, names = _composition_codes([split.labels for split in splits], task)
    return [_matched_draw(codes, masks, names, max_images, generator) for masks in groups]


def _device_of(extractor: FeatureExtractor) -> torch.device:
    """The device the extractor's weights are on (CPU for a weightless one)."""
    return next(extractor.parameters(), torch.empty(0)).device


def _composition_codes(labels: list[Tensor], task: TaskSpec) -> tuple[list[Tensor], list[str]]:
    """A composition key per image, shared across the splits (single-label: the class; multi-label: the exact
    label row), and each key's name (the class name, or the row as 0/1 digits)."""
    rows = [(y > 0.5).long() if task.multilabel else y.long()[:, None] for y in labels]
    unique, inverse = torch.unique(torch.cat(rows), dim=0, return_inverse=True)
    if task.multilabel:
        names = ["".join(str(v) for v in row.tolist()) for row in unique]
    else:
        names = [task.labels[int(row[0])] for row in unique]
    return list(inverse.split([len(r) for r in rows])), names


def _matched_draw(
    codes: list[Tensor], masks: list[Tensor], names: list[str], max_images: int, generator: torch.Generator
) -> _Draw:
    """Draw without replacement from each split (train, held-out, test, fake; restricted to `masks`) the same count per
    composition key: the fewest any split has, scaled down to `max_images` in total by largest remainder."""
    groups = [_groups(code, mask, len(names)) for code, mask in zip(codes, masks)]
    available = [min(len(split_groups[k]) for split_groups in groups) for k in range(len(names))]
    quotas = available if sum(available) <= max_images else proportional(available, max_images)
    index = [
        torch.cat([g[torch.randperm(len(g), generator=generator)[:q]] for g, q in zip(split_groups, quotas)])
        for split_groups in groups
    ]
    return _Draw({names[k]: q for k, q in enumerate(quotas) if q > 0}, *(i.sort().values for i in index))


def _groups(code: Tensor, mask: Tensor, keys: int) -> list[Tensor]:
    """Indices of the masked images, one ascending tensor per composition key."""
    index = mask.nonzero().flatten()
    order = torch.argsort(code[index], stable=True)
    return list(index[order].split(torch.bincount(code[index], minlength=keys).tolist()))


def _subsample(n: int, most: int, generator: torch.Generator) -> Tensor:
    """Sorted indices of at most `most` of n items, drawn without replacement."""
    return torch.randperm(n, generator=generator)[:most].sort().values


def _pool(images: Tensor, uses: list[Tensor], extractor: FeatureExtractor) -> _Pool:
    """A split with the features of every image in `uses` (index tensors) extracted once."""
    needed = torch.cat(uses).unique()
    row = torch.full((len(images),), -1, dtype=torch.long)
    row[needed] = torch.arange(len(needed))
    return _Pool(images, extract_features(images[needed], extractor), row)


def _block(
    draw: _Draw, pools: _Pools, train_mask: Tensor, kid_subsets: int, seed: int, device: torch.device
) -> QualityBlock:
    """Every distribution metric of one matched draw, its floor and shift, diversity and nearest training images
    (restricted to `train_mask`); the metrics a draw is too small for are None."""
    train, fake = pools.train, pools.fake
    reference, feature_dim, n = train.features_of(draw.train), train.features.shape[1], len(draw.fake)
    fake_images = fake.images[draw.fake]
    nearest = nearest_real_similarity(fake_images, train.images[train_mask], device)["summary"] if n else None
    return QualityBlock(
        n=n,
        composition=draw.composition,
        feature_dim=feature_dim,
        rank_deficient=n - 1 < feature_dim,
        fake_vs_real=_distribution_metrics(reference, fake.features_of(draw.fake), kid_subsets, seed),
        floor=_distribution_metrics(reference, pools.heldout.features_of(draw.heldout), kid_subsets, seed),
        shift=_distribution_metrics(reference, pools.test.features_of(draw.test), kid_subsets, seed),
        ms_ssim_fake=_diversity(fake_images, seed),
        ms_ssim_real=_diversity(train.images[draw.train], seed),
        nearest_real=nearest,
    )


def _in_fake_split_indices(audit: dict, fake_index: Tensor) -> dict:
    """The audit with its synthetic indices mapped from the subsample back to the caller's fake split."""
    for space in ("pixel", "feature"):
        for pair in audit[space]["copies"] + audit[space]["closest_pairs"]:
            pair["fake"] = int(fake_index[pair["fake"]])
    return audit


def _distribution_metrics(real: Tensor, other: Tensor, kid_subsets: int, seed: int) -> DistributionScores:
    """FID, KID and PRDC of `other` against `real` features, None where there are too few samples."""
    metrics: dict = {"n_real": len(real), "n_fake": len(other)}
    if min(len(real), len(other)) >= 2:
        metrics |= fid_kid_features(real, other, kid_subsets=kid_subsets, seed=seed)
    if min(len(real), len(other)) > PRDC_K:
        metrics |= prdc(real, other)
    return DistributionScores(**metrics)


def _diversity(images: Tensor, seed: int) -> float | None:
    """MS-SSIM diversity with a seeded pair sampler, or None for fewer than 2 images."""
    return ms_ssim_diversity(images, generator=torch.Generator().manual_seed(seed)) if len(images) >= 2 else None


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
