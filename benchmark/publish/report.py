"""One self-contained static HTML report of a results folder: the grid and its budget, per dataset a sortable
leaderboard, the statistics against the baseline, the leaderboard plots and each generative strategy's samples and
closest memorisation pairs, the cross-dataset table and ranks, the failed cells with their errors, and the grid config
and environment.

The file makes no request of any kind: CSS and a small sorting script are inline, images are base64 data URIs, and a
Content-Security-Policy forbids everything else, so it can be mailed, archived or opened offline. Every string from the
results folder is HTML-escaped.
"""

from __future__ import annotations

import base64
import json
import math
import tempfile
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import pandas as pd

from benchmark.data.files import write_text_atomic
from benchmark.errors import MedAugBenchError
from benchmark.grid.config import BudgetBlock
from benchmark.grid.store import (
    CellRecord,
    load_records,
    pairs_path,
    read_grid_file,
    records_dir,
    samples_path,
)
from benchmark.publish.leaderboard import (
    ACCURACY_NOTE,
    CLASSIC_REFERENCE,
    COMPONENTS,
    COMPUTE_NOTE,
    CROSS_NOTE,
    FAMILIES,
    FID_NOTE,
    HEADERS,
    PER_SEED_NOTE,
    RANK_NOTE,
    REBALANCING,
    SD_FORMATS,
    SPREAD,
    VARIANCE_NOTE,
    Leaderboard,
    across_note,
    against_note,
    build_leaderboard,
    cross_dataset_name,
    family_note,
    fmt_bootstrap,
    fmt_ci,
    fmt_compared,
    fmt_delong,
    fmt_delta,
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
    friedman_notes,
    poi_shown,
    power_sentence,
)
from benchmark.publish.plots import CD_FILE, write_plots

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

