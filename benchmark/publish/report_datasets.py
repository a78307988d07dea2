"""One dataset's section of the report: test metrics, the comparisons with the baseline and the family references,
generator quality and memorisation, compute, variance by source, plots and images, each under its own heading."""

from __future__ import annotations

import math

import pandas as pd

from benchmark.grid.store import OK, CellRecord
from benchmark.publish.comparisons import CLASSIC_REFERENCE, REBALANCING
from benchmark.publish.fmt import (
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
    fmt_quality,
    fmt_run,
    fmt_sd,
    fmt_shown,
    fmt_text,
)
from benchmark.publish.leaderboard import Leaderboard
from benchmark.publish.markdown import (
    ACCURACY_NOTE,
    COMPUTE_NOTE,
    FAMILIES,
    FID_NOTE,
    FIDELITY_NOTE,
    HEADERS,
    PER_SEED_NOTE,
    RANK_NOTE,
    SD_FORMATS,
    SPREAD,
    VARIANCE_NOTE,
    against_note,
    family_note,
    flagged_lines,
    power_sentence,
    recall_note,
)
from benchmark.publish.report_html import UP, Cell, anchor, esc, num, plot_figure, sort_text, sortable_table
from benchmark.publish.report_images import images_block
from benchmark.publish.results import PHASES
from benchmark.publish.tables import COMPONENTS, GROUP

# Captions of write_plots' figures, by file name after "<dataset>_".
PLOT_TITLES = {
    "auc_ci": "Test AUC per strategy (mean, 95% Student-t CI over seeds)",
    "accuracy_ci": "Test accuracy per strategy (mean, 95% Student-t CI over seeds)",
    "fid_vs_auc": "Class-matched generator FID (× its in-distribution floor) against test AUC",
    "auc_vs_compute": "Test AUC against total compute per cell (counted FLOPs, log scale)",
    "per_class_f1": "Per-class test F1",
    "val_curves": "Validation curves during classifier training",
    "generator_quality": "Generator FID during generator training",
}
# The parts of a dataset's section, in page order (id suffix, heading); the table of contents lists them.
DATASET_PARTS = (
    ("metrics", "Test metrics"),
    ("baseline", FAMILIES["baseline"]),
    ("classic", FAMILIES["classic"]),
    ("rebalancing", FAMILIES["rebalancing"]),
    ("quality", "Generator quality and memorisation"),
    ("compute", "Compute per cell"),
    ("variance", "Variance by source"),
    ("plots", "Plots"),
    ("images", "Generated images"),
)
KID_SCALE = 1e3
KID_NOTE = (
    "KID ×10³: the unbiased kernel (squared MMD) estimate, unitless, times 1000; the estimate of a zero distance falls "
    "below 0 by sampling noise, so a negative value is shown as ≈0 with the estimate beside it, never as better than "
    "real images"
)
# QualityReport's class-matched precision/recall/density/coverage (Naeem et al. 2020), with their headers.
PRDC = {"precision": "Sample precision", "recall": "Sample recall", "density": "Density", "coverage": "Coverage"}
PRDC_NOTE = (
    "Sample precision / recall / density / coverage (Naeem et al. 2020, k-NN balls in the same feature space, the "
    "same class-matched reference): precision and density say how far synthetic images look real, recall and "
    "coverage how much of the real images they cover; mean ± std over runs"
)
AUDIT_SPACES = ("pixel", "feature")
COPY_KINDS = ("exact", "near")
COPIES_NOTE = (
    "Copies: the memorisation audit's exact and near copies of training images (near: closer to a training image "
    "than the audit's quantile of real test images are; exact ones included), in pixel and in feature space, summed "
    "over the row's runs, out of the synthetic images audited"
)
PHASE_TITLES = {
    "generator_training": "Generator training",
    "synthesis": "Synthesis",
    "classifier_training": "Classifier",
}
BOOTSTRAP_SUMMARY = "Secondary: paired bootstrap over the test images (Δ [95% CI (uncorrected)], Holm p)"


