"""Deterministic low-data subsets of a training split: a stratified fraction and/or a per-class cap."""

from __future__ import annotations

import torch

from benchmark.data.task import TaskSpec


def strata(labels: torch.Tensor, task: TaskSpec) -> torch.Tensor:
    """Stratum of each sample: its class, or for multi-label data its rarest positive label (L if none)."""
    if not task.multilabel:
        return labels.long()
    positives = labels > 0.5
    counts = positives.sum(dim=0).float()
    # rank labels by rarity; an all-negative sample gets stratum L
    rarity = torch.where(positives, counts.expand_as(labels), torch.full_like(labels, float("inf"), dtype=torch.float))
    rarest = rarity.argmin(dim=1)
    return torch.where(positives.any(dim=1), rarest, torch.full_like(rarest, labels.shape[1]))


def subsample_indices(
    labels: torch.Tensor, task: TaskSpec, fraction: float = 1.0, cap: int | None = None, seed: int = 0
) -> torch.Tensor:
    """Indices of a stratified subset: round(fraction × n) per stratum (at least 1), then at most `cap` each.

    The same labels, options and seed always give the same indices, in ascending order.
    """
    generator = torch.Generator().manual_seed(seed)
    groups = strata(labels, task)
    chosen = []
    for value in torch.unique(groups):
        members = torch.nonzero(groups == value).flatten()
        keep = max(1, round(fraction * len(members)))
        if cap is not None:
            keep = min(keep, cap)
        order = torch.randperm(len(members), generator=generator)
        chosen.append(members[order[:keep]])
    return torch.cat(chosen).sort().values
