"""The HTML report: content and escaping on fake results folders, the CLI command, and the page in a real headless
Chromium (no console errors, working column sorting, a screenshot)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from benchmark.errors import MedAugBenchError
from benchmark.grid.store import pairs_path, samples_path
from benchmark.publish.leaderboard import build_leaderboard
from benchmark.publish.report import write_report
from benchmark.publish.report_images import NO_IMAGES
from tests.fake_results import make_fake_results

STRATEGIES = ("none", "geometric", "cgan")
FAILED = (("pneumoniamnist", "cgan", 1),)


def _png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (48, 24)) -> None:
    Image.new("RGB", size, colour).save(path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two datasets × three strategies × three seeds, one failed cell with an HTML-hostile message, images saved
    only for pneumoniamnist's cgan (seed 2: seed 1 failed, seed 0 is an older run without images), a grid.json."""
    root = tmp_path_factory.mktemp("results")
    make_fake_results(root, strategies=STRATEGIES, failed=FAILED)
    record_file = next((root / "records").glob("pneu-cgan-simple_cnn-1.json"))
    record = json.loads(record_file.read_text())
    record["error"] = {
        "type": "RuntimeError",
        "message": "cgan exploded <script>alert('x')</script> & more",
        "traceback": 'Traceback (most recent call last):\n  File "<cell>", line 1\nRuntimeError: <boom>',
    }
    record_file.write_text(json.dumps(record))
    _png(samples_path(root, "pneu-cgan-simple_cnn-2"), (200, 30, 30))
    _png(pairs_path(root, "pneu-cgan-simple_cnn-2"), (30, 30, 200))
    grid = {
        "name": "fake-grid",
        "description": "A <b>fake</b> grid",
        "baseline": "none",
        "datasets": ["pneumoniamnist", "retinamnist"],
        "strategies": list(STRATEGIES),
        "budget": {"classifier_steps": 200, "generator_steps": 300},
    }
    (root / "grid.json").write_text(
        json.dumps(
            {"grid": grid, "environment": {"python": "3.11", "torch": "2.x"}, "written": "2026-01-01T00:00:00+00:00"}
        )
    )
    return root


@pytest.fixture(scope="module")
def report(folder) -> str:
    return write_report(folder).read_text(encoding="utf-8")


def test_report_has_every_strategy_dataset_and_the_budget(folder, report):
    assert (folder / "report.html").is_file()
    assert report.startswith("<!DOCTYPE html>")
    for name in (*STRATEGIES, "pneumoniamnist", "retinamnist", "fake-grid"):
        assert f">{name}<" in report
    assert "classifier steps 200, generator steps 300" in report
    assert "18 cells: 17 ok" in report and "1 failed" in report
    assert 'id="leaderboard-pneumoniamnist"' in report and 'id="stats-retinamnist"' in report
    assert 'id="cross-dataset"' in report and 'id="ranks-table"' in report
    assert "&lt;b&gt;fake&lt;/b&gt; grid" in report  # the description is escaped, not rendered


def test_report_lists_the_failed_cell_escaped(report):
    section = report[report.index('<section id="failed"') :]
    section = section[: section.index("</section>")]
    assert "cgan exploded &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in section
    assert "<details><summary>traceback</summary><pre>Traceback" in section and "RuntimeError: &lt;boom&gt;" in section
    assert "<script>alert" not in report
    assert report.count("<script>") == 1  # only the sorter


def test_report_embeds_images_and_makes_no_external_requests(report):
    assert report.count("data:image/png;base64,") >= 2 + 4  # samples + pairs, and the plots
    assert "(cell pneu-cgan-simple_cnn-2)" in report  # the first seed that has images
    assert NO_IMAGES in report  # retinamnist's cgan saved none
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", report, re.IGNORECASE)
    assert not re.search(r"url\(", report)
    assert "default-src 'none'" in report
    srcs = re.findall(r"""src\s*=\s*["']([^"']*)""", report)
    assert srcs and all(src.startswith("data:image/png;base64,") for src in srcs)


def test_sort_values_are_the_underlying_numbers(report):
    table = report[report.index('id="leaderboard-pneumoniamnist"') :]
    table = table[: table.index("</table>")]
    headers = re.findall(r"<th [^>]*>([^<]*)</th>", table)
    rows = [
        [
            (value, re.sub(r"</?span>", "", shown))
            for value, shown in re.findall(r'<td[^>]*data-value="([^"]*)">(.*?)</td>', row)
        ]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table)[1:]
    ]
    assert len(rows) == 3 and all(len(row) == len(headers) for row in rows)
    for row in rows:
        value, shown = row[headers.index("Accuracy (%)")]
        assert re.fullmatch(r"\d+\.\d ± \d+\.\d", shown)
        assert abs(float(value) * 100 - float(shown.split(" ± ")[0])) <= 0.05 + 1e-9
        value, shown = row[headers.index("AUC")]
        assert abs(float(value) - float(shown.split(" ± ")[0])) <= 0.0005 + 1e-12
        value, shown = row[headers.index("AUC 95% CI")]
        assert shown.startswith("[") and abs(float(value) - float(shown[1:].split(",")[0])) <= 0.0005 + 1e-12


