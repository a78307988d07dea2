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
from benchmark.publish import inference, stats
from benchmark.publish.comparisons import BOOTSTRAP_RESAMPLES
from benchmark.publish.leaderboard import build_leaderboard, console_rows, write_leaderboard
from benchmark.publish.markdown import RANK_NOTE, power_sentence
from benchmark.publish.results import METRICS
from benchmark.publish.tables import BOOTSTRAP_SEED
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
            if metric == "accuracy_calibrated":  # the fake records predate it: None, shown as '–'
                assert math.isnan(row[f"{metric}_mean"])
                continue
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
    assert seed["delong_tests"] == 2 and math.isnan(seed["mcnemar_p"]) and "McNemar n/a" in seed["note"]
    row = board.stats.iloc[0]
    assert row["auc_bootstrap_diff"] == pytest.approx(np.mean([d["difference"] for d in direct]))
    assert "n/a" in board.markdown


def test_ranks_over_two_blocks_are_not_tested(board):
    ranks = board.ranks.set_index("model")
    for metric in ("auc", "accuracy"):
        table = {d: dict(zip(w["model"], w[f"{metric}_mean"])) for d, w in board.wide.items()}
        expected = stats.friedman_ranks(table)
        assert ranks[f"{metric}_rank"].to_dict() == pytest.approx(expected["average_ranks"])
        assert ranks[f"{metric}_friedman_p"].isna().all() and ranks[f"{metric}_cd"].isna().all()
    assert "Friedman χ²" not in board.markdown
    assert board.markdown.count("not tested: fewer than three blocks") == 2  # AUC and accuracy


@pytest.mark.slow
def test_three_blocks_give_friedman_and_the_critical_difference(tmp_path):
    strategies = ("none", "geometric", "cgan", "vae")
    make_fake_results(tmp_path, datasets=("pneumoniamnist", "retinamnist", "breastmnist"), strategies=strategies)
    # a learning curve's extra fraction, where only two rows ran, is left out rather than the rows it lacks
    make_fake_results(
        tmp_path, datasets=("pneumoniamnist",), strategies=("none", "geometric"), fractions={"pneumoniamnist": 0.4}
    )
    board = build_leaderboard(tmp_path)
    assert board.ranks["n_blocks"].iloc[0] == 3 and board.ranks["auc_friedman_p"].notna().all()
    assert set(board.across["entry"]) == set(board.ranks["model"]) - {"none@0.4", "geometric@0.4"}
    assert (
        board.across["n_tasks"] == 3
    ).all() and "Tasks left out (fewer rows ran there): pneumoniamnist@0.4" in board.markdown
    assert "left out, with fewer rows: pneumoniamnist@0.4" in board.markdown
    # Demšar's q(0.05, k=4) = 2.569: CD = 2.569 · √(4 · 5 / (6 · 3))
    assert board.ranks["auc_cd"].iloc[0] == pytest.approx(2.569 * math.sqrt(20 / 18), abs=1e-3)
    assert "Friedman χ²" in board.markdown and "Nemenyi critical difference 2.71" in board.markdown


def test_blocks_are_dataset_and_fraction(tmp_path):
    make_fake_results(tmp_path / "a", datasets=("pneumoniamnist",), seeds=(0, 1), fractions={"pneumoniamnist": 0.1})
    make_fake_results(tmp_path / "a", datasets=("pneumoniamnist",), seeds=(0, 1))
    board = build_leaderboard(tmp_path / "a")
    assert board.ranks["n_blocks"].iloc[0] == 2 and set(board.ranks["model"]) == {"none", "geometric", "cgan"}
    assert set(board.across["entry"]) == {"none", "geometric", "cgan"} and (board.across["n_tasks"] == 2).all()


def test_markdown_tables_and_failed_section(board):
    md = board.markdown
    for strategy in ("none", "geometric", "cgan"):
        assert f"| {strategy} | simple_cnn |" in md
    assert "±" in md and "95% Student-t interval" in md and "Table 3" in md and "Table 4" in md
    metrics = md.split("### Test metrics")[1].split("### Variance by source")[0]
    assert "bootstrap" not in metrics  # no bootstrap CI of seed means anywhere
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
        "families.csv",
        "power.csv",
        "across_tasks.csv",
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
        f"{compared['auc_diff']:+.3f} (p={compared['auc_t_p_holm']:.3g})"
    )
    fid = r"\d+\.\d ± \d+\.\d \(floor \d+\.\d; train→test shift \d+\.\d\)†"
    assert re.fullmatch(fid, {r[0]: r[5] for r in rows}["cgan"])
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
    with pytest.raises(MedAugBenchError, match="baseline 'none' has no successful run in pneumoniamnist"):
        write_leaderboard(tmp_path)
    assert not (tmp_path / "leaderboard").exists(), "refused before writing anything"
    board = write_leaderboard(tmp_path, allow_missing_baseline=True)
    assert "No successful `none` run in pneumoniamnist" in board.markdown
    assert len(board.stats) == 2 and board.seed_tests.empty
    columns = ["accuracy_diff", "auc_diff", "auc_ci_low", "auc_t_ci_low", "auc_t_p_holm", "auc_bootstrap_p_holm"]
    assert board.stats[columns].isna().all().all()
    assert (board.stats["auc_marker"] == "").all()
    assert board.stats["note"].str.contains("no successful 'none' run").all()
    assert all(r[-1] == "–" for r in console_rows(board, "pneumoniamnist")[1:])


