"""leaderboard.md: the leaderboard's tables laid out like the seed paper's (Tables 2-4), each with the note that says
how it was computed; the notes and the sentences are reused by the HTML report."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from benchmark.grid.store import FAILED, OK, CellRecord
from benchmark.provenance import code_version
from benchmark.publish import stats
from benchmark.publish.comparisons import ACROSS_RESAMPLES, CLASSIC_REFERENCE, REBALANCING, missing_baseline
from benchmark.publish.fmt import (
    FLAG_MARK,
    RANK_MARK,
    fmt_bootstrap,
    fmt_ci,
    fmt_compared,
    fmt_delong,
    fmt_delta,
    fmt_fidelity,
    fmt_flops,
    fmt_holm,
    fmt_mcnemar,
    fmt_n,
    fmt_p,
    fmt_pm,
    fmt_poi,
    fmt_quality,
    fmt_run,
    fmt_sd,
    fmt_shown,
    fmt_text,
    markdown_table,
)
from benchmark.publish.tables import COMPONENTS, SYNTHETIC_ONLY

if TYPE_CHECKING:
    from benchmark.publish.leaderboard import Leaderboard

# Comparison families, each its own Holm family per dataset: the question its table answers.
FAMILIES = {
    "baseline": "Against the baseline",
    "classic": "Does synthetic data beat classic augmentation?",
    "rebalancing": "Does synthetic content beat rebalancing?",
}
HEADERS = {"strategy": "Strategy", "backbone": "Backbone", "train_fraction": "Fraction", "policy": "Policy"}
SD_FORMATS = (("accuracy", 100, 1), ("auc", 1, 3))  # metric, display scale, digits
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
    "Across tasks (dataset × fraction), over the largest complete table: the tasks, and the rows run on all of them, "
    "that give the most results (tasks with fewer rows, such as a learning curve's extra fractions, are left out and "
    "named below the table): IQM of test AUC (mean of the middle 50% of all runs pooled) and probability of "
    "improvement P(> X) over `{baseline}` and, for generative rows, over `geometric` and `oversample` (mean over "
    "tasks of P(a run of the row beats a run of X) + ½ P(tie), on test AUC), each with a 95% stratified-bootstrap CI "
    "(runs resampled within each task, {resamples} resamples, as rliable does). Uncorrected"
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
LOST_FIX = "delete the damaged files and run the grid into the folder again to re-run those cells"


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


def flagged_lines(long: pd.DataFrame) -> list[str]:
    """A line per ok run whose synthetic set was flagged: the row's name, the run and its reasons."""
    flagged = long[(long["status"] == OK) & long["flags"].fillna("").ne("")]
    runs = [
        (r["model"], fmt_text(r["generator_seed"]), fmt_text(r["classifier_seed"]), r["flags"])
        for r in flagged.to_dict("records")
    ]
    return [f"{FLAG_MARK} {model} (generator seed {g}, classifier seed {c}): {flags}" for model, g, c, flags in runs]


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
    parts = [_detectable_part(r["metric"], r["mde"]) for r in rows.to_dict("records")]
    return (
        f"**Minimum detectable difference** (m = {first['m']} tests, α = 0.05/{max(first['m'], 1)}, "
        f"G = {first['n_generator_seeds']} generator seeds): {'; '.join(parts)}. _{POWER_NOTE}._"
    )


def _detectable_part(metric: str, mde: float) -> str:
    """'Δ AUC ≥ 0.067'; a difference larger than the metric's whole range (1, or 100 pp) is no bound at all, so it
    is said to be out of reach rather than printed as an impossible number."""
    factor, digits, unit = {"accuracy": (100, 1, " pp"), "auc": (1, 3, "")}[metric]
    name = "AUC" if metric == "auc" else "accuracy"
    if pd.isna(mde):
        return f"Δ {name} ≥ not estimable (fewer than two generator seeds)"
    if mde > 1:
        return f"Δ {name}: none within its range (80% power would need {mde * factor:.{digits}f}{unit})"
    return f"Δ {name} ≥ {mde * factor:.{digits}f}{unit}"


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
    left_out = ranks["left_out_blocks"].iloc[0] if len(ranks) else ""
    if left_out:
        notes.append(
            f"Ranked over the largest complete table ({blocks} blocks and the rows run on all of them); left out, "
            f"with fewer rows: {left_out}."
        )
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


def _across_section(board: Leaderboard) -> list[str]:
    """IQM and probability of improvement across tasks with their stratified-bootstrap CIs."""
    lines = ["## Across tasks: IQM and probability of improvement", ""]
    lines += [f"_{across_note(board.baseline)}._", ""]
    if board.across.empty:
        return lines + ["No row ran on every task.", ""]
    shown = poi_shown(board.across, board.baseline)
    lines += left_out_tasks_note(board.across)
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


def left_out_tasks_note(across: pd.DataFrame) -> list[str]:
    """A line naming the tasks the across-task table leaves out, where it leaves any out."""
    left_out = across["left_out_tasks"].iloc[0] if len(across) else ""
    return [f"Tasks left out (fewer rows ran there): {left_out}.", ""] if left_out else []


def across_note(baseline: str) -> str:
    """How the across-task summaries are computed, for Markdown and HTML."""
    return ACROSS_NOTE.format(baseline=baseline, resamples=ACROSS_RESAMPLES)


def against_note(baseline: str) -> str:
    """How the against-the-baseline table is computed and corrected, for Markdown and HTML."""
    return AGAINST_NOTE.format(baseline=baseline, min_n=stats.WILCOXON_MIN_N)
