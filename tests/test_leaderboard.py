"""Leaderboard tables from a fake results folder: numbers recomputed from the records and predictions by hand."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from benchmark.data.task import TaskSpec
from benchmark.errors import MedAugBenchError
from benchmark.grid.store import OK, SCHEMA, CellRecord, load_predictions, record_path, write_record
from benchmark.publish import stats
from benchmark.publish.leaderboard import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    METRICS,
    RANK_NOTE,
    build_leaderboard,
    console_rows,
    write_leaderboard,
)
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
    cell = {
        "dataset": dataset,
        "strategy": strategy,
        "base_strategy": strategy,
        "backbone": "simple_cnn",
        "seed": seed,
        "train_fraction": 1.0,
        "policy": None,
    }
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
            values = np.array([r.result.metrics.test[metric] for r in ok])
            assert row[f"{metric}_mean"] == pytest.approx(values.mean())
            assert row[f"{metric}_std"] == pytest.approx(values.std(ddof=1))
            ci = stats.t_interval(values)
            assert (row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]) == pytest.approx((ci["low"], ci["high"]))
    cgan = wide.set_index("strategy").loc["cgan"]
    matched = [
        r.result.strategy.quality.matched
        for (d, s, _), r in records.items()
        if d == "pneumoniamnist" and s == "cgan" and r.ok
    ]
    assert cgan["fid_mean"] == pytest.approx(np.mean([m.fake_vs_real.fid for m in matched]))
    assert cgan["fid_floor_mean"] == pytest.approx(np.mean([m.floor.fid for m in matched]))
    assert cgan["kid_mean"] == pytest.approx(np.mean([m.fake_vs_real.kid_mean for m in matched]))
    assert cgan["generator_seconds_mean"] == 30.0
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
    assert row["delong_p"] == pytest.approx(delong["p_value"]) and row["delong_diff"] == pytest.approx(
        delong["difference"]
    )
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
        a = [records["retinamnist", "none", s].result.metrics.test[metric] for s in range(3)]
        b = [records["retinamnist", "geometric", s].result.metrics.test[metric] for s in range(3)]
        expected = stats.paired_difference(a, b)
        assert row[f"{metric}_diff"] == pytest.approx(expected["mean_difference"])
        assert row[f"{metric}_t_p"] == pytest.approx(expected["t_p_value"])
        assert math.isnan(row[f"{metric}_wilcoxon_p"]) and row[f"{metric}_wilcoxon_n"] == 3  # 3 seeds: n too small
    assert row["n_paired"] == 3
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
    assert row["accuracy_bootstrap_diff"] == pytest.approx(1 / 3) and row["bootstrap_images"] == 6
    assert "one seed: the bootstrap CI covers test images only" in row["note"]
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
    direct = [
        stats.delong_test(labels[:, j], base[:, j].astype(np.float32), other[:, j].astype(np.float32)) for j in range(2)
    ]
    assert seed["delong_diff"] == pytest.approx(np.mean([d["difference"] for d in direct]))
    assert seed["delong_better"] == sum(d["p_value"] < 0.05 and d["difference"] > 0 for d in direct)
    assert seed["delong_tests"] == 2 and math.isnan(seed["mcnemar_p"])
    row = board.stats.iloc[0]
    assert row["auc_bootstrap_diff"] == pytest.approx(np.mean([d["difference"] for d in direct]))
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
    assert "±" in md and "95% Student-t interval" in md and "Table 3" in md and "Table 4" in md
    assert "bootstrap" not in md.split("Against the baseline")[0]  # no bootstrap CI of seed means anywhere
    assert "## Failed cells" in md and "| pneumoniamnist | cgan | simple_cnn | 2 | cgan exploded |" in md
    assert "(+1 failed)" in md


def test_no_failed_section_without_failures(tmp_path):
    make_fake_results(tmp_path, datasets=("pneumoniamnist",), seeds=(0, 1))
    assert "Failed cells" not in build_leaderboard(tmp_path).markdown


def test_written_files_are_complete_and_full_precision(board, folder):
    root, _ = folder
    out = root / "leaderboard"
    names = {
        "long.csv",
        "pneumoniamnist.csv",
        "retinamnist.csv",
        "cross_dataset.csv",
        "stats.csv",
        "stats_per_seed.csv",
        "ranks.csv",
        "quality.csv",
        "leaderboard.md",
    }
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
    assert header[0] == "Model" and header[-1] == "Δ AUC vs none (Holm p)" and header[5] == "FID (floor)"
    assert [r[0] for r in rows] == board.wide["pneumoniamnist"]["model"].tolist()
    assert {r[0]: r[-1] for r in rows}["none"] == "baseline"
    compared = board.stats.set_index(["dataset", "model"]).loc["pneumoniamnist", "geometric"]
    assert {r[0]: r[-1] for r in rows}["geometric"].startswith(
        f"{compared['auc_diff']:+.3f} (p={compared['auc_bootstrap_p_holm']:.3g})"
    )
    assert re.fullmatch(r"\d+\.\d ± \d+\.\d \(floor \d+\.\d\)†", {r[0]: r[5] for r in rows}["cgan"])
    assert board.datasets == ["pneumoniamnist", "retinamnist"]


def test_two_backbones_name_rows_and_pair_within_backbone(tmp_path):
    make_fake_results(
        tmp_path,
        datasets=("pneumoniamnist",),
        strategies=("none", "geometric"),
        seeds=(0, 1),
        backbones=("simple_cnn", "resnet18"),
    )
    board = build_leaderboard(tmp_path)
    assert set(board.wide["pneumoniamnist"]["model"]) == {
        f"{s}/{b}" for s in ("none", "geometric") for b in ("simple_cnn", "resnet18")
    }
    assert set(board.ranks["model"]) == set(board.wide["pneumoniamnist"]["model"])
    tests = board.seed_tests
    assert len(tests) == 4 and (tests["baseline_cell_id"].str.split("-").str[2] == tests["backbone"]).all()


def test_a_fraction_per_dataset_keeps_rows_paired_across_datasets(tmp_path):
    """cpu-answer's layout: one dataset in full, another at 0.1; the same strategies on both."""
    make_fake_results(tmp_path, fractions={"pneumoniamnist": 0.1})
    board = build_leaderboard(tmp_path)
    assert set(board.cross_dataset["model"]) == {"none", "geometric", "cgan"}, "no @fraction suffix: one per dataset"
    assert board.cross_dataset["average_accuracy"].notna().all(), "every row ran on both datasets"
    assert board.cross_dataset["pneumoniamnist_train_fraction"].eq(0.1).all()
    assert board.ranks["auc_rank"].notna().all()
    cross = board.markdown.split("## Across datasets")[1].split("## Average ranks")[0]
    assert "| pneumoniamnist at 0.1 acc. (%) | retinamnist acc. (%) |" in cross
    assert set(board.stats["train_fraction"]) == {1.0, 0.1}, "still compared with the baseline of its own fraction"