def test_missing_predictions_are_noted(tmp_path):
    records = make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("none", "geometric"), seeds=(0, 1))
    (tmp_path / "records" / f"{records[-1].cell_id}.npz").unlink()  # geometric, seed 1
    row = build_leaderboard(tmp_path).stats.iloc[0]
    assert row["n_paired"] == 2 and row["bootstrap_seeds"] == 1
    assert "test predictions missing (runs ['1/1'])" in row["note"]


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
    for _, table in pd.concat([board.stats, board.families]).groupby(["dataset", "family"]):
        for kind in ("t_p", "bootstrap_p", "wilcoxon_p"):
            raw = table[[f"accuracy_{kind}", f"auc_{kind}"]].to_numpy(dtype=float).ravel().tolist()
            expected = [math.nan if p is None else p for p in stats.holm(raw)]
            corrected = table[[f"accuracy_{kind}_holm", f"auc_{kind}_holm"]].to_numpy(dtype=float).ravel()
            np.testing.assert_allclose(corrected, expected)
        for metric in ("accuracy", "auc"):
            significant = table[f"{metric}_t_p_holm"] < 0.05
            expected = np.where(significant, np.where(table[f"{metric}_diff"] > 0, "better", "worse"), "")
            assert table[f"{metric}_marker"].tolist() == expected.tolist()


def test_run_level_test_equals_a_t_test_over_generator_seed_means(tmp_path):
    """Two generator seeds × two classifier seeds: the primary test averages each generator seed's paired
    differences and runs a one-sample t-test over the two means (df = 1), not a t-test over four runs."""
    make_fake_results(
        tmp_path, datasets=("pneumoniamnist",), strategies=("none", "geometric"), seeds=(0, 1), generator_seeds=(5, 6)
    )
    board = build_leaderboard(tmp_path)
    long = board.long.set_index(["strategy", "generator_seed", "classifier_seed"])
    assert {(g, c) for _, g, c in long.index} == {(5, 0), (5, 1), (6, 0), (6, 1)}
    d = {(g, c): long.loc[("geometric", g, c), "auc"] - long.loc[("none", g, c), "auc"] for g in (5, 6) for c in (0, 1)}
    means = np.array([(d[g, 0] + d[g, 1]) / 2 for g in (5, 6)])
    row = board.stats.iloc[0]
    assert row["n_paired"] == 4 and row["n_generator_seeds"] == 2
    assert row["auc_diff"] == pytest.approx(means.mean())
    assert row["auc_t_p"] == pytest.approx(sps.ttest_1samp(means, 0).pvalue)
    half = sps.t.ppf(0.975, 1) * means.std(ddof=1) / math.sqrt(2)
    assert (row["auc_t_ci_low"], row["auc_t_ci_high"]) == pytest.approx((means.mean() - half, means.mean() + half))
    assert row["bootstrap_seeds"] == 4  # the secondary bootstrap still sees every run
    wide = board.wide["pneumoniamnist"].set_index("strategy").loc["geometric"]
    parts = inference.variance_components(
        [long.loc[("geometric", g, c), "auc"] for g in (5, 6) for c in (0, 1)], [5, 5, 6, 6]
    )
    assert wide["auc_var_classifier"] == pytest.approx(parts.classifier)
    assert wide["auc_var_images"] > 0 and wide["n_generator_seeds"] == 2
    written = pd.read_csv(write_leaderboard(tmp_path).paths[0])  # long.csv: one line per run with both seeds
    assert {"generator_seed", "classifier_seed", "auc", "accuracy", "auc_image_var"} <= set(written.columns)


