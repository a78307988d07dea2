"""Leaderboard tables from a fake results folder: numbers recomputed from the records and predictions by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from benchmark import stats
from benchmark.errors import MedAugBenchError
from benchmark.leaderboard import (
    METRICS,
    build_leaderboard,
    console_rows,
    write_leaderboard,
)
from benchmark.results_store import OK, CellRecord, load_predictions, write_record
from benchmark.task import TaskSpec
from tests.fake_results import TASKS, fake_result, make_fake_results

FAILED_CELL = ("pneumoniamnist", "cgan", 2)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two datasets × none/geometric/cgan × 3 seeds, one cgan cell failed; returns (root, records by coordinates)."""
    root = tmp_path_factory.mktemp("results")
    records = make_fake_results(root, failed=(FAILED_CELL,))
    return root, {(r.cell["dataset"], r.cell["strategy"], r.cell["seed"]): r for r in records}


@pytest.fixture(scope="module")
def board(folder):
    return write_leaderboard(folder[0])


def write_cell(root, dataset, strategy, seed, task, labels, scores):
    """One hand-made "ok" cell whose metrics come from the real classification_metrics."""
    cell = {"dataset": dataset, "strategy": strategy, "base_strategy": strategy, "backbone": "simple_cnn",
            "seed": seed, "train_fraction": 1.0, "policy": None}
    result = fake_result(task, dataset, strategy, labels, scores, np.random.default_rng(seed))
    write_record(root, CellRecord(f"{dataset}-{strategy}-{seed}", OK, cell, {}, result=result), labels, scores)


def test_wide_table_matches_records(board, folder):
    _, records = folder
    wide = board.wide["pneumoniamnist"]
    assert wide["auc_mean"].is_monotonic_decreasing
    for row in wide.to_dict("records"):
        ok = [r for (d, s, _), r in records.items() if d == "pneumoniamnist" and s == row["strategy"] and r.ok]
        assert row["n_seeds"] == len(ok)
        assert row["n_failed"] == (1 if row["strategy"] == "cgan" else 0)
        for metric in METRICS:
            values = np.array([r.result["metrics"]["test"][metric] for r in ok])
            assert row[f"{metric}_mean"] == pytest.approx(values.mean())
            assert row[f"{metric}_std"] == pytest.approx(values.std(ddof=1))
            assert row[f"{metric}_ci_low"] <= row[f"{metric}_mean"] <= row[f"{metric}_ci_high"]
    cgan = wide.set_index("strategy").loc["cgan"]
    fids = [r.result["strategy"]["quality"]["overall"]["fake_vs_train"]["fid"] for (d, s, _), r in records.items()
            if d == "pneumoniamnist" and s == "cgan" and r.ok]
    assert cgan["fid_mean"] == pytest.approx(np.mean(fids)) and cgan["generator_seconds_mean"] == 30.0
    assert math.isnan(wide.set_index("strategy").loc["none", "fid_mean"])


def test_long_table_has_every_cell(board):
    long = board.long
    assert len(long) == 18 and (long["status"] == "failed").sum() == 1
    failed = long[long["status"] == "failed"].iloc[0]
    assert failed["error"] == "cgan exploded" and math.isnan(failed["accuracy"])
    assert long.loc[long["strategy"] == "none", "fid"].isna().all()
    assert (long.loc[long["status"] == "ok", "classifier_seconds"] == 20.0).all()
    assert "average_precision" not in long  # no multilabel dataset here


def test_seed_tests_equal_direct_calls(board, folder):
    root, records = folder
    tests = board.seed_tests.set_index(["dataset", "strategy", "seed"])
    labels, base = load_predictions(root, records["pneumoniamnist", "none", 1].cell_id)
    _, other = load_predictions(root, records["pneumoniamnist", "geometric", 1].cell_id)
    row = tests.loc["pneumoniamnist", "geometric", 1]
    delong = stats.delong_test(labels, base[:, 1], other[:, 1])
    assert row["delong_p"] == pytest.approx(delong["p_value"]) and row["delong_diff"] == pytest.approx(delong["difference"])
    mcnemar = stats.mcnemar_test(labels, (base[:, 1] > 0.5).astype(int), (other[:, 1] > 0.5).astype(int))
    assert (row["mcnemar_b"], row["mcnemar_c"]) == (mcnemar["b"], mcnemar["c"])
    assert row["mcnemar_p"] == pytest.approx(mcnemar["p_value"])

    labels, base = load_predictions(root, records["retinamnist", "none", 1].cell_id)
    _, other = load_predictions(root, records["retinamnist", "cgan", 1].cell_id)
    row = tests.loc["retinamnist", "cgan", 1]
    multi = stats.delong_test_multiclass(labels, base, other)
    assert row["delong_diff"] == pytest.approx(multi["mean_difference"])
    assert row["delong_better"] + row["delong_worse"] == sum(c["p_value"] < 0.05 for c in multi["per_class"])
    assert row["mcnemar_b"] == stats.mcnemar_test(labels, base.argmax(1), other.argmax(1))["b"]