CSS = """
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --head: #f3f5f7; --bad: #b42318; --badbg: #fff1f0; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0 auto;
       padding: 1.5rem 2rem 4rem; max-width: 1400px; }
h1 { margin: 0 0 .3rem; font-size: 1.7rem; }
h2 { margin-top: 2.5rem; padding-bottom: .3rem; border-bottom: 2px solid var(--line); }
h3 { margin-top: 1.8rem; }
p.note, .muted { color: var(--muted); }
nav { margin: .8rem 0; } nav a { margin-right: 1rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 1rem 0; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
.description { white-space: pre-wrap; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: .25rem .55rem; text-align: right; white-space: nowrap; }
th { background: var(--head); position: sticky; top: 0; }
td.text, th.text { text-align: left; }
td.wrap, th.wrap { white-space: normal; min-width: 16rem; text-align: left; }
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
figcaption { color: var(--muted); font-size: .9em; margin-top: .3rem; max-width: 640px; }
section.failed { border: 2px solid var(--bad); background: var(--badbg); padding: .2rem 1rem 1rem; margin-top: 2rem; }
section.failed h2 { color: var(--bad); border-color: var(--bad); }
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


def write_report(results_dir: Path, out: Path | None = None, baseline: str | None = None) -> Path:
    """Write the HTML report of `results_dir` to `out` (default RESULTS_DIR/report.html) atomically; returns its path.

    `baseline` is the strategy the statistics compare against: by default the grid's (grid.json), else `none`.
    """
    results_dir = Path(results_dir)
    records = load_records(results_dir) if results_dir.is_dir() else []
    if not records:
        where = "is not a folder" if not results_dir.is_dir() else f"has no cell records in {records_dir(results_dir)}"
        raise MedAugBenchError(
            f"{results_dir} {where}: run a grid into it first with `medaugbench run CONFIG --results {results_dir}`"
        )
    grid_file = read_grid_file(results_dir)
    grid = grid_file.get("grid") if isinstance(grid_file.get("grid"), dict) else {}
    baseline = baseline or (grid.get("baseline") if isinstance(grid.get("baseline"), str) else None) or "none"
    board = build_leaderboard(results_dir, baseline)
    with tempfile.TemporaryDirectory(prefix="medaugbench-report-") as tmp:
        plots = _plots_by_dataset(write_plots(records, Path(tmp)), board.datasets)
    html = render_report(board, records, grid_file, plots)
    return write_text_atomic(Path(out) if out is not None else results_dir / REPORT_NAME, html)


def render_report(
    board: Leaderboard, records: list[CellRecord], grid_file: dict, plots: dict[str, list[tuple[str, bytes]]]
) -> str:
    """The whole HTML document; `plots` maps a dataset to its (file name, PNG bytes) figures."""
    grid = grid_file.get("grid") if isinstance(grid_file.get("grid"), dict) else {}
    title = f"medaugbench report: {grid.get('name') or board.results_dir.name}"
    failed = [r for r in records if not r.ok]
    body = [_header(board, records, grid_file, failed)]
    if failed:
        body.append(_failed_section(failed))
    for dataset in board.datasets:
        body.append(_dataset_section(board, records, dataset, plots.get(dataset, [])))
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


def _header(board: Leaderboard, records: list[CellRecord], grid_file: dict, failed: list[CellRecord]) -> str:
    """Grid name and description, cell counts, baseline, budget, and links to the sections."""
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
    links = [f'<a href="#ds-{_anchor(d)}">{_e(d)}</a>' for d in board.datasets]
    links += ['<a href="#cross">across datasets</a>', '<a href="#across">across tasks</a>']
    links += ['<a href="#ranks">ranks</a>']
    links += ['<a href="#failed">failed cells</a>'] if failed else []
    links += ['<a href="#config">grid config &amp; environment</a>']
    description = grid.get("description")
    return "\n".join(
        [
            "<header>",
            f"<h1>{_e(name)}</h1>",
            f'<p class="description">{_e(description)}</p>' if description else "",
            '<dl class="facts">',
            *(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in facts),
            "</dl>",
            f"<nav>{''.join(links)}</nav>",
            "</header>",
        ]
    )


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
    """Leaderboard, statistics against the baseline, plots and generated images of one dataset."""
    frame = board.wide[dataset]
    cells = board.long[board.long["dataset"] == dataset]
    kind = next(iter(cells["task"].dropna()), "?")
    note = (
        f"{SPREAD}. Percentages ×100. {ACCURACY_NOTE}. {FID_NOTE}. Compute: {COMPUTE_NOTE}. "
        "Click a column header to sort; CI columns sort by their lower "
        "bound." + (f" {RANK_NOTE}." if frame["fid_rank_deficient"].any() else "")
    )
    parts = [
        f'<section id="ds-{_anchor(dataset)}">',
        f'<h2>{_e(dataset)} <span class="muted">({_e(kind)})</span></h2>',
        "<h3>Test metrics</h3>",
        f'<p class="note">{_e(note)}</p>',
        _leaderboard_table(board, dataset),
        "<h3>Variance by source</h3>",
        _variance_block(frame, dataset),
        "<h3>Against the baseline</h3>",
        _stats_block(board, dataset),
        *_family_blocks(board, dataset),
        "<h3>Plots</h3>",
        _plots_block(plots, dataset),
        "<h3>Generated images</h3>",
        _images_block(board, records, dataset),
        "</section>",
    ]
    return "\n".join(parts)


def _leaderboard_table(board: Leaderboard, dataset: str) -> str:
    """The dataset's sortable leaderboard: per row the test metrics, FID/KID with floors and compute; the baseline
    row marked."""
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
        ("FID (floor; shift)", "num"),
        ("KID (floor; shift)", "num"),
        ("Total FLOPs", "num"),
        ("Compute s", "num"),
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
            (fmt_quality(r, "fid", 1), _num(r["fid_mean"])),
            (fmt_quality(r, "kid", 4), _num(r["kid_mean"])),
            (fmt_flops(r["total_flops_mean"]), _num(r["total_flops_mean"])),
            (fmt_pm(r["compute_seconds_mean"], math.nan, 1, 1), _num(r["compute_seconds_mean"])),
        ]
        for r in frame.to_dict("records")
    ]
    classes = ["baseline" if r["strategy"] == board.baseline else "" for r in frame.to_dict("records")]
    return _table(columns, rows, table_id=f"leaderboard-{_anchor(dataset)}", row_classes=classes)


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


def _family_blocks(board: Leaderboard, dataset: str) -> list[str]:
    """The two family tables of a dataset (classic augmentation, rebalancing), or why one is not answered."""
    families = board.families[board.families["dataset"] == dataset] if len(board.families) else board.families
    parts = []
    for family, reference in (("classic", CLASSIC_REFERENCE), ("rebalancing", REBALANCING)):
        table = families[families["family"] == family] if len(families) else families
        parts.append(f"<h3>{_e(FAMILIES[family])}</h3>")
        if table.empty:
            parts.append(f"<p>Not answered here: this grid has no generative row together with a {reference} row.</p>")
            continue
        parts.append(f'<p class="note">{_e(family_note(reference).replace("`", ""))}.</p>')
        parts.append(_comparison_table(table, "reference", f"{family}-{_anchor(dataset)}", with_reference=True))
        parts.append(_power_note(board, dataset, family))
    return parts


def _comparison_table(compared: pd.DataFrame, reference: str, table_id: str, with_reference: bool = False) -> str:
    """A comparison table: Δ with the run-level CI and Holm p (primary), the paired bootstrap (secondary), notes."""
    shown = fmt_shown(compared)
    columns = [
        *((HEADERS[c], "text") for c in shown),
        *([("Reference", "text"), ("Chosen", "wrap")] if with_reference else []),
        ("Runs (G)", "num"),
        (f"{reference} acc. (%)", "num"),
        ("Accuracy (%)", "num"),
        ("Δ acc. (pp) [95% CI (uncorrected)]", "num"),
        ("Holm p acc. (t / W)", "num"),
        ("Bootstrap Δ acc. [95% CI (uncorrected)] (Holm p)", "num"),
        (f"{reference} AUC", "num"),
        ("AUC", "num"),
        ("Δ AUC [95% CI (uncorrected)]", "num"),
        ("Holm p AUC (t / W)", "num"),
        ("Bootstrap Δ AUC [95% CI (uncorrected)] (Holm p)", "num"),
        ("Note", "wrap"),
    ]
    rows = []
    for r in compared.to_dict("records"):
        chosen = r["chosen"] if isinstance(r["chosen"], str) else ""
        rows.append(
            [
                *((fmt_text(r[c]), _sort_text(r[c])) for c in shown),
                *([(r["reference"], r["reference"]), (chosen, chosen or None)] if with_reference else []),
                (f"{fmt_text(r['n_paired'])} ({fmt_text(r['n_generator_seeds'])})", _num(r["n_paired"])),
                (fmt_pm(r["baseline_accuracy"], math.nan, 100, 1), _num(r["baseline_accuracy"])),
                (fmt_pm(r["accuracy"], math.nan, 100, 1), _num(r["accuracy"])),
                (fmt_compared(r, "accuracy", 100, 1), _num(r["accuracy_diff"])),
                (fmt_holm(r, "accuracy"), _num(r["accuracy_t_p_holm"])),
                (fmt_bootstrap(r, "accuracy", 100, 1), _num(r["accuracy_bootstrap_diff"])),
                (fmt_pm(r["baseline_auc"], math.nan, 1, 3), _num(r["baseline_auc"])),
                (fmt_pm(r["auc"], math.nan, 1, 3), _num(r["auc"])),
                (fmt_compared(r, "auc", 1, 3), _num(r["auc_diff"])),
                (fmt_holm(r, "auc"), _num(r["auc_t_p_holm"])),
                (fmt_bootstrap(r, "auc", 1, 3), _num(r["auc_bootstrap_diff"])),
                (fmt_text(r["note"]) if isinstance(r["note"], str) and r["note"] else "", _sort_text(r["note"])),
            ]
        )
    return _table(columns, rows, table_id=table_id)


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
        caption = PLOT_TITLES.get(kind, kind.replace("_", " "))
        figures.append(
            f'<figure class="plot"><img src="{_data_uri(data)}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    return '<div class="plots">' + "".join(figures) + "</div>"


def _plot_rank(name: str, dataset: str, order: list[str]) -> tuple[int, str]:
    """Figures in PLOT_TITLES' order (the headline metric first), unknown ones after them by name."""
    kind = name[len(dataset) + 1 :].removesuffix(".png")
    return (order.index(kind), name) if kind in order else (len(order), name)