def test_empty_folder_names_the_fix(tmp_path):
    with pytest.raises(MedAugBenchError, match="medaugbench run") as error:
        write_leaderboard(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_missing_baseline_leaves_stats_empty(tmp_path):
    make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("geometric", "cgan"), seeds=(0, 1))
    board = write_leaderboard(tmp_path)
    assert len(board.stats) == 2 and board.seed_tests.empty
    assert board.stats[["accuracy_diff", "auc_diff", "auc_ci_low", "auc_bootstrap_p_holm"]].isna().all().all()
    assert (board.stats["auc_marker"] == "").all()
    assert board.stats["note"].str.contains("no successful 'none' run").all()
    assert all(r[-1] == "–" for r in console_rows(board, "pneumoniamnist")[1:])


def test_missing_predictions_are_noted(tmp_path):
    records = make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("none", "geometric"), seeds=(0, 1))
    (tmp_path / "records" / f"{records[-1].cell_id}.npz").unlink()  # geometric, seed 1
    row = build_leaderboard(tmp_path).stats.iloc[0]
    assert row["n_paired"] == 2 and row["bootstrap_seeds"] == 1
    assert "test predictions missing (seeds [1])" in row["note"]


def test_bootstrap_columns_equal_a_direct_call(board, folder):
    root, records = folder
    row = board.stats.set_index(["dataset", "strategy"]).loc["retinamnist", "cgan"]
    base = [load_predictions(root, records["retinamnist", "none", s].cell_id) for s in range(3)]
    other = [load_predictions(root, records["retinamnist", "cgan", s].cell_id) for s in range(3)]
    direct = stats.paired_bootstrap(
        "ordinal",
        base[0][0],
        [b[1] for b in base],
        [o[1] for o in other],
        np.random.default_rng(BOOTSTRAP_SEED),
        BOOTSTRAP_RESAMPLES,
    )
    for metric in ("accuracy", "auc"):
        assert row[f"{metric}_bootstrap_diff"] == pytest.approx(direct[metric]["difference"])
        assert row[f"{metric}_diff"] == pytest.approx(direct[metric]["difference"], abs=1e-6)  # float32 predictions
        assert (row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]) == pytest.approx(
            (direct[metric]["ci_low"], direct[metric]["ci_high"])
        )
        assert row[f"{metric}_bootstrap_p"] == pytest.approx(direct[metric]["p_value"])
    assert (row["bootstrap_seeds"], row["bootstrap_images"], row["bootstrap_resamples"]) == (3, 200, 1000)


