"""Worth in real images: the inversion of a monotone learning curve on fabricated curves with a known answer, its
run-level bootstrap CI (and how often it covers), censoring beyond the curve, and the table in a results folder."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmark.publish.leaderboard import write_leaderboard
from benchmark.publish.worth import (
    ABOVE,
    BELOW,
    Curve,
    Images,
    invert,
    isotonic,
    real_image_equivalent,
    resampled_means,
)
from tests.fake_results import FULL_TRAIN, LEARNING_FRACTIONS, make_fake_results, make_learning_curve_results

N_REAL = (100, 200, 400, 800, 1600)
A, B = 0.6, 0.05  # AUC = A + B · log(n / 100)
HAD = 200  # the strategy's real images; its mean is the curve's at 2 × HAD
RUNS = [f"{g}/{c}" for g in range(3) for c in range(4)]  # 12 runs: 3 generator × 4 classifier seeds


def auc_at(n: float) -> float:
    return A + B * math.log(n / 100)


def runs_of(mean: float, sd: float, rng: np.random.Generator) -> pd.Series:
    """12 runs around `mean`, indexed by run."""
    return pd.Series(mean + sd * rng.standard_normal(len(RUNS)), index=RUNS)


def fabricated(sd: float, rng: np.random.Generator, strategy_mean: float) -> tuple[Curve, pd.Series]:
    """A `none` curve with AUC = A + B·log(n/100) at N_REAL and a strategy's runs, both with run noise `sd`."""
    points = tuple(runs_of(auc_at(n), sd, rng) for n in N_REAL)
    return Curve("none", (0.05, 0.1, 0.2, 0.4, 0.8), tuple(map(float, N_REAL)), points), runs_of(strategy_mean, sd, rng)


def test_a_noise_free_curve_is_inverted_exactly():
    curve, runs = fabricated(0.0, np.random.default_rng(0), auc_at(2 * HAD))
    result = real_image_equivalent(curve, runs, np.random.default_rng(0), resamples=50)
    assert result.estimate.n == pytest.approx(2 * HAD, rel=1e-9)
    assert result.low.n == pytest.approx(2 * HAD, rel=1e-9) and result.high.n == pytest.approx(2 * HAD, rel=1e-9)


def test_between_points_the_curve_is_linear_in_log_n():
    curve, runs = fabricated(0.0, np.random.default_rng(0), auc_at(300))  # 300 lies between the points 200 and 400
    assert real_image_equivalent(curve, runs, np.random.default_rng(0), 20).estimate.n == pytest.approx(300)


def test_a_noisy_curve_gives_the_known_answer_within_its_ci():
    curve, runs = fabricated(0.01, np.random.default_rng(1), auc_at(2 * HAD))
    result = real_image_equivalent(curve, runs, np.random.default_rng(0), resamples=2000)
    assert result.estimate.n == pytest.approx(2 * HAD, rel=0.25)
    assert result.low.n < 2 * HAD < result.high.n
    assert result.high.n / result.low.n < 3  # informative, not the whole curve


def test_the_ci_covers_the_known_answer_at_about_the_nominal_rate():
    """Nominal 95%; a percentile bootstrap of 12 runs per stratum reaches 91-92% (worth.py says so)."""
    rng, covered, simulations = np.random.default_rng(2), 0, 300
    for _ in range(simulations):
        curve, runs = fabricated(0.015, rng, auc_at(2 * HAD))
        result = real_image_equivalent(curve, runs, rng, resamples=400)
        low = result.low.n if result.low.side == "" else (0 if result.low.side == BELOW else math.inf)
        high = result.high.n if result.high.side == "" else (math.inf if result.high.side == ABOVE else 0)
        covered += low <= 2 * HAD <= high
    assert 0.88 <= covered / simulations <= 0.98


@pytest.mark.parametrize(("mean", "side"), [(auc_at(3200), ABOVE), (auc_at(50), BELOW)])
def test_a_result_beyond_the_curve_is_censored_not_extrapolated(mean, side):
    curve, runs = fabricated(0.002, np.random.default_rng(3), mean)
    result = real_image_equivalent(curve, runs, np.random.default_rng(0), resamples=200)
    assert result.estimate == Images(None, side)
    assert (result.high if side == ABOVE else result.low).side == side


