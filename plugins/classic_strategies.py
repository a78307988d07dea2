"""Classic augmentation strategies: `none`, `geometric` (flip + rotation), `cutmix_mixup`, and the strong baselines
`randaugment`, `trivialaugment` (TrivialAugmentWide) and `augmix`.

All work batch-wise on the batch's device and draw only from the run's generator. Per-sample angles and operations
are applied with one `grid_sample` call per batch (per layer of operations), since torchvision's functional
transforms use one parameter for a whole batch; the auto-augment operations are in `plugins.classic_ops`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark import MedAugBenchError, Strategy, hookimpl
from plugins.classic_ops import (
    AUGMIX,
    AUGMIX_BINS,
    AUGMIX_PARTIAL,
    INTERPOLATIONS,
    RANDAUGMENT,
    TRIVIALAUGMENT,
    Op,
    apply_layer,
    dirichlet,
    draw_layer,
)


@dataclass
class NoAugmentation(Strategy):
    """Real images only, untouched: the baseline every other strategy is compared with."""

    name = "none"


@dataclass
class Geometric(Strategy):
    """Random horizontal flip (probability `flip_p`) and a uniform rotation in ±`degrees`, per sample."""

    name = "geometric"
    flip_p: float = 0.5
    degrees: float = 15.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip_p <= 1.0 or self.degrees < 0:
            raise MedAugBenchError(
                f"geometric needs 0 <= flip_p <= 1 and degrees >= 0, got {self.flip_p}, {self.degrees}"
            )

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        n = images.shape[0]
        draws = torch.rand(n, 2, generator=generator, device=generator.device).to(images.device)
        sign = torch.where(draws[:, 0] < self.flip_p, -1.0, 1.0)
        angle = (draws[:, 1] * 2 - 1) * math.radians(self.degrees)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # rows of the sampling matrix; multiplying the x column by -1 mirrors the sample horizontally
        theta = torch.stack(
            [
                torch.stack([cos * sign, -sin, torch.zeros_like(cos)], dim=1),
                torch.stack([sin * sign, cos, torch.zeros_like(cos)], dim=1),
            ],
            dim=1,
        ).to(images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False), targets


def _check_interpolation(strategy: str, interpolation: str) -> None:
    if interpolation not in INTERPOLATIONS:
        raise MedAugBenchError(f"{strategy} needs interpolation in {INTERPOLATIONS}, got {interpolation!r}")


@dataclass
class RandAugment(Strategy):
    """torchvision's RandAugment per image: `num_ops` operations in a row, each drawn uniformly from its 14 (identity
    included) with a random sign, at bin `magnitude` of `num_magnitude_bins`. See plugins.classic_ops for deviations."""

    name = "randaugment"
    num_ops: int = 2
    magnitude: int = 9
    num_magnitude_bins: int = 31
    interpolation: str = "nearest"

    def __post_init__(self) -> None:
        if self.num_ops < 0 or self.num_magnitude_bins < 2 or not 0 <= self.magnitude < self.num_magnitude_bins:
            raise MedAugBenchError(
                f"randaugment needs num_ops >= 0, num_magnitude_bins >= 2 and 0 <= magnitude < num_magnitude_bins, "
                f"got {self.num_ops}, {self.num_magnitude_bins}, {self.magnitude}"
            )
        _check_interpolation(self.name, self.interpolation)

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        levels = (self.magnitude, self.magnitude + 1)
        for _ in range(self.num_ops):
            ops, magnitudes = draw_layer(RANDAUGMENT, self.num_magnitude_bins, levels, images.shape, generator)
            images = apply_layer(images, RANDAUGMENT, ops, magnitudes, self.interpolation)
        return images, targets


@dataclass
class TrivialAugment(Strategy):
    """torchvision's TrivialAugmentWide per image: one operation of 14 and one of `num_magnitude_bins` magnitudes,
    both uniform. Its shifts reach 32 px whatever the image size (torchvision's bins), so at 28 px an image can leave
    the frame."""

    name = "trivialaugment"
    num_magnitude_bins: int = 31
    interpolation: str = "nearest"

    def __post_init__(self) -> None:
        if self.num_magnitude_bins < 2:
            raise MedAugBenchError(f"trivialaugment needs num_magnitude_bins >= 2, got {self.num_magnitude_bins}")
        _check_interpolation(self.name, self.interpolation)

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        levels = (0, self.num_magnitude_bins)
        ops, magnitudes = draw_layer(TRIVIALAUGMENT, self.num_magnitude_bins, levels, images.shape, generator)
        return apply_layer(images, TRIVIALAUGMENT, ops, magnitudes, self.interpolation), targets


@dataclass
class AugMix(Strategy):
    """torchvision's AugMix per image: `mixture_width` chains of `chain_depth` operations (1-3 at random per image
    and chain when <= 0) at one of the lowest `severity` of 10 bins, mixed with Dirichlet(alpha) weights and blended
    with the original by Beta(alpha, alpha); the mix is clamped to [0, 1] against rounding."""

    name = "augmix"
    severity: int = 3
    mixture_width: int = 3
    chain_depth: int = -1
    alpha: float = 1.0
    all_ops: bool = True
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if not 1 <= self.severity <= AUGMIX_BINS or self.mixture_width < 1 or self.alpha <= 0:
            raise MedAugBenchError(
                f"augmix needs 1 <= severity <= {AUGMIX_BINS}, mixture_width >= 1 and alpha > 0, "
                f"got {self.severity}, {self.mixture_width}, {self.alpha}"
            )
        _check_interpolation(self.name, self.interpolation)

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        n, shape, space = images.shape[0], (-1, 1, 1, 1), AUGMIX if self.all_ops else AUGMIX_PARTIAL
        keep = dirichlet(self.alpha, n, 2, generator).to(images)
        weights = dirichlet(self.alpha, n, self.mixture_width, generator).to(images) * keep[:, 1:]
        mix = keep[:, 0].view(shape) * images
        for chain in range(self.mixture_width):
            mix = mix + weights[:, chain].view(shape) * self._chain(images, space, generator)
        return mix.clamp(0.0, 1.0), targets

    def _chain(self, images: torch.Tensor, space: tuple[Op, ...], generator: torch.Generator) -> torch.Tensor:
        """One chain: `chain_depth` operations per image, or 1-3 (uniform per image) when it is <= 0."""
        n, device = images.shape[0], generator.device
        if self.chain_depth > 0:
            depth, steps = torch.full((n,), self.chain_depth, device=device), self.chain_depth
        else:
            depth, steps = torch.randint(1, 4, (n,), generator=generator, device=device), 3
        for step in range(steps):
            ops, magnitudes = draw_layer(space, AUGMIX_BINS, (0, self.severity), images.shape, generator)
            images = apply_layer(images, space, torch.where(depth > step, ops, -1), magnitudes, self.interpolation)
        return images


@dataclass
class CutMixMixUp(Strategy):
    """torchvision's CutMix or MixUp (one chosen with probability 1/2 per batch) on probability targets.

    Targets are one-hot or multi-hot vectors, so multi-label data (ChestMNIST) is mixed label-wise. MixUp:
    lambda * x + (1 - lambda) * x.roll(1, 0), targets alike. CutMix: a box of area ratio 1 - lambda from x.roll(1, 0),
    lambda then set to the box's actual area, targets mixed by it. The choice, lambda ~ Beta(alpha, alpha) and the
    box centre all come from the run's generator.
    """

    name = "cutmix_mixup"
    cutmix_alpha: float = 1.0
    mixup_alpha: float = 0.2

    def __post_init__(self) -> None:
        if self.cutmix_alpha <= 0 or self.mixup_alpha <= 0:
            raise MedAugBenchError("cutmix_mixup needs cutmix_alpha > 0 and mixup_alpha > 0")

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        use_cutmix = bool(torch.rand((), generator=generator, device=generator.device) < 0.5)
        lam = float(dirichlet(self.cutmix_alpha if use_cutmix else self.mixup_alpha, 1, 2, generator)[0, 0])
        if use_cutmix:
            return cutmix(images, targets, lam, generator)
        return images * lam + images.roll(1, 0) * (1.0 - lam), mix_targets(targets, lam)


def mix_targets(targets: torch.Tensor, lam: float) -> torch.Tensor:
    """torchvision's label mixing: lam of each sample's own targets, 1 - lam of the previous sample's."""
    return targets * lam + targets.roll(1, 0) * (1.0 - lam)