def test_holm_over_each_dataset_table_and_markers_from_it(board):
    for _, table in board.stats.groupby("dataset"):
        for kind in ("bootstrap_p", "t_p", "wilcoxon_p"):
            raw = table[[f"accuracy_{kind}", f"auc_{kind}"]].to_numpy(dtype=float).ravel().tolist()
            expected = [math.nan if p is None else p for p in stats.holm(raw)]
            corrected = table[[f"accuracy_{kind}_holm", f"auc_{kind}_holm"]].to_numpy(dtype=float).ravel()
            np.testing.assert_allclose(corrected, expected)
        for metric in ("accuracy", "auc"):
            significant = table[f"{metric}_bootstrap_p_holm"] < 0.05
            expected = np.where(significant, np.where(table[f"{metric}_bootstrap_diff"] > 0, "better", "worse"), "")
            assert table[f"{metric}_marker"].tolist() == expected.tolist()


def test_markers_use_holm_corrected_p(tmp_path, monkeypatch):
    make_fake_results(tmp_path, datasets=("pneumoniamnist",), seeds=(0, 1))

    def fixed_p(kind, labels, baseline, other, rng, n_resamples, confidence=0.95):
        def block(p):
            return {
                "difference": 0.01,
                "ci_low": 0.001,
                "ci_high": 0.02,
                "se": 0.005,
                "p_value": p,
                "n_valid": n_resamples,
            }

        return {
            "accuracy": block(0.03),
            "auc": block(0.001),
            "n_seeds": len(baseline),
            "n_images": len(labels),
            "n_resamples": n_resamples,
        }

    monkeypatch.setattr(stats, "paired_bootstrap", fixed_p)
    board = build_leaderboard(tmp_path)
    # two strategies × two metrics: Holm gives 0.001·4 = 0.004 (twice) and 0.03·2 = 0.06 (twice)
    assert board.stats["auc_bootstrap_p_holm"].tolist() == pytest.approx([0.004, 0.004])
    assert board.stats["accuracy_bootstrap_p_holm"].tolist() == pytest.approx([0.06, 0.06])
    assert board.stats["accuracy_bootstrap_p"].tolist() == pytest.approx([0.03, 0.03])  # raw p kept beside it
    assert (board.stats["auc_marker"] == "better").all() and (board.stats["accuracy_marker"] == "").all()
    against = board.markdown.split("### Against the baseline")[1].split("####")[0]
    assert "Holm-corrected" in against and "| 0.06 / " in against and "| 0.03 / " not in against
    assert against.count("↑") == 2 + 1  # the two AUC cells, and the note explaining ↑