def test_isotonic_pools_adjacent_violators_by_weight():
    assert isotonic(np.array([1.0, 3.0, 2.0, 4.0]), np.ones(4)).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert isotonic(np.array([1.0, 3.0, 2.0]), np.array([1.0, 1.0, 3.0])).tolist() == [1.0, 2.25, 2.25]
    assert isotonic(np.array([3.0, 2.0, 1.0]), np.ones(3)).tolist() == [2.0, 2.0, 2.0]


def test_invert_takes_the_smallest_n_that_reaches_the_value():
    log_n = np.log([100.0, 200.0, 400.0])
    fitted = np.array([[0.6, 0.7, 0.7]])  # flat from 200 on: 200 is the fewest images reaching 0.7
    assert np.exp(invert(log_n, fitted, np.array([0.7]))) == pytest.approx([200.0])
    assert np.exp(invert(log_n, fitted, np.array([0.6]))) == pytest.approx([100.0])
    assert invert(log_n, np.repeat(fitted, 2, axis=0), np.array([0.59, 0.71])).tolist() == [-math.inf, math.inf]


def test_strata_with_the_same_runs_draw_the_same_runs():
    rng = np.random.default_rng(0)
    shared = pd.Series(rng.normal(size=12), index=RUNS)
    other = pd.Series(rng.normal(size=5), index=[f"9/{c}" for c in range(5)])
    means = resampled_means([shared, shared[::-1], other], np.random.default_rng(1), 300)
    assert np.array_equal(means[0], means[1])  # paired on run, whatever the order
    assert abs(np.corrcoef(means[0], means[2])[0, 1]) < 0.2  # different runs: independent draws


@pytest.fixture(scope="module")
def curve_board(tmp_path_factory):
    root = tmp_path_factory.mktemp("curve")
    records = make_learning_curve_results(root, seeds=(0, 1))
    return root, records, write_leaderboard(root)


def test_a_folder_with_a_none_learning_curve_gets_the_worth_table(curve_board):
    root, records, board = curve_board
    out = root / "leaderboard"
    table = pd.read_csv(out / "worth.csv")
    cgan = table[(table["curve"] == "none") & (table["strategy"] == "cgan") & (table["metric"] == "auc")]
    assert len(cgan) == 1 and cgan["train_fraction"].iloc[0] == 0.1
    assert cgan["real_images"].iloc[0] == round(0.1 * FULL_TRAIN)
    cgan_aucs = [r.result.metrics.test["auc"] for r in records if r.cell["strategy"] == "cgan"]
    assert cgan["value"].iloc[0] == pytest.approx(np.mean(cgan_aucs))
    geometric = table[(table["curve"] == "none") & (table["strategy"] == "geometric") & (table["metric"] == "auc")]
    assert sorted(geometric["train_fraction"]) == list(LEARNING_FRACTIONS)
    assert set(table["curve"]) == {"none", "geometric"}
    assert "leaderboard" not in table["strategy"].tolist()
    assert {out / name for name in ("worth.csv", "worth_curves.csv", "worth.md")} <= set(board.paths)
    assert (out / "plots" / "pneumoniamnist_worth_none_auc.png").is_file()
    assert "## Worth in real images" in (out / "leaderboard.md").read_text()
    assert "| cgan | 0.1 | 471 |" in (out / "worth.md").read_text()


def test_the_curve_points_are_the_records_means(curve_board):
    root, records, _ = curve_board
    curves = pd.read_csv(root / "leaderboard" / "worth_curves.csv")
    none = curves[(curves["curve"] == "none") & (curves["metric"] == "auc")]
    for fraction, point in none.set_index("train_fraction").iterrows():
        runs = [r for r in records if r.cell["strategy"] == "none" and r.cell["train_fraction"] == fraction]
        assert point["n_runs"] == len(runs) == 4
        assert point["mean"] == pytest.approx(np.mean([r.result.metrics.test["auc"] for r in runs]))
        assert point["real_images"] == round(fraction * FULL_TRAIN)
    assert (np.diff(none["fitted"]) >= 0).all()


def test_a_folder_without_a_learning_curve_is_unchanged(tmp_path):
    make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("none", "geometric"), seeds=(0, 1))
    board = write_leaderboard(tmp_path)
    assert not (tmp_path / "leaderboard" / "worth.csv").exists()
    assert "Worth in real images" not in board.markdown