def dataset_section(board: Leaderboard, records: list[CellRecord], dataset: str, plots: list[tuple[str, bytes]]) -> str:
    """One dataset's parts in DATASET_PARTS order, each under a heading the table of contents links to: what decides
    (metrics, the comparisons, generator quality) first, then compute, variance, plots and images."""
    frame = board.wide[dataset]
    kind = next(iter(board.long.loc[board.long["dataset"] == dataset, "task"].dropna()), "?")
    blocks = {
        "metrics": _metrics_block(board, dataset),
        "baseline": _stats_block(board, dataset),
        "classic": _family_block(board, dataset, "classic"),
        "rebalancing": _family_block(board, dataset, "rebalancing"),
        "quality": _quality_block(board, records, dataset),
        "compute": _compute_block(frame, dataset),
        "variance": _variance_block(frame, dataset),
        "plots": _plots_block(plots, dataset),
        "images": images_block(board, records, dataset),
    }
    parts = [
        f'<section id="ds-{anchor(dataset)}">',
        f'<h2>{esc(dataset)} <span class="muted">({esc(kind)})</span>{UP}</h2>',
    ]
    for key, title in DATASET_PARTS:
        parts += [f'<h3 id="{part_anchor(dataset, key)}">{esc(title)}{UP}</h3>', blocks[key]]
    return "\n".join([*parts, "</section>"])


def part_anchor(dataset: str, key: str) -> str:
    """The id of one part of a dataset's section (the table of contents links to it)."""
    return f"ds-{anchor(dataset)}-{key}"


def _metrics_block(board: Leaderboard, dataset: str) -> str:
    """The dataset's test metrics per row with their note."""
    recall = recall_note(board.wide[dataset])
    note = (
        f"{SPREAD}. Percentages ×100. {ACCURACY_NOTE}. {recall + '. ' if recall else ''}Click a column header to "
        "sort; CI columns sort by their lower bound"
    )
    return f'<p class="note">{esc(note)}.</p>\n{_leaderboard_table(board, dataset)}'


def _leaderboard_table(board: Leaderboard, dataset: str) -> str:
    """The dataset's sortable leaderboard: per row the test metrics with their CIs; the baseline row marked."""
    frame = board.wide[dataset]
    shown = fmt_shown(frame)
    columns = [
        *((HEADERS[c], "text") for c in shown),
        ("n", "num"),
        ("Accuracy (%)", "num"),
        ("Acc. 95% CI", "num"),
        ("Calibrated acc. (%)", "num"),
        ("Balanced acc. (%)", "num"),
        ("Precision (%)", "num"),
        ("Recall (%)", "num"),
        ("Specificity (%)", "num"),
        ("F1 (%)", "num"),
        ("AUC", "num"),
        ("AUC 95% CI", "num"),
    ]
    rows = [
        [
            *((fmt_text(r[c]), sort_text(r[c])) for c in shown),
            (fmt_n(r), r["n_seeds"]),
            _metric(r, "accuracy", 100, 1),
            (fmt_ci(r["accuracy_ci_low"], r["accuracy_ci_high"], 100, 1), r["accuracy_ci_low"]),
            *(_metric(r, m, 100, 1) for m in ("accuracy_calibrated", "balanced_accuracy", "precision", "recall")),
            *(_metric(r, m, 100, 1) for m in ("specificity", "f1")),
            _metric(r, "auc", 1, 3),
            (fmt_ci(r["auc_ci_low"], r["auc_ci_high"], 1, 3), r["auc_ci_low"]),
        ]
        for r in frame.to_dict("records")
    ]
    classes = ["baseline" if r["strategy"] == board.baseline else "" for r in frame.to_dict("records")]
    return sortable_table(columns, rows, table_id=f"leaderboard-{anchor(dataset)}", row_classes=classes)


