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
from benchmark.provenance import code_version
from benchmark.registry import BUILT_IN, entries, get_entry
from benchmark.train.branches import BranchScore
from benchmark.train.metrics import RunMetrics, SplitMetrics


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


@dataclass
class CorruptionScore:
    """A classifier's metrics on one MedMNIST-C corruption of its test split at one severity (1-5)."""

    corruption: str
    severity: int
    balanced_error: float
    auc: float | None
    ece: float
    recall_per_class: list[float]

    @classmethod
    def of(cls, corruption: str, severity: int, metrics: SplitMetrics) -> CorruptionScore:
        return cls(
            corruption, severity, 1.0 - metrics.balanced_accuracy, metrics.auc, metrics.ece, metrics.recall_per_class
        )


@dataclass
class RobustnessReport(Versioned):
    """The selected classifier on every MedMNIST-C corruption and severity of its test split
    (`benchmark.evaluate.robustness`, declared here because the run record holds it): the package and the cached
    corrupted sets' key, their seed, the test images per set, the scores and the evaluation seconds they took."""

    SCHEMA: ClassVar[int] = 1
    NAME: ClassVar[str] = "robustness report"

    package: str
    cache_key: str
    seed: int
    images: int
    scores: list[CorruptionScore]
    seconds: float


@dataclass
class PhaseCompute:
    """FLOPs (counted) and device-seconds one phase of a run spent (generator training with its selection,
    synthesis, classifier training, or their total); `detail`, the rest of its block (per-model steps, the
    selection's part, images, ...), kept as given."""

    flops: float = 0
    seconds: float = 0.0
    detail: dict = field(default_factory=dict)

    @classmethod
    def of(cls, block: dict) -> PhaseCompute:
        detail = {key: value for key, value in block.items() if key not in ("flops", "seconds")}
        return cls(block.get("flops", 0), block.get("seconds", 0.0), detail)

    def to_dict(self) -> dict:
        return {"flops": self.flops, "seconds": self.seconds} | self.detail


@dataclass
class ComputeReport(Versioned):
    """What a run spent, one report for the generator's phases and the classifier's: the budget, each phase's
    `PhaseCompute` and their `total`, and the FLOP counter used. Its JSON is the record's `compute` block as it always
    was (no schema number; empty for records written before FLOPs were counted)."""

    NAME: ClassVar[str] = "compute report"

    budget: dict | None = None
    phases: dict[str, PhaseCompute] = field(default_factory=dict)
    total: PhaseCompute | None = None
    counter: object = None

    def to_dict(self) -> dict:
        data = {"budget": self.budget, "phases": {name: p.to_dict() for name, p in self.phases.items()}}
        data |= {"total": self.total.to_dict() if self.total is not None else None, "counter": self.counter}
        return {key: value for key, value in data.items() if value not in (None, {})}

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        if not isinstance(data, dict):
            raise MedAugBenchError(f"the {cls.NAME} is {type(data).__name__}, not a JSON object")
        phases = {name: PhaseCompute.of(block) for name, block in (data.get("phases") or {}).items()}
        total = PhaseCompute.of(data["total"]) if data.get("total") is not None else None
        return cls(data.get("budget"), phases, total, data.get("counter"))


@dataclass
class PluginUse:
    """One plugin a run used: its kind and registered name, the plugin module that registered it, and the
    distribution and version that module came from (built-ins: medaugbench's)."""

    kind: str
    name: str
    plugin: str | None
    distribution: str | None
    version: str | None

    @classmethod
    def of(cls, kind: str, name: str) -> PluginUse:
        """The registry's facts about the registered `name` of `kind`; a name no plugin registered (data a caller
        passed in memory, e.g. the domain extractor's training images) is recorded without a plugin."""
        if name not in entries(kind):
            return cls(kind, name, None, None, None)
        entry = get_entry(kind, name)
        if entry.distribution == BUILT_IN:
            return cls(kind, name, entry.plugin, "medaugbench", code_version()["medaugbench"])
        distribution, _, version = entry.distribution.partition(" ")
        return cls(kind, name, entry.plugin, distribution, version or None)


def plugins_used(named: list[tuple[str, str]]) -> list[PluginUse]:
    """`PluginUse` of each (kind, name) a run used, in order, each once."""
    return [PluginUse.of(kind, name) for kind, name in dict.fromkeys(named)]


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
    compute: ComputeReport
    code: dict
    budget_branches: list[BranchScore] = field(default_factory=list)  # a pilot's scores per budget
    plugins: list[PluginUse] = field(default_factory=list)  # every plugin the run used (empty: written before)
    robustness: RobustnessReport | None = None  # MedMNIST-C scores when the config asks (TrainConfig.robustness)

    def write(self, path: Path) -> Path:
        """Atomic write (temp file + rename): a reader never sees half a record."""
        write_json_atomic(path, self.to_dict())
        return path
