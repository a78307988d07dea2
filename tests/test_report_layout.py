"""The HTML report's layout: the columns that decide (Δ with its CI and the primary Holm p, FID and KID beside their
floors, sample precision/recall/density/coverage, copies) fit a 1400 px window in a real headless Chromium, a table of
contents links every part, and the quality table carries what the quality records hold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from benchmark.publish.report import write_report
from benchmark.publish.report_datasets import DATASET_PARTS, fmt_kid
from tests.fake_results import make_fake_results
from tests.test_report import browser  # noqa: F401  (the fixture: Debian's chromium via Playwright, or a skip)

WIDTH = 1400
STRATEGIES = ("none", "geometric", "oversample", "cgan", "vae")
# Header fragments of the columns that must be visible without horizontal scrolling.
KEY_COLUMNS = ("Δ acc.", "Δ AUC", "Holm p", "FID", "KID", "Sample precision", "Sample recall", "Density", "Coverage")
KEY_COLUMNS += ("Copies",)
KEY_TABLES = ("stats", "classic", "rebalancing", "quality")

# Per visible table (not folded away): the page's width and, per cell of a key column, its right edge and the
# right edge of what may show it (the window, and the table's scroll box).
MEASURE = """
(keys) => {
  const cells = [];
  for (const table of document.querySelectorAll("table")) {
    if (table.closest("details:not([open])")) continue;
    const box = (table.closest(".scroll") || table.parentElement).getBoundingClientRect();
    const limit = Math.min(window.innerWidth, box.right);
    Array.from(table.tHead.rows[0].cells).forEach((th, i) => {
      if (!keys.some((key) => th.textContent.includes(key))) return;
      const column = [th, ...Array.from(table.tBodies[0].rows, (row) => row.cells[i])];
      column.forEach((cell) => {
        const rect = cell.getBoundingClientRect();
        cells.push({table: table.id, header: th.textContent, right: rect.right, width: rect.width, limit: limit});
      });
    });
  }
  return {page: document.documentElement.scrollWidth, window: window.innerWidth, cells: cells};
}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """One dataset, a baseline, classic and rebalancing references and two generators, 2 × 2 runs; cgan's KID floor
    is negative (sampling noise, as a real floor can be) and its first run has its own precision/recall and copies of
    training images."""
    root = tmp_path_factory.mktemp("layout")
    make_fake_results(root, datasets=("pneumoniamnist",), strategies=STRATEGIES, seeds=(0, 1), generator_seeds=(0, 1))
    for path in sorted((root / "records").glob("pneu-cgan-*.json")):
        record = json.loads(path.read_text())
        quality = record["result"]["strategy"]["quality"]
        quality["matched"]["floor"]["kid_mean"] = -0.00004
        if path.name == "pneu-cgan-simple_cnn-0-0.json":
            quality["matched"]["fake_vs_real"] |= {"precision": 0.3, "recall": 0.7}
            quality["memorisation"]["pixel"] |= {"exact_copies": 1, "near_copies": 3}
            quality["memorisation"]["feature"] |= {"near_copies": 2}
        path.write_text(json.dumps(record))
    return root


@pytest.fixture(scope="module")
def report(folder) -> Path:
    return write_report(folder)


def _table(html: str, table_id: str) -> str:
    table = html[html.index(f'id="{table_id}"') :]
    return table[: table.index("</table>")]


def _rows(html: str, table_id: str) -> dict[str, list[str]]:
    """A table's body rows by their first cell, each as its cells' shown texts (wrap spans removed)."""
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", _table(html, table_id))]
    return {cells[0]: [re.sub(r"</?span>", "", cell) for cell in cells] for cells in rows if cells}


def test_key_columns_fit_a_1400_px_window(browser, report, tmp_path):  # noqa: F811
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    try:
        page.goto(report.resolve().as_uri(), wait_until="load")
        measured = page.evaluate(MEASURE, list(KEY_COLUMNS))
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()
    assert measured["window"] == WIDTH and measured["page"] <= WIDTH  # no horizontal scrollbar on the page
    cells = measured["cells"]
    for prefix in KEY_TABLES:
        assert any(c["table"] == f"{prefix}-pneumoniamnist" for c in cells), prefix
    for key in KEY_COLUMNS:
        assert any(key in c["header"] for c in cells), key
    hidden = [c for c in cells if c["width"] <= 0 or c["right"] > c["limit"] + 0.5]
    assert not hidden, hidden[:5]  # every key cell lies inside the window and inside its table's box
    with Image.open(shot) as image:  # a full-page screenshot is as wide as the page: nothing sticks out
        assert image.width == WIDTH and image.height > 2000