def _quality_block(board: Leaderboard, records: list[CellRecord], dataset: str) -> str:
    """The generative rows' class-matched FID and KID beside their floors, precision/recall/density/coverage and the
    memorisation audit's copies, read from the cells' quality reports; a note where no row generated images."""
    frame = board.wide[dataset]
    generative = frame[frame["generative"].eq(True)]
    if generative.empty:
        return '<p class="note">No generative strategy ran on this dataset.</p>'
    audits = _audit_frame(records)
    shown = fmt_shown(generative)
    columns = [
        *((HEADERS[c], "text") for c in shown),
        ("n", "num"),
        ("FID (floor; shift)", "num"),
        ("KID ×10³ (floor; shift)", "num"),
        ("Fidelity % (real; chance)", "num"),
        *((header, "num") for header in PRDC.values()),
        *((f"Copies, {space} (exact / near)", "num") for space in AUDIT_SPACES),
        ("Audited images", "num"),
    ]
    rows = []
    for r in generative.to_dict("records"):
        audit = audits[audits["cell_id"].isin(_row_cell_ids(board.long, dataset, r))]
        rows.append(
            [
                *((fmt_text(r[c]), sort_text(r[c])) for c in shown),
                (fmt_n(r), r["n_seeds"]),
                (fmt_quality(r, "fid", 1), num(r["fid_mean"])),
                (fmt_kid(r), num(r["kid_mean"])),
                (fmt_fidelity(r), num(r["fidelity_mean"])),
                *((fmt_pm(audit[m].mean(), audit[m].std(), 1, 2), num(audit[m].mean())) for m in PRDC),
                *(_copies(audit, space) for space in AUDIT_SPACES),
                _audited(audit),
            ]
        )
    note = f"{FID_NOTE}. {KID_NOTE}. {FIDELITY_NOTE}. {PRDC_NOTE}. {COPIES_NOTE}"
    note += f" {RANK_NOTE}." if generative["fid_rank_deficient"].any() else "."
    table = sortable_table(columns, rows, table_id=f"quality-{anchor(dataset)}")
    return f'<p class="note">{esc(note)}</p>\n{table}' + _flagged_list(board.long[board.long["dataset"] == dataset])


def _flagged_list(cells: pd.DataFrame) -> str:
    """The runs whose synthetic set was flagged, each with its reasons, in a highlighted list; nothing without."""
    items = "".join(f"<li>{esc(line)}</li>" for line in flagged_lines(cells))
    if not items:
        return ""
    return f'\n<div class="flagged"><p><strong>Flagged synthetic sets</strong></p><ul>{items}</ul></div>'


def _audit_frame(records: list[CellRecord]) -> pd.DataFrame:
    """Per ok cell with a quality report: its class-matched precision/recall/density/coverage and its memorisation
    audit's exact and near copies per space, with the number of synthetic images audited."""
    columns = ["cell_id", *PRDC, *(f"{space}_{kind}" for space in AUDIT_SPACES for kind in COPY_KINDS), "audited"]
    rows = []
    for record in records:
        quality = record.result.strategy.quality if record.ok and record.result is not None else None
        if quality is None:
            continue
        scores, audit = quality.matched.fake_vs_real, quality.memorisation
        row = {"cell_id": record.cell_id, **{m: getattr(scores, m) for m in PRDC}, "audited": audit.n_fake}
        for space in AUDIT_SPACES:
            found = getattr(audit, space)
            row |= {f"{space}_exact": found.exact_copies, f"{space}_near": found.near_copies}
        rows.append(row)
    return pd.DataFrame(rows, columns=columns).astype({m: float for m in PRDC})


def _row_cell_ids(long: pd.DataFrame, dataset: str, row: dict) -> pd.Series:
    """The cell ids of a leaderboard row's ok runs: the dataset's cells whose GROUP coordinates are the row's."""
    mask = (long["dataset"] == dataset) & (long["status"] == OK)
    for key in GROUP:
        mask &= long[key].eq(row[key]) | (long[key].isna() & pd.isna(row[key]))
    return long.loc[mask, "cell_id"]


