"""One self-contained static HTML report of a results folder: the grid and its budget, a table of contents, per
dataset the test metrics, the comparisons with the baseline and the family references, the generators' quality
(FID/KID beside their floors, precision/recall/density/coverage, copies of training images), compute, variance by
source, the leaderboard plots and each generator's samples and closest memorisation pairs (per generator seed), then
(only where the records have them) robustness under MedMNIST-C corruptions and worth in real images, the cross-dataset
table and ranks, the failed cells with their errors, and the grid config and environment.

Tables are split so that the columns that decide fit a 1400 px window: headers wrap, and a number cell wraps between
its parts ('Δ' / '[CI]', 'FID' / '(floor …;' / 'shift …)'), never inside one (tests/test_report_layout.py checks it in
a real browser).

The file makes no request of any kind: CSS and a small sorting script are inline, images are base64 data URIs, and a
Content-Security-Policy forbids everything else, so it can be mailed, archived or opened offline. Every string from the
results folder is HTML-escaped.
"""

from __future__ import annotations

import base64
import json
import math
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import pandas as pd

from benchmark.data.files import write_text_atomic
from benchmark.data.labels import safe_label
from benchmark.errors import MedAugBenchError
from benchmark.grid.config import BudgetBlock
from benchmark.grid.store import (
    OK,
    CellRecord,
    pairs_path,
    read_grid_file,
    records_dir,
    samples_path,
)
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
    fmt_poi,
    fmt_quality,
    fmt_run,
    fmt_sd,
    fmt_shown,
    fmt_text,
)
from benchmark.publish.leaderboard import Leaderboard, build_leaderboard
from benchmark.publish.markdown import (
    ACCURACY_NOTE,
    COMPUTE_NOTE,
    CROSS_NOTE,
    FAMILIES,
    FID_NOTE,
    FIDELITY_NOTE,
    HEADERS,
    LOST_FIX,
    PER_SEED_NOTE,
    RANK_NOTE,
    SD_FORMATS,
    SPREAD,
    VARIANCE_NOTE,
    across_note,
    against_note,
    cross_dataset_name,
    family_note,
    flagged_lines,
    friedman_notes,
    poi_shown,
    power_sentence,
    recall_note,
)
from benchmark.publish.plots import CD_FILE, write_plots
from benchmark.publish.results import PHASES
from benchmark.publish.robustness import Robustness, robustness_of, save_severity_plot
from benchmark.publish.tables import COMPONENTS, GROUP
from benchmark.publish.worth import (
    BELOW,
    CURVES,
    METHOD_NOTE,
    METRICS,
    RESAMPLES,
    Worth,
    equivalent_cells,
    equivalent_headers,
    in_order,
    worth_of,
    write_worth_plots,
)

REPORT_NAME = "report.html"
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
NO_IMAGES = "no sample images saved for this run"
# A table cell: the text shown and the value the sorter orders by (a number, a string, or None: always last).
Cell = tuple[str, object]
# Where a number cell may wrap: before a bracketed part ('[CI]', '(floor …)') and after a ';'.
BREAKS = re.compile(r" (?=[\[(])|(?<=;) ")
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
# The sections after the datasets shown only for folders whose records have them (id, heading), in page order.
FINDING_SECTIONS = {"robustness": "Robustness under MedMNIST-C corruptions", "worth": "Worth in real images"}
# The columns naming a robustness row.
ROW_COLUMNS = (("Strategy", "text"), ("Backbone", "text"), ("Fraction", "text"))
# The sections after the datasets (id, heading).
CLOSING_SECTIONS = {
    "cross": "Across datasets",
    "across": "Across tasks: IQM and probability of improvement",
    "ranks": "Average ranks across blocks (Friedman, Nemenyi)",
    "config": "Grid config and environment",
}
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
UP = '<a class="up" href="#contents">↑ contents</a>'  # beside each dataset heading: back to the contents
BOOTSTRAP_SUMMARY = "Secondary: paired bootstrap over the test images (Δ [95% CI (uncorrected)], Holm p)"
WORTH_PLOT_NOTE = (
    "The learning curve's points (mean ± std over runs) and monotone fit; ◆ each result at its real-image equivalent "
    "(bar: 95% CI; arrow: beyond the curve), ○ at the real images it had"
)


@dataclass
class Findings:
    """The analyses only some folders have, with their figures: MedMNIST-C robustness (one plot per dataset) and
    worth in real images (its plots per dataset); None where no record has them."""

    robustness: Robustness | None = None
    worth: Worth | None = None
    robustness_plots: dict[str, bytes] = field(default_factory=dict)
    worth_plots: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)

    def shown(self) -> list[str]:
        """The FINDING_SECTIONS keys this folder gets, in page order."""
        return [key for key in FINDING_SECTIONS if getattr(self, key) is not None]


