"""Leaderboards from a results folder: a long table of runs, per-dataset mean ± std with Student-t CIs over runs and
each row's variance by source, the class-matched FID/KID next to their in-distribution floors, each strategy against a
baseline and the family comparisons (classic vs generative, generative vs rebalancing) with the run-level paired
t-test as the primary inference (Holm-corrected per table, with the smallest difference it can detect) and a paired
bootstrap over test images as a secondary column (per-run DeLong and McNemar kept apart), probability of improvement
and IQM across tasks, Friedman ranks and the critical difference over blocks; written as full-precision CSVs and a
Markdown file laid out like the seed paper's tables."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.files import write_text_atomic
from benchmark.data.labels import safe_label
from benchmark.data.task import TaskSpec
from benchmark.errors import MedAugBenchError
from benchmark.grid.store import (
    FAILED,
    OK,
    SCHEMA_PREFIX,
    CellRecord,
    load_predictions,
    predictions_path,
    read_record,
    records_dir,
)
from benchmark.provenance import code_version
from benchmark.publish import inference, stats
from benchmark.train.metrics import predicted_labels
from benchmark.train.record import ComputeReport, QualityBlock, RunRecord

METRICS = (
    "accuracy",
    "accuracy_calibrated",
    "balanced_accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
    "auc",
)
TEST_METRICS = (*METRICS, "ece", "average_precision")
COORDINATES = ("dataset", "strategy", "base_strategy", "backbone", "seed", "train_fraction", "policy")
# A run: the generator seed fixes the training subset, the generator and its synthesis; the classifier seed the
# classifier's initialisation, batch order and augmentation draws. Records without a generator seed used one seed.
RUN = ("generator_seed", "classifier_seed")
# A leaderboard row within a dataset; fraction and policy split rows only where the grid varies them.
GROUP = ("strategy", "backbone", "train_fraction", "policy")
# Compared runs share these; the run's seeds pair them within.
PAIRING = ("dataset", "backbone", "train_fraction")
# A task of the across-task summaries: a block of the rank test and a stratum of the stratified bootstrap.
TASK = ("dataset", "train_fraction")
# Rebalancing controls: neither classic augmentation nor synthetic data.
CONTROLS = ("oversample", "class_weighted")
REBALANCING = "oversample"
CLASSIC_REFERENCE = "geometric"
# Comparison families, each its own Holm family per dataset: the question its table answers.
FAMILIES = {
    "baseline": "Against the baseline",
    "classic": "Does synthetic data beat classic augmentation?",
    "rebalancing": "Does synthetic content beat rebalancing?",
}
SECONDS = {"generator_seconds": "synthesize", "classifier_seconds": "train", "total_seconds": "total"}
# What each cell spent (RunRecord.compute): long-table column -> path in that block; FLOPs counted, device-seconds.
PHASES = ("generator_training", "synthesis", "classifier_training")
COMPUTE = {
    **{f"{phase}_{unit}": (phase, unit) for unit in ("flops", "seconds") for phase in PHASES},
    "total_flops": (None, "flops"),
    "compute_seconds": (None, "seconds"),
}  # (phase, None: the total; unit), read by attribute from the run's ComputeReport
SYNTHETIC_ONLY = "synthetic_only"
# Class-matched generator quality (the strategy's QualityReport.matched block): long-table columns.
QUALITY = ("fid", "fid_floor", "fid_shift", "kid", "kid_floor", "kid_shift")
# Class fidelity (the strategy's `fidelity` fact, benchmark.evaluate.fidelity.FidelityReport.to_dict()): long-table
# column -> key in its `overall` block; `flags` is the strategy's list of reasons its synthetic set was flagged.
FIDELITY = {"fidelity": "fidelity", "fidelity_real": "recall", "fidelity_chance": "chance"}
FLAG_MARK = "⚑"
ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0  # every comparison draws the same resamples: common random numbers across a table
IMAGE_RESAMPLES = 200  # per run, for the test-image variance of its metric
ACROSS_RESAMPLES = 2000  # stratified bootstrap of PoI and IQM
# t_p: the primary, run-level test (t over generator-seed means); each kind its own Holm family per table.
P_KINDS = ("t_p", "bootstrap_p", "wilcoxon_p")
COMPARED_METRICS = stats.BOOTSTRAP_METRICS  # accuracy and AUC
COMPONENTS = ("generator", "classifier", "runs", "images")
POI_COLUMNS = ("poi", "poi_geometric", "poi_oversample")  # over the baseline, and generative rows over their controls
SD_FORMATS = (("accuracy", 100, 1), ("auc", 1, 3))  # metric, display scale, digits
# What names a compared row in the per-seed and the statistics tables.
ROW_KEYS = ("dataset", "model", "strategy", "backbone", "train_fraction", "policy")
SEED_COLUMNS = (
    *ROW_KEYS,
    "task",
    "seed",
    *RUN,
    "baseline_cell_id",
    "cell_id",
    "baseline_accuracy",
    "accuracy",
    "baseline_auc",
    "auc",
    "delong_diff",
    "delong_p",
    "delong_tests",
    "delong_better",
    "delong_worse",
    "mcnemar_b",
    "mcnemar_c",
    "mcnemar_p",
    "note",
)
# Per metric against the reference: Δ over runs with the run-level CI, the bootstrap's Δ and CI, raw and
# Holm-corrected p, the marker (from the Holm-corrected run-level p).
COMPARED = (
    "diff",
    "t_ci_low",
    "t_ci_high",
    "t_sd",
    "bootstrap_diff",
    "ci_low",
    "ci_high",
    *(f"{k}{h}" for k in P_KINDS for h in ("", "_holm")),
    "wilcoxon_n",
    "marker",
)
STATS_COLUMNS = (
    *ROW_KEYS,
    "family",
    "reference",
    "chosen",
    "baseline",
    "task",
    "n_paired",
    "n_generator_seeds",
    *(c for m in stats.BOOTSTRAP_METRICS for c in (f"baseline_{m}", m, *(f"{m}_{c}" for c in COMPARED))),
    "bootstrap_seeds",
    "bootstrap_images",
    "bootstrap_resamples",
    "note",
)
MARKERS = {"better": " ↑", "worse": " ↓", "": ""}
ONE_SEED_NOTE = "one seed: the bootstrap CI covers test images only, not training randomness"
# Suffix per coordinate some strategy ran with several values of: row names in tables, plots and the report.
SUFFIXES = {"backbone": "/{}", "train_fraction": "@{:g}", "policy": "[{}]"}
HEADERS = {"strategy": "Strategy", "backbone": "Backbone", "train_fraction": "Fraction", "policy": "Policy"}
SPREAD = (
    "mean ± sample std (ddof=1) over the n runs (generator seed × classifier seed) of each row; CI: 95% Student-t "
    "interval of the mean over runs (mean ± t(0.975, n−1) · std / √n; none for one run)"
)
FID_NOTE = (
    "FID/KID (floor; shift): class-matched, synthetic images against real training images of the same class "
    "composition and n; floor: real held-out images from the generator's training distribution against the same "
    "reference (what n real images of that distribution score: the sampling noise, not a target); shift, where the "
    "record has it: real test images against it (the train→test shift); mean over runs. FID is comparable within a "
    "dataset and size only, never across datasets"
)
ACCURACY_NOTE = (
    "AUC is the primary metric: it needs no decision threshold and does not move with the class prior, which "
    "rebalancing and synthesis change. Accuracy: raw argmax accuracy (depends on the test prior and on the threshold "
    "a strategy's training prior shifts); calibrated: after a prior/logit adjustment fitted on validation only; "
    "balanced: mean per-class recall, the prior-free accuracy reading"
)
VARIANCE_NOTE = (
    "Variance of each row's test metric by source, as standard deviations: generator seed and classifier seed "
    "(one-way random-effects ANOVA over runs, method of moments, clipped at 0; '–' where no generator seed has two "
    "runs, so the two cannot be separated and 'runs' holds their sum), runs (sample std over all runs) and test "
    "images (bootstrap over the test images of each run, mean variance over runs: what another test set of this "
    "size would add; the test images are shared by every run, so most of it is absent from 'runs')"
)
COMPUTE_NOTE = (
    "What each cell spent, mean over seeds: FLOPs counted with FlopCounterMode (matmuls, convolutions, "
    "attention; forward and backward; once per model × steps or images) and device-seconds, of generator "
    "training, synthesis (sampling) and classifier training. Evaluation, quality scoring and data loading "
    "are excluded. A generator reused from the cache costs what training it did"
)
CAS_NOTE = (
    "CAS (classification accuracy score): test AUC / accuracy of the classifier trained on synthetic images "
    f"only (policy `{SYNTHETIC_ONLY}`) and tested on real test images, beside the class-matched FID of the "
    "same cells (mean ± std over seeds); '–' for rows that also trained on real images"
)
FIDELITY_NOTE = (
    "Fidelity (real; chance): the fraction of synthetic images a classifier trained only on the cell's real training "
    "images assigns to their intended class, beside the same classifier's recall on real held-out training images "
    "of those classes and the rate at which it assigns real images of other classes to them; mean over runs. "
    f"{FLAG_MARK} n: n runs whose synthetic set was flagged (a class not above chance, class conditioning without "
    "visible effect, or an FID far beyond its floor); their reasons are listed below the table"
)
RANK_MARK = "†"
RANK_NOTE = (
    f"{RANK_MARK} rank-deficient: n − 1 is below the feature dimension, so the covariance is singular and "
    "this FID is unreliable"
)
AGAINST_NOTE = (
    "Δ: row − reference (`{baseline}` here) over the runs both made, paired on (generator seed, classifier "
    "seed); accuracy in percentage points. Primary: the 95% CI (uncorrected) is a Student-t interval over the "
    "generator-seed means of the paired differences (df = G − 1: it counts generator- and classifier-seed "
    "variance; with one run per generator seed it is the paired t-test over runs), its p Holm-corrected across "
    "this table's rows × metrics; ↑ better / ↓ worse: that Holm-corrected p < 0.05. Secondary, no marker: a "
    "paired bootstrap over test images and seeds (95% CI uncorrected, Holm p), which sees the test images' noise "
    "but little of the seed-to-seed spread, so it speaks about these test images, not new training runs. "
    'Wilcoxon signed-rank over generator-seed means ("n too small" below {min_n}, where its exact p cannot reach '
    "0.05), Holm-corrected"
)
FAMILY_NOTE = (
    "Each generative row (its records hold synthetic images) against `{reference}`, and the best classic "
    "strategy against the best generative one, both chosen on mean validation AUC (never test). Same inference "
    "and Holm correction (within this table) as against the baseline"
)
POWER_NOTE = (
    "Smallest true difference this table detects with 80% power after its correction (Holm's first step: "
    "Bonferroni α = 0.05 / m over its m tests), for a two-sided t-test over G generator-seed means with the "
    "pooled std of those means observed here"
)
ACROSS_NOTE = (
    "Across tasks (dataset × fraction), rows run on every task: IQM of test AUC (mean of the middle 50% of all "
    "runs pooled) and probability of improvement P(> X) over `{baseline}` and, for generative rows, over "
    "`geometric` and `oversample` (mean over tasks of P(a run of the row beats a run of X) + ½ P(tie), on test "
    "AUC), each with a 95% stratified-bootstrap CI (runs resampled within each task, {resamples} resamples, as "
    "rliable does). Uncorrected"
)
PER_SEED_NOTE = (
    "Each run (generator seed/classifier seed) alone on the same test images: DeLong (AUC; per class for "
    "multi-class, per label for multi-label) and McNemar (accuracy), uncorrected. Per-run results, not evidence on "
    "their own and not summed over runs"
)
CROSS_NOTE = (
    "Accuracy (%): mean ± sample std (ddof=1) over each dataset's seeds. Average: mean over datasets of the "
    "per-dataset means, only for rows run on every dataset. No FID here: each dataset's features differ, so "
    "FIDs are compared within a dataset only"
)


Predictions = dict[str, tuple[np.ndarray, np.ndarray] | None]
# Damage a cell record or its predictions can show: left out of every table, and named.
DAMAGE = (TypeError, KeyError, ValueError, AttributeError, IndexError)
LOST_FIX = "delete the damaged files and run the grid into the folder again to re-run those cells"


@dataclass(frozen=True)
class Unreadable:
    """A file of the results folder the leaderboard could not use, and why: it is named wherever tables are
    published, never silently dropped."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Leaderboard:
    """Every table of a results folder, the Markdown rendering them, and the files written."""

    results_dir: Path
    baseline: str
    long: pd.DataFrame
    wide: dict[str, pd.DataFrame]
    cross_dataset: pd.DataFrame
    stats: pd.DataFrame
    seed_tests: pd.DataFrame
    ranks: pd.DataFrame
    quality: pd.DataFrame = field(default_factory=pd.DataFrame)
    families: pd.DataFrame = field(default_factory=pd.DataFrame)
    power: pd.DataFrame = field(default_factory=pd.DataFrame)
    across: pd.DataFrame = field(default_factory=pd.DataFrame)
    markdown: str = ""
    paths: list[Path] = field(default_factory=list)
    records: list[CellRecord] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)

    @property
    def datasets(self) -> list[str]:
        """The datasets in the results folder, in table order."""
        return list(self.wide)