def test_markers_follow_the_run_level_test_not_the_bootstrap(tmp_path, monkeypatch):
    """An image bootstrap that calls everything significant makes no marker where the run-level test does not."""
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
    assert (board.stats["auc_t_p_holm"] > 0.05).all(), "two generator seeds: the run-level test is not significant"
    assert (board.stats["auc_marker"] == "").all() and (board.stats["accuracy_marker"] == "").all()
    against = board.markdown.split("### Against the baseline")[1].split("###")[0]
    assert "(p 0.004)" in against and "95% CI (uncorrected)" in against and "Holm p (t / W)" in against
    assert against.count("↑") == 1  # only the note explaining ↑
    assert "Minimum detectable difference** (m = 4 tests, α = 0.05/4, G = 2 generator seeds)" in against


def test_power_sentence_says_when_no_difference_is_detectable():
    keys = ("dataset", "family", "metric", "m", "n_generator_seeds", "pooled_sd", "mde")
    rows = [("d", "baseline", "accuracy", 24, 3, 0.2, 1.709), ("d", "baseline", "auc", 24, 3, 0.02, 0.161)]
    power = pd.DataFrame([dict(zip(keys, row)) for row in rows])
    text = power_sentence(power, "d", "baseline")
    assert "Δ accuracy: none within its range (80% power would need 170.9 pp)" in text
    assert "Δ AUC ≥ 0.161" in text and "≥ 170.9" not in text


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
    assert md.count("#### Per-run tests on the same test images (not corrected, not summed)") == 2
    assert not re.search(r"of \d+ seeds", md)
    section = md.split("#### Per-run tests")[1].split("## retinamnist")[0]
    assert len([line for line in section.splitlines() if line.startswith("| geometric | ")]) == 3  # one per seed


def test_fid_cell_shows_floor_and_rank_deficiency_mark(board):
    wide = {d: w.set_index("strategy").loc["cgan"] for d, w in board.wide.items()}
    deficient, full_rank = wide["pneumoniamnist"], wide["retinamnist"]  # 20 and 50 images, 32 feature dimensions
    assert deficient["fid_rank_deficient"] and not full_rank["fid_rank_deficient"]
    md = board.markdown
    cell = "{:.1f} ± {:.1f} (floor {:.1f}; train→test shift {:.1f})"
    for row, mark in ((deficient, "† |"), (full_rank, " |")):
        assert cell.format(row["fid_mean"], row["fid_std"], row["fid_floor_mean"], row["fid_shift_mean"]) + mark in md
    assert "perfect generator" not in md and "generator's training distribution" in md
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
        MedAugBenchError, match=r"record .*old\.json: the quality report has schema 1; .* reads schema \d"
    ):
        build_leaderboard(tmp_path)


def test_cross_dataset_has_no_fid(board):
    assert not [c for c in board.cross_dataset.columns if "fid" in c or "kid" in c]
    cross = board.markdown.split("## Across datasets")[1].split("## Average ranks")[0]
    assert "FID |" not in cross and "No FID here" in cross


def edit_results(root, records, strategy, change):
    """Rewrite the run record (`result`) of each of a strategy's ok cells with `change(result)`."""
    for record in records:
        if record.cell["strategy"] == strategy and record.ok:
            path = record_path(root, record.cell_id)
            data = json.loads(path.read_text())
            change(data["result"])
            path.write_text(json.dumps(data))


def set_val_auc(root, records, by_strategy):
    """Overwrite each record's validation AUC by strategy, so the validation and test orders can disagree."""
    for strategy, value in by_strategy.items():
        edit_results(root, records, strategy, lambda result, value=value: result["metrics"]["val"].update(auc=value))


@pytest.mark.slow
def test_family_tables_choose_on_validation_and_compare_generative_rows(tmp_path):
    strategies = ("none", "geometric", "randaugment", "oversample", "cgan", "vae")
    records = make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=strategies)
    # on test (fake skill grows along `strategies`) randaugment beats geometric and vae beats cgan; on validation the
    # reverse, and oversample (a rebalancing control, not classic augmentation) scores highest of all
    set_val_auc(tmp_path, records, {"geometric": 0.9, "randaugment": 0.7, "oversample": 0.99, "cgan": 0.9, "vae": 0.7})
    # oversample's repeated real images may be counted like synthetic ones: still a control, not a generative row
    edit_results(tmp_path, records, "oversample", lambda result: result["dataset"].update(train_synthetic=20))
    board = write_leaderboard(tmp_path)
    families = board.families.set_index(["family", "reference", "model"])
    assert set(families.index) == {
        ("classic", "geometric", "cgan"),
        ("classic", "geometric", "vae"),
        ("rebalancing", "oversample", "cgan"),
        ("rebalancing", "oversample", "vae"),
    }
    wide = board.wide["pneumoniamnist"].set_index("strategy")
    assert wide.loc["randaugment", "auc_mean"] > wide.loc["geometric", "auc_mean"]  # test would pick randaugment
    assert (
        "best on validation AUC: cgan (0.900) vs geometric (0.900)"
        in families.loc["classic", "geometric", "cgan"]["chosen"]
    )
    assert families.loc[("classic", "geometric", "vae"), "chosen"] == ""
    for family in ("classic", "rebalancing"):
        table = board.families[board.families["family"] == family]
        raw = table[["accuracy_t_p", "auc_t_p"]].to_numpy(dtype=float).ravel().tolist()
        np.testing.assert_allclose(table[["accuracy_t_p_holm", "auc_t_p_holm"]].to_numpy().ravel(), stats.holm(raw))
    md = board.markdown
    assert "### Does synthetic data beat classic augmentation?" in md and "### Does synthetic content beat" in md
    assert md.count("**Minimum detectable difference**") == 3  # the baseline table and the two family tables
    assert "families.csv" in {p.name for p in board.paths}