def _copies(audit: pd.DataFrame, space: str) -> Cell:
    """'exact / near' copies of training images in one space, summed over a row's runs; sorted by near copies."""
    if audit.empty:
        return "–", None
    exact, near = int(audit[f"{space}_exact"].sum()), int(audit[f"{space}_near"].sum())
    return f"{exact} / {near}", near


def _audited(audit: pd.DataFrame) -> Cell:
    """How many synthetic images a row's audits searched, summed over its runs ('–' where no run was audited)."""
    if audit.empty:
        return "–", None
    total = int(audit["audited"].sum())
    return str(total), total


def fmt_kid(row: dict) -> str:
    """A wide-table KID cell ×10³: 'mean ± std (floor f; train→test shift s)', each negative estimate shown as ≈0
    beside its value (the unbiased estimate of a zero distance falls below 0 by sampling noise)."""
    if pd.isna(row["kid_mean"]):
        return "–"
    references = {"floor": row["kid_floor_mean"], "train→test shift": row.get("kid_shift_mean", math.nan)}
    shown = [f"{label} {_kid_value(value, math.nan)}" for label, value in references.items() if pd.notna(value)]
    return _kid_value(row["kid_mean"], row["kid_std"]) + (f" ({'; '.join(shown)})" if shown else "")


def _kid_value(mean: float, std: float) -> str:
    """KID ×10³ as 'mean ± std', or '≈0 (mean ± std, sampling noise)' for a negative estimate."""
    text = fmt_pm(mean, std, KID_SCALE, 2)
    return text if mean >= 0 else f"≈0 ({text}, sampling noise)"


def _compute_block(frame: pd.DataFrame, dataset: str) -> str:
    """What each row spent per cell, by phase: counted FLOPs, and the device-seconds in total."""
    shown = fmt_shown(frame)
    columns = [
        *((HEADERS[c], "text") for c in shown),
        ("n", "num"),
        *((f"{PHASE_TITLES[phase]} FLOPs", "num") for phase in PHASES),
        ("Total FLOPs", "num"),
        ("Compute s", "num"),
    ]
    rows = [
        [
            *((fmt_text(r[c]), sort_text(r[c])) for c in shown),
            (fmt_n(r), r["n_seeds"]),
            *((fmt_flops(r[f"{phase}_flops_mean"]), num(r[f"{phase}_flops_mean"])) for phase in PHASES),
            (fmt_flops(r["total_flops_mean"]), num(r["total_flops_mean"])),
            (fmt_pm(r["compute_seconds_mean"], math.nan, 1, 1), num(r["compute_seconds_mean"])),
        ]
        for r in frame.to_dict("records")
    ]
    table = sortable_table(columns, rows, table_id=f"compute-{anchor(dataset)}")
    return f'<p class="note">{esc(COMPUTE_NOTE)}.</p>\n{table}'


def _stats_block(board: Leaderboard, dataset: str) -> str:
    """The Table 4 layout of a dataset (each strategy against the baseline), then the per-seed tests."""
    compared = board.stats[board.stats["dataset"] == dataset]
    note = against_note(board.baseline).replace("`", "") + "."
    if compared.empty:
        return f'<p class="note">{esc(note)}</p>\n<p>No other strategy to compare.</p>'
    return "\n".join(
        [
            f'<p class="note">{esc(note)}</p>',
            _comparison_table(compared, board.baseline, f"stats-{anchor(dataset)}"),
            _power_note(board, dataset, "baseline"),
            _per_seed_block(board, dataset),
        ]
    )


