"""Classic augmentation strategies: `none`, `geometric` (flip + rotation), `cutmix_mixup`, and the strong baselines
`randaugment`, `trivialaugment` (TrivialAugmentWide) and `augmix`; and the rebalancing controls `oversample` and
`class_weighted`, which give a classifier the label prior a generative strategy's synthesis plan gives it, without
synthetic images, so that "synthetic images" and "rebalancing" can be told apart.

All work batch-wise on the batch's device and draw only from the run's generator. Per-sample angles and operations
are applied with one `grid_sample` call per batch (per layer of operations), since torchvision's functional
transforms use one parameter for a whole batch; the auto-augment operations are in `plugins.classic_ops`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from benchmark import LoadedDataset, MedAugBenchError, Split, Strategy, StrategyContext, TaskSpec, create
from benchmark.generate.synthesis import SynthesisPolicy, group_counts, group_members, plan_counts
from plugins.classic_ops import (
    AUGMIX_BINS,
    ENHANCE_OPS,
    INTERPOLATIONS,
    MAXIMA,
    MODALITIES,
    Modality,
    Op,
    apply_layer,
    dirichlet,
    draw_layer,
    modality_of,
    op_space,
)


@dataclass
class NoAugmentation(Strategy):
    """Real images only, untouched: the baseline every other strategy is compared with."""

    name = "none"


@dataclass
class ForModality(Strategy):
    """A strategy whose geometry follows an imaging modality (`plugins.classic_ops.MODALITIES`): `modality`, or
    "auto" for the modality of the dataset it is prepared for (`generic` for a dataset of unknown modality, and
    before it is prepared for any)."""

    modality: str = "auto"

    def __post_init__(self) -> None:
        if self.modality != "auto" and self.modality not in MODALITIES:
            raise MedAugBenchError(
                f"{self.name} needs modality 'auto' or one of {', '.join(MODALITIES)}, got {self.modality!r}"
            )
        self._dataset_modality = MODALITIES["generic"]

    @property
    def resolved(self) -> Modality:
        """The modality the strategy's ops follow now."""
        return self._dataset_modality if self.modality == "auto" else MODALITIES[self.modality]

    def prepare_for(self, dataset: LoadedDataset) -> None:
        self._dataset_modality = modality_of(dataset.name)

    def params(self) -> dict:
        """The parameters, with the modality the ops followed (an "auto" resolved)."""
        return super().params() | {"modality": self.resolved.name}


@dataclass
class Geometric(ForModality):
    """Random horizontal flip (probability `flip_p`) and a uniform rotation in ±`degrees`, per sample. Unset, they
    follow the modality: flip_p 0.5 where mirroring keeps the label (0 for chest radiographs), degrees 15 capped by
    the modality's largest rotation (10 for chest radiographs and ultrasound)."""

    name = "geometric"
    flip_p: float | None = None
    degrees: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.flip_p is not None and not 0.0 <= self.flip_p <= 1.0) or (
            self.degrees is not None and self.degrees < 0
        ):
            raise MedAugBenchError(
                f"geometric needs 0 <= flip_p <= 1 and degrees >= 0, got {self.flip_p}, {self.degrees}"
            )

    def flip_probability(self) -> float:
        """`flip_p`, or the modality's: 0.5 where a mirror image keeps the label, else 0."""
        return self.flip_p if self.flip_p is not None else (0.5 if self.resolved.flips else 0.0)

    def max_degrees(self) -> float:
        """`degrees`, or 15 capped by the modality's largest rotation."""
        return self.degrees if self.degrees is not None else min(15.0, self.resolved.max_rotation)

    def params(self) -> dict:
        return super().params() | {"flip_p": self.flip_probability(), "degrees": self.max_degrees()}

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        n = images.shape[0]
        draws = torch.rand(n, 2, generator=generator, device=generator.device).to(images.device)
        sign = torch.where(draws[:, 0] < self.flip_probability(), -1.0, 1.0)
        angle = (draws[:, 1] * 2 - 1) * math.radians(self.max_degrees())
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
class AutoAugmentSpace(ForModality):
    """What the auto-augment strategies share: torchvision's op space of `name` with shifts up to `translate` of
    the image side (default: the space's, see `plugins.classic_ops.MAXIMA`) and rotations capped by the modality."""

    translate: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.translate is not None and not 0.0 <= self.translate <= 1.0:
            raise MedAugBenchError(
                f"{self.name} needs 0 <= translate <= 1 (a fraction of the side), got {self.translate}"
            )

    def space(self) -> tuple[Op, ...]:
        """The op space the strategy draws from now."""
        return op_space(self.name, self.translate, self.resolved.max_rotation)

    def params(self) -> dict:
        share = MAXIMA[self.name].translate if self.translate is None else self.translate
        return super().params() | {
            "translate": share,
            "max_rotation": min(MAXIMA[self.name].rotate, self.resolved.max_rotation),
        }


