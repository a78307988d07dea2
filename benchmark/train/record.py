"""The result record of one run and the typed parts it holds: budget used, curves, the strategy's report and the
quality report of its synthetic images (built by `benchmark.evaluate.quality`, declared here because the run record
holds it and a stage may not import a later one). Versioned records (see `benchmark.data.versioned`) write their
schema number into their JSON; `RunRecord.from_dict` reads every schema this code knows, upgrading in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

from benchmark.data.dataset import DatasetSummary
from benchmark.data.files import write_json_atomic
from benchmark.data.versioned import SCHEMA_KEY, Versioned, build, upgraded
from benchmark.errors import MedAugBenchError
from benchmark.train.branches import BranchScore
from benchmark.train.metrics import RunMetrics


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
class DistributionScores:
    """FID, KID and precision/recall/density/coverage of one image set against a real reference; None where the
    sets are too small (FID/KID: 2 images; PRDC: k + 1)."""

    n_real: int
    n_fake: int
    fid: float | None = None
    kid_mean: float | None = None
    kid_std: float | None = None
    kid_subset_size: int | None = None
    precision: float | None = None
    recall: float | None = None
    density: float | None = None
    coverage: float | None = None


@dataclass
class QualityBlock:
    """One class-matched draw: synthetic images against real training images of the same class composition and n
    (`fake_vs_real`); against the same reference, real held-out images of the training distribution (`floor`, the
    in-distribution floor; None for schema-2 records, which did not measure it) and real test images (`shift`, the
    train→test shift); diversity and nearest real images."""

    n: int
    composition: dict[str, int]
    feature_dim: int
    rank_deficient: bool  # n - 1 < feature_dim: a singular covariance, so the FID is unreliable
    fake_vs_real: DistributionScores
    floor: DistributionScores | None
    shift: DistributionScores | None
    ms_ssim_fake: float | None
    ms_ssim_real: float | None
    nearest_real: dict | None  # means of SSIM/PSNR to each image's nearest training image; None for an empty draw


@dataclass
class AuditSpace:
    """The memorisation audit in one space (pixels or features): near and exact copies of training images, the
    distance distributions they are judged by, and the closest pairs (indices into the fake and training splits)."""

    threshold: float
    near_copies: int
    near_copy_fraction: float
    exact_copies: int
    copies: list[dict]
    fake_to_train: dict[str, float]
    test_to_train: dict[str, float]
    closest_pairs: list[dict]


@dataclass
class MemorisationAudit:
    """Copies of training images among the synthetic ones, searched over every training image."""

    n_fake: int
    n_train: int
    n_test: int
    quantile: float
    pixel: AuditSpace
    feature: AuditSpace


def upgrade_quality_report_v2(data: dict) -> dict:
    """Schema 2 → 3. Schema 2's `floor` scored real TEST images against the training reference: that is the
    train→test shift, so it moves to `shift`; the in-distribution floor was not measured (None, `floor_images` None)."""

    def block(old: dict) -> dict:
        return old | {"floor": None, "shift": old["floor"]}

    return data | {
        "floor_images": None,
        "matched": block(data["matched"]),
        "per_class": {label: block(old) for label, old in data["per_class"].items()},
    }


@dataclass
class QualityReport(Versioned):
    """Class-matched quality of a synthetic image set with its floor and shift, per class, and the memorisation audit
    (`benchmark.evaluate.quality.quality_report`). Schema 1, an unmatched "overall" block, cannot be upgraded; schema
    2 is upgraded (its test-image floor becomes the shift). `floor_images` says which held-out images the floor used."""

    SCHEMA: ClassVar[int] = 3
    NAME: ClassVar[str] = "quality report"
    UPGRADES: ClassVar[dict] = {2: upgrade_quality_report_v2}

    extractor: dict
    seed: int
    max_images: int
    per_class_grouping: str
    reference: str
    floor_images: str | None
    ms_ssim_setup: dict
    matched: QualityBlock
    per_class: dict[str, QualityBlock]
    memorisation: MemorisationAudit


@dataclass
class StrategyReport(Versioned):
    """What the run's strategy was and did: its name and parameters, the quality report of its synthetic images when
    it scored them, and every other fact its `report()` gave (e.g. "generator", "synthesis"), kept as given. In JSON
    the facts sit beside name and params."""

    SCHEMA: ClassVar[int] = 1
    NAME: ClassVar[str] = "strategy report"
    OWN: ClassVar[tuple[str, ...]] = (SCHEMA_KEY, "name", "params", "quality")

    name: str
    params: dict
    quality: QualityReport | None = None
    facts: dict = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, params: dict, report: dict) -> StrategyReport:
        """The report of strategy `name` from its parameters and its `report()` (whose "compute" block the run
        record keeps apart); a fact named like a field of this report is an error naming the strategy."""
        clashes = sorted(set(report) & {SCHEMA_KEY, "name", "params"})
        if clashes:
            raise MedAugBenchError(
                f"strategy {name!r} reports {clashes}, names the record keeps for itself; rename them"
            )
        facts = {key: value for key, value in report.items() if key not in ("compute", "quality")}
        return cls(name, params, build(QualityReport, report.get("quality")), facts)

    def to_dict(self) -> dict:
        quality = {} if self.quality is None else {"quality": self.quality.to_dict()}
        return self.facts | {SCHEMA_KEY: self.SCHEMA, "name": self.name, "params": self.params} | quality

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        data = upgraded(cls, data)
        if not {"name", "params"} <= set(data):
            raise MedAugBenchError(f"the {cls.NAME} lacks its strategy's name or params: it is damaged")
        facts = {key: value for key, value in data.items() if key not in cls.OWN}
        return cls(data["name"], data["params"], build(QualityReport, data.get("quality")), facts)


def upgrade_run_record_v1(data: dict) -> dict:
    """Schema 1 → 2. Schema 1 is every run record written before records carried a schema number (up to commit
    8a08981, e.g. the published results/*): it had no `code` block, which schema 2 adds (unknown for these records:
    every value None), and the oldest had no `compute` block either (written before FLOPs were counted: empty)."""
    return {"compute": {}} | data | {"code": {"medaugbench": None, "git_commit": None, "git_dirty": None}}


@dataclass
class RunRecord(Versioned):
    """One run's result. `config`: the TrainConfig it ran, with both seeds (`seed` the classifier's, `generator_seed`
    resolved; a record without `generator_seed` used `seed` for both). `compute`: the budget and, per phase
    (generator_training, synthesis, classifier_training), FLOPs (counted, `benchmark.train.flops.COUNTER`) and
    device-seconds, with their `total`; a generator loaded from the cache says `reused: true` in its phase and still
    reports what training it cost once (a grid's total counts it once). `code`: the code that produced it,
    `benchmark.provenance.code_version()` (package version, git commit and whether the checkout differed from it; None
    where unknown). `environment`: the device and library versions it ran with. `budget_branches`: a
    pilot's scores of each classifier budget it measured (`benchmark.train.branches`), empty otherwise."""

    SCHEMA: ClassVar[int] = 2
    NAME: ClassVar[str] = "run record"
    UPGRADES: ClassVar[dict] = {1: upgrade_run_record_v1}

    config: dict
    dataset: DatasetSummary
    strategy: StrategyReport
    metrics: RunMetrics
    best: dict
    budget: BudgetUsed
    curves: Curves
    environment: dict
    compute: dict
    code: dict
    budget_branches: list[BranchScore] = field(default_factory=list)  # a pilot's scores per budget

    def write(self, path: Path) -> Path:
        """Atomic write (temp file + rename): a reader never sees half a record."""
        write_json_atomic(path, self.to_dict())
        return path