def _images_block(board: Leaderboard, records: list[CellRecord], dataset: str) -> str:
    """Per generative strategy, the synthetic samples per class and the closest synthetic/training pairs of the first
    seed that saved them, or a note that none were saved."""
    strategies = _generative_cells(board.results_dir, records, dataset)
    if not strategies:
        return '<p class="note">No generative strategy ran on this dataset.</p>'
    parts = []
    for strategy in sorted(strategies, key=str.lower):
        parts.append(f"<h4>{_e(strategy)}</h4>")
        saved = [r for r in strategies[strategy] if any(p.is_file() for p, _ in _image_paths(board.results_dir, r))]
        parts.append(_cell_images(board.results_dir, saved[0]) if saved else f'<p class="note">{_e(NO_IMAGES)}</p>')
    return "\n".join(parts)


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
    """Seed, backbone, train fraction, policy: the order in which a strategy's cells are searched for images."""
    cell = record.cell
    return (
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
    where = (
        f"seed {cell.get('seed')}, backbone {cell.get('backbone')}, "
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
            "<h2>Across datasets</h2>",
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
            "<h2>Across tasks: IQM and probability of improvement</h2>",
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
    figures = [
        f'<figure class="plot"><img src="{_data_uri(data)}" alt="{caption}"><figcaption>{caption}</figcaption></figure>'
        for name, data in plots
        if name == CD_FILE
    ]
    return "\n".join(
        [
            '<section id="ranks">',
            "<h2>Average ranks across blocks (Friedman, Nemenyi)</h2>",
            '<p class="note">Rank 1 = best mean test score in a block (dataset × fraction), ties averaged.</p>',
            "<ul>",
            *(f"<li>{_e(line)}</li>" for line in lines),
            "</ul>",
            *figures,
            _table(columns, rows, table_id="ranks-table"),
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
    parts = ['<section id="config">', "<h2>Grid config and environment</h2>"]
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
        tds = "".join(
            f'<td{_cell_class(kind)} data-value="{_e(_value(value))}">{_e(text)}</td>'
            for (_, kind), (text, value) in zip(columns, row)
        )
        body.append((f'<tr class="{css}">' if css else "<tr>") + f"{tds}</tr>")
    return (
        f'<div class="scroll"><table class="sortable" id="{_e(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _cell_class(kind: str) -> str:
    return {"num": "", "text": ' class="text"', "wrap": ' class="wrap"'}[kind]


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
    """write_plots' files (named '<dataset>_<figure>.png') read into memory per dataset, the longest matching name
    winning so 'chest' never claims 'chestmnist_…'; figures across datasets (the critical-difference diagram) under
    ''."""
    out: dict[str, list[tuple[str, bytes]]] = {}
    for path in paths:
        owners = [d for d in datasets if path.name.startswith(f"{d}_")]
        out.setdefault(max(owners, key=len) if owners else "", []).append((path.name, path.read_bytes()))
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