@dataclass
class RandAugment(AutoAugmentSpace):
    """torchvision's RandAugment per image: `num_ops` operations in a row, each drawn uniformly from its 14 (identity
    included) with a random sign, at bin `magnitude` of `num_magnitude_bins`. See plugins.classic_ops for deviations."""

    name = "randaugment"
    num_ops: int = 2
    magnitude: int = 9
    num_magnitude_bins: int = 31
    interpolation: str = "nearest"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_ops < 0 or self.num_magnitude_bins < 2 or not 0 <= self.magnitude < self.num_magnitude_bins:
            raise MedAugBenchError(
                f"randaugment needs num_ops >= 0, num_magnitude_bins >= 2 and 0 <= magnitude < num_magnitude_bins, "
                f"got {self.num_ops}, {self.num_magnitude_bins}, {self.magnitude}"
            )
        _check_interpolation(self.name, self.interpolation)

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        levels, space = (self.magnitude, self.magnitude + 1), self.space()
        for _ in range(self.num_ops):
            ops, magnitudes = draw_layer(space, self.num_magnitude_bins, levels, images.shape, generator)
            images = apply_layer(images, space, ops, magnitudes, self.interpolation)
        return images, targets


@dataclass
class TrivialAugment(AutoAugmentSpace):
    """torchvision's TrivialAugmentWide per image: one operation of 14 and one of `num_magnitude_bins` magnitudes,
    both uniform. Shifts reach 32/224 of the side (torchvision: 32 px whatever the size, which at 28 px moves an image
    out of the frame)."""

    name = "trivialaugment"
    num_magnitude_bins: int = 31
    interpolation: str = "nearest"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_magnitude_bins < 2:
            raise MedAugBenchError(f"trivialaugment needs num_magnitude_bins >= 2, got {self.num_magnitude_bins}")
        _check_interpolation(self.name, self.interpolation)

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        levels, space = (0, self.num_magnitude_bins), self.space()
        ops, magnitudes = draw_layer(space, self.num_magnitude_bins, levels, images.shape, generator)
        return apply_layer(images, space, ops, magnitudes, self.interpolation), targets


@dataclass
class AugMix(AutoAugmentSpace):
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
        super().__post_init__()
        if not 1 <= self.severity <= AUGMIX_BINS or self.mixture_width < 1 or self.alpha <= 0:
            raise MedAugBenchError(
                f"augmix needs 1 <= severity <= {AUGMIX_BINS}, mixture_width >= 1 and alpha > 0, "
                f"got {self.severity}, {self.mixture_width}, {self.alpha}"
            )
        _check_interpolation(self.name, self.interpolation)

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        n, shape, space = images.shape[0], (-1, 1, 1, 1), self.space()
        space = space if self.all_ops else space[:-ENHANCE_OPS]  # all_ops=False: without the enhance ops
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


