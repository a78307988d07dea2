"""A uniform description of a classification task, shared by datasets, backbones, strategies and metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TaskKind = Literal["binary", "multiclass", "ordinal", "multilabel"]

_MEDMNIST_TASKS: dict[str, TaskKind] = {
    "binary-class": "binary",
    "multi-class": "multiclass",
    "ordinal-regression": "ordinal",
    "multi-label, binary-class": "multilabel",
}


@dataclass(frozen=True)
class TaskSpec:
    """What is predicted: the kind of task and the class (or label) names, plus the image channels."""

    kind: TaskKind
    labels: tuple[str, ...]
    channels: int

    def __post_init__(self) -> None:
        if self.kind not in ("binary", "multiclass", "ordinal", "multilabel"):
            raise ValueError(f"unknown task kind {self.kind!r}")
        if self.kind == "binary" and len(self.labels) != 2:
            raise ValueError(f"a binary task has 2 classes, got {len(self.labels)}")

    @property
    def multilabel(self) -> bool:
        return self.kind == "multilabel"

    @property
    def num_outputs(self) -> int:
        """Logits a classifier emits: one per class, or one per label for multi-label tasks."""
        return len(self.labels)

    @classmethod
    def from_medmnist(cls, info: dict) -> TaskSpec:
        """Build from a `medmnist.INFO[flag]` entry (task string, label dict, channels)."""
        labels = tuple(info["label"][str(i)] for i in range(len(info["label"])))
        return cls(kind=_MEDMNIST_TASKS[info["task"]], labels=labels, channels=int(info["n_channels"]))
