"""Synthesis policies: how many synthetic images each class (or label) gets, and which label vectors they carry.

Groups are classes for single-label tasks. For multi-label tasks (ChestMNIST) group j is "images positive for
label j" (groups overlap); a label is a minority when its positive count is below the largest positive count.
Synthetic images for group j are conditioned on label vectors drawn from real training rows positive for j,
so label co-occurrence stays realistic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from benchmark.data.dataset import Split, class_mask
from benchmark.data.task import TaskSpec
from benchmark.errors import MedAugBenchError

if TYPE_CHECKING:
    import torch

PolicyKind = Literal["balance", "multiply", "fixed", "synthetic_only"]


@dataclass(frozen=True)
class SynthesisPolicy:
    """`balance`: (max − count) × ratio per group (seed paper Algorithm 2); `multiply`: multiplier × count;
    `fixed`: explicit counts by class name or index; `synthetic_only`: as many as the real set, which it replaces."""

    kind: PolicyKind = "balance"
    ratio: float = 1.0
    multiplier: float = 1.0
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("balance", "multiply", "fixed", "synthetic_only"):
            raise MedAugBenchError(
                f"unknown synthesis policy {self.kind!r}; choose balance, multiply, fixed or synthetic_only"
            )
        if self.ratio < 0 or self.multiplier < 0 or any(int(v) < 0 for v in self.counts.values()):
            raise MedAugBenchError("synthesis ratio, multiplier and counts must be non-negative")
        if self.kind == "fixed" and not self.counts:
            raise MedAugBenchError("the fixed policy needs per-class counts, e.g. counts={'normal': 400}")

    @property
    def replaces_real(self) -> bool:
        return self.kind == "synthetic_only"

    def plan(self, counts: list[int], task: TaskSpec) -> list[int]:
        """Synthetic images per group, given the real images per group."""
        if self.kind == "balance":
            top = max(counts)
            return [round((top - c) * self.ratio) for c in counts]
        if self.kind == "multiply":
            return [round(c * self.multiplier) for c in counts]
        if self.kind == "synthetic_only":
            return list(counts)
        planned = [0] * len(counts)
        for key, value in self.counts.items():
            planned[_group_index(key, task)] = int(value)
        return planned


def _group_index(key: str | int, task: TaskSpec) -> int:
    text = str(key)
    if text in task.labels:
        return task.labels.index(text)
    if text.isdigit() and int(text) < task.num_outputs:
        return int(text)
    raise MedAugBenchError(
        f"fixed policy names {key!r}, which is not a class of this dataset ({', '.join(task.labels)})"
    )


def group_counts(labels: torch.Tensor, task: TaskSpec) -> list[int]:
    """Real images per group: per class, or positives per label for a multi-label task."""
    return [int(class_mask(labels, task, group).sum()) for group in range(task.num_outputs)]


def plan_counts(labels: torch.Tensor, task: TaskSpec, policy: SynthesisPolicy) -> list[int]:
    """The synthesis plan: images per group (index = group, as in `task.labels`) that `policy` asks for, given the
    real training labels. The one place a plan is computed: generative strategies train models for and sample
    exactly these counts, and `oversample` repeats real images up to them."""
    return policy.plan(group_counts(labels, task), task)


def group_members(labels: torch.Tensor, task: TaskSpec, group: int) -> torch.Tensor:
    """Indices of the real training images in a group (a class, or the positives of a label)."""
    import torch  # here, not at the top: a grid's dry run checks policies without torch

    return torch.nonzero(class_mask(labels, task, group)).flatten()


def label_rows(real: Split, task: TaskSpec, group: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """Labels for `n` synthetic images of a group: the class index, or real multi-hot rows positive for the label."""
    import torch

    if not task.multilabel:
        return torch.full((n,), group, dtype=torch.long)
    members = group_members(real.labels, task, group)
    if len(members) == 0:
        raise MedAugBenchError(f"label {task.labels[group]!r} has no positive training image to condition on")
    pick = torch.randint(len(members), (n,), generator=generator)
    return real.labels[members[pick]].clone()


def conditioning(labels: torch.Tensor, task: TaskSpec) -> torch.Tensor:
    """Float conditioning vectors for labels: one-hot, or the multi-hot row itself."""
    import torch.nn.functional as F

    return labels.float() if task.multilabel else F.one_hot(labels, task.num_outputs).float()
