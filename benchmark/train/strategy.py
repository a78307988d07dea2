"""The strategy interface: a strategy may add samples to the training set, transform batches, weigh the loss's
classes, or several of these.

The training loop calls every hook for every strategy and never branches on a strategy's name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from benchmark.data.dataset import LoadedDataset, Split
from benchmark.data.task import TaskSpec
from benchmark.errors import MedAugBenchError
from benchmark.registry import declare_product


@dataclass
class StrategyContext:
    """What a strategy may use when it prepares: the real data (after low-data subsetting), device and seed."""

    dataset: LoadedDataset
    device: torch.device
    seed: int
    work_dir: Path | None = None
    progress: bool = True


class Strategy:
    """Identity strategy; subclasses override `synthesize` and/or `augment`. Subclasses are dataclasses of their
    parameters."""

    name: ClassVar[str] = "none"

    def prepare_for(self, dataset: LoadedDataset) -> None:
        """Adapt to the dataset before anything else runs (e.g. a modality's op set); the default adapts nothing. A
        strategy that delegates its batches to another strategy passes this on to it."""
        return None

    def synthesize(self, context: StrategyContext) -> Split | None:
        """Extra uint8 training samples to merge with the real training split (None: add nothing)."""
        return None

    def assess(self, context: StrategyContext, synthetic: Split | None) -> None:
        """Score what `synthesize` made (e.g. its quality report), into `report()`: evaluation, which the run times
        apart from synthesis and never counts as generator compute; the default scores nothing."""
        return None

    def plugins_used(self) -> list[tuple[str, str]]:
        """(kind, name) of every plugin this strategy uses besides itself (e.g. its generator and extractors), for the
        run record; the default uses none."""
        return []

    def combine(self, real: Split, synthetic: Split | None) -> Split:
        """The training set: real plus synthetic samples (a strategy may instead train on synthetic data alone)."""
        return merge_splits(real, synthetic, self.name)

    def augment(
        self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Transform one batch on its device: float images in [0, 1] (B, C, H, W) and float targets (B, K)."""
        return images, targets

    def class_weights(self, labels: torch.Tensor, task: TaskSpec) -> torch.Tensor | None:
        """Loss weights for a training set with these labels, float (K,): each class's weight in the cross-entropy,
        or each label's positive weight in the BCE of a multi-label task; None (the default) for an unweighted loss."""
        return None

    def params(self) -> dict:
        """Parameters recorded with every result."""
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}

    def preview(self) -> Split | None:
        """A few generated images of every class, to look at (the per-class sample grid of reports), drawn apart from
        the training set and its budget; None for a strategy that generates nothing."""
        return None

    def report(self) -> dict:
        """Facts about what the strategy did (e.g. its generator's training), recorded with every result as its
        `StrategyReport` (benchmark.train.record): a "quality" report is read as a typed `QualityReport`, a
        "compute" block goes to the record's compute, the rest is kept as given."""
        return {}


declare_product("strategy", Strategy)


def merge_splits(real: Split, synthetic: Split | None, strategy: str) -> Split:
    """Real plus synthetic samples; samples of another shape or label type are an error naming the strategy."""
    if synthetic is None or len(synthetic) == 0:
        return real
    if synthetic.images.shape[1:] != real.images.shape[1:] or synthetic.labels.dtype != real.labels.dtype:
        raise MedAugBenchError(
            f"strategy {strategy!r} synthesised images {tuple(synthetic.images.shape[1:])} / "
            f"labels {synthetic.labels.dtype}, "
            f"but the real data is {tuple(real.images.shape[1:])} / {real.labels.dtype}"
        )
    return Split(torch.cat([real.images, synthetic.images]), torch.cat([real.labels, synthetic.labels]))
