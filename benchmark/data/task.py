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
    """What is predicted: the kind of task and the class (or label) names, plus the image channels. A binary task
    also names its positive class (`positive`, an index into `labels`): the one whose recall is the sensitivity and
    whose precision, F1 and AUC the aggregates report (the dataset card's `positive_class`, else label 1)."""

    kind: TaskKind
    labels: tuple[str, ...]
    channels: int
    positive: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("binary", "multiclass", "ordinal", "multilabel"):
            raise ValueError(f"unknown task kind {self.kind!r}")
        if self.kind == "binary" and len(self.labels) != 2:
            raise ValueError(f"a binary task has 2 classes, got {len(self.labels)}")
        if self.kind == "binary" and self.positive not in (0, 1):
            raise ValueError(f"the positive class of a binary task is 0 or 1, got {self.positive}")

    @property
    def multilabel(self) -> bool:
        return self.kind == "multilabel"

    @property
    def num_outputs(self) -> int:
        """Logits a classifier emits: one per class, or one per label for multi-label tasks."""
        return len(self.labels)

    @classmethod
    def from_medmnist(cls, info: dict, positive_class: str = "") -> TaskSpec:
        """Build from a `medmnist.INFO[flag]` entry (task string, label dict, channels); `positive_class` names the
        positive class of a binary task by its label (from the dataset card), else label 1 is positive."""
        labels = tuple(info["label"][str(i)] for i in range(len(info["label"])))
        if positive_class and positive_class not in labels:
            raise ValueError(f"positive class {positive_class!r} is not one of the labels {labels}")
        positive = labels.index(positive_class) if positive_class else 1
        return cls(
            kind=_MEDMNIST_TASKS[info["task"]], labels=labels, channels=int(info["n_channels"]), positive=positive
        )
