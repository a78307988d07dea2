"""The generative strategy's parameters, grouped: the flat `-S name=value` parameters users, presets and published
configs pass (`generator_steps`, `select_points`, ...) are read into typed groups once, and checked there.

The generator budget is one of `generator_steps`, `generator_seconds` or `generator_flops`; none given means
DEFAULT_STEPS steps, and two given is an error (an explicit step budget is never dropped silently beside another)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from benchmark.errors import MedAugBenchError
from benchmark.evaluate.fidelity import DEFAULT_MAX_FID_RATIO
from benchmark.generate.synthesis import SynthesisPolicy
from benchmark.train.config import GeneratorBudget

DEFAULT_STEPS = 2000
MONITOR_IMAGES = 256
MONITOR_REFERENCES = {
    "train": "FID of samples against up to 256 of the cell's own training images of the model's classes (fakes "
    "conditioned on the same label rows), under an extractor trained on the cell's training subset only",
    "val": "FID of samples against every validation image of the model's classes (fakes conditioned on the same "
    "label rows), under an extractor trained on the cell's training subset only; recorded for a pilot, never used "
    "to stop training",
}
SELECTION_RULE = (
    "FID in a fixed random-CNN feature space between samples and the images of the model's classes held out from the "
    "cell's training subset (samples conditioned on the same label rows), at `points` evenly spaced fractions of the "
    "model's budget, the last at its end; the weights with the lowest FID are used"
)
Unrecognisable = Literal["flag", "refuse"]


def generator_budget(steps: int | None, seconds: float | None, flops: float | None) -> GeneratorBudget:
    """The strategy's total generator budget: the one kind given, or DEFAULT_STEPS steps when none is."""
    kinds = (("steps", steps), ("seconds", seconds), ("flops", flops))
    given = {name: value for name, value in kinds if value is not None}
    if len(given) > 1:
        named = ", ".join(f"generator_{name}={value}" for name, value in given.items())
        raise MedAugBenchError(f"give the generator one budget, not {named}; drop all but one of them")
    return GeneratorBudget(steps=steps, seconds=seconds, flops=flops) if given else GeneratorBudget(DEFAULT_STEPS)


@dataclass(frozen=True)
class ModelParams:
    """What is trained: the registered generator, its parameters, batch size, and whether it may condition."""

    generator: str
    params: dict
    batch_size: int
    conditioning: bool

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise MedAugBenchError("generator_batch_size must be at least 1")


@dataclass(frozen=True)
class MonitorParams:
    """Scoring during training: early stopping on a plateau, or only recording quality (every so many steps, or at
    total steps `at`), against the cell's training images or (recorded only) validation images."""

    early_stop_every: int | None = None
    patience: int = 3
    track_every: int | None = None
    at: tuple[int, ...] = ()
    on: str = "train"
    extractor: str | None = "domain"
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.on not in MONITOR_REFERENCES:
            raise MedAugBenchError(f"track_quality_on must be one of {', '.join(MONITOR_REFERENCES)}, got {self.on!r}")
        if self.on == "val" and self.early_stop_every:
            raise MedAugBenchError(
                "early stopping scores against the cell's training images only; track_quality_on='val' only records"
            )
        if self.monitored and self.extractor is None:
            raise MedAugBenchError(
                "early stopping and quality tracking score the generator with an extractor; set monitor_extractor"
            )

    @property
    def every(self) -> int | None:
        """Steps between quality scores during training (None: not scored every so many steps)."""
        return self.early_stop_every or self.track_every

    @property
    def monitored(self) -> bool:
        """Whether the generator is scored during training at all."""
        return bool(self.every or self.at)

    def scored_steps(self, model_steps: int | None, total_steps: int | None) -> tuple[int, ...]:
        """`at` (total steps) in one model's own steps: per-class models, which share the total, are scored at the
        same fractions of their own budgets."""
        if not self.at or not model_steps or not total_steps:
            return ()
        share = model_steps / total_steps
        return tuple(sorted({max(1, round(total * share)) for total in self.at}))

    def cache_identity(self) -> dict | None:
        """What of the monitor changes the trained weights (early stopping only), for the cache key."""
        if not self.early_stop_every:
            return None
        return {
            "every": self.early_stop_every,
            "patience": self.patience,
            "extractor": self.extractor,
            "params": self.params,
            "images": MONITOR_IMAGES,
        }


@dataclass(frozen=True)
class SelectionParams:
    """Checkpoint selection: `points` scores over each model's budget (0: the last iterate) on a `holdout` fraction
    of the cell's training subset."""

    points: int = 8
    holdout: float = 0.2

    def __post_init__(self) -> None:
        if self.points < 0 or not 0.0 < self.holdout < 1.0:
            raise MedAugBenchError(
                "select_points must be 0 (use the last iterate) or more, and select_holdout a fraction in (0, 1); "
                f"got {self.points} and {self.holdout}"
            )


@dataclass(frozen=True)
class QualityParams:
    """The quality step after synthesis (evaluation, timed apart from generator compute): the reported-quality
    extractor, how many images it scores, whether class fidelity is measured, and what an unrecognisable synthetic
    set does: `flag` (a notice and flags in the record) or `refuse` (the cell fails)."""

    extractor: str | None = "domain"
    params: dict = field(default_factory=dict)
    images: int = 1000
    fidelity: bool = True
    on_unrecognisable: Unrecognisable = "flag"
    max_fid_ratio: float = DEFAULT_MAX_FID_RATIO

    def __post_init__(self) -> None:
        if self.on_unrecognisable not in ("flag", "refuse"):
            raise MedAugBenchError(f"on_unrecognisable must be 'flag' or 'refuse', got {self.on_unrecognisable!r}")


@dataclass(frozen=True)
class CacheParams:
    """Where trained models come from: `generator_dir` (a saved generator to use), else the cache when `reuse`."""

    generator_dir: str | None = None
    reuse: bool = True


@dataclass(frozen=True)
class SynthesisConfig:
    """Every parameter of a generative strategy, grouped (see the module docstring)."""

    model: ModelParams
    budget: GeneratorBudget
    policy: SynthesisPolicy
    monitor: MonitorParams
    selection: SelectionParams
    quality: QualityParams
    cache: CacheParams

    def __post_init__(self) -> None:
        if self.monitor.at and self.budget.steps is None:
            raise MedAugBenchError("track_quality_at is in generator steps: give the generator a steps budget")