def cutmix(images: torch.Tensor, targets: torch.Tensor, lam: float, generator: torch.Generator):
    """Paste a box of area ratio about 1 - lam from the previous sample, centred at a generator-drawn pixel."""
    height, width = images.shape[-2:]
    cx = int(torch.randint(width, (), generator=generator, device=generator.device))
    cy = int(torch.randint(height, (), generator=generator, device=generator.device))
    half = 0.5 * math.sqrt(1.0 - lam)
    half_w, half_h = int(half * width), int(half * height)
    x1, y1, x2, y2 = max(cx - half_w, 0), max(cy - half_h, 0), min(cx + half_w, width), min(cy + half_h, height)
    out = images.clone()
    out[..., y1:y2, x1:x2] = images.roll(1, 0)[..., y1:y2, x1:x2]
    return out, mix_targets(targets, 1.0 - (x2 - x1) * (y2 - y1) / (width * height))


@hookimpl
def register_strategies(register) -> None:
    register("none", NoAugmentation, "no augmentation: real images only (the baseline)")
    register("geometric", Geometric, "random horizontal flip and ±15° rotation, per sample, on the device")
    register("cutmix_mixup", CutMixMixUp, "torchvision CutMix or MixUp per batch (mixes one-hot or multi-hot targets)")
    register("randaugment", RandAugment, "torchvision RandAugment (2 ops at magnitude 9 of 31), ops drawn per image")
    register("trivialaugment", TrivialAugment, "torchvision TrivialAugmentWide: one op and magnitude per image")
    register("augmix", AugMix, "torchvision AugMix: 3 chains of 1-3 ops mixed with Dirichlet/Beta weights, per image")
