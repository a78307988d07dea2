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

This module builds and writes the page: its header, contents and order; the building blocks and the inline CSS and
script are in `report_html`, a dataset's section in `report_datasets` (its images in `report_images`), and the
sections outside the datasets in `report_sections`.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmark.data.files import write_text_atomic
from benchmark.data.labels import safe_label
from benchmark.errors import MedAugBenchError
from benchmark.grid.config import BudgetBlock
from benchmark.grid.store import CellRecord, read_grid_file, records_dir
from benchmark.publish.leaderboard import Leaderboard, build_leaderboard
from benchmark.publish.plots import write_plots
from benchmark.publish.report_datasets import DATASET_PARTS, dataset_section, part_anchor
from benchmark.publish.report_html import CSP, CSS, SCRIPT, anchor, esc
from benchmark.publish.report_sections import (
    CLOSING_SECTIONS,
    FINDING_SECTIONS,
    across_section,
    config_section,
    cross_section,
    failed_section,
    rank_section,
    robustness_section,
    unreadable_section,
    worth_section,
)
from benchmark.publish.robustness import Robustness, robustness_of, save_severity_plot
from benchmark.publish.worth import Worth, worth_of, write_worth_plots

REPORT_NAME = "report.html"


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
        body.append(failed_section(failed))
    if board.unreadable:
        body.append(unreadable_section(board))
    for dataset in board.datasets:
        body.append(dataset_section(board, records, dataset, plots.get(dataset, [])))
    if findings.robustness is not None:
        body.append(robustness_section(findings.robustness, findings.robustness_plots))
    if findings.worth is not None:
        body.append(worth_section(findings.worth, findings.worth_plots))
    body += [cross_section(board), across_section(board), rank_section(board, plots.get("", []))]
    body.append(config_section(grid_file))
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(title)}</title>",
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
        ("Results folder", esc(str(board.results_dir))),
        ("Cells", counts),
        ("Baseline", f"<code>{esc(board.baseline)}</code> (statistics compare every other strategy with it)"),
        ("Budget", esc(_budget(grid, records))),
        ("Datasets", esc(", ".join(board.datasets))),
        ("Strategies", esc(", ".join(dict.fromkeys(str(r.cell.get("strategy")) for r in records)))),
        ("Seeds", esc(_seeds(board))),
        ("Grid written", esc(str(grid_file.get("written") or "unknown (no grid.json)"))),
        ("Report written", esc(datetime.now(UTC).isoformat(timespec="seconds"))),
    ]
    description = grid.get("description")
    return "\n".join(
        [
            "<header>",
            f"<h1>{esc(name)}</h1>",
            f'<p class="description">{esc(description)}</p>' if description else "",
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
            f'<li><a href="#{part_anchor(dataset, key)}">{esc(title)}</a></li>' for key, title in DATASET_PARTS
        )
        items.append(f'<li><a href="#ds-{anchor(dataset)}">{esc(dataset)}</a><ol>{parts}</ol></li>')
    closing = {key: FINDING_SECTIONS[key] for key in findings} | CLOSING_SECTIONS
    items += [f'<li><a href="#{key}">{esc(title)}</a></li>' for key, title in closing.items()]
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