CSS = """
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --head: #f3f5f7; --bad: #b42318; --badbg: #fff1f0; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0 auto;
       padding: 1.5rem 2rem 4rem; max-width: 1400px; }
h1 { margin: 0 0 .3rem; font-size: 1.7rem; }
h2 { margin-top: 2.5rem; padding-bottom: .3rem; border-bottom: 2px solid var(--line); }
h3 { margin-top: 1.8rem; }
p.note, .muted { color: var(--muted); }
nav.toc { margin: 1rem 0; padding: .4rem 1rem .6rem; border: 1px solid var(--line); background: #fafbfc; }
nav.toc h2 { margin: .3rem 0 .4rem; border: 0; font-size: 1.1rem; }
nav.toc > ol { columns: 17rem; column-gap: 2rem; margin: 0; padding-left: 1.2rem; }
nav.toc li { break-inside: avoid; } nav.toc ol ol { padding-left: 1.1rem; font-size: .92em; }
a.up { float: right; font-size: .8rem; font-weight: normal; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 1rem 0; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
.description { white-space: pre-wrap; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font: 13px/1.35 system-ui, -apple-system, "Segoe UI", Roboto,
        sans-serif; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: .2rem .45rem; text-align: right; }
th { background: var(--head); vertical-align: bottom; }
td { white-space: nowrap; }
td.parts { white-space: normal; } td.parts span { white-space: nowrap; }
td.text, th.text { text-align: left; }
td.wrap, th.wrap { white-space: normal; min-width: 8rem; text-align: left; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #8c959f; font-size: .8em; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; color: var(--fg); }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; color: var(--fg); }
tbody tr:nth-child(even) { background: #fafbfc; }
tr.baseline td { font-weight: 600; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; border: 1px solid var(--line); padding: .5rem; background: #fff; }
figure img { display: block; max-width: 100%; height: auto; image-rendering: pixelated; }
figure.plot img { max-width: 640px; image-rendering: auto; }
figure.plot.wide img { max-width: 100%; }
figcaption { color: var(--muted); font-size: .9em; margin-top: .3rem; max-width: 640px; }
section.failed { border: 2px solid var(--bad); background: var(--badbg); padding: .2rem 1rem 1rem; margin-top: 2rem; }
section.failed h2 { color: var(--bad); border-color: var(--bad); }
div.flagged { border: 2px solid var(--bad); background: var(--badbg); padding: .2rem 1rem; margin: .5rem 0; }
.badge-bad { color: var(--bad); font-weight: 600; }
details { margin: .2rem 0; } summary { cursor: pointer; color: var(--muted); }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: .7rem; overflow: auto; max-height: 32rem;
      font-size: 12.5px; white-space: pre-wrap; overflow-wrap: anywhere; }
td pre { max-width: 60rem; max-height: 20rem; text-align: left; }
"""

# Sorts table.sortable by the clicked column: ascending first, descending on the next click. Cells order by their
# data-value (numbers numerically when the header says data-type="num"); empty values stay last either way.
SCRIPT = """
(function () {
  "use strict";
  function key(cell, numeric) {
    var raw = cell ? cell.getAttribute("data-value") : null;
    if (raw === null) { raw = cell ? cell.textContent : ""; }
    if (numeric) { var x = parseFloat(raw); return isFinite(x) ? x : null; }
    raw = raw.trim().toLowerCase();
    return raw === "" ? null : raw;
  }
  function sortBy(th) {
    var table = th.closest("table"), body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute("data-type") === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var rows = Array.prototype.map.call(body.rows, function (row, i) {
      return { row: row, i: i, k: key(row.cells[index], numeric) };
    });
    rows.sort(function (a, b) {
      if (a.k === null || b.k === null) { return (a.k === null) - (b.k === null) || a.i - b.i; }
      var c = numeric ? a.k - b.k : a.k.localeCompare(b.k);
      return c * dir || a.i - b.i;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  }
  document.querySelectorAll("table.sortable thead th").forEach(function (th) {
    th.tabIndex = 0;
    th.title = "Sort by this column (click again to reverse)";
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(th); }
    });
  });
})();
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def write_report(
    results_dir: Path, out: Path | None = None, baseline: str | None = None, allow_missing_baseline: bool = False
) -> Path:
    """Write the HTML report of `results_dir` to `out` (default RESULTS_DIR/report.html) atomically; returns its path.

    `baseline` is the strategy the statistics compare against: by default the grid's (grid.json), else `none`; a
    folder without a successful baseline run is refused unless `allow_missing_baseline` (see `build_leaderboard`).
    """
    results_dir = Path(results_dir)
    out = Path(out) if out is not None else results_dir / REPORT_NAME
    if out.is_dir():
        raise MedAugBenchError(
            f"--out {out} is a folder; the report is one HTML file: give a file, e.g. {out / REPORT_NAME}"
        )
    if not results_dir.is_dir() or not any(records_dir(results_dir).glob("*.json")):
        where = "is not a folder" if not results_dir.is_dir() else f"has no cell records in {records_dir(results_dir)}"
        raise MedAugBenchError(
            f"{results_dir} {where}: run a grid into it first with `medaugbench run CONFIG --results {results_dir}`"
        )
    grid_file = read_grid_file(results_dir)
    grid = grid_file.get("grid") if isinstance(grid_file.get("grid"), dict) else {}
    baseline = baseline or (grid.get("baseline") if isinstance(grid.get("baseline"), str) else None) or "none"
    board = build_leaderboard(results_dir, baseline, allow_missing_baseline)
    with tempfile.TemporaryDirectory(prefix="medaugbench-report-") as tmp:
        plots = _plots_by_dataset(write_plots(board.records, Path(tmp)), board.datasets)
        findings = findings_of(board, Path(tmp))
    html = render_report(board, board.records, grid_file, plots, findings)
    return write_text_atomic(out, html)


def findings_of(board: Leaderboard, tmp: Path) -> Findings:
    """The leaderboard's robustness and worth tables (the publish modules' own) with their plots, drawn into `tmp`
    and read into memory."""
    robustness, worth = robustness_of(board), worth_of(board)
    findings = Findings(robustness, worth)
    if robustness is not None:
        for dataset in sorted(robustness.scores["dataset"].unique()):
            path = save_severity_plot(robustness.scores, dataset, tmp / f"robustness_{safe_label(dataset)}.png")
            findings.robustness_plots[dataset] = path.read_bytes()
    if worth is not None:
        findings.worth_plots = _plots_by_dataset(write_worth_plots(worth, tmp / "worth"), board.datasets)
    return findings


def render_report(
    board: Leaderboard,
    records: list[CellRecord],
    grid_file: dict,
    plots: dict[str, list[tuple[str, bytes]]],
    findings: Findings | None = None,
) -> str:
    """The whole HTML document; `plots` maps a dataset to its (file name, PNG bytes) figures, `findings` holds the
    robustness and worth sections' tables and figures where the folder has them."""
    grid = grid_file.get("grid") if isinstance(grid_file.get("grid"), dict) else {}
    title = f"medaugbench report: {grid.get('name') or board.results_dir.name}"
    failed = [r for r in records if not r.ok]
    findings = findings or Findings()
    body = [_header(board, records, grid_file, failed, findings.shown())]
    if failed:
        body.append(_failed_section(failed))
    if board.unreadable:
        body.append(_unreadable_section(board))
    for dataset in board.datasets:
        body.append(_dataset_section(board, records, dataset, plots.get(dataset, [])))
    if findings.robustness is not None:
        body.append(_robustness_section(findings.robustness, findings.robustness_plots))
    if findings.worth is not None:
        body.append(_worth_section(findings.worth, findings.worth_plots))
    body += [_cross_section(board), _across_section(board), _rank_section(board, plots.get("", []))]
    body.append(_config_section(grid_file))
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            f"<style>{CSS}</style>",
            "</head>",
            "<body>",
            *body,
            f"<script>{SCRIPT}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _header(
    board: Leaderboard, records: list[CellRecord], grid_file: dict, failed: list[CellRecord], findings: list[str]
) -> str:
    """Grid name and description, cell counts, baseline, budget, and links to the sections (`findings`: the
    FINDING_SECTIONS shown)."""
    grid = grid_file.get("grid") if isinstance(grid_file.get("grid"), dict) else {}
    name = grid.get("name") or board.results_dir.name
    ok = len(records) - len(failed)
    counts = f"{len(records)} cells: {ok} ok, " + (
        f'<a class="badge-bad" href="#failed">{len(failed)} failed</a>' if failed else "0 failed"
    )
    facts = [
        ("Results folder", _e(str(board.results_dir))),
        ("Cells", counts),
        ("Baseline", f"<code>{_e(board.baseline)}</code> (statistics compare every other strategy with it)"),
        ("Budget", _e(_budget(grid, records))),
        ("Datasets", _e(", ".join(board.datasets))),
        ("Strategies", _e(", ".join(dict.fromkeys(str(r.cell.get("strategy")) for r in records)))),
        ("Seeds", _e(_seeds(board))),
        ("Grid written", _e(str(grid_file.get("written") or "unknown (no grid.json)"))),
        ("Report written", _e(datetime.now(UTC).isoformat(timespec="seconds"))),
    ]
    description = grid.get("description")
    return "\n".join(
        [
            "<header>",
            f"<h1>{_e(name)}</h1>",
            f'<p class="description">{_e(description)}</p>' if description else "",
            '<dl class="facts">',
            *(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in facts),
            "</dl>",
            _contents(board, bool(failed), findings),
            "</header>",
        ]
    )


