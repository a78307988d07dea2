"""Compute curves (issue 22): one point per results folder and strategy at the FLOPs its cells counted, the mean test
metric over runs with a t-interval over generator-seed means, and the command's files and messages."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from benchmark.errors import MedAugBenchError
from benchmark.publish import stats
from benchmark.publish.compute_curve import compute_curve, curve_segments
from benchmark.publish.inference import seed_means
from tests.fake_results import make_fake_results

STRATEGIES = ("none", "geometric", "cgan")


def scale_flops(folder, factor: float) -> None:
    """Rewrite the folder's records as if every cell had spent `factor` times its FLOPs (a larger compute total)."""
    for path in (folder / "records").glob("*.json"):
        record = json.loads(path.read_text())
        record["result"]["compute"]["total"]["flops"] *= factor
        path.write_text(json.dumps(record))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    small, large = tmp_path_factory.mktemp("x2"), tmp_path_factory.mktemp("x8")
    kept = {}
    for folder, factor in ((small, 1.0), (large, 4.0)):
        records = make_fake_results(
            folder, datasets=("pneumoniamnist",), strategies=STRATEGIES, seeds=(0, 1), generator_seeds=(0, 1, 2)
        )
        scale_flops(folder, factor)
        kept[folder] = records
    return small, large, kept


def test_a_point_is_a_folders_row_with_its_mean_flops_and_a_ci_over_generator_seed_means(folders):
    small, large, kept = folders
    table = compute_curve([small, large])
    auc = table[table["metric"] == "auc"]
    assert len(auc) == 2 * len(STRATEGIES)
    for folder, factor in ((small, 1.0), (large, 4.0)):
        for strategy in STRATEGIES:
            runs = [r for r in kept[folder] if r.cell["strategy"] == strategy]
            row = auc[(auc["folder"] == str(folder)) & (auc["entry"] == strategy)].iloc[0]
            values = [r.result.metrics.test["auc"] for r in runs]
            flops = [r.result.compute.total.flops * factor for r in runs]
            assert row["runs"] == len(runs) == 6 and row["generator_seeds"] == 3
            assert row["mean"] == pytest.approx(np.mean(values))
            assert row["total_flops"] == pytest.approx(np.mean(flops))
            interval = stats.t_interval(seed_means(values, [r.cell["generator_seed"] for r in runs]))
            assert (row["ci_low"], row["ci_high"]) == pytest.approx((interval["low"], interval["high"]))
    generative = auc[auc["entry"] == "cgan"].sort_values("total_flops")
    assert generative["total_flops"].iloc[1] == pytest.approx(4 * generative["total_flops"].iloc[0])


def test_the_command_writes_the_table_and_a_plot_per_dataset_and_metric(folders, cli, tmp_path):
    small, large, _ = folders
    out = tmp_path / "curve"
    result = cli("compute-curve", str(small), str(large), "--out", str(out))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "compute_curve.csv")
    assert set(table["metric"]) == {"auc", "balanced_accuracy"}
    assert (out / "compute_curve_pneumoniamnist_simple_cnn_1_auc.png").is_file()
    text = (out / "compute_curve.md").read_text()
    assert "## pneumoniamnist · simple_cnn · 100% of the training split · Test AUC" in text and "| cgan |" in text


def test_a_folder_without_records_or_a_missing_one_is_one_message(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedAugBenchError, match="no successful cell with counted FLOPs"):
        compute_curve([tmp_path / "empty"])
    result = cli("compute-curve", str(tmp_path / "absent"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "is not a folder" in result.output
    assert not (tmp_path / "out").exists()


def test_points_of_other_runs_are_not_joined(folders, tmp_path):
    # the compute extension: geometric's 1x-4x points average seeds 0-2, its 8x-32x points one seed's run
    small, large = (shutil.copytree(folder, tmp_path / folder.name) for folder in folders[:2])
    for path in (large / "records").glob("*.json"):
        if json.loads(path.read_text())["cell"]["generator_seed"] != 0:
            path.unlink()
    points = compute_curve([small, large])
    points = points[(points["metric"] == "auc") & (points["entry"] == "geometric")]
    assert points["run_seeds"].tolist() == ["0/0 0/1 1/0 1/1 2/0 2/1", "0/0 0/1"]
    assert [len(segment) for segment in curve_segments(points)] == [1, 1]
    same = points.assign(run_seeds="0/0")
    assert [len(segment) for segment in curve_segments(same)] == [2]