def test_stats_paired_difference_over_seeds(board, folder):
    _, records = folder
    row = board.stats.set_index(["dataset", "strategy"]).loc["retinamnist", "geometric"]
    for metric in ("accuracy", "auc"):
        a = [records["retinamnist", "none", s].result["metrics"]["test"][metric] for s in range(3)]
        b = [records["retinamnist", "geometric", s].result["metrics"]["test"][metric] for s in range(3)]
        expected = stats.paired_difference(a, b)
        assert row[f"{metric}_diff"] == pytest.approx(expected["mean_difference"])
        assert row[f"{metric}_t_p"] == pytest.approx(expected["t_p_value"])
        assert row[f"{metric}_wilcoxon_p"] == pytest.approx(expected["wilcoxon_p_value"])
    seeds = board.seed_tests.query("dataset == 'retinamnist' and strategy == 'geometric'")
    assert row["n_paired"] == 3 and row["delong_better"] == seeds["delong_better"].sum()
    assert row["mcnemar_better"] == ((seeds["mcnemar_p"] < 0.05) & (seeds["mcnemar_c"] > seeds["mcnemar_b"])).sum()
    cgan = board.stats.set_index(["dataset", "strategy"]).loc["pneumoniamnist", "cgan"]
    assert cgan["n_paired"] == 2  # the failed seed pairs with nothing


def test_hand_checked_binary_pair(tmp_path):
    task, labels = TASKS["pneumoniamnist"], np.array([0, 0, 0, 1, 1, 1])
    base = np.array([0.2, 0.6, 0.4, 0.7, 0.3, 0.8])  # right on 4 of 6; AUC 7/9
    other = np.array([0.1, 0.3, 0.45, 0.9, 0.6, 0.55])  # right on all 6 (c = 2, b = 0); AUC 1
    for strategy, p in (("none", base), ("geometric", other)):
        write_cell(tmp_path, "pneumoniamnist", strategy, 0, task, labels, np.stack([1 - p, p], axis=1))
    board = build_leaderboard(tmp_path)
    seed = board.seed_tests.iloc[0]
    assert (seed["mcnemar_b"], seed["mcnemar_c"], seed["mcnemar_p"]) == (0, 2, pytest.approx(0.5))
    assert seed["baseline_auc"] == pytest.approx(7 / 9) and seed["auc"] == pytest.approx(1.0)
    # structural components: positives' V10 differ by (0, 2/3, 0), negatives' V01 by (0, 1/3, 1/3) → var 5/81
    assert seed["delong_diff"] == pytest.approx(2 / 9)
    assert seed["delong_p"] == pytest.approx(2 * sps.norm.sf(2 / math.sqrt(5)))
    row = board.stats.iloc[0]
    assert row["accuracy_diff"] == pytest.approx(1 / 3) and row["auc_diff"] == pytest.approx(2 / 9)
    assert (row["mcnemar_b"], row["mcnemar_c"], row["mcnemar_better"], row["delong_better"]) == (0, 2, 0, 0)
    assert math.isnan(row["accuracy_t_p"])  # one seed: no t-test


def test_multilabel_delong_per_label_and_no_mcnemar(tmp_path):
    task = TaskSpec(kind="multilabel", labels=("a", "b"), channels=1)
    rng = np.random.default_rng(0)
    labels = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 5)
    base, other = rng.random(labels.shape), np.clip(labels * 0.6 + rng.random(labels.shape) * 0.4, 0, 1)
    write_cell(tmp_path, "chestmnist", "none", 0, task, labels, base)
    write_cell(tmp_path, "chestmnist", "mixup", 0, task, labels, other)
    board = build_leaderboard(tmp_path)
    assert "average_precision" in board.long
    seed = board.seed_tests.iloc[0]
    direct = [stats.delong_test(labels[:, j], base[:, j].astype(np.float32), other[:, j].astype(np.float32)) for j in range(2)]
    assert seed["delong_diff"] == pytest.approx(np.mean([d["difference"] for d in direct]))
    assert seed["delong_better"] == sum(d["p_value"] < 0.05 and d["difference"] > 0 for d in direct)
    assert seed["delong_tests"] == 2 and math.isnan(seed["mcnemar_p"])
    row = board.stats.iloc[0]
    assert row["delong_unit"] == "seed×label tests" and math.isnan(row["mcnemar_seeds"])
    assert "McNemar n/a" in row["note"] and "n/a" in board.markdown