def long_table(records: list[CellRecord]) -> pd.DataFrame:
    """One row per cell, ok or failed: coordinates, test metrics, class-matched generator quality and seconds."""
    has_ap = any(r.result is not None and r.result.dataset.task.multilabel for r in records)
    metrics = TEST_METRICS if has_ap else TEST_METRICS[:-1]
    columns = [
        "cell_id",
        "status",
        *COORDINATES,
        *RUN,
        "task",
        "positive_class",
        "generative",
        "val_auc",
        *metrics,
        *QUALITY,
        "fid_rank_deficient",
        *FIDELITY,
        "flags",
        *SECONDS,
        *COMPUTE,
        "error",
    ]
    frame = pd.DataFrame([_long_row(record, metrics) for record in records], columns=columns)
    frame.insert(3, "model", _model_labels(frame))
    frame.insert(4, "entry", _model_labels(frame, across_tasks=True))
    return frame


def wide_table(long: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One row per strategy × backbone (× fraction × policy) of a dataset: runs, failures, mean ± std and
    t-interval per metric, the variance of accuracy and AUC by source, class-matched FID/KID with their floors,
    seconds and compute; best AUC first, as a leaderboard."""
    rows = []
    for key, cells in long[long["dataset"] == dataset].groupby(list(GROUP), dropna=False, sort=True):
        ok = cells[cells["status"] == OK]
        row = {"model": cells["model"].iloc[0], **dict(zip(GROUP, key))}
        row |= {"n_seeds": len(ok), "n_failed": int((cells["status"] == FAILED).sum())}
        row |= {"n_generator_seeds": ok["generator_seed"].nunique(), "generative": bool(ok["generative"].any())}
        row["positive_class"] = "; ".join(sorted(ok["positive_class"].dropna().unique())) or None
        row["val_auc_mean"] = ok["val_auc"].mean()
        for metric in METRICS:
            row |= _spread(metric, ok[metric], with_ci=True)
        for metric in COMPARED_METRICS:
            row |= _components(metric, ok)
        row |= _spread("fid", ok["fid"]) | _spread("kid", ok["kid"])
        means = ("fid_floor", "fid_shift", "kid_floor", "kid_shift", "generator_seconds", "classifier_seconds")
        means = (*means, *COMPUTE)
        row |= {f"{name}_mean": ok[name].mean() for name in means}
        row["fid_rank_deficient"] = bool(ok["fid_rank_deficient"].eq(True).any())
        row |= _spread("fidelity", ok["fidelity"])
        row |= {f"{name}_mean": ok[name].mean() for name in ("fidelity_real", "fidelity_chance")}
        row["n_flagged"] = int(ok["flags"].fillna("").ne("").sum())
        rows.append(row)
    return pd.DataFrame(rows).sort_values(
        "auc_mean", ascending=False, na_position="last", kind="stable", ignore_index=True
    )


def _components(metric: str, ok: pd.DataFrame) -> dict[str, float]:
    """A row's variance of a test metric by source: generator seed, classifier seed, all runs, test images."""
    valid = ok.dropna(subset=[metric])
    parts = inference.variance_components(valid[metric], valid["generator_seed"])
    images = valid[f"{metric}_image_var"].mean() if f"{metric}_image_var" in valid else math.nan
    values = {"generator": parts.generator, "classifier": parts.classifier, "runs": parts.runs, "images": images}
    return {f"{metric}_var_{name}": _number(values[name]) for name in COMPONENTS}


def image_variances(long: pd.DataFrame, predictions: Predictions) -> pd.DataFrame:
    """The long table with each run's test-image bootstrap variance of accuracy and AUC (NaN without predictions)."""
    columns = {f"{metric}_image_var": [] for metric in COMPARED_METRICS}
    for cell_id, kind in zip(long["cell_id"], long["task"]):
        saved = predictions.get(cell_id)
        for metric in COMPARED_METRICS:
            value = None
            if saved is not None and isinstance(kind, str):
                rng = np.random.default_rng(BOOTSTRAP_SEED)
                value = stats.image_bootstrap_variance(kind, metric, saved[0], saved[1], rng, IMAGE_RESAMPLES)
            columns[f"{metric}_image_var"].append(_number(value))
    return long.assign(**columns)


def quality_table(wide: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The generator-quality rows of every dataset: class-matched FID/KID with their floors, and for cells trained on
    synthetic images only the classification accuracy score (their test AUC and accuracy on real images)."""
    columns = [
        "dataset",
        "model",
        *GROUP,
        "n_seeds",
        "fid_mean",
        "fid_std",
        "fid_floor_mean",
        "fid_shift_mean",
        "kid_mean",
        "kid_std",
        "kid_floor_mean",
        "kid_shift_mean",
        "fid_rank_deficient",
        "fidelity_mean",
        "fidelity_std",
        "fidelity_real_mean",
        "fidelity_chance_mean",
        "n_flagged",
        "cas_auc_mean",
        "cas_auc_std",
        "cas_accuracy_mean",
        "cas_accuracy_std",
    ]
    rows = []
    for dataset, frame in wide.items():
        for row in frame.to_dict("records"):
            cas = row["policy"] == SYNTHETIC_ONLY
            if pd.isna(row["fid_mean"]) and pd.isna(row["fidelity_mean"]) and not row["n_flagged"] and not cas:
                continue
            scores = {
                f"cas_{m}_{s}": row[f"{m}_{s}"] if cas else math.nan
                for m in ("auc", "accuracy")
                for s in ("mean", "std")
            }
            rows.append({"dataset": dataset, **{c: row[c] for c in columns[1:-4]}, **scores})
    return pd.DataFrame(rows, columns=columns)


def cross_dataset_table(wide: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each model's accuracy on every dataset side by side and their average (rows on every dataset only), with each
    dataset's train fraction (a grid may give datasets different ones). FID is not carried over: its feature space
    differs per dataset, so an average over datasets means nothing."""
    rows = []
    for model, cells in pd.concat([w.assign(dataset=d) for d, w in wide.items()]).groupby("model", sort=False):
        by_dataset = cells.set_index("dataset")
        row = {"model": model, **{key: _common(cells[key]) for key in GROUP}}
        for dataset in wide:
            row |= {
                f"{dataset}_{name}": by_dataset[name].get(dataset, math.nan)
                for name in ("accuracy_mean", "accuracy_std", "n_seeds", "train_fraction")
            }
        means = [row[f"{dataset}_accuracy_mean"] for dataset in wide]
        row["average_accuracy"] = float(np.mean(means)) if np.all(np.isfinite(means)) else math.nan
        rows.append(row)
    return pd.DataFrame(rows).sort_values(
        "average_accuracy", ascending=False, na_position="last", kind="stable", ignore_index=True
    )


def seed_tests(long: pd.DataFrame, predictions: Predictions, baseline: str = "none") -> pd.DataFrame:
    """One row per run a row shares with the baseline in its (dataset, backbone, fraction), paired on both seeds:
    both runs' accuracy and AUC, and DeLong's (AUC) and McNemar's (accuracy) tests on their saved test predictions,
    for that run alone."""
    rows = []
    for _, group in long[long["status"] == OK].groupby(list(PAIRING), dropna=False, sort=True):
        base = {_run_key(cell): cell for cell in group[group["strategy"] == baseline].to_dict("records")}
        for cell in group[group["strategy"] != baseline].to_dict("records"):
            pair = base.get(_run_key(cell))
            if pair is None:
                continue
            row = {key: cell[key] for key in (*ROW_KEYS, "task", "seed", *RUN)} | {
                "cell_id": cell["cell_id"],
                "accuracy": cell["accuracy"],
                "auc": cell["auc"],
            }
            row |= {
                "baseline_cell_id": pair["cell_id"],
                "baseline_accuracy": pair["accuracy"],
                "baseline_auc": pair["auc"],
            }
            rows.append(row | _image_tests(predictions, cell["task"], pair["cell_id"], cell["cell_id"]))
    return pd.DataFrame(rows, columns=list(SEED_COLUMNS))


def _run_key(cell: dict) -> tuple:
    """What pairs two runs within a pairing group: their (generator seed, classifier seed)."""
    return tuple(cell[key] for key in RUN)


@dataclass(frozen=True)
class Comparison:
    """One paired comparison within a (dataset, backbone, fraction) group: a row against a reference row, in a
    family's table; `chosen` says how a row chosen on validation was picked."""

    family: str
    reference: str
    model: str
    chosen: str = ""


def baseline_comparisons(group: pd.DataFrame, baseline: str) -> list[Comparison]:
    """Every row of a group against the baseline strategy's row."""
    references = group.loc[group["strategy"] == baseline, "model"].unique()
    reference = references[0] if len(references) else baseline
    others = group.loc[group["strategy"] != baseline, "model"].unique()
    return [Comparison("baseline", reference, model) for model in sorted(others)]


def family_comparisons(group: pd.DataFrame, baseline: str) -> list[Comparison]:
    """The comparisons the question asks within a group: each generative row against `geometric`, the best classic
    row against the best generative one (both on mean validation AUC, never test), and each generative row
    against its rebalancing control `oversample`, where those rows ran."""
    ok = group[group["status"] == OK]
    rows = ok.groupby("model", sort=True).agg(
        strategy=("strategy", "first"), generative=("generative", "any"), val_auc=("val_auc", "mean")
    )
    generative = rows[rows["generative"]]
    classic = rows[~rows["generative"] & ~rows["strategy"].isin([baseline, *CONTROLS])]
    geometric = list(classic.index[classic["strategy"] == CLASSIC_REFERENCE])[:1]
    found = [Comparison("classic", geometric[0], model) for model in generative.index] if geometric else []
    best = _best_pair(classic, generative)
    if best is not None:
        same = [c for c in found if (c.reference, c.model) == (best.reference, best.model)]
        found = [replace(c, chosen=best.chosen) if c in same else c for c in found] + ([] if same else [best])
    control = list(rows.index[rows["strategy"] == REBALANCING])[:1]
    if control:
        found += [Comparison("rebalancing", control[0], model) for model in generative.index]
    return found


def _best_pair(classic: pd.DataFrame, generative: pd.DataFrame) -> Comparison | None:
    """The best classic row against the best generative row, each chosen on its mean validation AUC."""
    classic, generative = classic["val_auc"].dropna(), generative["val_auc"].dropna()
    if classic.empty or generative.empty:
        return None
    c, g = classic.idxmax(), generative.idxmax()
    chosen = f"best on validation AUC: {g} ({generative[g]:.3f}) vs {c} ({classic[c]:.3f})"
    return Comparison("classic", c, g, chosen)


def comparison_table(long: pd.DataFrame, predictions: Predictions, baseline: str, family: bool = False) -> pd.DataFrame:
    """Each comparison of every (dataset, backbone, fraction) group, against the baseline (`family` False) or the
    family comparisons: Δ of accuracy and AUC with the run-level Student-t CI and p (primary), Wilcoxon over
    generator-seed means and the paired bootstrap over test images (secondary), every p Holm-corrected within its
    dataset × family table, and the better/worse marker from the corrected run-level p."""
    rows = []
    choose = family_comparisons if family else baseline_comparisons
    for _, group in long.groupby(list(PAIRING), dropna=False, sort=True):
        rows += [_compare(group, comparison, predictions) for comparison in choose(group, baseline)]
    return _holm_correct(pd.DataFrame(rows, columns=list(STATS_COLUMNS)))


def _compare(group: pd.DataFrame, comparison: Comparison, predictions: Predictions) -> dict:
    """One comparison's row: its runs paired with the reference's on both seeds, summarised."""
    cells = group[group["model"] == comparison.model]
    first, task = cells.iloc[0], next(iter(cells["task"].dropna()), None)
    ok = group[group["status"] == OK]
    reference = ok[ok["model"] == comparison.reference]
    row = {key: first[key] for key in ROW_KEYS} | {
        "family": comparison.family,
        "reference": comparison.reference,
        "chosen": comparison.chosen,
        "baseline": reference["strategy"].iloc[0] if len(reference) else comparison.reference,
        "task": task,
    }
    if reference.empty:
        return row | {"note": f"no successful '{comparison.reference}' run in this group to compare with"}
    return row | _summarise_pairs(_pair_runs(reference, cells[cells["status"] == OK]), cells, task, predictions)


def _pair_runs(reference: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """The runs both rows made, matched on (generator seed, classifier seed): the other's cell id and metrics and
    the reference's as `baseline_*`."""
    keep = [*RUN, "cell_id", *COMPARED_METRICS]
    renamed = reference[keep].rename(columns={c: f"baseline_{c}" for c in keep if c not in RUN})
    return other[keep].merge(renamed, on=list(RUN), how="inner")


def power_table(compared: pd.DataFrame) -> pd.DataFrame:
    """Per dataset × family table and metric: the smallest difference it detects with 80% power after its Holm
    correction (Bonferroni over its m tests), from the pooled std of its rows' generator-seed mean differences."""
    rows = []
    for (dataset, family), table in compared.groupby(["dataset", "family"], sort=False):
        m = int(table[[f"{metric}_t_p" for metric in COMPARED_METRICS]].notna().to_numpy().sum())
        for metric in COMPARED_METRICS:
            sds = table[f"{metric}_t_sd"].dropna()
            pooled = float(np.sqrt(np.mean(sds**2))) if len(sds) else None
            g = int(table.loc[sds.index, "n_generator_seeds"].min()) if len(sds) else 0
            mde = inference.minimum_detectable_difference(pooled, g, max(m, 1), ALPHA)
            rows.append(
                {
                    "dataset": dataset,
                    "family": family,
                    "metric": metric,
                    "m": m,
                    "n_generator_seeds": g,
                    "pooled_sd": _number(pooled),
                    "mde": _number(mde),
                }
            )
    return pd.DataFrame(rows, columns=["dataset", "family", "metric", "m", "n_generator_seeds", "pooled_sd", "mde"])


def across_table(long: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Rows run on every task (dataset × fraction): IQM of test AUC over all their runs, the probability of
    improvement over the baseline and, for generative rows, over `geometric` and `oversample` (where they ran), each
    with a stratified-bootstrap 95% CI (runs resampled within tasks)."""
    ok = long[(long["status"] == OK) & long["auc"].notna()]
    tasks = [frame for _, frame in ok.groupby(list(TASK), sort=True)]
    entries = [e for e in dict.fromkeys(ok["entry"]) if all((t["entry"] == e).any() for t in tasks)]
    runs = {e: [t.loc[t["entry"] == e, "auc"].to_numpy(dtype=float) for t in tasks] for e in entries}
    rows = []
    for entry in entries:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        low, high = inference.stratified_bootstrap_ci(inference.iqm, [runs[entry]], rng, ACROSS_RESAMPLES)
        row = {"entry": entry, "n_tasks": len(tasks), "n_runs": sum(len(r) for r in runs[entry])}
        row |= {"iqm_auc": inference.iqm(runs[entry]), "iqm_ci_low": low, "iqm_ci_high": high}
        cells = ok[ok["entry"] == entry]
        for name, reference in _poi_references(ok, entries, baseline, bool(cells["generative"].any())).items():
            if reference != entry:
                row |= _poi_columns(name, runs[entry], runs[reference], rng)
        rows.append(row)
    columns = ["entry", "n_tasks", "n_runs", "iqm_auc", "iqm_ci_low", "iqm_ci_high"]
    columns += [f"{name}{part}" for name in POI_COLUMNS for part in ("", "_ci_low", "_ci_high")]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("iqm_auc", ascending=False, kind="stable", ignore_index=True)


def _poi_references(ok: pd.DataFrame, entries: list[str], baseline: str, generative: bool) -> dict[str, str]:
    """The rows a row's probability of improvement is taken against, by column name: the baseline for every row,
    `geometric` and `oversample` for generative rows (those that ran on every task)."""
    strategies = {"poi": baseline} | (
        {"poi_geometric": CLASSIC_REFERENCE, "poi_oversample": REBALANCING} if generative else {}
    )
    found = {}
    for name, strategy in strategies.items():
        matches = [e for e in entries if (ok.loc[ok["entry"] == e, "strategy"] == strategy).all()]
        if matches:
            found[name] = matches[0]
    return found


def _poi_columns(name: str, x: list[np.ndarray], y: list[np.ndarray], rng: np.random.Generator) -> dict[str, float]:
    """P(a run of x beats a run of y), averaged over tasks, with its stratified-bootstrap CI."""
    low, high = inference.stratified_bootstrap_ci(inference.probability_of_improvement, [x, y], rng, ACROSS_RESAMPLES)
    return {name: inference.probability_of_improvement(x, y), f"{name}_ci_low": low, f"{name}_ci_high": high}


def rank_table(long: pd.DataFrame) -> pd.DataFrame:
    """Average rank of each row across blocks (dataset × fraction; 1 = best) on mean test AUC and accuracy, with
    Friedman's test and Nemenyi's critical difference where there are at least three blocks."""
    ok = long[long["status"] == OK]
    means = {metric: _block_means(ok, metric) for metric in ("auc", "accuracy")}
    entries = list(dict.fromkeys(ok["entry"]))
    n_blocks = ok.groupby(list(TASK)).ngroups
    columns: dict[str, object] = {"model": entries}
    for metric, table in means.items():
        table = {block: scores for block, scores in table.items() if scores}
        result = stats.friedman_ranks(table) if table else {"average_ranks": {}, "statistic": None, "p_value": None}
        columns[f"{metric}_rank"] = [result["average_ranks"].get(entry, math.nan) for entry in entries]
        columns[f"{metric}_friedman_statistic"] = _number(result["statistic"])
        columns[f"{metric}_friedman_p"] = _number(result["p_value"])
        k = len(result["average_ranks"])
        cd = (
            inference.nemenyi_critical_difference(k, n_blocks)
            if n_blocks >= stats.FRIEDMAN_MIN_BLOCKS and k >= 2
            else None
        )
        columns[f"{metric}_cd"] = _number(cd)
    frame = pd.DataFrame(columns | {"n_blocks": n_blocks})
    frame["note"] = ["" if pd.notna(r) else "not scored on every block, so not ranked" for r in frame["auc_rank"]]
    return frame.sort_values("auc_rank", na_position="last", kind="stable", ignore_index=True)


def _block_means(ok: pd.DataFrame, metric: str) -> dict[str, dict[str, float]]:
    """Per block (dataset × fraction), each row's mean of a metric over its runs."""
    return {
        _task_name(key): frame.groupby("entry", sort=False)[metric].mean().dropna().to_dict()
        for key, frame in ok.groupby(list(TASK), sort=True)
    }


def _task_name(key: tuple) -> str:
    """A block's name: the dataset, with its train fraction below 1."""
    dataset, fraction = key
    return dataset if fraction == 1 else f"{dataset}@{fraction:g}"


def read_results(results_dir: Path) -> tuple[list[CellRecord], list[Unreadable]]:
    """Every usable cell record of a results folder, in stable cell order, and every record file that is not one
    (truncated or damaged JSON, a wrong shape, a cell id that does not match its file name), with the reason."""
    folder = records_dir(results_dir)
    records, unreadable = [], []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(_usable_record(path))
        except MedAugBenchError as error:
            unreadable.append(Unreadable(path, re.sub(rf"^record {re.escape(str(path))}:? ", "", str(error))))
    return sorted(records, key=lambda r: json.dumps(r.cell, sort_keys=True, default=str)), unreadable


def _usable_record(path: Path) -> CellRecord:
    """The cell record in `path`, checked to be one the tables can read; otherwise one message saying why not."""
    try:
        record = read_record(path)
    except DAMAGE as error:
        raise MedAugBenchError(f"not a cell record of this layout ({type(error).__name__}: {error})") from None
    if record is None:
        raise MedAugBenchError(_why_unreadable(path))
    if record.cell_id != path.stem:
        raise MedAugBenchError(f"its cell id {record.cell_id!r} is not its file name {path.stem!r}")
    cell = record.cell if isinstance(record.cell, dict) else {}
    if not all(isinstance(cell.get(key), str) for key in ("dataset", "strategy")) or record.status not in (OK, FAILED):
        raise MedAugBenchError("it lacks a dataset, strategy or status of this layout")
    if record.ok and record.result is None:
        raise MedAugBenchError("its status is 'ok' but it holds no result")
    try:
        _long_row(record, TEST_METRICS)
    except DAMAGE as error:
        raise MedAugBenchError(f"its result has a wrong shape ({type(error).__name__}: {error})") from None
    return record


def _why_unreadable(path: Path) -> str:
    """Why `read_record` returned nothing for a file: unreadable, not JSON, or not a cell record."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    except ValueError:
        return "not valid JSON (truncated or damaged)"
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith(SCHEMA_PREFIX):
        return f"not a cell record (no {SCHEMA_PREFIX}… schema)"
    return "not a readable cell record"


def read_predictions(results_dir: Path, cell_ids: list[str]) -> tuple[Predictions, list[Unreadable]]:
    """The saved test predictions of these cells (None where absent), and every predictions file that exists but
    cannot be read (a truncated .npz), named."""
    predictions: Predictions = {cell_id: load_predictions(results_dir, cell_id) for cell_id in cell_ids}
    paths = [predictions_path(results_dir, cell_id) for cell_id, saved in predictions.items() if saved is None]
    reason = "test predictions not readable (truncated or damaged .npz)"
    return predictions, [Unreadable(path, reason) for path in paths if path.exists()]


def build_leaderboard(results_dir: Path, baseline: str = "none", allow_missing_baseline: bool = False) -> Leaderboard:
    """Every table and the Markdown of a results folder, in memory. A folder where some table has runs but no
    successful `baseline` run is refused (every Δ would be empty) unless `allow_missing_baseline`."""
    records, unreadable = read_results(results_dir)
    if not records:
        lost = f"; none could be read: {_lost(unreadable)}" if unreadable else ""
        raise MedAugBenchError(
            f"no readable cell record in {records_dir(results_dir)}{lost}: run `medaugbench run` into {results_dir} "
            "first"
        )
    long = long_table(records)
    ok = long.loc[long["status"] == OK, "cell_id"]
    predictions, damaged = read_predictions(results_dir, ok.tolist())
    unreadable += damaged
    if not allow_missing_baseline:
        check_baseline(Path(results_dir), long, baseline, unreadable)
    long = image_variances(long, predictions)
    wide = {dataset: wide_table(long, dataset) for dataset in sorted(long["dataset"].unique())}
    compared = comparison_table(long, predictions, baseline)
    families = comparison_table(long, predictions, baseline, family=True)
    board = Leaderboard(
        Path(results_dir),
        baseline,
        long,
        wide,
        cross_dataset_table(wide),
        compared,
        seed_tests(long, predictions, baseline),
        rank_table(long),
        quality_table(wide),
        families=families,
        power=power_table(pd.concat([compared, families], ignore_index=True)),
        across=across_table(long, baseline),
        records=records,
        unreadable=unreadable,
    )
    board.markdown = render_markdown(board)
    return board


def missing_baseline(long: pd.DataFrame, baseline: str) -> list[str]:
    """The (dataset, backbone, fraction) groups with successful runs but no successful `baseline` run, named."""
    ok = long[long["status"] == OK]
    return [
        f"{dataset} ({backbone}, fraction {fmt_text(fraction)})"
        for (dataset, backbone, fraction), group in ok.groupby(list(PAIRING), dropna=False, sort=True)
        if not (group["strategy"] == baseline).any()
    ]


def check_baseline(results_dir: Path, long: pd.DataFrame, baseline: str, unreadable: list[Unreadable]) -> None:
    """Refuse, in one message, a leaderboard whose tables would compare against a baseline that has no run."""
    groups = missing_baseline(long, baseline)
    if not groups:
        return
    lost = f"; {len(unreadable)} unreadable: {_lost(unreadable)}" if unreadable else ""
    raise MedAugBenchError(
        f"baseline {baseline!r} has no successful run in {', '.join(groups)}{lost}, so every Δ against it would be "
        f"empty. Rerun its cells (`medaugbench run CONFIG --results {results_dir} --retry-failed`, after deleting "
        "any damaged record), pick another with --baseline, or publish without those Δ: "
        f"`medaugbench leaderboard {results_dir} --allow-missing-baseline`"
    )


def _lost(unreadable: list[Unreadable], shown: int = 3) -> str:
    """The first few unreadable files with their reasons, and how many more."""
    more = len(unreadable) - shown
    return "; ".join(str(u) for u in unreadable[:shown]) + (f"; and {more} more" if more > 0 else "")


def table_names(board: Leaderboard) -> dict[str, pd.DataFrame]:
    """Every CSV of a leaderboard by file stem: the long table, one per dataset named by its `safe_label` (never the
    dataset string, which may be a path), then the other tables."""
    rest = {
        "cross_dataset": board.cross_dataset,
        "stats": board.stats,
        "families": board.families,
        "power": board.power,
        "across_tasks": board.across,
        "stats_per_seed": board.seed_tests,
        "ranks": board.ranks,
        "quality": board.quality,
    }
    reserved = {"long", *rest}
    return {
        "long": board.long,
        **{safe_label(dataset, reserved): frame for dataset, frame in board.wide.items()},
        **rest,
    }


def write_leaderboard(
    results_dir: Path, out_dir: Path | None = None, baseline: str = "none", allow_missing_baseline: bool = False
) -> Leaderboard:
    """Build the leaderboard and write its CSVs (full precision) and leaderboard.md atomically into `out_dir`, which
    every file lies inside."""
    out = check_out_folder(Path(out_dir) if out_dir is not None else Path(results_dir) / "leaderboard")
    board = build_leaderboard(results_dir, baseline, allow_missing_baseline)
    from benchmark.publish.worth import worth_of  # built on this module's tables, so imported here

    worth = worth_of(board)  # worth in real images, where `none` ran at several train fractions of a dataset
    if worth is not None:
        board.markdown += "\n" + worth.markdown
        board.paths += worth.write(out, board.records)
    from benchmark.publish.robustness import robustness_of  # likewise

    robust = robustness_of(board)  # MedMNIST-C robustness, where cells scored it
    if robust is not None:
        board.markdown += "\n" + robust.markdown
        board.paths += robust.write(out)
    for name, frame in table_names(board).items():
        board.paths.append(write_text_atomic(out / f"{name}.csv", frame.to_csv(index=False)))
    board.paths.append(write_text_atomic(out / "leaderboard.md", board.markdown))
    return board


def check_out_folder(out: Path) -> Path:
    """The leaderboard's output folder, refused in one message when the path exists and is not a folder."""
    if out.exists() and not out.is_dir():
        raise MedAugBenchError(
            f"--out {out} is a file; the leaderboard writes a folder of tables and plots: give a folder (new or "
            "existing), e.g. RESULTS_DIR/leaderboard; for one HTML file use `medaugbench report RESULTS_DIR --out FILE`"
        )
    return out


def console_rows(board: Leaderboard, dataset: str) -> list[tuple[str, ...]]:
    """A dataset's headline columns as strings for the CLI's table, the header first."""
    compared = board.stats[board.stats["dataset"] == dataset].set_index("model")
    rows = [
        ("Model", "Backbone", "n", "Accuracy (%)", "AUC [95% CI]", "FID (floor)", f"Δ AUC vs {board.baseline} (Holm p)")
    ]
    for row in board.wide[dataset].to_dict("records"):
        if row["strategy"] == board.baseline:
            delta = "baseline"
        elif row["model"] in compared.index and pd.notna(compared.at[row["model"], "auc_diff"]):
            other = compared.loc[row["model"]]
            delta = f"{other['auc_diff']:+.3f} (p={fmt_p(other['auc_t_p_holm'])}){MARKERS[other['auc_marker']]}"
        else:
            delta = "–"
        auc = fmt_pm(row["auc_mean"], row["auc_std"], 1, 3) + (
            "" if pd.isna(row["auc_ci_low"]) else f" {fmt_ci(row['auc_ci_low'], row['auc_ci_high'], 1, 3)}"
        )
        rows.append(
            (
                row["model"],
                row["backbone"],
                fmt_n(row),
                fmt_pm(row["accuracy_mean"], row["accuracy_std"], 100, 1),
                auc,
                fmt_quality(row, "fid", 1),
                delta,
            )
        )
    return rows


def render_markdown(board: Leaderboard) -> str:
    """leaderboard.md: per dataset the Table 2 and Table 4 layouts, then Table 3 across datasets, ranks, failures."""
    failed = board.long[board.long["status"] == FAILED]
    lines = [
        "# Leaderboard",
        "",
        (
            f"Results folder `{board.results_dir}`: {len(board.long)} cells ({len(board.long) - len(failed)} ok, "
            f"{len(failed)} failed); baseline strategy `{board.baseline}`."
        ),
        "",
        provenance_line(board.records),
        "",
    ]
    lines += _lost_section(board)
    for dataset, frame in board.wide.items():
        lines += _dataset_section(board, dataset, frame)
    lines += _cross_section(board) + _across_section(board) + _rank_section(board.ranks)
    if len(failed):
        lines += ["## Failed cells", ""]
        lines += markdown_table(
            ["Dataset", "Strategy", "Backbone", "Seed", "Error"],
            failed[["dataset", "strategy", "backbone", "seed", "error"]].to_numpy().tolist(),
        )
    return "\n".join(lines)


def provenance_line(records: list[CellRecord]) -> str:
    """Which code built these tables and which trained the cells: a table rebuilt by newer code says so."""
    built = code_version()
    trained = sorted({_commit_text(r.result.code) for r in records if r.result is not None and r.result.code})
    return (
        f"Tables built by medaugbench {built['medaugbench']} at {_commit_text(built)}; cells trained at "
        f"{', '.join(trained) or 'an unrecorded commit'}."
    )


def _commit_text(code: dict) -> str:
    """'commit abc123def456', '+ uncommitted changes' where the code differed from it, or 'an unrecorded commit'."""
    commit = code.get("git_commit")
    if not commit:
        return "an unrecorded commit"
    return f"commit {commit[:12]}" + (" + uncommitted changes" if code.get("git_dirty") else "")


def _lost_section(board: Leaderboard) -> list[str]:
    """What the tables lack, said before them: records that could not be read, tables without a baseline run."""
    lines = []
    if board.unreadable:
        lines += [f"## Records that could not be read ({len(board.unreadable)})", ""]
        lines += [f"Left out of every table below; {LOST_FIX}.", ""]
        lines += markdown_table(["File", "Why"], [[u.path.name, u.reason] for u in board.unreadable])
    groups = missing_baseline(board.long, board.baseline)
    if groups:
        lines += [f"**No successful `{board.baseline}` run in {', '.join(groups)}: no Δ against it there.**", ""]
    return lines


def _dataset_section(board: Leaderboard, dataset: str, frame: pd.DataFrame) -> list[str]:
    """Table 2 (test metrics), generator quality, compute, Table 4 (against the baseline) and the per-seed tests of
    one dataset."""
    cells = board.long[board.long["dataset"] == dataset]
    kind = next(iter(cells["task"].dropna()), "?")
    lines = [f"## {dataset} ({kind})", ""] + _metrics_section(frame) + _variance_section(frame)
    lines += _quality_section(board.quality[board.quality["dataset"] == dataset])
    flagged = [f"- {line}" for line in flagged_lines(cells)]
    lines += ["**Flagged synthetic sets:**", "", *flagged, ""] if flagged else []
    lines += _compute_section(frame)
    return lines + _against_section(board, dataset)


def _metrics_section(frame: pd.DataFrame) -> list[str]:
    """Table 2 layout: per row the test metrics (mean ± std, t-intervals) and the class-matched FID/KID."""
    shown = fmt_shown(frame)
    recall = recall_note(frame)
    notes = f"_{SPREAD}. Percentages ×100. {ACCURACY_NOTE}. {recall + '. ' if recall else ''}{FID_NOTE}._"
    lines = ["### Test metrics (Table 2 layout)", "", notes, ""]
    headers = [
        *(HEADERS[c] for c in shown),
        "n",
        "Accuracy (%)",
        "Acc. 95% CI",
        "Calibrated acc. (%)",
        "Balanced acc. (%)",
        "Precision (%)",
        "Recall (%)",
        "Specificity (%)",
        "F1 (%)",
        "AUC",
        "AUC 95% CI",
        "FID (floor)",
        "KID (floor)",
    ]
    rows = [
        [
            *(fmt_text(r[c]) for c in shown),
            fmt_n(r),
            fmt_pm(r["accuracy_mean"], r["accuracy_std"], 100, 1),
            fmt_ci(r["accuracy_ci_low"], r["accuracy_ci_high"], 100, 1),
            *(fmt_pm(r[f"{m}_mean"], r[f"{m}_std"], 100, 1) for m in ("accuracy_calibrated", "balanced_accuracy")),
            *(fmt_pm(r[f"{m}_mean"], r[f"{m}_std"], 100, 1) for m in ("precision", "recall", "specificity", "f1")),
            fmt_pm(r["auc_mean"], r["auc_std"], 1, 3),
            fmt_ci(r["auc_ci_low"], r["auc_ci_high"], 1, 3),
            fmt_quality(r, "fid", 1),
            fmt_quality(r, "kid", 4),
        ]
        for r in frame.to_dict("records")
    ]
    return (
        lines + markdown_table(headers, rows) + ([f"_{RANK_NOTE}._", ""] if frame["fid_rank_deficient"].any() else [])
    )


def _against_section(board: Leaderboard, dataset: str) -> list[str]:
    """Table 4 layout: each strategy against the baseline, then the family tables, then the per-seed tests."""
    compared = board.stats[board.stats["dataset"] == dataset]
    lines = ["### Against the baseline (Table 4 layout)", "", f"_{against_note(board.baseline)}._", ""]
    if compared.empty:
        lines += ["No other strategy to compare.", ""]
    else:
        lines += _comparison_rows(compared, board.baseline) + power_lines(board.power, dataset, "baseline")
    return lines + _family_sections(board, dataset) + _per_seed_section(board, dataset)


def _family_sections(board: Leaderboard, dataset: str) -> list[str]:
    """The two family tables of a dataset (classic augmentation, rebalancing), or why one is not answered."""
    lines = []
    families = board.families[board.families["dataset"] == dataset] if len(board.families) else board.families
    for family, reference in (("classic", CLASSIC_REFERENCE), ("rebalancing", REBALANCING)):
        table = families[families["family"] == family] if len(families) else families
        lines += [f"### {FAMILIES[family]}", ""]
        if table.empty:
            lines += [f"Not answered here: this grid has no generative row together with a `{reference}` row.", ""]
            continue
        lines += [f"_{family_note(reference)}._", ""]
        lines += _comparison_rows(table, "reference", with_reference=True) + power_lines(board.power, dataset, family)
    return lines


def _comparison_rows(compared: pd.DataFrame, reference: str, with_reference: bool = False) -> list[str]:
    """A comparison table: Δ with the run-level CI and Holm p (primary), the bootstrap (secondary), notes."""
    shown = fmt_shown(compared)
    headers = [
        *(HEADERS[c] for c in shown),
        *(["Reference", "Chosen"] if with_reference else []),
        "Runs (G)",
        f"{reference} acc. (%)",
        "Accuracy (%)",
        "Δ acc. (pp) [95% CI (uncorrected)]",
        "Holm p (t / W)",
        "Bootstrap Δ acc. [95% CI (uncorrected)] (Holm p)",
        f"{reference} AUC",
        "AUC",
        "Δ AUC [95% CI (uncorrected)]",
        "Holm p (t / W)",
        "Bootstrap Δ AUC [95% CI (uncorrected)] (Holm p)",
        "Note",
    ]
    rows = [
        [
            *(fmt_text(r[c]) for c in shown),
            *([r["reference"], fmt_text(r["chosen"] or None)] if with_reference else []),
            f"{fmt_text(r['n_paired'])} ({fmt_text(r['n_generator_seeds'])})",
            fmt_pm(r["baseline_accuracy"], math.nan, 100, 1),
            fmt_pm(r["accuracy"], math.nan, 100, 1),
            fmt_compared(r, "accuracy", 100, 1),
            fmt_holm(r, "accuracy"),
            fmt_bootstrap(r, "accuracy", 100, 1),
            fmt_pm(r["baseline_auc"], math.nan, 1, 3),
            fmt_pm(r["auc"], math.nan, 1, 3),
            fmt_compared(r, "auc", 1, 3),
            fmt_holm(r, "auc"),
            fmt_bootstrap(r, "auc", 1, 3),
            fmt_text(r["note"] or None),
        ]
        for r in compared.to_dict("records")
    ]
    return markdown_table(headers, rows)


def power_lines(power: pd.DataFrame, dataset: str, family: str) -> list[str]:
    """The minimum-detectable-difference sentence of one table, for Markdown (and, as text, HTML)."""
    text = power_sentence(power, dataset, family)
    return [text, ""] if text else []


def power_sentence(power: pd.DataFrame, dataset: str, family: str) -> str:
    """'Detectable with 80% power …: Δ accuracy ≥ x pp, Δ AUC ≥ y', or '' for a table without tests."""
    rows = power[(power["dataset"] == dataset) & (power["family"] == family)] if len(power) else power
    if rows.empty:
        return ""
    first = rows.iloc[0]
    scale = {"accuracy": (100, 1, " pp"), "auc": (1, 3, "")}
    parts = []
    for r in rows.to_dict("records"):
        factor, digits, unit = scale[r["metric"]]
        value = (
            "not estimable (fewer than two generator seeds)"
            if pd.isna(r["mde"])
            else f"{r['mde'] * factor:.{digits}f}{unit}"
        )
        parts.append(f"Δ {'AUC' if r['metric'] == 'auc' else 'accuracy'} ≥ {value}")
    return (
        f"**Minimum detectable difference** (m = {first['m']} tests, α = 0.05/{max(first['m'], 1)}, "
        f"G = {first['n_generator_seeds']} generator seeds): {'; '.join(parts)}. _{POWER_NOTE}._"
    )


def family_note(reference: str) -> str:
    """How a family table's rows were chosen and tested."""
    return FAMILY_NOTE.format(reference=reference)


def _quality_section(quality: pd.DataFrame) -> list[str]:
    """Generator quality of a dataset's generative rows: FID and KID (floors), and CAS where a row trained on
    synthetic images only; nothing without generative rows."""
    if quality.empty:
        return []
    shown = fmt_shown(quality)
    notes = f"_{FID_NOTE}. {FIDELITY_NOTE}. {CAS_NOTE}._"
    lines = ["### Generator quality and train-on-synthetic (CAS)", "", notes, ""]
    headers = [*(HEADERS[c] for c in shown), "n", "FID (floor)", "KID (floor)", "Fidelity (%)", "CAS AUC"]
    headers.append("CAS accuracy (%)")
    rows = [
        [
            *(fmt_text(r[c]) for c in shown),
            fmt_text(r["n_seeds"]),
            fmt_quality(r, "fid", 1),
            fmt_quality(r, "kid", 4),
            fmt_fidelity(r),
            fmt_pm(r["cas_auc_mean"], r["cas_auc_std"], 1, 3),
            fmt_pm(r["cas_accuracy_mean"], r["cas_accuracy_std"], 100, 1),
        ]
        for r in quality.to_dict("records")
    ]
    return lines + markdown_table(headers, rows)


def _compute_section(frame: pd.DataFrame) -> list[str]:
    """What each row spent per cell, by phase: FLOPs and device-seconds (rows without compute records show '–')."""
    shown = fmt_shown(frame)
    lines = ["### Compute per cell", "", f"_{COMPUTE_NOTE}._", ""]
    phases = ("generator_training", "synthesis", "classifier_training")
    headers = [
        *(HEADERS[c] for c in shown),
        "n",
        "Generator FLOPs",
        "Synthesis FLOPs",
        "Classifier FLOPs",
        "Total FLOPs",
        "Generator s",
        "Synthesis s",
        "Classifier s",
        "Total s",
    ]
    rows = [
        [
            *(fmt_text(r[c]) for c in shown),
            fmt_n(r),
            *(fmt_flops(r[f"{p}_flops_mean"]) for p in (*phases, "total")),
            *(fmt_pm(r[f"{p}_seconds_mean"], math.nan, 1, 1) for p in (*phases, "compute")),
        ]
        for r in frame.to_dict("records")
    ]
    return lines + markdown_table(headers, rows)


def _per_seed_section(board: Leaderboard, dataset: str) -> list[str]:
    """The per-run DeLong and McNemar results of a dataset, one row per run, clearly not a claim."""
    tests = board.seed_tests[board.seed_tests["dataset"] == dataset]
    if tests.empty:
        return []
    lines = ["#### Per-run tests on the same test images (not corrected, not summed)", "", f"_{PER_SEED_NOTE}._", ""]
    headers = ["Model", "Run (g/c)", "Δ AUC", "DeLong p (this run)", "McNemar b / c", "McNemar p (this run)"]
    rows = [
        [
            r["model"],
            fmt_run(r),
            fmt_delta(r["delong_diff"], 1, 3),
            fmt_delong(r),
            fmt_mcnemar(r),
            fmt_p(r["mcnemar_p"]),
        ]
        for r in tests.to_dict("records")
    ]
    return lines + markdown_table(headers, rows)


def _cross_section(board: Leaderboard) -> list[str]:
    """Table 3 layout: accuracy per dataset side by side and their average; no FID (not comparable across datasets)."""
    frame, datasets = board.cross_dataset, list(board.wide)
    shown = fmt_shown(frame)
    lines = ["## Across datasets (Table 3 layout)", "", f"_{CROSS_NOTE}._", ""]
    headers = [*(HEADERS[c] for c in shown), *(f"{cross_dataset_name(frame, d)} acc. (%)" for d in datasets), "Average"]
    rows = [
        [
            *(fmt_text(r[c]) for c in shown),
            *(fmt_pm(r[f"{d}_accuracy_mean"], r[f"{d}_accuracy_std"], 100, 1) for d in datasets),
            fmt_pm(r["average_accuracy"], math.nan, 100, 1),
        ]
        for r in frame.to_dict("records")
    ]
    return lines + markdown_table(headers, rows)


def cross_dataset_name(frame: pd.DataFrame, dataset: str) -> str:
    """A dataset's column name in the cross-dataset table, with its train fraction where all its rows share one
    below 1 and the rows do not already show it."""
    fractions = frame[f"{dataset}_train_fraction"].dropna().unique()
    if len(fractions) == 1 and fractions[0] != 1 and frame["train_fraction"].isna().all():
        return f"{dataset} at {fractions[0]:g}"
    return dataset


def _common(values: pd.Series) -> object:
    """The value every dataset's row shares, else NaN (the per-dataset columns then say it)."""
    unique = values.unique()
    return unique[0] if len(unique) == 1 else math.nan


def _rank_section(ranks: pd.DataFrame) -> list[str]:
    """Average ranks on AUC and accuracy over blocks with each Friedman test and critical difference, or why there
    is none."""
    lines = [
        "## Average ranks across blocks (Friedman, Nemenyi)",
        "",
        "_Rank 1 = best mean test score in a block (dataset × fraction), ties averaged._",
        "",
    ]
    lines += [f"- {note}" for note in friedman_notes(ranks)]
    rows = [
        [r["model"], fmt_pm(r["auc_rank"], math.nan, 1, 2), fmt_pm(r["accuracy_rank"], math.nan, 1, 2), r["note"]]
        for r in ranks.to_dict("records")
    ]
    return [*lines, "", *markdown_table(["Model", "Avg. rank (AUC)", "Avg. rank (accuracy)", "Note"], rows)]


def friedman_notes(ranks: pd.DataFrame) -> list[str]:
    """One sentence per ranked metric: Friedman's statistic and p with Nemenyi's critical difference, or why there
    is no test (never a test over fewer than three blocks)."""
    notes = []
    blocks = int(ranks["n_blocks"].iloc[0]) if len(ranks) else 0
    for metric, name in (("auc", "AUC"), ("accuracy", "accuracy")):
        if blocks < stats.FRIEDMAN_MIN_BLOCKS:
            notes.append(
                f"{name}: not tested: fewer than three blocks (datasets × fractions; here {blocks}), so the "
                "average ranks are descriptive only and there is no critical-difference diagram."
            )
            continue
        statistic, p = ranks[f"{metric}_friedman_statistic"].iloc[0], ranks[f"{metric}_friedman_p"].iloc[0]
        if pd.isna(p):
            notes.append(f"{name}: no Friedman test (needs ≥ 3 models ranked on every block, not all tied).")
        else:
            cd = ranks[f"{metric}_cd"].iloc[0]
            notes.append(
                f"{name}: Friedman χ² = {statistic:.2f}, p = {fmt_p(p)} over {blocks} blocks; Nemenyi critical "
                f"difference {cd:.2f} (α = 0.05): average ranks further apart than this differ."
            )
    return notes


def _variance_section(frame: pd.DataFrame) -> list[str]:
    """Each row's variance of accuracy and AUC by source (generator seed, classifier seed, runs, test images)."""
    shown = fmt_shown(frame)
    lines = ["### Variance by source", "", f"_{VARIANCE_NOTE}. Accuracy in percentage points._", ""]
    sources = ("generator seed", "classifier seed", "runs", "test images")
    headers = [
        *(HEADERS[c] for c in shown),
        "Runs (G)",
        *(f"{m} SD: {s}" for m in ("Acc.", "AUC") for s in sources),
    ]
    rows = [
        [
            *(fmt_text(r[c]) for c in shown),
            f"{r['n_seeds']} ({r['n_generator_seeds']})",
            *(fmt_sd(r[f"{m}_var_{c}"], scale, digits) for m, scale, digits in SD_FORMATS for c in COMPONENTS),
        ]
        for r in frame.to_dict("records")
    ]
    return lines + markdown_table(headers, rows)


def fmt_sd(variance: float, scale: float, digits: int) -> str:
    """The standard deviation of a variance component, scaled, or '–'."""
    return "–" if pd.isna(variance) else f"{math.sqrt(variance) * scale:.{digits}f}"


def _across_section(board: Leaderboard) -> list[str]:
    """IQM and probability of improvement across tasks with their stratified-bootstrap CIs."""
    lines = ["## Across tasks: IQM and probability of improvement", ""]
    lines += [f"_{across_note(board.baseline)}._", ""]
    if board.across.empty:
        return lines + ["No row ran on every task.", ""]
    shown = poi_shown(board.across, board.baseline)
    headers = ["Model", "Tasks", "Runs", "IQM AUC [95% CI]", *shown.values()]
    rows = [
        [
            r["entry"],
            fmt_text(r["n_tasks"]),
            fmt_text(r["n_runs"]),
            f"{r['iqm_auc']:.3f} {fmt_ci(r['iqm_ci_low'], r['iqm_ci_high'], 1, 3)}",
            *(fmt_poi(r, name) for name in shown),
        ]
        for r in board.across.to_dict("records")
    ]
    return lines + markdown_table(headers, rows)


def poi_shown(across: pd.DataFrame, baseline: str) -> dict[str, str]:
    """The probability-of-improvement columns with a value, and their headers."""
    references = {"poi": baseline, "poi_geometric": CLASSIC_REFERENCE, "poi_oversample": REBALANCING}
    return {name: f"P(> {ref}) [95% CI]" for name, ref in references.items() if across[name].notna().any()}


def fmt_poi(row: dict, name: str) -> str:
    """'p [low, high]' of one probability of improvement, or '–'."""
    if pd.isna(row[name]):
        return "–"
    return f"{row[name]:.2f} {fmt_ci(row[f'{name}_ci_low'], row[f'{name}_ci_high'], 1, 2)}"


def across_note(baseline: str) -> str:
    """How the across-task summaries are computed, for Markdown and HTML."""
    return ACROSS_NOTE.format(baseline=baseline, resamples=ACROSS_RESAMPLES)


def against_note(baseline: str) -> str:
    """How the against-the-baseline table is computed and corrected, for Markdown and HTML."""
    return AGAINST_NOTE.format(baseline=baseline, min_n=stats.WILCOXON_MIN_N)


def _long_row(record: CellRecord, metrics: tuple[str, ...]) -> dict:
    """A cell's row of the long table; NaN where the record has no value (a failed cell has only its error)."""
    run = record.result
    matched = matched_quality(run)
    test = run.metrics.test if run is not None else None
    row = {"cell_id": record.cell_id, "status": record.status, **{key: record.cell.get(key) for key in COORDINATES}}
    row |= dict(zip(RUN, run_seeds(record)))
    row["task"] = run.dataset.task.kind if run is not None else None
    row["positive_class"] = positive_label(run.dataset.task) if run is not None else None
    row["generative"] = _generative(record)
    row["val_auc"] = _number(run.metrics.val.get("auc") if run is not None else None)
    row |= {metric: _number(test.get(metric) if test is not None else None) for metric in metrics}
    row |= {name: _number(value) for name, value in _quality_values(matched).items()}
    row["fid_rank_deficient"] = None if matched is None else bool(matched.rank_deficient)
    row |= _fidelity_values(run)
    seconds = run.budget.seconds if run is not None else {}
    row |= {name: _number(seconds.get(key)) for name, key in SECONDS.items()}
    compute = run.compute if run is not None else None
    row |= {name: _compute_value(compute, phase, unit) for name, (phase, unit) in COMPUTE.items()}
    row["error"] = (record.error or {}).get("message") if record.status == FAILED else None
    return row


def positive_label(task: TaskSpec) -> str | None:
    """The class whose recall a binary run reports as "recall" (sensitivity), as its record's task states it, e.g.
    "'malignant' (label 0)"; records written before dataset cards named a positive class took label 1. None for
    other tasks, whose recall is a macro mean."""
    return f"'{task.labels[task.positive]}' (label {task.positive})" if task.kind == "binary" else None


def recall_note(frame: pd.DataFrame) -> str:
    """Which class a dataset's recall and specificity are of, from its rows' records ("" unless binary)."""
    classes = sorted({name for value in frame["positive_class"].dropna() for name in value.split("; ")})
    if not classes:
        return ""
    if len(classes) > 1:
        return (
            f"Recall (sensitivity) is of a different class in different records ({'; '.join(classes)}): rows mix "
            "records written before and after the dataset card named its positive class; rerun the older cells"
        )
    return f"Recall (sensitivity) is the recall of {classes[0]}; specificity is the other class's recall"


def _compute_value(compute: ComputeReport | None, phase: str | None, unit: str) -> float:
    """A phase's (phase None: the total's) FLOPs or seconds from a run's compute report; NaN where it has none."""
    part = None if compute is None else compute.total if phase is None else compute.phases.get(phase)
    return _number(getattr(part, unit) if part is not None else None)


def _generative(record: CellRecord) -> bool:
    """Whether a run trained on synthetic images: its record holds some, and it is not a rebalancing control (which
    adds repeated real images the record may count alongside)."""
    run = record.result
    if run is None or record.cell.get("base_strategy", record.cell.get("strategy")) in CONTROLS:
        return False
    return bool(run.dataset.train_synthetic or "synthesis" in run.strategy.facts)


def run_seeds(record: CellRecord) -> tuple[int | None, int | None]:
    """A cell's (generator seed, classifier seed): the classifier seed is the cell's seed; a record without a
    generator seed (written before seeds were split) used that one seed for both."""
    seed = record.cell.get("seed", record.config.get("seed"))
    generator = record.cell.get("generator_seed", record.config.get("generator_seed"))
    return (seed if generator is None else generator), seed


def matched_quality(run: RunRecord | None) -> QualityBlock | None:
    """The class-matched block of a run's quality report, or None for a run that scored no synthetic images."""
    quality = run.strategy.quality if run is not None else None
    return quality.matched if quality is not None else None


def _quality_values(matched: QualityBlock | None) -> dict[str, float | None]:
    """The QUALITY columns of a class-matched block: FID and KID of the synthetic images and of the floor."""
    if matched is None:
        return dict.fromkeys(QUALITY)
    fake, floor, shift = matched.fake_vs_real, matched.floor, getattr(matched, "shift", None)
    return {
        "fid": fake.fid,
        "fid_floor": _score(floor, "fid"),
        "fid_shift": _score(shift, "fid"),
        "kid": fake.kid_mean,
        "kid_floor": _score(floor, "kid_mean"),
        "kid_shift": _score(shift, "kid_mean"),
    }


def _fidelity_values(run: RunRecord | None) -> dict:
    """The FIDELITY columns of a run's class-fidelity fact (NaN without one: an older or a classic run) and its flags,
    joined by ' / ' (None: the record has no `flags` fact; '': checked, nothing found)."""
    facts = run.strategy.facts if run is not None else {}
    values = {name: _number(dig(facts, "fidelity", "overall", key)) for name, key in FIDELITY.items()}
    flags = facts.get("flags")
    return values | {"flags": None if flags is None else " / ".join(flags)}


def _score(block: object, name: str) -> float | None:
    """One score of an optional quality block (None without the block: a record that did not measure it)."""
    return None if block is None else getattr(block, name)


def record_labels(records: list[CellRecord]) -> dict[str, str]:
    """Each cell's row name in the leaderboard (see `_model_labels`), by cell id, so plots name rows the same way."""
    frame = pd.DataFrame(
        [{"cell_id": r.cell_id, **{k: r.cell.get(k) for k in COORDINATES}} for r in records],
        columns=["cell_id", *COORDINATES],
    )
    return dict(zip(frame["cell_id"], _model_labels(frame)))


def _model_labels(frame: pd.DataFrame, across_tasks: bool = False) -> pd.Series:
    """Strategy, plus backbone, train fraction and policy wherever a strategy ran with several on one dataset: a
    row's name everywhere, the same on every dataset (a grid giving each dataset its own fraction keeps plain
    strategy names, so rows pair across datasets). `across_tasks` leaves the fraction out: the name of a row
    across tasks (dataset × fraction), where the fraction is part of the task."""
    label = frame["strategy"].astype(str)
    for column, suffix in SUFFIXES.items():
        if across_tasks and column == "train_fraction":
            continue
        if len(frame) and frame.groupby(["dataset", "strategy"])[column].nunique(dropna=False).max() > 1:
            label = label + frame[column].map(
                lambda value, suffix=suffix: suffix.format(value) if pd.notna(value) else ""
            )
    return label


def _spread(name: str, values: pd.Series, with_ci: bool = False) -> dict[str, float]:
    """Mean and sample std over the seeds that have a value, and optionally their 95% Student-t CI (NaN for one
    seed: a single run has no interval)."""
    x = values.dropna().to_numpy(dtype=float)
    spread = stats.mean_std(x)
    out = {f"{name}_mean": _number(spread["mean"]), f"{name}_std": _number(spread["std"])}
    if with_ci:
        ci = stats.t_interval(x)
        out |= {f"{name}_ci_low": _number(ci["low"]), f"{name}_ci_high": _number(ci["high"])}
    return out


def _image_tests(predictions: Predictions, kind: str, baseline_id: str, cell_id: str) -> dict:
    """DeLong's test of AUC and McNemar's of accuracy between the baseline's and a run's test predictions."""
    base, other = predictions.get(baseline_id), predictions.get(cell_id)
    if base is None or other is None:
        return {"note": "test predictions missing"}
    (labels, a), (other_labels, b) = base, other
    if not np.array_equal(labels, other_labels):
        return {"note": "test labels differ from the baseline's"}
    a, b = a.astype(float), b.astype(float)
    if kind == "binary":
        units = [stats.delong_test(labels, a[:, 1], b[:, 1])]
        difference = units[0]["difference"]
    elif kind == "multilabel":
        units = [stats.delong_test(labels[:, j], a[:, j], b[:, j]) for j in range(labels.shape[1])]
        defined = [u["difference"] for u in units if u["difference"] is not None]
        difference = float(np.mean(defined)) if defined else None
    else:
        result = stats.delong_test_multiclass(labels, a, b)
        units, difference = result["per_class"], result["mean_difference"]
    tested = [u for u in units if u["p_value"] is not None]
    row = {
        "delong_diff": _number(difference),
        "delong_p": _number(units[0]["p_value"]) if kind == "binary" else math.nan,
        "delong_tests": len(tested),
        "delong_better": sum(u["p_value"] < ALPHA and u["difference"] > 0 for u in tested),
        "delong_worse": sum(u["p_value"] < ALPHA and u["difference"] < 0 for u in tested),
    }
    if kind == "multilabel":
        return row | {"note": "McNemar n/a for multilabel: exact-match accuracy is not meaningful"}
    test = stats.mcnemar_test(labels, predicted_labels(kind, a), predicted_labels(kind, b))
    return row | {"mcnemar_b": test["b"], "mcnemar_c": test["c"], "mcnemar_p": test["p_value"]}


def _summarise_pairs(pairs: pd.DataFrame, cells: pd.DataFrame, task: str | None, predictions: Predictions) -> dict:
    """The comparison columns of one row from its runs paired with the reference's: per metric the run-level test
    (Student-t over generator-seed means), Wilcoxon over those means and the secondary paired bootstrap."""
    row: dict[str, object] = {"n_paired": len(pairs), "n_generator_seeds": pairs["generator_seed"].nunique()}
    for metric in COMPARED_METRICS:
        valid = pairs.dropna(subset=[f"baseline_{metric}", metric])
        if len(valid):
            row |= _run_columns(metric, valid)
    bootstrap, notes = _bootstrap_columns(pairs, task, predictions)
    unpaired = _run_names(cells[cells["status"] == OK]) - _run_names(pairs)
    if unpaired:
        notes.append(f"runs without a reference run: {sorted(unpaired)}")
    return row | bootstrap | {"note": "; ".join(notes)}


def _run_columns(metric: str, pairs: pd.DataFrame) -> dict:
    """One metric's run-level columns: means, Δ with its Student-t CI over generator-seed means, t and Wilcoxon p."""
    seeds = pairs["generator_seed"]
    reference, other = (inference.seed_means(pairs[c], seeds) for c in (f"baseline_{metric}", metric))
    test = inference.run_test(pairs[metric] - pairs[f"baseline_{metric}"], seeds)
    ranks = stats.paired_difference(reference, other)
    return {
        f"baseline_{metric}": pairs[f"baseline_{metric}"].mean(),
        metric: pairs[metric].mean(),
        f"{metric}_diff": _number(test.difference),
        f"{metric}_t_ci_low": _number(test.ci_low),
        f"{metric}_t_ci_high": _number(test.ci_high),
        f"{metric}_t_sd": _number(test.sd),
        f"{metric}_t_p": _number(test.p_value),
        f"{metric}_wilcoxon_p": _number(ranks["wilcoxon_p_value"]),
        f"{metric}_wilcoxon_n": ranks["wilcoxon_n"],
    }


def _run_names(frame: pd.DataFrame) -> set[str]:
    """Runs as 'generator seed/classifier seed', for notes."""
    return {f"{int(g)}/{int(c)}" for g, c in zip(frame["generator_seed"], frame["classifier_seed"])}


def _bootstrap_columns(pairs: pd.DataFrame, task: str | None, predictions: Predictions) -> tuple[dict, list[str]]:
    """The paired bootstrap over test images and runs of the pairs whose predictions are saved on the same test
    images, as comparison columns, and notes where runs lack predictions or it could not run."""
    missing = pairs[
        [
            predictions.get(a) is None or predictions.get(b) is None
            for a, b in zip(pairs["baseline_cell_id"], pairs["cell_id"])
        ]
    ]
    notes = [f"test predictions missing (runs {sorted(_run_names(missing))})"] if len(missing) else []
    runs = [(predictions.get(a), predictions.get(b)) for a, b in zip(pairs["baseline_cell_id"], pairs["cell_id"])]
    runs = [(a, b) for a, b in runs if a is not None and b is not None and np.array_equal(a[0], b[0])]
    if not runs or task is None:
        return {}, notes
    labels = runs[0][0][0]
    if not all(np.array_equal(a[0], labels) for a, _ in runs):
        return {}, [*notes, "test labels differ between runs: no bootstrap over test images"]
    result = stats.paired_bootstrap(
        task,
        labels,
        [a[1] for a, _ in runs],
        [b[1] for _, b in runs],
        np.random.default_rng(BOOTSTRAP_SEED),
        BOOTSTRAP_RESAMPLES,
    )
    row = {
        "bootstrap_seeds": result["n_seeds"],
        "bootstrap_images": result["n_images"],
        "bootstrap_resamples": result["n_resamples"],
    }
    for metric in COMPARED_METRICS:
        summary = result[metric]
        row |= {
            f"{metric}_bootstrap_diff": _number(summary["difference"]),
            f"{metric}_ci_low": _number(summary["ci_low"]),
            f"{metric}_ci_high": _number(summary["ci_high"]),
            f"{metric}_bootstrap_p": _number(summary["p_value"]),
        }
    return row, notes + ([ONE_SEED_NOTE] if result["n_seeds"] == 1 else [])


def _holm_correct(frame: pd.DataFrame) -> pd.DataFrame:
    """Holm-correct each kind of p across one table (a dataset's comparisons of one family, every row × metric),
    then mark each metric better / worse where the corrected run-level p is below ALPHA."""
    frame = frame.copy()
    for index in frame.groupby(["dataset", "family"], sort=False).groups.values():
        for kind in P_KINDS:
            columns = [f"{metric}_{kind}" for metric in COMPARED_METRICS]
            raw = frame.loc[index, columns].to_numpy(dtype=float)
            adjusted = [_number(p) for p in stats.holm(raw.ravel().tolist())]
            frame.loc[index, [f"{c}_holm" for c in columns]] = np.reshape(adjusted, raw.shape)
    for metric in COMPARED_METRICS:
        significant = frame[f"{metric}_t_p_holm"] < ALPHA
        direction = frame[f"{metric}_diff"]
        frame[f"{metric}_marker"] = np.select(
            [significant & (direction > 0), significant & (direction < 0)], ["better", "worse"], ""
        )
    return frame


def dig(data: object, *keys: str) -> object:
    """data[k1][k2]…, or None where a level is missing: for the record's untyped blocks (compute, strategy facts),
    which differ between strategies and versions."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _number(value: object) -> float:
    """A float, NaN for None, so undefined values are empty cells rather than object columns."""
    return math.nan if value is None else float(value)


def _ints(values: object) -> list[int]:
    """Sorted plain ints, for readable notes."""
    return sorted(int(v) for v in values)


def fmt_shown(frame: pd.DataFrame) -> list[str]:
    """Coordinate columns a Markdown table shows: strategy and backbone, fraction and policy where they vary."""
    return ["strategy", "backbone", *(c for c in ("train_fraction", "policy") if frame[c].nunique(dropna=False) > 1)]


def markdown_table(headers: list[str], rows: list[list[object]]) -> list[str]:
    """A Markdown table, cells escaped so messages cannot break it, and a blank line after."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt_text(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return [*lines, ""]


def fmt_text(value: object) -> str:
    """A table cell: '–' for missing, compact numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:g}" if isinstance(value, float) else str(value)


def fmt_pm(mean: float, std: float, scale: float, digits: int) -> str:
    """'mean ± std' scaled and rounded for display; the mean alone without a std, '–' without a mean."""
    if pd.isna(mean):
        return "–"
    return f"{mean * scale:.{digits}f}" + ("" if pd.isna(std) else f" ± {std * scale:.{digits}f}")


def fmt_flops(value: float) -> str:
    """A FLOP count with 3 significant digits ('1.93e+12'), or '–'."""
    return "–" if pd.isna(value) else f"{value:.3g}"


def fmt_ci(low: float, high: float, scale: float, digits: int) -> str:
    """'[low, high]' scaled and rounded, or '–'."""
    return "–" if pd.isna(low) else f"[{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def fmt_delta(value: float, scale: float, digits: int) -> str:
    """A signed difference, or '–'."""
    return "–" if pd.isna(value) else f"{value * scale:+.{digits}f}"


def fmt_p(value: float) -> str:
    """A p-value with 3 significant digits, or '–' where undefined."""
    return "–" if pd.isna(value) else f"{value:.3g}"


def fmt_n(row: dict) -> str:
    """Seeds that ran, with failures beside them."""
    return f"{row['n_seeds']}" + (f" (+{row['n_failed']} failed)" if row["n_failed"] else "")


def fmt_quality(row: dict, name: str, digits: int) -> str:
    """A wide-table FID or KID cell: 'mean ± std (floor f; train→test shift s)' (the shift where recorded), marked †
    when the FID's covariance is rank-deficient."""
    if pd.isna(row[f"{name}_mean"]):
        return "–"
    references = {"floor": row[f"{name}_floor_mean"], "train→test shift": row.get(f"{name}_shift_mean", math.nan)}
    shown = [f"{label} {value:.{digits}f}" for label, value in references.items() if pd.notna(value)]
    text = fmt_pm(row[f"{name}_mean"], row[f"{name}_std"], 1, digits)
    text += f" ({'; '.join(shown)})" if shown else ""
    return text + (RANK_MARK if name == "fid" and row["fid_rank_deficient"] else "")


def fmt_fidelity(row: dict) -> str:
    """A wide-table fidelity cell in %: 'mean ± std (real r; chance c)', then '⚑ n' for n flagged runs; '–' for a
    row without fidelity reports or flags (an older record)."""
    flagged = f"{FLAG_MARK} {row['n_flagged']}" if row.get("n_flagged") else ""
    if pd.isna(row["fidelity_mean"]):
        return flagged or "–"
    references = {"real": row["fidelity_real_mean"], "chance": row["fidelity_chance_mean"]}
    shown = "; ".join(f"{label} {100 * value:.1f}" for label, value in references.items() if pd.notna(value))
    text = fmt_pm(row["fidelity_mean"], row["fidelity_std"], 100, 1) + (f" ({shown})" if shown else "")
    return f"{text} {flagged}".strip()


def flagged_lines(long: pd.DataFrame) -> list[str]:
    """A line per ok run whose synthetic set was flagged: the row's name, the run and its reasons."""
    flagged = long[(long["status"] == OK) & long["flags"].fillna("").ne("")]
    runs = [
        (r["model"], fmt_text(r["generator_seed"]), fmt_text(r["classifier_seed"]), r["flags"])
        for r in flagged.to_dict("records")
    ]
    return [f"{FLAG_MARK} {model} (generator seed {g}, classifier seed {c}): {flags}" for model, g, c, flags in runs]


def fmt_compared(row: dict, metric: str, scale: float, digits: int) -> str:
    """'Δ [CI]' of a metric against the reference with the run-level (uncorrected) CI, ↑ / ↓ where the
    Holm-corrected run-level p says so."""
    text = fmt_delta(row[f"{metric}_diff"], scale, digits)
    if pd.notna(row[f"{metric}_t_ci_low"]):
        text += f" {fmt_ci(row[f'{metric}_t_ci_low'], row[f'{metric}_t_ci_high'], scale, digits)}"
    return text + MARKERS[row[f"{metric}_marker"]]


def fmt_bootstrap(row: dict, metric: str, scale: float, digits: int) -> str:
    """The secondary paired bootstrap: 'Δ [CI] (Holm p)', CI uncorrected; '–' where it did not run."""
    if pd.isna(row[f"{metric}_bootstrap_diff"]):
        return "–"
    delta = fmt_delta(row[f"{metric}_bootstrap_diff"], scale, digits)
    ci = fmt_ci(row[f"{metric}_ci_low"], row[f"{metric}_ci_high"], scale, digits)
    return f"{delta} {ci} (p {fmt_p(row[f'{metric}_bootstrap_p_holm'])})"


def fmt_holm(row: dict, metric: str) -> str:
    """Holm-corrected 't / Wilcoxon' p of a metric over generator-seed means; Wilcoxon reads 'n too small' where it
    cannot reach 0.05."""
    n = row[f"{metric}_wilcoxon_n"]
    wilcoxon = "n too small" if pd.notna(n) and n < stats.WILCOXON_MIN_N else fmt_p(row[f"{metric}_wilcoxon_p_holm"])
    return f"{fmt_p(row[f'{metric}_t_p_holm'])} / {wilcoxon}"


def fmt_run(row: dict) -> str:
    """A run as 'generator seed/classifier seed'."""
    return f"{row['generator_seed']:.0f}/{row['classifier_seed']:.0f}"


def fmt_delong(row: dict) -> str:
    """One seed's DeLong result: its p (binary), or how many of its per-class / per-label tests have p < 0.05."""
    if row["task"] == "binary" or pd.isna(row["delong_tests"]):
        return fmt_p(row["delong_p"])
    unit = "labels" if row["task"] == "multilabel" else "classes"
    return f"p<0.05: {row['delong_better']:.0f}↑ {row['delong_worse']:.0f}↓ of {row['delong_tests']:.0f} {unit}"


def fmt_mcnemar(row: dict) -> str:
    """One seed's McNemar discordant counts 'b / c' (b: only the baseline right), or 'n/a' / '–'."""
    if row["task"] == "multilabel":
        return "n/a"
    return "–" if pd.isna(row["mcnemar_b"]) else f"{row['mcnemar_b']:.0f} / {row['mcnemar_c']:.0f}"
