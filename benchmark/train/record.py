"""The result record of one run: metrics, budget actually used, curves, config and environment; JSON on disk."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.data.files import write_json_atomic


@dataclass
class BudgetUsed:
    """What the run actually spent."""

    kind: str
    limit: float
    steps: int = 0
    images_seen: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    peak_memory_bytes: int = 0


@dataclass
class Curves:
    """Learning curves: one entry per evaluation on the validation split."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    val_auc: list[float | None] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_balanced_accuracy: list[float] = field(default_factory=list)


@dataclass
class RunRecord:
    """One run's result. `compute`: the budget and, per phase (generator_training, synthesis, classifier_training),
    FLOPs (counted, `benchmark.train.flops.COUNTER`) and device-seconds, with their `total`."""

    config: dict
    dataset: dict
    strategy: dict
    metrics: dict[str, dict]
    best: dict
    budget: BudgetUsed
    curves: Curves
    environment: dict
    compute: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def write(self, path: Path) -> Path:
        """Atomic write (temp file + rename): a reader never sees half a record."""
        write_json_atomic(path, self.to_dict())
        return path