def _contents(board: Leaderboard, failed: bool, findings: list[str]) -> str:
    """The table of contents: unreadable records and failed cells first where any, each dataset with its parts, the
    `findings` sections shown, the closing sections."""
    problems = {"unreadable": ("Records that could not be read", board.unreadable), "failed": ("Failed cells", failed)}
    items = [
        f'<li><a class="badge-bad" href="#{key}">{title}</a></li>' for key, (title, shown) in problems.items() if shown
    ]
    for dataset in board.datasets:
        parts = "".join(
            f'<li><a href="#{_part_anchor(dataset, key)}">{_e(title)}</a></li>' for key, title in DATASET_PARTS
        )
        items.append(f'<li><a href="#ds-{_anchor(dataset)}">{_e(dataset)}</a><ol>{parts}</ol></li>')
    closing = {key: FINDING_SECTIONS[key] for key in findings} | CLOSING_SECTIONS
    items += [f'<li><a href="#{key}">{_e(title)}</a></li>' for key, title in closing.items()]
    return f'<nav class="toc" id="contents" aria-label="Contents"><h2>Contents</h2><ol>{"".join(items)}</ol></nav>'


def _seeds(board: Leaderboard) -> str:
    """The generator and classifier seeds the runs used (one list where every run used one seed for both)."""
    lists = {
        key: ", ".join(str(int(s)) for s in sorted(board.long[key].dropna().unique()))
        for key in ("generator_seed", "classifier_seed")
    }
    if (board.long["generator_seed"] == board.long["classifier_seed"]).all():
        return lists["classifier_seed"]
    return f"generator {lists['generator_seed']}; classifier {lists['classifier_seed']}"


def _dataset_section(
    board: Leaderboard, records: list[CellRecord], dataset: str, plots: list[tuple[str, bytes]]
) -> str:
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
        "images": _images_block(board, records, dataset),
    }
    parts = [
        f'<section id="ds-{_anchor(dataset)}">',
        f'<h2>{_e(dataset)} <span class="muted">({_e(kind)})</span>{UP}</h2>',
    ]
    for key, title in DATASET_PARTS:
        parts += [f'<h3 id="{_part_anchor(dataset, key)}">{_e(title)}{UP}</h3>', blocks[key]]
    return "\n".join([*parts, "</section>"])


def _part_anchor(dataset: str, key: str) -> str:
    """The id of one part of a dataset's section (the table of contents links to it)."""
    return f"ds-{_anchor(dataset)}-{key}"


def _metrics_block(board: Leaderboard, dataset: str) -> str:
    """The dataset's test metrics per row with their note."""
    recall = recall_note(board.wide[dataset])
    note = (
        f"{SPREAD}. Percentages ×100. {ACCURACY_NOTE}. {recall + '. ' if recall else ''}Click a column header to "
        "sort; CI columns sort by their lower bound"
    )
    return f'<p class="note">{_e(note)}.</p>\n{_leaderboard_table(board, dataset)}'


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
            *((fmt_text(r[c]), _sort_text(r[c])) for c in shown),
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
    return _table(columns, rows, table_id=f"leaderboard-{_anchor(dataset)}", row_classes=classes)


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
                *((fmt_text(r[c]), _sort_text(r[c])) for c in shown),
                (fmt_n(r), r["n_seeds"]),
                (fmt_quality(r, "fid", 1), _num(r["fid_mean"])),
                (fmt_kid(r), _num(r["kid_mean"])),
                (fmt_fidelity(r), _num(r["fidelity_mean"])),
                *((fmt_pm(audit[m].mean(), audit[m].std(), 1, 2), _num(audit[m].mean())) for m in PRDC),
                *(_copies(audit, space) for space in AUDIT_SPACES),
                _audited(audit),
            ]
        )
    note = f"{FID_NOTE}. {KID_NOTE}. {FIDELITY_NOTE}. {PRDC_NOTE}. {COPIES_NOTE}"
    note += f" {RANK_NOTE}." if generative["fid_rank_deficient"].any() else "."
    table = _table(columns, rows, table_id=f"quality-{_anchor(dataset)}")
    return f'<p class="note">{_e(note)}</p>\n{table}' + _flagged_list(board.long[board.long["dataset"] == dataset])


