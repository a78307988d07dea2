"""The HTML report's optional sections: robustness under MedMNIST-C corruptions and worth in real images appear, in
the table of contents too, only for folders whose records have them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from benchmark.grid.store import OK, load_records, write_record
from benchmark.publish.report import write_report
from benchmark.publish.report_sections import FINDING_SECTIONS
from benchmark.train.record import CorruptionScore, RobustnessReport
from tests.fake_results import make_fake_results, make_learning_curve_results
from tests.test_report import browser  # noqa: F401  (the fixture: Debian's chromium via Playwright, or a skip)
from tests.test_report_layout import MEASURE, WIDTH
from tests.test_robustness import with_blocks

# Eleven corruptions and five classes: wider than any dataset's robustness table.
CORRUPTIONS = tuple(f"corruption_{index}" for index in range(11))
# Header fragments of the new tables' columns that must be visible without horizontal scrolling.
KEY_COLUMNS = ("Clean bal. error", "Corrupted bal. error", "Relative mCE", "ECE", "Corrupted recall", "needs", "×")


def _section(html: str, key: str) -> str:
    """The HTML of the section with this id."""
    start = html.index(f'<section id="{key}">')
    return html[start : html.index("</section>", start)]


def _contents(html: str) -> str:
    start = html.index('<nav class="toc"')
    return html[start : html.index("</nav>", start)]


@pytest.fixture(scope="module")
def robust(tmp_path_factory) -> str:
    """BreastMNIST, none and geometric, two runs each, every run with a fabricated robustness block (geometric's
    corruption errors two thirds of none's)."""
    root = tmp_path_factory.mktemp("robust")
    make_fake_results(root, datasets=("breastmnist",), strategies=("none", "geometric"), seeds=(0, 1))
    for record in with_blocks(load_records(root), {"none": 0.3, "geometric": 0.2}):
        assert record.status == OK
        write_record(root, record)
    return write_report(root).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def worth(tmp_path_factory) -> str:
    """PneumoniaMNIST learning curves of none and geometric with cgan at 10 %."""
    root = tmp_path_factory.mktemp("worth")
    make_learning_curve_results(root, seeds=(0, 1), generator_seeds=None)
    return write_report(root).read_text(encoding="utf-8")


def test_a_folder_with_robustness_blocks_gets_the_robustness_section(robust):
    section = _section(robust, "robustness")
    assert '<a href="#robustness">' in _contents(robust) and 'id="worth"' not in robust
    assert 'id="robustness-table-breastmnist"' in section and 'id="corruptions-breastmnist"' in section
    assert 'data-value="0.6666666666666666">0.667</td>' in section  # geometric's relative mCE against none
    assert ">gaussian_noise (%)</th>" in section and "Corrupted recall, class 1 (%)" in section
    assert section.count('<figure class="plot wide"><img src="data:image/png;base64,') == 1  # one panel per fraction
    assert robust.index('<section id="robustness">') < robust.index('<section id="cross">')


def test_a_folder_with_a_none_learning_curve_gets_the_worth_section(worth):
    section = _section(worth, "worth")
    assert '<a href="#worth">' in _contents(worth) and 'id="robustness"' not in worth
    for curve in ("none", "geometric"):
        assert f'id="worth-pneumoniamnist-simple_cnn-{curve}"' in section
    assert "Real images `none` needs [95% CI]" in section and ">cgan</td>" in section
    assert section.count('<figure class="plot">') == 4  # two curves × two metrics
    assert section.index("Test AUC on the `none` learning curve.") < section.index(
        "Test AUC on the `geometric` learning curve."
    )  # the figures in the tables' order


def test_a_folder_without_them_gets_neither(tmp_path):
    make_fake_results(tmp_path, datasets=("breastmnist",), strategies=("none", "geometric"), seeds=(0, 1))
    html = write_report(tmp_path).read_text(encoding="utf-8")
    for key, title in FINDING_SECTIONS.items():
        assert f'id="{key}"' not in html and title not in html


def test_the_sections_escape_names_from_the_folder(tmp_path: Path):
    make_fake_results(tmp_path, datasets=("breastmnist",), strategies=("none", "geo<b>"), seeds=(0, 1))
    records = with_blocks(load_records(tmp_path), {"none": 0.3, "geo<b>": 0.2})
    for record in records:
        write_record(tmp_path, record)
    section = _section(write_report(tmp_path).read_text(encoding="utf-8"), "robustness")
    assert "geo&lt;b&gt;" in section and "geo<b>" not in section


@pytest.mark.slow
def test_both_sections_fit_a_1400_px_window(browser, tmp_path):  # noqa: F811
    block = RobustnessReport(
        "medmnistc 0.1.0", "key", 0, 200, [CorruptionScore(n, 3, 0.2, None, 0.1, [0.5] * 5) for n in CORRUPTIONS], 1.0
    )
    for record in make_learning_curve_results(tmp_path, seeds=(0, 1), generator_seeds=None):
        write_record(tmp_path, dataclasses.replace(record, result=dataclasses.replace(record.result, robustness=block)))
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    try:
        page.goto(write_report(tmp_path).resolve().as_uri(), wait_until="load")
        measured = page.evaluate(MEASURE, list(KEY_COLUMNS))
    finally:
        page.close()
    assert measured["page"] <= WIDTH  # no horizontal scrollbar on the page
    tables = {c["table"] for c in measured["cells"]}
    assert {"robustness-table-pneumoniamnist", "worth-pneumoniamnist-simple_cnn-none"} <= tables
    hidden = [c for c in measured["cells"] if c["width"] <= 0 or c["right"] > c["limit"] + 0.5]
    assert not hidden, hidden[:5]
