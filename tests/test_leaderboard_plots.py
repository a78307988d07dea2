"""Leaderboard figures from a fake results folder: every expected PNG, skipped figures without data, the CI numbers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from benchmark.grid.store import load_records
from benchmark.publish.leaderboard import build_leaderboard
from benchmark.publish.plots import (
    CD_FILE,
    distinct_colours,
    fid_summaries,
    group_records,
    metric_summaries,
    write_plots,
)
from benchmark.publish.stats import t_interval
from tests.fake_results import make_fake_results


def metric_summary(records, dataset, metric):
    """The CI figure's numbers of one dataset."""
    return metric_summaries(group_records(records, dataset), metric)


DATASETS = ("pneumoniamnist", "retinamnist")
ALWAYS = ("auc_ci", "auc_vs_compute", "accuracy_ci", "per_class_f1", "val_curves")  # the first two need AUC
GENERATIVE = ("fid_vs_auc", "generator_quality")


def expected(folder, kinds, datasets=DATASETS):
    return sorted(folder / f"{dataset}_{kind}.png" for dataset in datasets for kind in kinds)


@pytest.mark.slow
def test_every_figure_is_a_valid_png(tmp_path):
    make_fake_results(tmp_path / "results", failed=(("retinamnist", "cgan", 1),))
    paths = write_plots(load_records(tmp_path / "results"), tmp_path / "plots")
    assert paths == expected(tmp_path / "plots", ALWAYS + GENERATIVE)
    assert sorted((tmp_path / "plots").iterdir()) == paths  # no temp files left behind
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 200
            image.verify()


@pytest.mark.slow
def test_critical_difference_diagram_needs_three_blocks(tmp_path):
    make_fake_results(tmp_path / "results", datasets=(*DATASETS, "breastmnist"))
    records = load_records(tmp_path / "results")
    paths = write_plots(records, tmp_path / "plots")
    assert tmp_path / "plots" / CD_FILE in paths
    with Image.open(tmp_path / "plots" / CD_FILE) as image:
        assert image.format == "PNG" and min(image.size) > 100
    two = [r for r in records if r.cell["dataset"] != "breastmnist"]
    assert tmp_path / "plots2" / CD_FILE not in write_plots(two, tmp_path / "plots2")  # two blocks: no test, no diagram


def test_figures_without_data_are_skipped(tmp_path):
    make_fake_results(tmp_path / "results", datasets=DATASETS[1:], strategies=("none", "geometric"))
    records = load_records(tmp_path / "results")
    assert write_plots(records, tmp_path / "plots") == expected(tmp_path / "plots", ALWAYS, DATASETS[1:])
    for record in records:  # AUC undefined everywhere: no AUC figure, validation curves fall back to accuracy
        record.result.metrics.test.auc = None
        record.result.curves.val_auc = [None] * len(record.result.curves.step)
    assert metric_summary(records, "retinamnist", "auc") == {}
    assert write_plots(records, tmp_path / "plots2") == expected(tmp_path / "plots2", ALWAYS[2:], DATASETS[1:])


def test_single_seed(tmp_path):
    make_fake_results(tmp_path / "results", datasets=DATASETS[1:], seeds=(0,))
    records = load_records(tmp_path / "results")
    assert write_plots(records, tmp_path / "plots") == expected(tmp_path / "plots", ALWAYS + GENERATIVE, DATASETS[1:])
    summary = metric_summary(records, "retinamnist", "auc")["cgan"]
    assert len(summary.values) == 1 and summary.low is None and summary.high is None  # one seed: no interval


@pytest.mark.parametrize("metric", ["auc", "accuracy"])
def test_metric_summaries_are_mean_and_t_interval_over_seeds(tmp_path, metric):
    make_fake_results(tmp_path / "results", failed=(("retinamnist", "cgan", 1),))
    records = load_records(tmp_path / "results")
    summaries = metric_summary(records, "retinamnist", metric)
    assert list(summaries) == ["none", "cgan", "geometric"]  # baseline first
    for label, summary in summaries.items():
        values = [
            r.result.metrics.test[metric]
            for r in records
            if r.ok and r.cell["dataset"] == "retinamnist" and r.cell["strategy"] == label
        ]
        assert len(values) == (2 if label == "cgan" else 3)  # the failed cell is left out
        ci = t_interval(values)
        assert summary.values == values
        assert summary.mean == pytest.approx(np.mean(values))
        assert (summary.low, summary.high) == pytest.approx((ci["low"], ci["high"]))
        assert summary.low <= summary.mean <= summary.high


def test_labels_split_backbones(tmp_path):
    make_fake_results(
        tmp_path / "results",
        datasets=("pneumoniamnist",),
        strategies=("none", "cgan"),
        backbones=("simple_cnn", "resnet18"),
    )
    summaries = metric_summary(load_records(tmp_path / "results"), "pneumoniamnist", "auc")
    assert list(summaries) == ["none/resnet18", "cgan/resnet18", "none/simple_cnn", "cgan/simple_cnn"]
    assert all(len(s.values) == 3 for s in summaries.values())


def test_fid_summaries_are_the_leaderboards_class_matched_fid_and_floor(tmp_path):
    make_fake_results(tmp_path / "results")
    records = load_records(tmp_path / "results")
    wide = build_leaderboard(tmp_path / "results").wide
    for dataset in DATASETS:
        row = wide[dataset].set_index("model").loc["cgan"]
        summaries = fid_summaries(group_records(records, dataset))
        fid, floor = summaries["fake_vs_real"]["cgan"], summaries["floor"]["cgan"]
        assert fid.mean == pytest.approx(row["fid_mean"]) and floor.mean == pytest.approx(row["fid_floor_mean"])
        assert (fid.low, fid.high) == pytest.approx(tuple(t_interval(fid.values).values())[:2])
        assert list(summaries["fake_vs_real"]) == ["cgan"]  # classic strategies have no FID


@pytest.mark.parametrize("count", [1, 9, 10, 15, 20])
def test_rows_never_share_a_colour_up_to_twenty(count):
    # answer-2 plots 15 strategies per dataset: with matplotlib's ten cycle colours, two rows read as one
    assert len(set(distinct_colours(count))) == count