def test_contents_link_every_part(report):
    html = report.read_text(encoding="utf-8")
    nav = html[html.index('<nav class="toc" id="contents"') : html.index("</nav>")]
    targets = re.findall(r'href="#([^"]+)"', nav)
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    assert targets and all(target in ids for target in targets)
    for key, title in DATASET_PARTS:
        assert f'href="#ds-pneumoniamnist-{key}">{title}<' in nav
    assert nav.count("<li>") == 1 + len(DATASET_PARTS) + 4  # the dataset, its parts, the closing sections
    # the parts that decide come before variance, plots and images on the page
    order = [html.index(f'id="ds-pneumoniamnist-{key}"') for key, _ in DATASET_PARTS]
    assert order == sorted(order)


def test_quality_table_shows_precision_recall_and_copies(report):
    rows = _rows(report.read_text(encoding="utf-8"), "quality-pneumoniamnist")
    assert set(rows) == {"cgan", "vae"}  # generative rows only
    cells = rows["cgan"]
    # precision 0.3 / recall 0.7 in one run of four, 0.5 in the others; copies summed over the runs, of 4 × 20 images
    assert "0.45 ± 0.10" in cells and "0.55 ± 0.10" in cells and "0.90 ± 0.00" in cells
    assert cells[-3:] == ["1 / 3", "0 / 2", "80"]
    assert rows["vae"][-3:] == ["0 / 0", "0 / 0", "80"]


def test_kid_is_shown_times_1000_with_a_negative_estimate_as_about_zero():
    row = {"kid_mean": 0.0123, "kid_std": 0.002, "kid_floor_mean": -0.00004, "kid_shift_mean": 0.0009}
    assert fmt_kid(row) == "12.30 ± 2.00 (floor ≈0 (-0.04, sampling noise); train→test shift 0.90)"
    assert fmt_kid(row | {"kid_mean": -0.0001, "kid_shift_mean": float("nan")}) == (
        "≈0 (-0.10 ± 2.00, sampling noise) (floor ≈0 (-0.04, sampling noise))"
    )
    assert fmt_kid(row | {"kid_mean": float("nan")}) == "–"


def test_kid_header_names_its_unit_and_the_note_explains_negatives(report):
    html = report.read_text(encoding="utf-8")
    assert "KID ×10³ (floor; shift)" in _table(html, "quality-pneumoniamnist")
    rows = _rows(html, "quality-pneumoniamnist")
    assert any("(floor ≈0 (-0.04, sampling noise); train→test shift" in cell for cell in rows["cgan"])
    assert not any("≈0" in cell for cell in rows["vae"])  # vae's floor is positive
    assert "never as better than real images" in html  # the note says why


def test_a_dataset_without_generators_says_so(tmp_path):
    make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("none", "geometric"), seeds=(0, 1))
    html = write_report(tmp_path).read_text(encoding="utf-8")
    part = html[html.index('id="ds-pneumoniamnist-quality"') : html.index('id="ds-pneumoniamnist-compute"')]
    assert "No generative strategy ran on this dataset." in part and "<table" not in part


def test_a_generator_without_quality_records_shows_dashes(tmp_path):
    make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("none", "cgan"), seeds=(0, 1))
    for path in (tmp_path / "records").glob("pneu-cgan-*.json"):
        record = json.loads(path.read_text())
        del record["result"]["strategy"]["quality"]
        path.write_text(json.dumps(record))
    rows = _rows(write_report(tmp_path).read_text(encoding="utf-8"), "quality-pneumoniamnist")
    assert list(rows) == ["cgan"] and rows["cgan"][-9:] == ["–"] * 9  # FID, KID, PRDC, copies, audited


def test_contents_lead_with_unreadable_records_and_failed_cells(tmp_path):
    make_fake_results(
        tmp_path,
        datasets=("pneumoniamnist",),
        strategies=("none", "cgan"),
        seeds=(0, 1),
        failed=(("pneumoniamnist", "cgan", 1),),
    )
    path = tmp_path / "records" / "pneu-cgan-simple_cnn-0.json"
    path.write_text(path.read_text()[:100])  # truncated
    html = write_report(tmp_path).read_text(encoding="utf-8")
    nav = html[html.index('<nav class="toc" id="contents"') : html.index("</nav>")]
    assert nav.index('href="#unreadable"') < nav.index('href="#failed"') < nav.index('href="#ds-pneumoniamnist"')
    assert 'id="unreadable"' in html and 'id="failed"' in html