def _table_html(report: str, table_id: str) -> str:
    table = report[report.index(f'id="{table_id}"') :]
    return table[: table.index("</table>")]


def test_report_uses_the_leaderboards_numbers(folder, report):
    board = build_leaderboard(folder)
    cgan = board.wide["pneumoniamnist"].set_index("strategy").loc["cgan"]
    assert "Calibrated acc. (%)" in _table_html(report, "leaderboard-pneumoniamnist")
    table = _table_html(report, "quality-pneumoniamnist")
    assert "FID (floor; shift)" in table and "KID ×10³ (floor; shift)" in table
    shown = f"<span>{cgan['fid_mean']:.1f} ± {cgan['fid_std']:.1f}</span> <span>(floor {cgan['fid_floor_mean']:.1f};"
    shown += f"</span> <span>train→test shift {cgan['fid_shift_mean']:.1f})†</span>"  # wraps only between its parts
    assert f'data-value="{float(cgan["fid_mean"])!r}">{shown}</td>' in table
    assert "rank-deficient" in report and "Student-t" in report and "bootstrap CI over seeds" not in report
    stats_table = _table_html(report, "stats-pneumoniamnist")
    geometric = board.stats.set_index(["dataset", "strategy"]).loc["pneumoniamnist", "geometric"]
    assert f"{geometric['auc_t_p_holm']:.3g} / n too small" in stats_table
    assert "95% CI (uncorrected)" in stats_table and "Bootstrap" not in stats_table  # primary only
    bootstrap_table = _table_html(report, "stats-pneumoniamnist-bootstrap")  # the secondary test, folded below it
    assert f"(p {geometric['auc_bootstrap_p_holm']:.3g})" in bootstrap_table
    assert 'id="variance-pneumoniamnist"' in report and 'id="classic-pneumoniamnist"' in report
    assert "Does synthetic content beat rebalancing?" in report and "Minimum detectable difference" in report
    assert 'id="across-tasks"' in report and "not tested: fewer than three blocks" in report
    assert "Critical-difference diagram" not in report and "perfect generator" not in report
    assert "Holm-corrected" in report and "Per-run tests on the same test images (not corrected, not summed)" in report
    assert len(re.findall(r"<tr>", _table_html(report, "per-seed-pneumoniamnist"))) == 1 + 2 + 3  # per seed rows
    assert "FID" not in _table_html(report, "cross-dataset")


def test_report_without_grid_json_or_images(tmp_path):
    make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("none", "cgan"), seeds=(0,))
    out = write_report(tmp_path, tmp_path / "sub" / "r.html", baseline="cgan")
    text = out.read_text()
    assert "No readable grid.json" in text and NO_IMAGES in text
    assert "<code>cgan</code>" in text
    assert not list((tmp_path / "sub").glob("*.tmp"))


def test_missing_or_empty_folder_is_a_user_error(tmp_path):
    with pytest.raises(MedAugBenchError, match="medaugbench run"):
        write_report(tmp_path / "nope")
    (tmp_path / "empty" / "records").mkdir(parents=True)
    with pytest.raises(MedAugBenchError, match=r"empty.*medaugbench run"):
        write_report(tmp_path / "empty")


@pytest.mark.slow
def test_cli_report(cli, folder, tmp_path):
    out = tmp_path / "r.html"
    result = cli("report", str(folder), "--out", str(out), "--baseline", "geometric")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    assert "<code>geometric</code>" in out.read_text()


def test_cli_report_missing_folder(tmp_path):
    from typer.testing import CliRunner

    from benchmark.cli import app

    result = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines() if hasattr(result, "stderr") else result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "medaugbench run" in lines[0]
    assert "Traceback" not in result.output


