"""The report's sections outside the datasets: failed cells and unreadable records before them, robustness and worth in
real images where the records have them, then the tables across datasets and tasks, the ranks and the grid config."""

from __future__ import annotations

import json
import math

import pandas as pd

from benchmark.grid.store import CellRecord
from benchmark.publish.fmt import fmt_ci, fmt_pm, fmt_poi, fmt_shown, fmt_text
from benchmark.publish.leaderboard import Leaderboard
from benchmark.publish.markdown import (
    CROSS_NOTE,
    HEADERS,
    LOST_FIX,
    across_note,
    cross_dataset_name,
    friedman_notes,
    left_out_tasks_note,
    poi_shown,
)
from benchmark.publish.plots import CD_FILE
from benchmark.publish.report_html import UP, Cell, anchor, esc, num, plot_figure, sort_text, sortable_table
from benchmark.publish.robustness import Robustness, corrupted_difference_text
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
WORTH_PLOT_NOTE = (
    "The learning curve's points (mean ± std over runs) and monotone fit; ◆ each result at its real-image equivalent "
    "(bar: 95% CI; arrow: beyond the curve), ○ at the real images it had"
)


def robustness_section(robustness: Robustness, plots: dict[str, bytes]) -> str:
    """Per dataset: each row's clean and corrupted balanced error, relative mCE against the baseline, ECE and
    per-class recall on the corrupted sets; its balanced error per corruption; the error-against-severity plot."""
    parts = ['<section id="robustness">', f"<h2>{FINDING_SECTIONS['robustness']}</h2>"]
    parts.append(f'<p class="note">{esc(robustness.note)}</p>')
    caption = "Mean balanced error against corruption severity (0: the clean test split), over corruptions and runs"
    for dataset, frame in robustness.table.groupby("dataset", sort=True):
        rows = frame.to_dict("records")
        parts += [
            f'<h3 id="robustness-{anchor(dataset)}">{esc(dataset)}{UP}</h3>',
            _robustness_table(rows, [c for c in frame.columns if c.startswith("corrupted_recall_")], dataset),
            _corruption_table(rows, [c for c in frame.columns if c.startswith("error_") and frame[c].notna().any()]),
        ]
        if dataset in plots:
            parts.append(f'<div class="plots">{plot_figure(plots[dataset], f"{dataset}: {caption}", wide=True)}</div>')
    return "\n".join([*parts, "</section>"])


def _robustness_table(rows: list[dict], recalls: list[str], dataset: str) -> str:
    """The robustness summary of one dataset's rows (percentages ×100)."""
    columns = [
        *ROW_COLUMNS,
        ("Runs", "num"),
        ("Clean bal. error (%)", "num"),
        ("Corrupted bal. error (%)", "num"),
        ("Δ corrupted vs baseline (pp) [95% CI]", "num"),
        ("Holm p", "num"),
        ("Relative mCE", "num"),
        ("ECE clean", "num"),
        ("ECE corrupted", "num"),
        *((f"Corrupted recall, class {c.removeprefix('corrupted_recall_')} (%)", "num") for c in recalls),
    ]
    cells = [
        [
            *_row_coordinates(r),
            (fmt_text(r["runs"]), num(r["runs"])),
            *(_fixed(r[c], 100, 1) for c in ("clean_balanced_error", "corrupted_balanced_error")),
            (corrupted_difference_text(r), num(r.get("corrupted_diff"))),
            _fixed(r.get("corrupted_p_holm"), 1, 3),
            *(_fixed(r[c], 1, 3) for c in ("relative_mce", "clean_ece", "corrupted_ece")),
            *(_fixed(r[c], 100, 1) for c in recalls),
        ]
        for r in rows
    ]
    return sortable_table(columns, cells, table_id=f"robustness-table-{anchor(dataset)}")


def _corruption_table(rows: list[dict], errors: list[str]) -> str:
    """One dataset's balanced error per corruption (mean over severities and runs), folded away: the detail."""
    columns = [*ROW_COLUMNS, *((f"{c.removeprefix('error_')} (%)", "num") for c in errors)]
    cells = [[*_row_coordinates(r), *(_fixed(r[c], 100, 1) for c in errors)] for r in rows]
    table = sortable_table(columns, cells, table_id=f"corruptions-{anchor(str(rows[0]['dataset']))}")
    return f"<details><summary>Balanced error per corruption (%)</summary>{table}</details>"


def worth_section(worth: Worth, plots: dict[str, list[tuple[str, bytes]]]) -> str:
    """Per dataset × backbone and learning curve, every result's real-image equivalent with its CI; then the
    dataset's plots of the curves with the results placed on them, in write_worth_plots' order (`none` first)."""
    parts = ['<section id="worth">', f"<h2>{FINDING_SECTIONS['worth']}</h2>"]
    parts.append(f'<p class="note">{esc(METHOD_NOTE.format(resamples=RESAMPLES))}.</p>')
    for dataset, curves in worth.curves.groupby("dataset", sort=False):
        parts.append(f'<h3 id="worth-{anchor(dataset)}">{esc(dataset)}{UP}</h3>')
        for (backbone, curve), _ in curves.groupby(["backbone", "curve"], sort=False):
            rows = worth.table
            rows = rows[(rows["dataset"] == dataset) & (rows["backbone"] == backbone) & (rows["curve"] == curve)]
            parts += [f"<h4>{esc(backbone)}: on the <code>{esc(curve)}</code> learning curve</h4>", _worth_table(rows)]
        figures = "".join(plot_figure(data, _worth_caption(name)) for name, data in plots.get(dataset, []))
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
        keys = [sort_text(r["strategy"]), *(num(r[k]) for k in ("train_fraction", "real_images", "n_runs"))]
        keys += [sort_text(r["metric"]), num(r["value"]), images, images / r["real_images"]]
        cells.append(list(zip(equivalent_cells(r), keys)))
    table_id = "-".join(["worth", *(anchor(str(first[key])) for key in ("dataset", "backbone", "curve"))])
    return sortable_table(columns, cells, table_id=table_id)


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
    return [(fmt_text(row[key]), sort_text(row[key])) for key in ("strategy", "backbone", "train_fraction")]


