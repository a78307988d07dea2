"""Publishing under hostile input (issue 23): every file `leaderboard` and `report` write lies inside their output,
named from a sanitised label; a record they cannot read is named, never silently dropped; a table without its
baseline is refused unless asked for; a wrong --out is one message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.data.labels import safe_label
from benchmark.errors import MedAugBenchError
from benchmark.publish.leaderboard import build_leaderboard
from benchmark.publish.report import write_report
from tests.fake_results import make_fake_results
from tests.helpers import one_line_error

SMALL = {"datasets": ("pneumoniamnist",), "strategies": ("none", "geometric"), "seeds": (0, 1), "n_test": 60}


def small_results(root: Path, **overrides) -> list:
    """A one-dataset results folder that publishes in seconds."""
    return make_fake_results(root, **(SMALL | overrides))


def set_dataset(root: Path, dataset: str, cell_ids: list[str] | None = None) -> None:
    """Rewrite the records' (or only these cells') dataset string, as a hostile or path-named grid would have it."""
    for path in (root / "records").glob("*.json"):
        if cell_ids is None or path.stem in cell_ids:
            data = json.loads(path.read_text())
            data["cell"]["dataset"] = dataset
            path.write_text(json.dumps(data))


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("pneumoniamnist", "pneumoniamnist"),
        ("/data/own/xrays", "xrays-"),
        ("../../../x", "x-"),
        ("..", "unnamed-"),
        ("C:\\scans\\Chest X", "chest-x-"),
        ("stats", "stats-"),  # reserved: a dataset named like a fixed table never overwrites it
    ],
)
def test_safe_label_is_a_plain_file_name(text, label):
    found = safe_label(text, reserved={"stats"})
    assert found.startswith(label) and (found == label) == (label == text)
    assert "/" not in found and "\\" not in found and not found.startswith(".")


def test_same_basename_in_two_folders_gets_two_labels():
    assert safe_label("/a/xrays") != safe_label("/b/xrays") != safe_label("xrays") == "xrays"


def test_absolute_dataset_path_writes_nothing_beside_the_users_data(cli, tmp_path):
    own = tmp_path / "own"
    own.mkdir()
    (own / "xrays.csv").write_text("the user's own table\n")
    results = tmp_path / "results"
    small_results(results)
    set_dataset(results, str(own / "xrays"))
    before = files_under(tmp_path)
    result = cli("leaderboard", str(results))
    assert result.exit_code == 0, result.output
    assert (own / "xrays.csv").read_text() == "the user's own table\n" and files_under(own) == {own / "xrays.csv"}
    written = files_under(tmp_path) - before
    assert written and all(results / "leaderboard" in p.parents for p in written)
    label = safe_label(str(own / "xrays"))
    assert (results / "leaderboard" / f"{label}.csv").is_file()
    assert (results / "leaderboard" / "plots" / f"{label}_auc_ci.png").is_file()


@pytest.mark.slow
def test_dot_dot_in_a_record_stays_inside_for_leaderboard_and_report(tmp_path):
    results = tmp_path / "deep" / "er" / "results"
    small_results(results)
    set_dataset(results, "../../../x")
    before = files_under(tmp_path)
    from benchmark.publish.leaderboard import write_leaderboard
    from benchmark.publish.plots import write_plots

    board = write_leaderboard(results)
    write_plots(board.records, results / "leaderboard" / "plots")
    report = write_report(results)
    assert all(results in p.parents for p in files_under(tmp_path) - before)
    assert {p.name for p in (results / "leaderboard").glob("x-*.csv")} == {f"{safe_label('../../../x')}.csv"}
    assert "../../../x" in report.read_text(), "the dataset is still shown by its name"


def test_two_datasets_with_one_basename_get_their_own_files(tmp_path):
    records = small_results(tmp_path)
    set_dataset(tmp_path, "/a/xrays", [r.cell_id for r in records if r.cell["seed"] == 0])
    set_dataset(tmp_path, "/b/xrays", [r.cell_id for r in records if r.cell["seed"] == 1])
    from benchmark.publish.leaderboard import write_leaderboard
    from benchmark.publish.plots import write_plots

    board = write_leaderboard(tmp_path, allow_missing_baseline=True)
    names = {p.name for p in board.paths}
    assert {f"{safe_label('/a/xrays')}.csv", f"{safe_label('/b/xrays')}.csv"} <= names
    plots = {p.name for p in write_plots(board.records, tmp_path / "plots")}
    assert {f"{safe_label(d)}_auc_ci.png" for d in ("/a/xrays", "/b/xrays")} <= plots


def damage(root: Path, cell_id: str, how: str) -> Path:
    """Damage a cell's files the way the issue saw it happen; returns the damaged file."""
    record = root / "records" / f"{cell_id}.json"
    if how == "truncated json":
        record.write_text(record.read_text()[:200])
    elif how == "wrong shape":
        record.write_text(json.dumps(json.loads(record.read_text()) | {"cell": 5}))
    elif how == "bad result":
        data = json.loads(record.read_text())
        data["result"]["metrics"] = {"test": [1, 2]}
        record.write_text(json.dumps(data))
    elif how == "hostile id":
        record.write_text(json.dumps(json.loads(record.read_text()) | {"cell_id": "../../escape"}))
    else:  # truncated npz
        npz = record.with_suffix(".npz")
        npz.write_bytes(npz.read_bytes()[:100])
        return npz
    return record


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("truncated json", "not valid JSON"),
        ("wrong shape", ""),  # the store's reader or the leaderboard's check says why, in its words
        ("bad result", ""),
        ("hostile id", "is not its file name"),
    ],
)
def test_a_lost_baseline_record_is_named_and_refused(cli, tmp_path, how, reason):
    records = small_results(tmp_path, seeds=(0,))
    baseline = next(r.cell_id for r in records if r.cell["strategy"] == "none")
    damaged = damage(tmp_path, baseline, how)
    line = one_line_error(cli("leaderboard", str(tmp_path)))
    assert "baseline 'none' has no successful run in pneumoniamnist" in line
    assert str(damaged) in line and reason in line and "--allow-missing-baseline" in line
    assert not (tmp_path / "leaderboard").exists(), "nothing written on refusal"

    published = cli("leaderboard", str(tmp_path), "--allow-missing-baseline")
    assert published.exit_code == 0, published.output
    warnings = [line for line in published.output.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and damaged.name in warnings[0] and reason in warnings[0]
    markdown = (tmp_path / "leaderboard" / "leaderboard.md").read_text()
    assert "Records that could not be read (1)" in markdown and damaged.name in markdown
    assert "No successful `none` run in pneumoniamnist" in markdown


@pytest.mark.slow
def test_a_truncated_predictions_file_is_named_and_the_table_still_published(cli, tmp_path):
    records = small_results(tmp_path)
    damaged = damage(tmp_path, records[-1].cell_id, "truncated npz")
    result = cli("leaderboard", str(tmp_path))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and damaged.name in warnings[0] and ".npz" in warnings[0]
    report = write_report(tmp_path).read_text()
    assert 'id="unreadable"' in report and damaged.name in report


def test_a_wrong_baseline_name_is_refused(tmp_path):
    small_results(tmp_path)
    with pytest.raises(MedAugBenchError, match="baseline 'nonee' has no successful run"):
        build_leaderboard(tmp_path, "nonee")


def test_out_of_the_wrong_kind_is_one_message(cli, tmp_path):
    results = tmp_path / "results"
    small_results(results)
    a_file = tmp_path / "taken.txt"
    a_file.write_text("mine")
    line = one_line_error(cli("leaderboard", str(results), "--out", str(a_file)))
    assert "is a file" in line and "medaugbench report" in line and a_file.read_text() == "mine"
    line = one_line_error(cli("leaderboard", str(results), "--out", str(a_file / "sub")))
    assert "cannot write" in line and a_file.read_text() == "mine"
    line = one_line_error(cli("report", str(results), "--out", str(tmp_path)))
    assert "is a folder" in line and "report.html" in line
    assert not list(tmp_path.glob("*.html")) and not (results / "leaderboard").exists()


def test_the_report_hint_names_the_report_of_this_leaderboard(tmp_path):
    from benchmark.cli.publish import report_hint

    small_results(tmp_path)
    assert report_hint(tmp_path, "none", None, False) == f"medaugbench report {tmp_path}"
    hint = report_hint(tmp_path, "geometric", tmp_path / "board", True)
    assert hint == (
        f"medaugbench report {tmp_path} --baseline geometric --out {tmp_path / 'board' / 'report.html'} "
        "--allow-missing-baseline"
    )


def test_shipped_extractor_weights_are_named_from_labels(tmp_path):
    """A record naming its extractor `../../escape` for a dataset path still ships into RESULTS/extractors."""
    from benchmark.data.files import file_digest
    from benchmark.evaluate.features import ship_weights
    from benchmark.generate.checkpoints import CARD

    weights = tmp_path / "cache" / "weights.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"weights")
    (weights.parent / CARD).write_text("{}")
    described = {"name": "../../escape", "dataset": "/data/own/xrays", "weights": str(weights)}
    folder = tmp_path / "results" / "extractors"
    shipped = ship_weights(described | {"weights_sha256": file_digest(weights, "sha256")}, folder)
    assert shipped.parent == folder and shipped.name.startswith(f"{safe_label('/data/own/xrays')}-escape-")
    assert {p.parent for p in tmp_path.rglob("*") if p.is_file()} == {weights.parent, folder}