def test_ranks_across_datasets(board):
    ranks = board.ranks.set_index("model")
    for metric in ("auc", "accuracy"):
        table = {d: dict(zip(w["model"], w[f"{metric}_mean"])) for d, w in board.wide.items()}
        expected = stats.friedman_ranks(table)
        assert ranks[f"{metric}_rank"].to_dict() == pytest.approx(expected["average_ranks"])
        assert ranks[f"{metric}_friedman_p"].iloc[0] == pytest.approx(expected["p_value"])
    assert "Friedman χ²" in board.markdown


def test_one_dataset_says_friedman_needs_two(tmp_path):
    make_fake_results(tmp_path, datasets=("pneumoniamnist",), seeds=(0, 1))
    board = build_leaderboard(tmp_path)
    assert board.ranks["auc_friedman_p"].isna().all() and "≥ 2 datasets" in board.ranks["note"].iloc[0]
    assert "one dataset only" in board.markdown


def test_markdown_tables_and_failed_section(board):
    md = board.markdown
    for strategy in ("none", "geometric", "cgan"):
        assert f"| {strategy} | simple_cnn |" in md
    assert "±" in md and "95% percentile bootstrap" in md and "Table 3" in md and "Table 4" in md
    assert "## Failed cells" in md and "| pneumoniamnist | cgan | simple_cnn | 2 | cgan exploded |" in md
    assert "(+1 failed)" in md


def test_no_failed_section_without_failures(tmp_path):
    make_fake_results(tmp_path, datasets=("pneumoniamnist",), seeds=(0, 1))
    assert "Failed cells" not in build_leaderboard(tmp_path).markdown


def test_written_files_are_complete_and_full_precision(board, folder):
    root, _ = folder
    out = root / "leaderboard"
    names = {"long.csv", "pneumoniamnist.csv", "retinamnist.csv", "cross_dataset.csv", "stats.csv",
             "stats_per_seed.csv", "ranks.csv", "leaderboard.md"}
    assert {p.name for p in board.paths} == names and {p.name for p in out.iterdir()} == names
    assert (out / "leaderboard.md").read_text() == board.markdown
    wide = pd.read_csv(out / "pneumoniamnist.csv")
    assert wide["auc_mean"].tolist() == board.wide["pneumoniamnist"]["auc_mean"].tolist()


def test_cross_dataset_average_and_console_rows(board):
    cross = board.cross_dataset.set_index("model")
    wide = {d: w.set_index("model") for d, w in board.wide.items()}
    expected = np.mean([w.loc["geometric", "accuracy_mean"] for w in wide.values()])
    assert cross.loc["geometric", "average_accuracy"] == pytest.approx(expected)
    header, *rows = console_rows(board, "pneumoniamnist")
    assert header[0] == "Model" and header[-1] == "Δ AUC vs none (p)"
    assert [r[0] for r in rows] == board.wide["pneumoniamnist"]["model"].tolist()
    assert {r[0]: r[-1] for r in rows}["none"] == "baseline"
    assert board.datasets == ["pneumoniamnist", "retinamnist"]


def test_two_backbones_name_rows_and_pair_within_backbone(tmp_path):
    make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("none", "geometric"), seeds=(0, 1),
                      backbones=("simple_cnn", "resnet18"))
    board = build_leaderboard(tmp_path)
    assert set(board.wide["pneumoniamnist"]["model"]) == {f"{s}/{b}" for s in ("none", "geometric") for b in ("simple_cnn", "resnet18")}
    assert set(board.ranks["model"]) == set(board.wide["pneumoniamnist"]["model"])
    tests = board.seed_tests
    assert len(tests) == 4 and (tests["baseline_cell_id"].str.split("-").str[2] == tests["backbone"]).all()


def test_empty_folder_names_the_fix(tmp_path):
    with pytest.raises(MedAugBenchError, match="medaugbench run") as error:
        write_leaderboard(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_missing_baseline_leaves_stats_empty(tmp_path):
    make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("geometric", "cgan"), seeds=(0, 1))
    board = write_leaderboard(tmp_path)
    assert len(board.stats) == 2 and board.seed_tests.empty
    assert board.stats[["accuracy_diff", "auc_diff", "delong_better", "mcnemar_b"]].isna().all().all()
    assert board.stats["note"].str.contains("no successful 'none' run").all()
    assert all(r[-1] == "–" for r in console_rows(board, "pneumoniamnist")[1:])


def test_missing_predictions_are_noted(tmp_path):
    records = make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("none", "geometric"), seeds=(0, 1))
    (tmp_path / "records" / f"{records[-1].cell_id}.npz").unlink()  # geometric, seed 1
    row = build_leaderboard(tmp_path).stats.iloc[0]
    assert row["n_paired"] == 2 and row["delong_seeds"] == 1 and row["mcnemar_seeds"] == 1
    assert "test predictions missing (seeds [1])" in row["note"]