def _fixed(value: object, scale: float, digits: int) -> Cell:
    """A number scaled and rounded ('–' when missing), sorted by its value."""
    return fmt_pm(value, math.nan, scale, digits), num(value)


def cross_section(board: Leaderboard) -> str:
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
            *((fmt_text(r[c]), sort_text(r[c])) for c in shown),
            *(
                (fmt_pm(r[f"{d}_accuracy_mean"], r[f"{d}_accuracy_std"], 100, 1), num(r[f"{d}_accuracy_mean"]))
                for d in datasets
            ),
            (fmt_pm(r["average_accuracy"], math.nan, 100, 1), num(r["average_accuracy"])),
        ]
        for r in frame.to_dict("records")
    ]
    return "\n".join(
        [
            '<section id="cross">',
            f"<h2>{CLOSING_SECTIONS['cross']}</h2>",
            f'<p class="note">{esc(CROSS_NOTE)}.</p>',
            sortable_table(columns, rows, table_id="cross-dataset"),
            "</section>",
        ]
    )


def across_section(board: Leaderboard) -> str:
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
            (fmt_text(r["entry"]), sort_text(r["entry"])),
            (fmt_text(r["n_tasks"]), num(r["n_tasks"])),
            (fmt_text(r["n_runs"]), num(r["n_runs"])),
            (f"{r['iqm_auc']:.3f} {fmt_ci(r['iqm_ci_low'], r['iqm_ci_high'], 1, 3)}", num(r["iqm_auc"])),
            *((fmt_poi(r, name), num(r[name])) for name in shown),
        ]
        for r in board.across.to_dict("records")
    ]
    return "\n".join(
        [
            '<section id="across">',
            f"<h2>{CLOSING_SECTIONS['across']}</h2>",
            f'<p class="note">{esc(across_note(board.baseline).replace("`", ""))}.</p>',
            *(f"<p>{esc(line)}</p>" for line in left_out_tasks_note(board.across) if line),
            sortable_table(columns, rows, table_id="across-tasks") if rows else "<p>No row ran on every task.</p>",
            "</section>",
        ]
    )


def rank_section(board: Leaderboard, plots: list[tuple[str, bytes]]) -> str:
    """Average ranks on AUC and accuracy across blocks, with Friedman's test and the critical-difference diagram, or
    why there is none."""
    ranks = board.ranks
    lines = friedman_notes(ranks)
    columns = [("Model", "text"), ("Avg. rank (AUC)", "num"), ("Avg. rank (accuracy)", "num"), ("Note", "wrap")]
    rows = [
        [
            (fmt_text(r["model"]), sort_text(r["model"])),
            (fmt_pm(r["auc_rank"], math.nan, 1, 2), num(r["auc_rank"])),
            (fmt_pm(r["accuracy_rank"], math.nan, 1, 2), num(r["accuracy_rank"])),
            (str(r["note"] or ""), sort_text(r["note"])),
        ]
        for r in ranks.to_dict("records")
    ]
    caption = "Critical-difference diagram (test AUC; Nemenyi, α = 0.05)"
    figures = [plot_figure(data, caption) for name, data in plots if name == CD_FILE]
    return "\n".join(
        [
            '<section id="ranks">',
            f"<h2>{CLOSING_SECTIONS['ranks']}</h2>",
            '<p class="note">Rank 1 = best mean test score in a block (dataset × fraction), ties averaged.</p>',
            "<ul>",
            *(f"<li>{esc(line)}</li>" for line in lines),
            "</ul>",
            *figures,
            sortable_table(columns, rows, table_id="ranks-table"),
            "</section>",
        ]
    )


def unreadable_section(board: Leaderboard) -> str:
    """Every record file the tables could not read, with why: a lost record is said, never hidden."""
    items = "".join(f"<li><code>{esc(u.path.name)}</code>: {esc(u.reason)}</li>" for u in board.unreadable)
    return "\n".join(
        [
            '<section id="unreadable" class="failed">',
            f"<h2>Records that could not be read ({len(board.unreadable)})</h2>",
            f"<p>Left out of every table and plot; {esc(LOST_FIX)}.</p>",
            f"<ul>{items}</ul>",
            "</section>",
        ]
    )


def failed_section(failed: list[CellRecord]) -> str:
    """Every failed cell with its coordinates, error message, and traceback folded away."""
    rows = []
    for record in failed:
        cell, error = record.cell, record.error if isinstance(record.error, dict) else {}
        message = (
            ": ".join(str(part) for part in (error.get("type"), error.get("message")) if part) or "no error recorded"
        )
        traceback = error.get("traceback")
        details = f"<details><summary>traceback</summary><pre>{esc(traceback)}</pre></details>" if traceback else ""
        rows.append(
            "<tr>"
            + "".join(
                f'<td class="text">{esc(fmt_text(cell.get(key)))}</td>'
                for key in ("dataset", "strategy", "backbone", "seed", "train_fraction", "policy")
            )
            + f'<td class="text"><code>{esc(record.cell_id)}</code></td>'
            + f'<td class="wrap"><span class="error-message">{esc(message)}</span>{details}</td></tr>'
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


def config_section(grid_file: dict) -> str:
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
                f"<pre>{esc(json.dumps(grid_file[key], indent=2, sort_keys=True, default=str))}</pre>",
            ]
    return "\n".join([*parts, "</section>"])