@dataclass
class Rebalancing(Strategy):
    """What the rebalancing controls share: the synthesis plan of a generative strategy with the same `policy`,
    `ratio`, `multiplier` and `counts` (benchmark.generate.synthesis.plan_counts, the one plan function), and
    classic augmentation `augment_with` on the batches, as generative strategies take it."""

    policy: str = "balance"
    ratio: float = 1.0
    multiplier: float = 1.0
    counts: dict = field(default_factory=dict)
    augment_with: str = "none"

    def __post_init__(self) -> None:
        self._policy = SynthesisPolicy(
            kind=self.policy, ratio=self.ratio, multiplier=self.multiplier, counts=dict(self.counts)
        )
        if self._policy.replaces_real:
            raise MedAugBenchError(f"{self.name} adds to the real images; choose policy balance, multiply or fixed")
        self._augmenter = create("strategy", self.augment_with)
        self._report: dict = {}

    def plan(self, labels: torch.Tensor, task: TaskSpec) -> list[int]:
        """Images per class (label) the generative strategies would synthesise; a planned class without a real
        image is an error, as it is for them."""
        plan = plan_counts(labels, task, self._policy)
        empty = [task.labels[g] for g, (n, real) in enumerate(zip(plan, group_counts(labels, task))) if n and not real]
        if empty:
            raise MedAugBenchError(f"{self.name}: no training image of {', '.join(empty)} to rebalance with")
        return plan

    def prepare_for(self, dataset: LoadedDataset) -> None:
        self._augmenter.prepare_for(dataset)

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        return self._augmenter.augment(images, targets, generator)

    def report(self) -> dict:
        return self._report


@dataclass
class Oversample(Rebalancing):
    """Real images of each class (multi-label: real rows positive for each label, with their own labels) repeated up
    to exactly the plan's counts: every image of the class as many whole times as fit, the remainder a random subset
    without repeats, drawn from the generator seed. They come as extra samples, where synthetic images would."""

    name = "oversample"

    def synthesize(self, context: StrategyContext) -> Split:
        real, task = context.dataset.train, context.dataset.task
        plan = self.plan(real.labels, task)
        draw = torch.Generator().manual_seed(context.seed)
        picks = [repeats(group_members(real.labels, task, g), n, draw) for g, n in enumerate(plan)]
        self._report = {"oversample": {"policy": self.policy, "plan": plan, "repeated": sum(plan)}}
        return real.subset(torch.cat(picks))


def repeats(members: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """`n` of `members`: each member n // len(members) times, then n % len(members) distinct ones at random."""
    if n == 0:
        return members[:0]
    whole, rest = divmod(n, len(members))
    return torch.cat([members.repeat(whole), members[torch.randperm(len(members), generator=generator)[:rest]]])


@dataclass
class ClassWeighted(Rebalancing):
    """The loss weighted to the prior the plan gives: class c's weight is (real_c + plan_c) / real_c, scaled so that
    the training set's mean weight is 1 (the loss keeps its scale); multi-label: label j's positive weight in the
    BCE is (positives_j + plan_j) / positives_j (negatives keep weight 1)."""

    name = "class_weighted"

    def synthesize(self, context: StrategyContext) -> None:
        """Nothing to add; records the weights the real training set gets."""
        weights = self.class_weights(context.dataset.train.labels, context.dataset.task)
        self._report = {"class_weighted": {"policy": self.policy, "weights": weights.tolist()}}

    def class_weights(self, labels: torch.Tensor, task: TaskSpec) -> torch.Tensor:
        real = torch.tensor(group_counts(labels, task), dtype=torch.float64)
        target = real + torch.tensor(self.plan(labels, task), dtype=torch.float64)
        weights = torch.where(real > 0, target / real.clamp(min=1), 1.0)  # a class without images has no loss term
        if not task.multilabel:
            weights = weights * real.sum() / target.sum()
        return weights.float()