def _flagged_list(cells: pd.DataFrame) -> str:
    """The runs whose synthetic set was flagged, each with its reasons, in a highlighted list; nothing without."""
    items = "".join(f"<li>{_e(line)}</li>" for line in flagged_lines(cells))
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
            *((fmt_text(r[c]), _sort_text(r[c])) for c in shown),
            (fmt_n(r), r["n_seeds"]),
            *((fmt_flops(r[f"{phase}_flops_mean"]), _num(r[f"{phase}_flops_mean"])) for phase in PHASES),
            (fmt_flops(r["total_flops_mean"]), _num(r["total_flops_mean"])),
            (fmt_pm(r["compute_seconds_mean"], math.nan, 1, 1), _num(r["compute_seconds_mean"])),
        ]
        for r in frame.to_dict("records")
    ]
    table = _table(columns, rows, table_id=f"compute-{_anchor(dataset)}")
    return f'<p class="note">{_e(COMPUTE_NOTE)}.</p>\n{table}'


def _stats_block(board: Leaderboard, dataset: str) -> str:
    """The Table 4 layout of a dataset (each strategy against the baseline), then the per-seed tests."""
    compared = board.stats[board.stats["dataset"] == dataset]
    note = against_note(board.baseline).replace("`", "") + "."
    if compared.empty:
        return f'<p class="note">{_e(note)}</p>\n<p>No other strategy to compare.</p>'
    return "\n".join(
        [
            f'<p class="note">{_e(note)}</p>',
            _comparison_table(compared, board.baseline, f"stats-{_anchor(dataset)}"),
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
            f'<p class="note">{_e(family_note(reference).replace("`", ""))}.</p>',
            _comparison_table(table, "reference", f"{family}-{_anchor(dataset)}", with_reference=True),
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
            *((fmt_text(r[c]), _sort_text(r[c])) for c in shown),
            *([(r["reference"], r["reference"])] if with_reference else []),
        ]
        rows.append(
            [
                *name,
                *([(chosen, chosen or None)] if with_reference else []),
                (f"{fmt_text(r['n_paired'])} ({fmt_text(r['n_generator_seeds'])})", _num(r["n_paired"])),
                (_pair(r["baseline_accuracy"], r["accuracy"], 100, 1), _num(r["accuracy"])),
                (fmt_compared(r, "accuracy", 100, 1), _num(r["accuracy_diff"])),
                (fmt_holm(r, "accuracy"), _num(r["accuracy_t_p_holm"])),
                (_pair(r["baseline_auc"], r["auc"], 1, 3), _num(r["auc"])),
                (fmt_compared(r, "auc", 1, 3), _num(r["auc_diff"])),
                (fmt_holm(r, "auc"), _num(r["auc_t_p_holm"])),
                (fmt_text(r["note"]) if isinstance(r["note"], str) and r["note"] else "", _sort_text(r["note"])),
            ]
        )
        secondary.append(
            [
                *name,
                (fmt_bootstrap(r, "accuracy", 100, 1), _num(r["accuracy_bootstrap_diff"])),
                (fmt_bootstrap(r, "auc", 1, 3), _num(r["auc_bootstrap_diff"])),
            ]
        )
    bootstrap = [
        *names,
        ("Bootstrap Δ acc. [95% CI (uncorrected)] (Holm p)", "num"),
        ("Bootstrap Δ AUC [95% CI (uncorrected)] (Holm p)", "num"),
    ]
    return "\n".join(
        [
            _table(columns, rows, table_id=table_id),
            f"<details><summary>{_e(BOOTSTRAP_SUMMARY)}</summary>",
            _table(bootstrap, secondary, table_id=f"{table_id}-bootstrap"),
            "</details>",
        ]
    )


def _pair(reference: float, value: float, scale: float, digits: int) -> str:
    """'reference → value' of a compared metric, scaled and rounded."""
    return f"{fmt_pm(reference, math.nan, scale, digits)} → {fmt_pm(value, math.nan, scale, digits)}"


def _power_note(board: Leaderboard, dataset: str, family: str) -> str:
    """The minimum-detectable-difference sentence of one table, as a paragraph ('' without tests)."""
    text = power_sentence(board.power, dataset, family).replace("**", "").replace("_", "")
    return f'<p class="note">{_e(text)}</p>' if text else ""


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
            *((fmt_text(r[c]), _sort_text(r[c])) for c in shown),
            (f"{r['n_seeds']} ({r['n_generator_seeds']})", _num(r["n_seeds"])),
            *(
                (fmt_sd(r[f"{m}_var_{c}"], scale, digits), _num(r[f"{m}_var_{c}"]))
                for m, scale, digits in SD_FORMATS
                for c in COMPONENTS
            ),
        ]
        for r in frame.to_dict("records")
    ]
    table = _table(columns, rows, table_id=f"variance-{_anchor(dataset)}")
    return f'<p class="note">{_e(VARIANCE_NOTE)}.</p>\n{table}'


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
            (fmt_text(r["model"]), _sort_text(r["model"])),
            (fmt_run(r), fmt_run(r)),
            (fmt_delta(r["delong_diff"], 1, 3), _num(r["delong_diff"])),
            (fmt_delong(r), _num(r["delong_p"])),
            (fmt_mcnemar(r), _sort_text(fmt_mcnemar(r))),
            (fmt_p(r["mcnemar_p"]), _num(r["mcnemar_p"])),
        ]
        for r in tests.to_dict("records")
    ]
    return "\n".join(
        [
            "<details><summary>Per-run tests on the same test images (not corrected, not summed)</summary>",
            f'<p class="note">{_e(PER_SEED_NOTE)}.</p>',
            _table(columns, rows, table_id=f"per-seed-{_anchor(dataset)}"),
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
        figures.append(_plot_figure(data, PLOT_TITLES.get(kind, kind.replace("_", " "))))
    return '<div class="plots">' + "".join(figures) + "</div>"


def _plot_figure(data: bytes, caption: str, wide: bool = False) -> str:
    """One embedded PNG plot with its caption; a `wide` one (a panel per backbone and fraction) may fill the page."""
    return (
        f'<figure class="plot{" wide" if wide else ""}"><img src="{_data_uri(data)}" alt="{_e(caption)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _plot_rank(name: str, dataset: str, order: list[str]) -> tuple[int, str]:
    """Figures in PLOT_TITLES' order (the headline metric first), unknown ones after them by name."""
    kind = name[len(dataset) + 1 :].removesuffix(".png")
    return (order.index(kind), name) if kind in order else (len(order), name)


def _images_block(board: Leaderboard, records: list[CellRecord], dataset: str) -> str:
    """Per generative strategy and generator (generator seed, backbone, fraction, policy), the synthetic samples per
    class and the closest synthetic/training pairs of its first cell that saved them (its classifier seeds reuse
    the same synthetic set), or a note that none were saved."""
    strategies = _generative_cells(board.results_dir, records, dataset)
    if not strategies:
        return '<p class="note">No generative strategy ran on this dataset.</p>'
    parts = []
    for strategy in sorted(strategies, key=str.lower):
        parts.append(f"<h4>{_e(strategy)}</h4>")
        saved = [r for r in strategies[strategy] if any(p.is_file() for p, _ in _image_paths(board.results_dir, r))]
        firsts = {_generator_of(r): r for r in reversed(saved)}  # the first saved cell of each generator
        shown = sorted(firsts.values(), key=_cell_order)
        parts += [_cell_images(board.results_dir, r) for r in shown] or [f'<p class="note">{_e(NO_IMAGES)}</p>']
    return "\n".join(parts)


def _generator_of(record: CellRecord) -> tuple:
    """What fixes a cell's synthetic set: its generator seed (the seed, in records before seeds were split),
    backbone, train fraction and policy."""
    cell = record.cell
    return (_order(cell.get("generator_seed", cell.get("seed"))), *_cell_order(record)[2:])


def _generative_cells(results_dir: Path, records: list[CellRecord], dataset: str) -> dict[str, list[CellRecord]]:
    """The dataset's "ok" cells of strategies that synthesised images, by strategy, in seed, backbone, fraction and
    policy order."""
    ok = [r for r in records if r.ok and r.cell.get("dataset") == dataset]
    strategies: dict[str, list[CellRecord]] = {}
    for record in sorted(ok, key=_cell_order):
        if _is_generative(results_dir, record):
            strategies.setdefault(str(record.cell.get("strategy")), []).append(record)
    return strategies


def _cell_order(record: CellRecord) -> tuple:
    """Generator seed, seed, backbone, train fraction, policy: the order in which a strategy's cells are searched for
    images."""
    cell = record.cell
    return (
        _order(cell.get("generator_seed", cell.get("seed"))),
        _order(cell.get("seed")),
        str(cell.get("backbone")),
        _order(cell.get("train_fraction")),
        str(cell.get("policy")),
    )


def _image_paths(results_dir: Path, record: CellRecord) -> list[tuple[Path, str]]:
    """A cell's sample grid and closest-pairs PNGs with their captions."""
    return [
        (samples_path(results_dir, record.cell_id), "Synthetic images per class (one row per class)"),
        (
            pairs_path(results_dir, record.cell_id),
            "Memorisation audit: closest synthetic / training pairs (pixel space)",
        ),
    ]


def _cell_images(results_dir: Path, record: CellRecord) -> str:
    """One cell's saved images as embedded figures captioned with the cell's coordinates; a note for a missing one."""
    cell = record.cell
    seeds = f"seed {cell.get('seed')}"
    if cell.get("generator_seed") is not None:
        seeds = f"generator seed {cell.get('generator_seed')}, classifier seed {cell.get('seed')}"
    where = (
        f"{seeds}, backbone {cell.get('backbone')}, "
        f"train fraction {fmt_text(cell.get('train_fraction'))}"
        + (f", policy {cell.get('policy')}" if cell.get("policy") else "")
        + f" (cell {record.cell_id})"
    )
    figures = []
    for path, caption in _image_paths(results_dir, record):
        if path.is_file():
            figures.append(
                f'<figure class="samples"><img src="{_data_uri(path.read_bytes())}" alt="{_e(caption)}">'
                f"<figcaption>{_e(caption)}; {_e(where)}</figcaption></figure>"
            )
        else:
            figures.append(f'<p class="note">{_e(caption)}: not saved for this cell.</p>')
    return '<div class="plots">' + "".join(figures) + "</div>"


def _robustness_section(robustness: Robustness, plots: dict[str, bytes]) -> str:
    """Per dataset: each row's clean and corrupted balanced error, relative mCE against the baseline, ECE and
    per-class recall on the corrupted sets; its balanced error per corruption; the error-against-severity plot."""
    parts = ['<section id="robustness">', f"<h2>{FINDING_SECTIONS['robustness']}</h2>"]
    parts.append(f'<p class="note">{_e(robustness.note)}</p>')
    caption = "Mean balanced error against corruption severity (0: the clean test split), over corruptions and runs"
    for dataset, frame in robustness.table.groupby("dataset", sort=True):
        rows = frame.to_dict("records")
        parts += [
            f'<h3 id="robustness-{_anchor(dataset)}">{_e(dataset)}{UP}</h3>',
            _robustness_table(rows, [c for c in frame.columns if c.startswith("corrupted_recall_")], dataset),
            _corruption_table(rows, [c for c in frame.columns if c.startswith("error_") and frame[c].notna().any()]),
        ]
        if dataset in plots:
            parts.append(f'<div class="plots">{_plot_figure(plots[dataset], f"{dataset}: {caption}", wide=True)}</div>')
    return "\n".join([*parts, "</section>"])


def _robustness_table(rows: list[dict], recalls: list[str], dataset: str) -> str:
    """The robustness summary of one dataset's rows (percentages ×100)."""
    columns = [
        *ROW_COLUMNS,
        ("Runs", "num"),
        ("Clean bal. error (%)", "num"),
        ("Corrupted bal. error (%)", "num"),
        ("Relative mCE", "num"),
        ("ECE clean", "num"),
        ("ECE corrupted", "num"),
        *((f"Corrupted recall, class {c.removeprefix('corrupted_recall_')} (%)", "num") for c in recalls),
    ]
    cells = [
        [
            *_row_coordinates(r),
            (fmt_text(r["runs"]), _num(r["runs"])),
            *(_fixed(r[c], 100, 1) for c in ("clean_balanced_error", "corrupted_balanced_error")),
            *(_fixed(r[c], 1, 3) for c in ("relative_mce", "clean_ece", "corrupted_ece")),
            *(_fixed(r[c], 100, 1) for c in recalls),
        ]
        for r in rows
    ]
    return _table(columns, cells, table_id=f"robustness-table-{_anchor(dataset)}")


def _corruption_table(rows: list[dict], errors: list[str]) -> str:
    """One dataset's balanced error per corruption (mean over severities and runs), folded away: the detail."""
    columns = [*ROW_COLUMNS, *((f"{c.removeprefix('error_')} (%)", "num") for c in errors)]
    cells = [[*_row_coordinates(r), *(_fixed(r[c], 100, 1) for c in errors)] for r in rows]
    table = _table(columns, cells, table_id=f"corruptions-{_anchor(str(rows[0]['dataset']))}")
    return f"<details><summary>Balanced error per corruption (%)</summary>{table}</details>"


def _worth_section(worth: Worth, plots: dict[str, list[tuple[str, bytes]]]) -> str:
    """Per dataset × backbone and learning curve, every result's real-image equivalent with its CI; then the
    dataset's plots of the curves with the results placed on them, in write_worth_plots' order (`none` first)."""
    parts = ['<section id="worth">', f"<h2>{FINDING_SECTIONS['worth']}</h2>"]
    parts.append(f'<p class="note">{_e(METHOD_NOTE.format(resamples=RESAMPLES))}.</p>')
    for dataset, curves in worth.curves.groupby("dataset", sort=False):
        parts.append(f'<h3 id="worth-{_anchor(dataset)}">{_e(dataset)}{UP}</h3>')
        for (backbone, curve), _ in curves.groupby(["backbone", "curve"], sort=False):
            rows = worth.table
            rows = rows[(rows["dataset"] == dataset) & (rows["backbone"] == backbone) & (rows["curve"] == curve)]
            parts += [f"<h4>{_e(backbone)}: on the <code>{_e(curve)}</code> learning curve</h4>", _worth_table(rows)]
        figures = "".join(_plot_figure(data, _worth_caption(name)) for name, data in plots.get(dataset, []))
        parts.append(f'<div class="plots">{figures}</div>' if figures else "")
    return "\n".join([*parts, "</section>"])


def _worth_table(rows: pd.DataFrame) -> str:
    """One curve's results (test AUC first) as worth.md shows them, sorted by their numbers."""
    if rows.empty:
        return '<p class="note">No other row ran on this dataset to place on this curve.</p>'
    first = rows.iloc[0]
    kinds = ("text", "num", "num", "num", "text", "num", "num", "num")
    columns = list(zip(equivalent_headers(str(first["curve"])), kinds))
    cells = []
    for r in in_order(rows):
        images = _censored(r, "equivalent")
        keys = [_sort_text(r["strategy"]), *(_num(r[k]) for k in ("train_fraction", "real_images", "n_runs"))]
        keys += [_sort_text(r["metric"]), _num(r["value"]), images, images / r["real_images"]]
        cells.append(list(zip(equivalent_cells(r), keys)))
    table_id = "-".join(["worth", *(_anchor(str(first[key])) for key in ("dataset", "backbone", "curve"))])
    return _table(columns, cells, table_id=table_id)


def _worth_caption(name: str) -> str:
    """The caption of write_worth_plots' '…_worth_<curve>_<metric>.png': the metric and curve it shows, and how."""
    shown = name.removesuffix(".png").rpartition("_worth_")[2]
    for curve, metric in ((c, m) for c in CURVES for m in METRICS):
        if shown == f"{curve}_{metric}":
            return f"{METRICS[metric][0]} on the `{curve}` learning curve. {WORTH_PLOT_NOTE}"
    return WORTH_PLOT_NOTE


def _censored(row: dict, key: str) -> float:
    """A real-image count to sort by: the equivalent, or the curve's edge it lies beyond when censored."""
    side = row[f"{key}_side"]
    if not side:
        return float(row[key])
    return float(row["curve_min_images"] if side == BELOW else row["curve_max_images"])


def _row_coordinates(row: dict) -> list[Cell]:
    """A robustness row's strategy, backbone and train fraction."""
    return [(fmt_text(row[key]), _sort_text(row[key])) for key in ("strategy", "backbone", "train_fraction")]


def _fixed(value: object, scale: float, digits: int) -> Cell:
    """A number scaled and rounded ('–' when missing), sorted by its value."""
    return fmt_pm(value, math.nan, scale, digits), _num(value)


def _cross_section(board: Leaderboard) -> str:
    """Accuracy per dataset side by side and their average (Table 3 layout); no FID, which is per dataset only."""
    frame, datasets = board.cross_dataset, board.datasets
    shown = fmt_shown(frame)
    columns = [
        *((HEADERS[c], "text") for c in shown),
        *((f"{cross_dataset_name(frame, d)} acc. (%)", "num") for d in datasets),
        ("Average acc. (%)", "num"),
    ]
    rows = [
        [
            *((fmt_text(r[c]), _sort_text(r[c])) for c in shown),
            *(
                (fmt_pm(r[f"{d}_accuracy_mean"], r[f"{d}_accuracy_std"], 100, 1), _num(r[f"{d}_accuracy_mean"]))
                for d in datasets
            ),
            (fmt_pm(r["average_accuracy"], math.nan, 100, 1), _num(r["average_accuracy"])),
        ]
        for r in frame.to_dict("records")
    ]
    return "\n".join(
        [
            '<section id="cross">',
            f"<h2>{CLOSING_SECTIONS['cross']}</h2>",
            f'<p class="note">{_e(CROSS_NOTE)}.</p>',
            _table(columns, rows, table_id="cross-dataset"),
            "</section>",
        ]
    )


def _across_section(board: Leaderboard) -> str:
    """IQM and probability of improvement across tasks with stratified-bootstrap CIs."""
    shown = poi_shown(board.across, board.baseline)
    columns = [
        ("Model", "text"),
        ("Tasks", "num"),
        ("Runs", "num"),
        ("IQM AUC [95% CI]", "num"),
        *((header, "num") for header in shown.values()),
    ]
    rows = [
        [
            (fmt_text(r["entry"]), _sort_text(r["entry"])),
            (fmt_text(r["n_tasks"]), _num(r["n_tasks"])),
            (fmt_text(r["n_runs"]), _num(r["n_runs"])),
            (f"{r['iqm_auc']:.3f} {fmt_ci(r['iqm_ci_low'], r['iqm_ci_high'], 1, 3)}", _num(r["iqm_auc"])),
            *((fmt_poi(r, name), _num(r[name])) for name in shown),
        ]
        for r in board.across.to_dict("records")
    ]
    return "\n".join(
        [
            '<section id="across">',
            f"<h2>{CLOSING_SECTIONS['across']}</h2>",
            f'<p class="note">{_e(across_note(board.baseline).replace("`", ""))}.</p>',
            _table(columns, rows, table_id="across-tasks") if rows else "<p>No row ran on every task.</p>",
            "</section>",
        ]
    )


def _rank_section(board: Leaderboard, plots: list[tuple[str, bytes]]) -> str:
    """Average ranks on AUC and accuracy across blocks, with Friedman's test and the critical-difference diagram, or
    why there is none."""
    ranks = board.ranks
    lines = friedman_notes(ranks)
    columns = [("Model", "text"), ("Avg. rank (AUC)", "num"), ("Avg. rank (accuracy)", "num"), ("Note", "wrap")]
    rows = [
        [
            (fmt_text(r["model"]), _sort_text(r["model"])),
            (fmt_pm(r["auc_rank"], math.nan, 1, 2), _num(r["auc_rank"])),
            (fmt_pm(r["accuracy_rank"], math.nan, 1, 2), _num(r["accuracy_rank"])),
            (str(r["note"] or ""), _sort_text(r["note"])),
        ]
        for r in ranks.to_dict("records")
    ]
    caption = "Critical-difference diagram (test AUC; Nemenyi, α = 0.05)"
    figures = [_plot_figure(data, caption) for name, data in plots if name == CD_FILE]
    return "\n".join(
        [
            '<section id="ranks">',
            f"<h2>{CLOSING_SECTIONS['ranks']}</h2>",
            '<p class="note">Rank 1 = best mean test score in a block (dataset × fraction), ties averaged.</p>',
            "<ul>",
            *(f"<li>{_e(line)}</li>" for line in lines),
            "</ul>",
            *figures,
            _table(columns, rows, table_id="ranks-table"),
            "</section>",
        ]
    )


def _unreadable_section(board: Leaderboard) -> str:
    """Every record file the tables could not read, with why: a lost record is said, never hidden."""
    items = "".join(f"<li><code>{_e(u.path.name)}</code>: {_e(u.reason)}</li>" for u in board.unreadable)
    return "\n".join(
        [
            '<section id="unreadable" class="failed">',
            f"<h2>Records that could not be read ({len(board.unreadable)})</h2>",
            f"<p>Left out of every table and plot; {_e(LOST_FIX)}.</p>",
            f"<ul>{items}</ul>",
            "</section>",
        ]
    )


def _failed_section(failed: list[CellRecord]) -> str:
    """Every failed cell with its coordinates, error message, and traceback folded away."""
    rows = []
    for record in failed:
        cell, error = record.cell, record.error if isinstance(record.error, dict) else {}
        message = (
            ": ".join(str(part) for part in (error.get("type"), error.get("message")) if part) or "no error recorded"
        )
        traceback = error.get("traceback")
        details = f"<details><summary>traceback</summary><pre>{_e(traceback)}</pre></details>" if traceback else ""
        rows.append(
            "<tr>"
            + "".join(
                f'<td class="text">{_e(fmt_text(cell.get(key)))}</td>'
                for key in ("dataset", "strategy", "backbone", "seed", "train_fraction", "policy")
            )
            + f'<td class="text"><code>{_e(record.cell_id)}</code></td>'
            + f'<td class="wrap"><span class="error-message">{_e(message)}</span>{details}</td></tr>'
        )
    headers = ["Dataset", "Strategy", "Backbone", "Seed", "Fraction", "Policy", "Cell", "Error"]
    return "\n".join(
        [
            '<section id="failed" class="failed">',
            f"<h2>Failed cells ({len(failed)})</h2>",
            (
                "<p>These cells are recorded as failed and left out of every table and plot. "
                "Fix the cause and rerun the grid "
                "with <code>medaugbench run … --retry-failed</code>.</p>"
            ),
            '<div class="scroll"><table id="failed-cells"><thead><tr>'
            + "".join(f'<th scope="col" class="text">{h}</th>' for h in headers)
            + "</tr></thead>",
            "<tbody>",
            *rows,
            "</tbody></table></div>",
            "</section>",
        ]
    )


def _config_section(grid_file: dict) -> str:
    """The grid config and the environment it ran in, as pretty JSON."""
    parts = ['<section id="config">', f"<h2>{CLOSING_SECTIONS['config']}</h2>"]
    if not grid_file:
        parts.append(
            '<p class="note">No readable grid.json in the results folder: the grid config and environment '
            "are unknown (each record still holds its own resolved config).</p>"
        )
    for key, title in (("grid", "Grid config"), ("environment", "Environment")):
        if key in grid_file:
            parts += [
                f"<h3>{title}</h3>",
                f"<pre>{_e(json.dumps(grid_file[key], indent=2, sort_keys=True, default=str))}</pre>",
            ]
    return "\n".join([*parts, "</section>"])


def _table(
    columns: list[tuple[str, str]], rows: list[list[Cell]], table_id: str, row_classes: list[str] | None = None
) -> str:
    """A sortable table: columns are (header, "num" | "text" | "wrap"), each cell (shown text, sort value)."""
    head = "".join(
        f'<th scope="col" data-type="{"num" if kind == "num" else "text"}"{_cell_class(kind)}>{_e(header)}</th>'
        for header, kind in columns
    )
    body = []
    for index, row in enumerate(rows):
        css = (row_classes or [""] * len(rows))[index]
        tds = "".join(_td(kind, text, value) for (_, kind), (text, value) in zip(columns, row))
        body.append((f'<tr class="{css}">' if css else "<tr>") + f"{tds}</tr>")
    return (
        f'<div class="scroll"><table class="sortable" id="{_e(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _cell_class(kind: str) -> str:
    return {"num": "", "text": ' class="text"', "wrap": ' class="wrap"'}[kind]


def _td(kind: str, text: str, value: object) -> str:
    """One cell; a number followed by bracketed parts ('Δ [CI] ↑', 'FID (floor …; shift …)') may wrap between
    its parts, never inside one, so a wide cell wraps rather than widening the page."""
    parts = BREAKS.split(text) if kind == "num" else [text]
    shown = _e(text) if len(parts) == 1 else " ".join(f"<span>{_e(part)}</span>" for part in parts)
    css = ' class="parts"' if len(parts) > 1 else _cell_class(kind)
    return f'<td{css} data-value="{_e(_value(value))}">{shown}</td>'


def _metric(row: dict, metric: str, scale: float, digits: int) -> Cell:
    """'mean ± std' of a wide-table metric, sorted by the mean."""
    return fmt_pm(row[f"{metric}_mean"], row[f"{metric}_std"], scale, digits), _num(row[f"{metric}_mean"])


def _num(value: object) -> float | None:
    """A finite float to sort by, or None."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _sort_text(value: object) -> str | None:
    text = fmt_text(value)
    return None if text in ("–", "") else text


def _value(value: object) -> str:
    """The data-value attribute: repr of a float (full precision), the text, or empty for missing."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def _order(value: object) -> tuple[int, object]:
    """Sort key putting numbers in numeric order and anything else after them, as text."""
    number = _num(value)
    return (0, number) if number is not None else (1, str(value))


def _is_generative(results_dir: Path, record: CellRecord) -> bool:
    """Whether a cell's strategy synthesised images: it has a synthesis policy, a generator or synthesis report, or
    saved images."""
    facts = record.result.strategy.facts if record.result is not None else {}
    return (
        record.cell.get("policy") is not None
        or bool(facts.get("generator"))
        or bool(facts.get("synthesis"))
        or samples_path(results_dir, record.cell_id).is_file()
        or pairs_path(results_dir, record.cell_id).is_file()
    )


def _plots_by_dataset(paths: list[Path], datasets: list[str]) -> dict[str, list[tuple[str, bytes]]]:
    """write_plots' files (named '<safe_label(dataset)>_<figure>.png') read into memory per dataset as
    ('<dataset>_<figure>.png', PNG bytes), the longest matching label winning so 'chest' never claims
    'chestmnist_…'; figures across datasets (the critical-difference diagram) under ''."""
    labels = {safe_label(dataset): dataset for dataset in datasets}
    out: dict[str, list[tuple[str, bytes]]] = {}
    for path in paths:
        owners = [label for label in labels if path.name.startswith(f"{label}_")]
        owner = max(owners, key=len) if owners else ""
        name = f"{labels[owner]}_{path.name[len(owner) + 1 :]}" if owner else path.name
        out.setdefault(labels.get(owner, ""), []).append((name, path.read_bytes()))
    return out


def _budget(grid: dict, records: list[CellRecord]) -> str:
    """The grid's budget block in words, else the classifier budgets recorded in the cells' configs."""
    block = grid.get("budget")
    if isinstance(block, dict):
        try:
            described = BudgetBlock(
                **{k: v for k, v in block.items() if k in BudgetBlock.__dataclass_fields__}
            ).describe()
        except (TypeError, ValueError):
            described = ""
        if described:
            return described
    seen = dict.fromkeys(
        json.dumps(r.config.get("budget"), sort_keys=True) for r in records if isinstance(r.config, dict)
    )
    seen.pop("null", None)
    return ("per cell config: " + "; ".join(seen)) if seen else "unknown (no grid.json)"


def _data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _anchor(name: str) -> str:
    """An id-safe fragment of a name (escaping still applies where it is written)."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in str(name))


def _e(value: object) -> str:
    return escape(str(value), quote=True)