# --- a real browser ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (its own browser downloads are not needed)."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("chromium not installed: apt-get install -y --no-install-recommends chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright not installed: pip install playwright (no `playwright install` needed)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def _open(browser, path: Path):
    """A page with the report loaded, and the list its console errors and page errors are collected into."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(f"console: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url}"))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.resolve().as_uri(), wait_until="load")
    return page, errors, requests


def _column(page, table: str, index: int) -> list[float | None]:
    values = page.eval_on_selector_all(f"#{table} tbody tr", f"rows => rows.map(r => r.cells[{index}].dataset.value)")
    return [float(v) if v else None for v in values]


@pytest.mark.slow
def test_browser_renders_sorts_and_screenshots(browser, tmp_path):
    folder = tmp_path / "results"
    make_fake_results(folder, strategies=("none", "geometric", "cutmix_mixup", "cgan", "vae"), seeds=(0, 1))
    _png(samples_path(folder, "pneu-cgan-simple_cnn-0"), (200, 30, 30))
    report = write_report(folder)
    page, errors, requests = _open(browser, report)
    try:
        table = "leaderboard-pneumoniamnist"
        headers = page.eval_on_selector_all(f"#{table} thead th", "hs => hs.map(h => h.textContent)")
        index = headers.index("Accuracy (%)")
        header = page.locator(f"#{table} thead th").nth(index)
        before = _column(page, table, index)
        assert len(before) == 5 and None not in before
        header.click()
        ascending = _column(page, table, index)
        assert ascending == sorted(before) and header.get_attribute("aria-sort") == "ascending"
        header.click()
        descending = _column(page, table, index)
        assert descending == sorted(before, reverse=True) and header.get_attribute("aria-sort") == "descending"
        # the shown text moved with the value: the first row's text is the largest mean, rounded
        first = page.locator(f"#{table} tbody tr").first.locator("td").nth(index).text_content()
        assert first.startswith(f"{descending[0] * 100:.1f}")
        # images decoded (a broken data URI would have naturalWidth 0)
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        assert widths and all(w > 0 for w in widths)
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        with Image.open(shot) as image:
            assert image.format == "PNG" and image.width >= 800 and image.height > 2000
            assert len(image.convert("L").getcolors(1 << 16) or ()) > 20  # not a blank page
        assert shot.stat().st_size > 50_000
        assert errors == []
        assert all(url.startswith(("file:", "data:")) for url in requests), requests
    finally:
        page.close()


@pytest.mark.slow
def test_browser_shows_failed_cells(browser, folder, tmp_path):
    report = write_report(folder, tmp_path / "failed.html")
    page, errors, requests = _open(browser, report)
    try:
        section = page.locator("#failed")
        assert section.is_visible()
        assert "cgan exploded <script>alert('x')</script> & more" in section.inner_text()
        assert page.locator("#failed details pre").is_hidden()  # the traceback is folded away until asked for
        page.locator("#failed details summary").click()
        assert "RuntimeError: <boom>" in page.locator("#failed details pre").inner_text()
        page.locator('a[href="#failed"]').first.click()
        assert page.evaluate("() => document.querySelector('#failed').getBoundingClientRect().top") < 900
        page.locator("#stats-pneumoniamnist thead th").nth(3).click()  # sorting a second table works too
        assert errors == []
        assert all(url.startswith(("file:", "data:")) for url in requests), requests
    finally:
        page.close()


@pytest.mark.slow
def test_report_shows_the_critical_difference_diagram_with_three_blocks(tmp_path):
    make_fake_results(tmp_path, datasets=("pneumoniamnist", "retinamnist", "breastmnist"), seeds=(0, 1))
    text = write_report(tmp_path).read_text(encoding="utf-8")
    ranks = text[text.index('<section id="ranks">') :]
    assert "Critical-difference diagram" in ranks and 'src="data:image/png;base64,' in ranks
    assert "Friedman χ²" in ranks and "Nemenyi critical difference" in ranks


def test_report_names_generator_and_classifier_seeds(tmp_path):
    make_fake_results(
        tmp_path, datasets=("pneumoniamnist",), strategies=("none", "cgan"), seeds=(0, 1), generator_seeds=(7, 8)
    )
    text = write_report(tmp_path).read_text(encoding="utf-8")
    assert "<dt>Seeds</dt><dd>generator 7, 8; classifier 0, 1</dd>" in text
    assert "Run (g/c)" in text and ">7/1<" in text  # the per-run tests name both seeds


def test_every_generator_seed_gets_its_sample_grid_once(tmp_path):
    """Issue 22: one sample grid per generator (generator seed), from its first cell that saved one; its other
    classifier seeds reuse the same synthetic set and add none."""
    make_fake_results(
        tmp_path, datasets=("pneumoniamnist",), strategies=("none", "cgan"), seeds=(0, 1), generator_seeds=(0, 1, 2)
    )
    cells = sorted(p.stem for p in (tmp_path / "records").glob("pneu-cgan-*.json"))
    for cell_id in cells:
        _png(samples_path(tmp_path, cell_id), (200, 30, 30))
    text = write_report(tmp_path).read_text(encoding="utf-8")
    shown = re.findall(r"\(cell (pneu-cgan-[^)]*)\)", text)
    assert sorted(set(shown)) == ["pneu-cgan-simple_cnn-0-0", "pneu-cgan-simple_cnn-1-0", "pneu-cgan-simple_cnn-2-0"]
    assert "generator seed 1, classifier seed 0" in text