def test_family_table_does_not_depend_on_the_baseline(tmp_path):
    # a grid whose baseline is geometric (the compute curve's extension) asks the same question of its generative rows
    make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("none", "geometric", "cgan"))
    pairs = {
        baseline: set(zip(board.families["reference"], board.families["model"], strict=True))
        for baseline in ("none", "geometric")
        for board in [build_leaderboard(tmp_path, baseline=baseline)]
    }
    assert pairs["geometric"] == pairs["none"] == {("geometric", "cgan")}
    assert "Not answered here: this grid has no generative row together with a `geometric` row." not in (
        write_leaderboard(tmp_path, baseline="geometric").markdown
    )


def test_without_controls_the_family_questions_say_so(board):
    assert "Not answered here: this grid has no generative row together with a `oversample` row." in board.markdown
    assert set(board.families["family"]) == {"classic"}


def test_across_tasks_poi_and_iqm_equal_direct_calls(board):
    ok = board.long[board.long["status"] == "ok"]
    runs = {
        s: [ok[(ok["dataset"] == d) & (ok["strategy"] == s)]["auc"].to_numpy() for d in board.datasets]
        for s in ("none", "geometric", "cgan")
    }
    across = board.across.set_index("entry")
    cgan_over_geometric = inference.probability_of_improvement(runs["cgan"], runs["geometric"])
    assert across.loc["cgan", "poi_geometric"] == pytest.approx(cgan_over_geometric)  # generative rows only
    assert math.isnan(across.loc["geometric", "poi_geometric"]) and across["poi_oversample"].isna().all()
    assert (
        "| P(> none) [95% CI] | P(> geometric) [95% CI] |" in board.markdown and "P(> oversample)" not in board.markdown
    )
    assert across.loc["cgan", "iqm_auc"] == pytest.approx(inference.iqm(runs["cgan"]))
    assert across.loc["cgan", "poi"] == pytest.approx(inference.probability_of_improvement(runs["cgan"], runs["none"]))
    assert across.loc["cgan", "poi_ci_low"] <= across.loc["cgan", "poi"] <= across.loc["cgan", "poi_ci_high"]
    assert math.isnan(across.loc["none", "poi"])
    assert "## Across tasks: IQM and probability of improvement" in board.markdown


def test_calibrated_and_balanced_accuracy_are_shown(tmp_path):
    records = make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("none",), seeds=(0, 1))
    path = record_path(tmp_path, records[0].cell_id)
    data = json.loads(path.read_text())
    data["result"]["metrics"]["test"]["accuracy_calibrated"] = 0.5
    path.write_text(json.dumps(data))
    board = build_leaderboard(tmp_path)
    row = board.wide["pneumoniamnist"].iloc[0]
    assert row["accuracy_calibrated_mean"] == pytest.approx(0.5)  # the old record without it is left out
    md = board.markdown
    assert "| Calibrated acc. (%) | Balanced acc. (%) |" in md and "| 50.0 |" in md
    assert "AUC is the primary metric" in md and "balanced: mean per-class recall, the prior-free" in md


def test_the_tables_name_the_code_that_built_them_and_the_code_that_trained_the_cells(monkeypatch):
    """A table rebuilt by newer code than its records says so: both commits are in leaderboard.md's header."""
    from types import SimpleNamespace

    from benchmark.publish import markdown

    monkeypatch.setattr(
        markdown, "code_version", lambda: {"medaugbench": "9.9", "git_commit": "b" * 40, "git_dirty": False}
    )
    trained = {"medaugbench": "0.1", "git_commit": "a" * 40, "git_dirty": True}
    records = [SimpleNamespace(result=SimpleNamespace(code=trained)), SimpleNamespace(result=None)]
    line = markdown.provenance_line(records)
    assert line == (
        "Tables built by medaugbench 9.9 at commit bbbbbbbbbbbb; cells trained at commit aaaaaaaaaaaa + uncommitted "
        "changes."
    )
