"""Leaderboards from a results folder: a long table of cells, per-dataset mean ± std with Student-t CIs over seeds,
the class-matched FID/KID next to their real-vs-real floors, each strategy against a baseline (a paired bootstrap over
test images and seeds, paired t-test and Wilcoxon over seeds, Holm-corrected per table; per-seed DeLong and McNemar
kept apart), Friedman ranks across datasets; written as full-precision CSVs and a Markdown file laid out like the
seed paper's tables."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.files import write_text_atomic
from benchmark.errors import MedAugBenchError
from benchmark.grid.store import (
    FAILED,
    OK,
    CellRecord,
    load_predictions,
    load_records,
    records_dir,
)
from benchmark.publish import stats
from benchmark.train.metrics import predicted_labels
from benchmark.train.record import QualityBlock, RunRecord

METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1", "auc")
TEST_METRICS = (*METRICS, "ece", "average_precision")
COORDINATES = ("dataset", "strategy", "base_strategy", "backbone", "seed", "train_fraction", "policy")
# A leaderboard row within a dataset; fraction and policy split rows only where the grid varies them.
GROUP = ("strategy", "backbone", "train_fraction", "policy")
# Runs compared with the baseline share these; seeds pair them within.
PAIRING = ("dataset", "backbone", "train_fraction")
SECONDS = {"generator_seconds": "synthesize", "classifier_seconds": "train", "total_seconds": "total"}
# What each cell spent (RunRecord.compute): long-table column -> path in that block; FLOPs counted, device-seconds.
PHASES = ("generator_training", "synthesis", "classifier_training")
COMPUTE = {
    **{f"{phase}_{unit}": ("phases", phase, unit) for unit in ("flops", "seconds") for phase in PHASES},
    "total_flops": ("total", "flops"),
    "compute_seconds": ("total", "seconds"),
}
SYNTHETIC_ONLY = "synthetic_only"
# Class-matched generator quality (the strategy's QualityReport.matched block): long-table columns.
QUALITY = ("fid", "fid_floor", "kid", "kid_floor")
ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0  # every comparison draws the same resamples: common random numbers across a table
P_KINDS = ("bootstrap_p", "t_p", "wilcoxon_p")  # each its own Holm family per dataset table
# What names a compared row in the per-seed and the statistics tables.
ROW_KEYS = ("dataset", "model", "strategy", "backbone", "train_fraction", "policy")
SEED_COLUMNS = (
    *ROW_KEYS,
    "task",
    "seed",
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
# Per metric against the baseline: Δ over seeds, the bootstrap's Δ and CI, raw and Holm-corrected p, the marker.
COMPARED = (
    "diff",
    "bootstrap_diff",
    "ci_low",
    "ci_high",
    *(f"{k}{h}" for k in P_KINDS for h in ("", "_holm")),
    "wilcoxon_n",
    "marker",
)
STATS_COLUMNS = (
    *ROW_KEYS,
    "baseline",
    "task",
    "n_paired",
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
    "mean ± sample std (ddof=1) over the n seeds of each row; CI: 95% Student-t interval of the mean over seeds "
    "(mean ± t(0.975, n−1) · std / √n; none for one seed)"
)
FID_NOTE = (
    "FID/KID (floor): class-matched, synthetic images against real training images of the same class "
    "composition and n; floor: real held-out images against the same reference (a perfect generator's score); "
    "mean over seeds. FID is comparable within a dataset and size only, never across datasets"
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
RANK_MARK = "†"
RANK_NOTE = (
    f"{RANK_MARK} rank-deficient: n − 1 is below the feature dimension, so the covariance is singular and "
    "this FID is unreliable"
)
AGAINST_NOTE = (
    "Δ: strategy − `{baseline}` over the seeds both ran, [95% CI] from a paired bootstrap over test "
    "images and seeds (the same resampled images for both; accuracy in percentage points). p: bootstrap / "
    'paired t-test / Wilcoxon signed-rank over seeds ("n too small" below {min_n} non-zero differences, '
    "where its exact p cannot reach 0.05), each Holm-corrected across this table's strategies × metrics. "
    "↑ better / ↓ worse: Holm-corrected bootstrap p < 0.05. With few seeds the bootstrap sees little of "
    "the seed-to-seed spread (resampling 3 seeds keeps 2/3 of their variance), so it reads as evidence "
    "about these test images more than about new training runs; the t-test over seeds is the stricter one"
)
PER_SEED_NOTE = (
    "Each seed alone on the same test images: DeLong (AUC; per class for multi-class, per label for "
    "multi-label) and McNemar (accuracy), uncorrected. Per-seed results, not evidence on their own and "
    "not summed over seeds"
)
CROSS_NOTE = (
    "Accuracy (%): mean ± sample std (ddof=1) over each dataset's seeds. Average: mean over datasets of the "
    "per-dataset means, only for rows run on every dataset. No FID here: each dataset's features differ, so "
    "FIDs are compared within a dataset only"
)


Predictions = dict[str, tuple[np.ndarray, np.ndarray] | None]


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
    markdown: str = ""
    paths: list[Path] = field(default_factory=list)

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
        "task",
        *metrics,
        *QUALITY,
        "fid_rank_deficient",
        *SECONDS,
        *COMPUTE,
        "error",
    ]
    frame = pd.DataFrame([_long_row(record, metrics) for record in records], columns=columns)
    frame.insert(3, "model", _model_labels(frame))
    return frame


def wide_table(long: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One row per strategy × backbone (× fraction × policy) of a dataset: seeds, failures, mean ± std and
    t-interval per metric, class-matched FID/KID with their floors, seconds and compute; best AUC first, as a
    leaderboard."""
    rows = []
    for key, cells in long[long["dataset"] == dataset].groupby(list(GROUP), dropna=False, sort=True):
        ok = cells[cells["status"] == OK]
        row = {"model": cells["model"].iloc[0], **dict(zip(GROUP, key))}
        row |= {"n_seeds": len(ok), "n_failed": int((cells["status"] == FAILED).sum())}
        for metric in METRICS:
            row |= _spread(metric, ok[metric], with_ci=True)
        row |= _spread("fid", ok["fid"]) | _spread("kid", ok["kid"])
        means = ("fid_floor", "kid_floor", "generator_seconds", "classifier_seconds", *COMPUTE)
        row |= {f"{name}_mean": ok[name].mean() for name in means}
        row["fid_rank_deficient"] = bool(ok["fid_rank_deficient"].eq(True).any())
        rows.append(row)
    return pd.DataFrame(rows).sort_values(
        "auc_mean", ascending=False, na_position="last", kind="stable", ignore_index=True
    )


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
        "kid_mean",
        "kid_std",
        "kid_floor_mean",
        "fid_rank_deficient",
        "cas_auc_mean",
        "cas_auc_std",
        "cas_accuracy_mean",
        "cas_accuracy_std",
    ]
    rows = []
    for dataset, frame in wide.items():
        for row in frame.to_dict("records"):
            cas = row["policy"] == SYNTHETIC_ONLY
            if pd.isna(row["fid_mean"]) and not cas:
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
    """One row per seed a run shares with the baseline in its (dataset, backbone, fraction): both runs' accuracy and
    AUC, and DeLong's (AUC) and McNemar's (accuracy) tests on their saved test predictions, for that seed alone."""
    rows = []
    for _, group in long[long["status"] == OK].groupby(list(PAIRING), dropna=False, sort=True):
        base = {cell["seed"]: cell for cell in group[group["strategy"] == baseline].to_dict("records")}
        for cell in group[group["strategy"] != baseline].to_dict("records"):
            pair = base.get(cell["seed"])
            if pair is None:
                continue
            row = {key: cell[key] for key in (*ROW_KEYS, "task", "seed")} | {
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


def stats_table(
    long: pd.DataFrame, tests: pd.DataFrame, predictions: Predictions, baseline: str = "none"
) -> pd.DataFrame:
    """Per run type against the baseline in its (dataset, backbone, fraction): accuracy and AUC differences with a
    paired bootstrap CI and p over test images and seeds, paired t-test and Wilcoxon over seeds, every p also
    Holm-corrected across the dataset's table, and the better/worse marker from the corrected bootstrap p."""
    rows = []
    for _, group in long.groupby(list(PAIRING), dropna=False, sort=True):
        has_baseline = bool(((group["strategy"] == baseline) & (group["status"] == OK)).any())
        for model, cells in group[group["strategy"] != baseline].groupby("model", sort=True):
            first, task = cells.iloc[0], next(iter(cells["task"].dropna()), None)
            row = {key: first[key] for key in ROW_KEYS} | {"baseline": baseline, "task": task}
            if has_baseline:
                pairs = tests[(tests["dataset"] == first["dataset"]) & (tests["model"] == model)]
                row |= _summarise_pairs(pairs, cells, task, baseline, predictions)
            else:
                row["note"] = f"no successful '{baseline}' run in this group to compare with"
            rows.append(row)
    return _holm_correct(pd.DataFrame(rows, columns=list(STATS_COLUMNS)))


def rank_table(wide: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Average rank of each model across datasets (1 = best) on mean test AUC and accuracy, with Friedman's test."""
    models = list(dict.fromkeys(model for frame in wide.values() for model in frame["model"]))
    columns: dict[str, object] = {"model": models}
    for metric in ("auc", "accuracy"):
        table = {d: {m: v for m, v in zip(w["model"], w[f"{metric}_mean"]) if pd.notna(v)} for d, w in wide.items()}
        table = {dataset: scores for dataset, scores in table.items() if scores}
        result = stats.friedman_ranks(table) if table else {"average_ranks": {}, "statistic": None, "p_value": None}
        columns[f"{metric}_rank"] = [result["average_ranks"].get(model, math.nan) for model in models]
        columns[f"{metric}_friedman_statistic"] = _number(result["statistic"])
        columns[f"{metric}_friedman_p"] = _number(result["p_value"])
    frame = pd.DataFrame(columns | {"n_datasets": len(wide)})
    one = "one dataset: ranks are that dataset's, and Friedman's test needs ≥ 2 datasets" if len(wide) < 2 else ""
    frame["note"] = [
        one or ("" if pd.notna(r) else "not scored on every dataset, so not ranked") for r in frame["auc_rank"]
    ]
    return frame.sort_values("auc_rank", na_position="last", kind="stable", ignore_index=True)


def build_leaderboard(results_dir: Path, baseline: str = "none") -> Leaderboard:
    """Every table and the Markdown of a results folder, in memory."""
    records = load_records(results_dir)
    if not records:
        raise MedAugBenchError(
            f"no cell records in {records_dir(results_dir)}: run `medaugbench run` into {results_dir} first"
        )
    long = long_table(records)
    wide = {dataset: wide_table(long, dataset) for dataset in sorted(long["dataset"].unique())}
    ok = long.loc[long["status"] == OK, "cell_id"]
    predictions = {cell_id: load_predictions(results_dir, cell_id) for cell_id in ok}
    tests = seed_tests(long, predictions, baseline)
    board = Leaderboard(
        Path(results_dir),
        baseline,
        long,
        wide,
        cross_dataset_table(wide),
        stats_table(long, tests, predictions, baseline),
        tests,
        rank_table(wide),
        quality_table(wide),
    )
    board.markdown = render_markdown(board)
    return board


def write_leaderboard(results_dir: Path, out_dir: Path | None = None, baseline: str = "none") -> Leaderboard:
    """Build the leaderboard and write its CSVs (full precision) and leaderboard.md atomically into `out_dir`."""
    board = build_leaderboard(results_dir, baseline)
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "leaderboard"
    tables = {
        "long": board.long,
        **board.wide,
        "cross_dataset": board.cross_dataset,
        "stats": board.stats,
        "stats_per_seed": board.seed_tests,
        "ranks": board.ranks,
        "quality": board.quality,
    }
    for name, frame in tables.items():
        board.paths.append(write_text_atomic(out / f"{name}.csv", frame.to_csv(index=False)))
    board.paths.append(write_text_atomic(out / "leaderboard.md", board.markdown))
    return board


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
            delta = f"{other['auc_diff']:+.3f} (p={fmt_p(other['auc_bootstrap_p_holm'])}){MARKERS[other['auc_marker']]}"
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
    ]
    for dataset, frame in board.wide.items():
        lines += _dataset_section(board, dataset, frame)
    lines += _cross_section(board) + _rank_section(board.ranks)
    if len(failed):
        lines += ["## Failed cells", ""]
        lines += markdown_table(
            ["Dataset", "Strategy", "Backbone", "Seed", "Error"],
            failed[["dataset", "strategy", "backbone", "seed", "error"]].to_numpy().tolist(),
        )
    return "\n".join(lines)


def _dataset_section(board: Leaderboard, dataset: str, frame: pd.DataFrame) -> list[str]:
    """Table 2 (test metrics), generator quality, compute, Table 4 (against the baseline) and the per-seed tests of
    one dataset."""
    cells = board.long[board.long["dataset"] == dataset]
    kind = next(iter(cells["task"].dropna()), "?")
    lines = [f"## {dataset} ({kind})", ""] + _metrics_section(frame)
    lines += _quality_section(board.quality[board.quality["dataset"] == dataset]) + _compute_section(frame)
    return lines + _against_section(board, dataset)


def _metrics_section(frame: pd.DataFrame) -> list[str]:
    """Table 2 layout: per row the test metrics (mean ± std, t-intervals) and the class-matched FID/KID."""
    shown = fmt_shown(frame)
    lines = ["### Test metrics (Table 2 layout)", "", f"_{SPREAD}. Percentages ×100. {FID_NOTE}._", ""]
    headers = [
        *(HEADERS[c] for c in shown),
        "n",
        "Accuracy (%)",
        "Acc. 95% CI",
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
    """Table 4 layout: each strategy against the baseline (Δ with CIs, Holm-corrected p), then the per-seed tests."""
    compared = board.stats[board.stats["dataset"] == dataset]
    lines = ["### Against the baseline (Table 4 layout)", "", f"_{against_note(board.baseline)}._", ""]
    if compared.empty:
        return lines + ["No other strategy to compare.", ""]
    shown = fmt_shown(compared)
    headers = [
        *(HEADERS[c] for c in shown),
        "Pairs",
        f"{board.baseline} acc. (%)",
        "Accuracy (%)",
        "Δ acc. (pp) [95% CI]",
        "Holm p (boot / t / W)",
        f"{board.baseline} AUC",
        "AUC",
        "Δ AUC [95% CI]",
        "Holm p (boot / t / W)",
        "Note",
    ]
    rows = [
        [
            *(fmt_text(r[c]) for c in shown),
            fmt_text(r["n_paired"]),
            fmt_pm(r["baseline_accuracy"], math.nan, 100, 1),
            fmt_pm(r["accuracy"], math.nan, 100, 1),
            fmt_compared(r, "accuracy", 100, 1),
            fmt_holm(r, "accuracy"),
            fmt_pm(r["baseline_auc"], math.nan, 1, 3),
            fmt_pm(r["auc"], math.nan, 1, 3),
            fmt_compared(r, "auc", 1, 3),
            fmt_holm(r, "auc"),
            fmt_text(r["note"]),
        ]
        for r in compared.to_dict("records")
    ]
    return lines + markdown_table(headers, rows) + _per_seed_section(board, dataset)


def _quality_section(quality: pd.DataFrame) -> list[str]:
    """Generator quality of a dataset's generative rows: FID and KID (floors), and CAS where a row trained on
    synthetic images only; nothing without generative rows."""
    if quality.empty:
        return []
    shown = fmt_shown(quality)
    lines = ["### Generator quality and train-on-synthetic (CAS)", "", f"_{FID_NOTE}. {CAS_NOTE}._", ""]
    headers = [*(HEADERS[c] for c in shown), "n", "FID (floor)", "KID (floor)", "CAS AUC", "CAS accuracy (%)"]
    rows = [
        [
            *(fmt_text(r[c]) for c in shown),
            fmt_text(r["n_seeds"]),
            fmt_quality(r, "fid", 1),
            fmt_quality(r, "kid", 4),
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
    """The per-seed DeLong and McNemar results of a dataset, one row per seed, clearly not a claim."""
    tests = board.seed_tests[board.seed_tests["dataset"] == dataset]
    if tests.empty:
        return []
    lines = ["#### Per-seed tests on the same test images (not corrected, not summed)", "", f"_{PER_SEED_NOTE}._", ""]
    headers = ["Model", "Seed", "Δ AUC", "DeLong p (this seed)", "McNemar b / c", "McNemar p (this seed)"]
    rows = [
        [
            r["model"],
            fmt_text(r["seed"]),
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
    """Average ranks on AUC and accuracy with each Friedman test, or why there is none."""
    lines = [
        "## Average ranks across datasets (Friedman)",
        "",
        "_Rank 1 = best mean test score on a dataset, ties averaged._",
        "",
    ]
    lines += [f"- {note}" for note in friedman_notes(ranks)]
    rows = [
        [r["model"], fmt_pm(r["auc_rank"], math.nan, 1, 2), fmt_pm(r["accuracy_rank"], math.nan, 1, 2), r["note"]]
        for r in ranks.to_dict("records")
    ]
    return [*lines, "", *markdown_table(["Model", "Avg. rank (AUC)", "Avg. rank (accuracy)", "Note"], rows)]


def friedman_notes(ranks: pd.DataFrame) -> list[str]:
    """One sentence per ranked metric: Friedman's statistic and p, or why there is no test."""
    notes = []
    for metric, name in (("auc", "AUC"), ("accuracy", "accuracy")):
        statistic, p = ranks[f"{metric}_friedman_statistic"].iloc[0], ranks[f"{metric}_friedman_p"].iloc[0]
        if ranks["n_datasets"].iloc[0] < 2:
            notes.append(f"{name}: one dataset only, so ranks are that dataset's; Friedman's test needs ≥ 2 datasets.")
        elif pd.isna(p):
            notes.append(f"{name}: no Friedman test (needs ≥ 3 models ranked on every dataset, not all tied).")
        else:
            notes.append(
                f"{name}: Friedman χ² = {statistic:.2f}, p = {fmt_p(p)} over {ranks['n_datasets'].iloc[0]} datasets."
            )
    return notes


def against_note(baseline: str) -> str:
    """How the against-the-baseline table is computed and corrected, for Markdown and HTML."""
    return AGAINST_NOTE.format(baseline=baseline, min_n=stats.WILCOXON_MIN_N)


def _long_row(record: CellRecord, metrics: tuple[str, ...]) -> dict:
    """A cell's row of the long table; NaN where the record has no value (a failed cell has only its error)."""
    run = record.result
    matched = matched_quality(run)
    test = run.metrics.test if run is not None else None
    row = {"cell_id": record.cell_id, "status": record.status, **{key: record.cell.get(key) for key in COORDINATES}}
    row["task"] = run.dataset.task.kind if run is not None else None
    row |= {metric: _number(test[metric] if test is not None else None) for metric in metrics}
    row |= {name: _number(value) for name, value in _quality_values(matched).items()}
    row["fid_rank_deficient"] = None if matched is None else bool(matched.rank_deficient)
    seconds = run.budget.seconds if run is not None else {}
    row |= {name: _number(seconds.get(key)) for name, key in SECONDS.items()}
    compute = run.compute if run is not None else {}
    row |= {name: _number(dig(compute, *path)) for name, path in COMPUTE.items()}
    row["error"] = (record.error or {}).get("message") if record.status == FAILED else None
    return row


def matched_quality(run: RunRecord | None) -> QualityBlock | None:
    """The class-matched block of a run's quality report, or None for a run that scored no synthetic images."""
    quality = run.strategy.quality if run is not None else None
    return quality.matched if quality is not None else None


def _quality_values(matched: QualityBlock | None) -> dict[str, float | None]:
    """The QUALITY columns of a class-matched block: FID and KID of the synthetic images and of the floor."""
    if matched is None:
        return dict.fromkeys(QUALITY)
    fake, floor = matched.fake_vs_real, matched.floor
    return {"fid": fake.fid, "fid_floor": floor.fid, "kid": fake.kid_mean, "kid_floor": floor.kid_mean}


def record_labels(records: list[CellRecord]) -> dict[str, str]:
    """Each cell's row name in the leaderboard (see `_model_labels`), by cell id, so plots name rows the same way."""
    frame = pd.DataFrame(
        [{"cell_id": r.cell_id, **{k: r.cell.get(k) for k in COORDINATES}} for r in records],
        columns=["cell_id", *COORDINATES],
    )
    return dict(zip(frame["cell_id"], _model_labels(frame)))


def _model_labels(frame: pd.DataFrame) -> pd.Series:
    """Strategy, plus backbone, train fraction and policy wherever a strategy ran with several on one dataset: a
    row's name everywhere, the same on every dataset (a grid giving each dataset its own fraction keeps plain
    strategy names, so rows pair across datasets)."""
    label = frame["strategy"].astype(str)
    for column, suffix in SUFFIXES.items():
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


def _summarise_pairs(
    pairs: pd.DataFrame, cells: pd.DataFrame, task: str | None, baseline: str, predictions: Predictions
) -> dict:
    """The stats-table columns of one run type from its per-seed pairs with the baseline; empty where nothing pairs."""
    row: dict[str, object] = {"n_paired": len(pairs)}
    for metric in stats.BOOTSTRAP_METRICS:
        valid = pairs[[f"baseline_{metric}", metric]].dropna()
        if len(valid):
            diff = stats.paired_difference(valid[f"baseline_{metric}"], valid[metric])
            row |= {
                f"baseline_{metric}": valid[f"baseline_{metric}"].mean(),
                metric: valid[metric].mean(),
                f"{metric}_diff": diff["mean_difference"],
                f"{metric}_t_p": _number(diff["t_p_value"]),
                f"{metric}_wilcoxon_p": _number(diff["wilcoxon_p_value"]),
                f"{metric}_wilcoxon_n": diff["wilcoxon_n"],
            }
    bootstrap, bootstrap_notes = _bootstrap_columns(pairs, task, predictions)
    notes = [f"{note} (seeds {_ints(seeds)})" for note, seeds in pairs.groupby("note")["seed"]] + bootstrap_notes
    unpaired = set(cells.loc[cells["status"] == OK, "seed"]) - set(pairs["seed"])
    if unpaired:
        notes.append(f"seeds without a '{baseline}' run: {_ints(unpaired)}")
    return row | bootstrap | {"note": "; ".join(notes)}


def _bootstrap_columns(pairs: pd.DataFrame, task: str | None, predictions: Predictions) -> tuple[dict, list[str]]:
    """The paired bootstrap over test images and seeds of the pairs whose predictions are saved on the same test
    images, as stats-table columns, and a note where it could not run."""
    runs = [(predictions.get(a), predictions.get(b)) for a, b in zip(pairs["baseline_cell_id"], pairs["cell_id"])]
    runs = [(a, b) for a, b in runs if a is not None and b is not None and np.array_equal(a[0], b[0])]
    if not runs or task is None:
        return {}, []
    labels = runs[0][0][0]
    if not all(np.array_equal(a[0], labels) for a, _ in runs):
        return {}, ["test labels differ between seeds: no bootstrap over test images"]
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
    for metric in stats.BOOTSTRAP_METRICS:
        summary = result[metric]
        row |= {
            f"{metric}_bootstrap_diff": _number(summary["difference"]),
            f"{metric}_ci_low": _number(summary["ci_low"]),
            f"{metric}_ci_high": _number(summary["ci_high"]),
            f"{metric}_bootstrap_p": _number(summary["p_value"]),
        }
    return row, ([ONE_SEED_NOTE] if result["n_seeds"] == 1 else [])


def _holm_correct(frame: pd.DataFrame) -> pd.DataFrame:
    """Holm-correct each kind of p across one dataset's table (every strategy × metric it reports), then mark each
    metric better / worse where the corrected bootstrap p is below ALPHA."""
    frame = frame.copy()
    for index in frame.groupby("dataset", sort=False).groups.values():
        for kind in P_KINDS:
            columns = [f"{metric}_{kind}" for metric in stats.BOOTSTRAP_METRICS]
            raw = frame.loc[index, columns].to_numpy(dtype=float)
            adjusted = [_number(p) for p in stats.holm(raw.ravel().tolist())]
            frame.loc[index, [f"{c}_holm" for c in columns]] = np.reshape(adjusted, raw.shape)
    for metric in stats.BOOTSTRAP_METRICS:
        significant = frame[f"{metric}_bootstrap_p_holm"] < ALPHA
        direction = frame[f"{metric}_bootstrap_diff"]
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
    """A wide-table FID or KID cell: 'mean ± std (floor f)', marked † when the FID's covariance is rank-deficient."""
    if pd.isna(row[f"{name}_mean"]):
        return "–"
    floor = row[f"{name}_floor_mean"]
    text = fmt_pm(row[f"{name}_mean"], row[f"{name}_std"], 1, digits)
    text += "" if pd.isna(floor) else f" (floor {floor:.{digits}f})"
    return text + (RANK_MARK if name == "fid" and row["fid_rank_deficient"] else "")


def fmt_compared(row: dict, metric: str, scale: float, digits: int) -> str:
    """'Δ [CI]' of a metric against the baseline, with ↑ / ↓ where the Holm-corrected bootstrap p says so."""
    text = fmt_delta(row[f"{metric}_diff"], scale, digits)
    if pd.notna(row[f"{metric}_ci_low"]):
        text += f" {fmt_ci(row[f'{metric}_ci_low'], row[f'{metric}_ci_high'], scale, digits)}"
    return text + MARKERS[row[f"{metric}_marker"]]


def fmt_holm(row: dict, metric: str) -> str:
    """Holm-corrected 'bootstrap / t-test / Wilcoxon' p of a metric; Wilcoxon reads 'n too small' where it cannot
    reach 0.05."""
    n = row[f"{metric}_wilcoxon_n"]
    wilcoxon = "n too small" if pd.notna(n) and n < stats.WILCOXON_MIN_N else fmt_p(row[f"{metric}_wilcoxon_p_holm"])
    return f"{fmt_p(row[f'{metric}_bootstrap_p_holm'])} / {fmt_p(row[f'{metric}_t_p_holm'])} / {wilcoxon}"


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