def _family_block(board: Leaderboard, dataset: str, family: str) -> str:
    """One family table of a dataset (classic augmentation or rebalancing as the reference), or why it is not
    answered."""
    reference = {"classic": CLASSIC_REFERENCE, "rebalancing": REBALANCING}[family]
    families = board.families
    table = families[(families["dataset"] == dataset) & (families["family"] == family)] if len(families) else families
    if table.empty:
        return f"<p>Not answered here: this grid has no generative row together with a {reference} row.</p>"
    return "\n".join(
        [
            f'<p class="note">{esc(family_note(reference).replace("`", ""))}.</p>',
            _comparison_table(table, "reference", f"{family}-{anchor(dataset)}", with_reference=True),
            _power_note(board, dataset, family),
        ]
    )


def _comparison_table(compared: pd.DataFrame, reference: str, table_id: str, with_reference: bool = False) -> str:
    """A comparison: the primary table (Δ with the run-level CI and Holm p, notes), then the secondary paired
    bootstrap over test images folded away under it (table `<table_id>-bootstrap`)."""
    shown = fmt_shown(compared)
    names = [*((HEADERS[c], "text") for c in shown), *([("Reference", "text")] if with_reference else [])]
    columns = [
        *names,
        *([("Chosen", "wrap")] if with_reference else []),
        ("Runs (G)", "num"),
        (f"Accuracy (%): {reference} → row", "num"),
        ("Δ acc. (pp) [95% CI (uncorrected)]", "num"),
        ("Holm p acc. (t / W)", "num"),
        (f"AUC: {reference} → row", "num"),
        ("Δ AUC [95% CI (uncorrected)]", "num"),
        ("Holm p AUC (t / W)", "num"),
        ("Note", "wrap"),
    ]
    rows, secondary = [], []
    for r in compared.to_dict("records"):
        chosen = r["chosen"] if isinstance(r["chosen"], str) else ""
        name = [
            *((fmt_text(r[c]), sort_text(r[c])) for c in shown),
            *([(r["reference"], r["reference"])] if with_reference else []),
        ]
        rows.append(
            [
                *name,
                *([(chosen, chosen or None)] if with_reference else []),
                (f"{fmt_text(r['n_paired'])} ({fmt_text(r['n_generator_seeds'])})", num(r["n_paired"])),
                (_pair(r["baseline_accuracy"], r["accuracy"], 100, 1), num(r["accuracy"])),
                (fmt_compared(r, "accuracy", 100, 1), num(r["accuracy_diff"])),
                (fmt_holm(r, "accuracy"), num(r["accuracy_t_p_holm"])),
                (_pair(r["baseline_auc"], r["auc"], 1, 3), num(r["auc"])),
                (fmt_compared(r, "auc", 1, 3), num(r["auc_diff"])),
                (fmt_holm(r, "auc"), num(r["auc_t_p_holm"])),
                (fmt_text(r["note"]) if isinstance(r["note"], str) and r["note"] else "", sort_text(r["note"])),
            ]
        )
        secondary.append(
            [
                *name,
                (fmt_bootstrap(r, "accuracy", 100, 1), num(r["accuracy_bootstrap_diff"])),
                (fmt_bootstrap(r, "auc", 1, 3), num(r["auc_bootstrap_diff"])),
            ]
        )
    bootstrap = [
        *names,
        ("Bootstrap Δ acc. [95% CI (uncorrected)] (Holm p)", "num"),
        ("Bootstrap Δ AUC [95% CI (uncorrected)] (Holm p)", "num"),
    ]
    return "\n".join(
        [
            sortable_table(columns, rows, table_id=table_id),
            f"<details><summary>{esc(BOOTSTRAP_SUMMARY)}</summary>",
            sortable_table(bootstrap, secondary, table_id=f"{table_id}-bootstrap"),
            "</details>",
        ]
    )


def _pair(reference: float, value: float, scale: float, digits: int) -> str:
    """'reference → value' of a compared metric, scaled and rounded."""
    return f"{fmt_pm(reference, math.nan, scale, digits)} → {fmt_pm(value, math.nan, scale, digits)}"


def _power_note(board: Leaderboard, dataset: str, family: str) -> str:
    """The minimum-detectable-difference sentence of one table, as a paragraph ('' without tests)."""
    text = power_sentence(board.power, dataset, family).replace("**", "").replace("_", "")
    return f'<p class="note">{esc(text)}</p>' if text else ""


