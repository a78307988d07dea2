"""Classic augmentation strategies: `none`, `geometric` (flip + rotation) and `cutmix_mixup`.

All work batch-wise on the batch's device. Per-sample rotation angles are applied with one `affine_grid` /
`grid_sample` call, since torchvision's functional `rotate` uses one angle for a whole batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from benchmark.errors import MedAugBenchError
from benchmark.hookspecs import hookimpl
from benchmark.strategy import Strategy


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
            raise MedAugBenchError(f"geometric needs 0 <= flip_p <= 1 and degrees >= 0, got {self.flip_p}, {self.degrees}")

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        n = images.shape[0]
        draws = torch.rand(n, 2, generator=generator, device=generator.device).to(images.device)
        sign = torch.where(draws[:, 0] < self.flip_p, -1.0, 1.0)
        angle = (draws[:, 1] * 2 - 1) * math.radians(self.degrees)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # rows of the sampling matrix; multiplying the x column by -1 mirrors the sample horizontally
        theta = torch.stack(
            [torch.stack([cos * sign, -sin, torch.zeros_like(cos)], dim=1),
             torch.stack([sin * sign, cos, torch.zeros_like(cos)], dim=1)], dim=1
        ).to(images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False), targets


@dataclass
class CutMixMixUp(Strategy):
    """torchvision's CutMix or MixUp (one chosen at random per batch) on probability targets.

    Targets are one-hot or multi-hot vectors, so multi-label data (ChestMNIST) is mixed label-wise.
    The choice and the mixing coefficient come from torch's global RNG, which the training loop seeds.
    """

    name = "cutmix_mixup"
    cutmix_alpha: float = 1.0
    mixup_alpha: float = 0.2

    def __post_init__(self) -> None:
        if self.cutmix_alpha <= 0 or self.mixup_alpha <= 0:
            raise MedAugBenchError("cutmix_mixup needs cutmix_alpha > 0 and mixup_alpha > 0")
        self._mix = v2.RandomChoice([v2.CutMix(alpha=self.cutmix_alpha), v2.MixUp(alpha=self.mixup_alpha)])

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        return self._mix(images, targets)


@hookimpl
def register_strategies(register) -> None:
    register("none", NoAugmentation, "no augmentation: real images only (the baseline)")
    register("geometric", Geometric, "random horizontal flip and ±15° rotation, per sample, on the device")
    register("cutmix_mixup", CutMixMixUp, "torchvision CutMix or MixUp per batch (mixes one-hot or multi-hot targets)")