def test_wilcoxon_needs_six_seeds(board, tmp_path):
    assert "/ n too small |" in board.markdown  # 3 seeds
    make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("none", "geometric"), seeds=tuple(range(6)))
    six = build_leaderboard(tmp_path)
    row = six.stats.iloc[0]
    assert row["auc_wilcoxon_n"] == 6 and row["auc_wilcoxon_p"] == pytest.approx(2 / 2**6)  # all six seeds better
    assert row["auc_wilcoxon_p_holm"] == pytest.approx(min(1.0, 2 * row["auc_wilcoxon_p"]))
    assert "/ n too small" not in six.markdown and f"/ {row['auc_wilcoxon_p_holm']:.3g} |" in six.markdown


def test_per_seed_tests_are_listed_per_seed_not_summed(board):
    assert not [c for c in board.stats.columns if c.startswith(("delong", "mcnemar"))]
    md = board.markdown
    assert md.count("#### Per-seed tests on the same test images (not corrected, not summed)") == 2
    assert not re.search(r"of \d+ seeds", md)
    section = md.split("#### Per-seed tests")[1].split("## retinamnist")[0]
    assert len([line for line in section.splitlines() if line.startswith("| geometric | ")]) == 3  # one per seed


def test_fid_cell_shows_floor_and_rank_deficiency_mark(board):
    wide = {d: w.set_index("strategy").loc["cgan"] for d, w in board.wide.items()}
    deficient, full_rank = wide["pneumoniamnist"], wide["retinamnist"]  # 20 and 50 images, 32 feature dimensions
    assert deficient["fid_rank_deficient"] and not full_rank["fid_rank_deficient"]
    md = board.markdown
    cell = "{:.1f} ± {:.1f} (floor {:.1f})"
    assert cell.format(deficient["fid_mean"], deficient["fid_std"], deficient["fid_floor_mean"]) + "† |" in md
    assert cell.format(full_rank["fid_mean"], full_rank["fid_std"], full_rank["fid_floor_mean"]) + " |" in md
    assert md.count(RANK_NOTE) == 1  # the footnote under pneumoniamnist's table only
    assert "(floor 0.00" in md  # KID beside its floor as well


def test_a_quality_report_of_an_old_schema_is_one_message(tmp_path):
    """Schema 1's unmatched "overall" FID cannot be upgraded to the class-matched one: reading it says so and names
    the record, instead of tabulating a number of another meaning."""
    task, labels = TASKS["pneumoniamnist"], np.array([0, 1] * 10)
    scores = np.stack([1 - labels * 0.8, labels * 0.8], axis=1)
    result = fake_result(task, "pneumoniamnist", "cgan", labels, scores, np.random.default_rng(0))
    result["strategy"]["quality"] = {"overall": {"fake_vs_train": {"fid": 50.0}, "test_vs_train": {"fid": 5.0}}}
    cell = {"dataset": "pneumoniamnist", "strategy": "cgan", "seed": 0, "policy": "balance"}
    path = record_path(tmp_path, "old")
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps({"schema": SCHEMA, "cell_id": "old", "status": OK, "cell": cell, "config": {}} | {"result": result})
    )
    with pytest.raises(
        MedAugBenchError, match=r"record .*old\.json: the quality report has schema 1; .* reads schema 2"
    ):
        build_leaderboard(tmp_path)


def test_cross_dataset_has_no_fid(board):
    assert not [c for c in board.cross_dataset.columns if "fid" in c or "kid" in c]
    cross = board.markdown.split("## Across datasets")[1].split("## Average ranks")[0]
    assert "FID |" not in cross and "No FID here" in cross