def _variance_block(frame: pd.DataFrame, dataset: str) -> str:
    """Each row's variance of accuracy and AUC by source, as standard deviations."""
    shown = fmt_shown(frame)
    sources = ("generator seed", "classifier seed", "runs", "test images")
    columns = [
        *((HEADERS[c], "text") for c in shown),
        ("Runs (G)", "num"),
        *((f"{m} SD: {source}", "num") for m in ("Acc. (pp)", "AUC") for source in sources),
    ]
    rows = [
        [
            *((fmt_text(r[c]), sort_text(r[c])) for c in shown),
            (f"{r['n_seeds']} ({r['n_generator_seeds']})", num(r["n_seeds"])),
            *(
                (fmt_sd(r[f"{m}_var_{c}"], scale, digits), num(r[f"{m}_var_{c}"]))
                for m, scale, digits in SD_FORMATS
                for c in COMPONENTS
            ),
        ]
        for r in frame.to_dict("records")
    ]
    table = sortable_table(columns, rows, table_id=f"variance-{anchor(dataset)}")
    return f'<p class="note">{esc(VARIANCE_NOTE)}.</p>\n{table}'


def _per_seed_block(board: Leaderboard, dataset: str) -> str:
    """The per-run DeLong and McNemar results, one row per run, folded away and labelled as per-run."""
    tests = board.seed_tests[board.seed_tests["dataset"] == dataset]
    if tests.empty:
        return ""
    columns = [
        ("Model", "text"),
        ("Run (g/c)", "text"),
        ("Δ AUC", "num"),
        ("DeLong p (this run)", "num"),
        ("McNemar b / c", "text"),
        ("McNemar p (this run)", "num"),
    ]
    rows = [
        [
            (fmt_text(r["model"]), sort_text(r["model"])),
            (fmt_run(r), fmt_run(r)),
            (fmt_delta(r["delong_diff"], 1, 3), num(r["delong_diff"])),
            (fmt_delong(r), num(r["delong_p"])),
            (fmt_mcnemar(r), sort_text(fmt_mcnemar(r))),
            (fmt_p(r["mcnemar_p"]), num(r["mcnemar_p"])),
        ]
        for r in tests.to_dict("records")
    ]
    return "\n".join(
        [
            "<details><summary>Per-run tests on the same test images (not corrected, not summed)</summary>",
            f'<p class="note">{esc(PER_SEED_NOTE)}.</p>',
            sortable_table(columns, rows, table_id=f"per-seed-{anchor(dataset)}"),
            "</details>",
        ]
    )


def _plots_block(plots: list[tuple[str, bytes]], dataset: str) -> str:
    """The dataset's leaderboard figures as embedded PNGs."""
    if not plots:
        return '<p class="note">No plots: no successful cell with metrics.</p>'
    order = list(PLOT_TITLES)
    figures = []
    for name, data in sorted(plots, key=lambda plot: _plot_rank(plot[0], dataset, order)):
        kind = name[len(dataset) + 1 :].removesuffix(".png")
        figures.append(plot_figure(data, PLOT_TITLES.get(kind, kind.replace("_", " "))))
    return '<div class="plots">' + "".join(figures) + "</div>"


def _plot_rank(name: str, dataset: str, order: list[str]) -> tuple[int, str]:
    """Figures in PLOT_TITLES' order (the headline metric first), unknown ones after them by name."""
    kind = name[len(dataset) + 1 :].removesuffix(".png")
    return (order.index(kind), name) if kind in order else (len(order), name)


def _metric(row: dict, metric: str, scale: float, digits: int) -> Cell:
    """'mean ± std' of a wide-table metric, sorted by the mean."""
    return fmt_pm(row[f"{metric}_mean"], row[f"{metric}_std"], scale, digits), num(row[f"{metric}_mean"])
