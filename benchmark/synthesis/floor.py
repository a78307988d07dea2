"""The monitored FID curve's in-distribution floor: when a generator is scored against validation images (a pilot),
the FID those images have against real training images of the same classes, as many and in the same class
composition, in the monitor's feature space. A perfect generator of the training distribution would score about
this; a curve far above it is the generator's gap, a curve near it is as good as these images can tell."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from benchmark.data.dataset import Split
from benchmark.evaluate.features import FeatureExtractor
from benchmark.evaluate.quality import fid_kid

FLOOR_SEED = 6  # the floor's draw of training images: the generator seed + this
FLOOR_RULE = (
    "FID between the monitor's reference (validation images of the model's classes) and real images of the cell's "
    "training subset with the same label rows in the same proportions (as many as the reference, or, where the subset "
    "has fewer of some label row, every row scaled down by the same factor), drawn without replacement with the "
    "generator seed, in the monitor's feature space: what a perfect generator of the training distribution would score"
)


@dataclass(frozen=True)
class MonitorFloor:
    """One model's floor: its FID (None: fewer than 2 images on a side), the training images drawn for it and the
    reference images they were scored against."""

    fid: float | None
    images: int
    reference_images: int


def composition_matched(reference: Split, pool: Split, generator: torch.Generator) -> Split:
    """Images of `pool` with the label rows of `reference` in its proportions: as many of each row as `reference`
    has, or, where `pool` has fewer of some row, every row's count times the same factor (rounded down)."""
    reference_rows = reference.labels.reshape(len(reference), -1)
    pool_rows = pool.labels.reshape(len(pool), -1)
    rows, counts = torch.unique(reference_rows, dim=0, return_counts=True)
    members = [torch.nonzero((pool_rows == row).all(dim=1)).flatten() for row in rows]
    scale = min([1.0, *(len(m) / int(c) for m, c in zip(members, counts))])
    picks = [
        m[torch.randperm(len(m), generator=generator)[: math.floor(scale * int(c) + 1e-9)]]
        for m, c in zip(members, counts)
    ]
    index = torch.cat([torch.zeros(0, dtype=torch.long), *picks]).sort().values
    return pool.subset(index)


def monitor_floor(reference: Split, train: Split, features: FeatureExtractor, seed: int) -> MonitorFloor:
    """The floor of a curve scored against `reference`: its FID against a composition-matched draw of `train` (the
    cell's training subset) under `features`, the monitor's extractor."""
    real = composition_matched(reference, train, torch.Generator().manual_seed(seed + FLOOR_SEED))
    if min(len(real), len(reference)) < 2:
        return MonitorFloor(None, len(real), len(reference))
    fid = fid_kid(reference.images, real.images, features, kid_subsets=1)["fid"]
    return MonitorFloor(fid, len(real), len(reference))
