"""Leaderboard statistics: hand-checked cases, DeLong against a slow structural-components reference, scipy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from benchmark.stats import (
    bootstrap_ci,
    delong_test,
    delong_test_multiclass,
    friedman_ranks,
    mcnemar_test,
    mean_std,
    paired_difference,
)

# Degenerate inputs must be handled, not left to emit RuntimeWarnings (division by zero, precision loss).
pytestmark = pytest.mark.filterwarnings("error")


def assert_plain_json(value: object) -> None:
    """Every leaf is a builtin float/int/str/None (np.float64 subclasses float, so check the exact type)."""
    if isinstance(value, dict):
        for item in value.values():
            assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain_json(item)
    else:
        assert value is None or type(value) in (float, int, str), f"{value!r} is {type(value)}"
    json.dumps(value, allow_nan=False)


def slow_delong(y, score_a, score_b):
    """Independent O(n_pos·n_neg) DeLong: structural components from the pairwise kernel ψ (1 if x > y, ½ if tie)."""
    y = np.asarray(y)
    components = []
    for score in (np.asarray(score_a, float), np.asarray(score_b, float)):
        x, yn = score[y == 1], score[y == 0]
        psi = (x[:, None] > yn[None, :]) + 0.5 * (x[:, None] == yn[None, :])
        components.append((psi.mean(axis=1), psi.mean(axis=0), psi.mean()))
    (v10a, v01a, auc_a), (v10b, v01b, auc_b) = components
    s10 = np.cov(np.stack([v10a, v10b]))
    s01 = np.cov(np.stack([v01a, v01b]))
    s = s10 / len(v10a) + s01 / len(v01a)
    z = (auc_b - auc_a) / math.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1])
    return auc_a, auc_b, z, math.erfc(abs(z) / math.sqrt(2))


# ---------------------------------------------------------------- mean_std / bootstrap_ci


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx({"mean": 2.5, "std": math.sqrt(5 / 3), "n": 4})
    assert mean_std([0.7]) == {"mean": 0.7, "std": None, "n": 1}
    assert mean_std([]) == {"mean": None, "std": None, "n": 0}
    assert_plain_json(mean_std(np.array([0.1, 0.2])))


def test_bootstrap_ci_contains_mean_deterministic_and_matches_scipy():
    values = [0.81, 0.84, 0.79, 0.86, 0.83]
    ci = bootstrap_ci(values, seed=3)
    assert ci["method"] == "percentile"
    assert ci["low"] < np.mean(values) < ci["high"]
    assert min(values) <= ci["low"] and ci["high"] <= max(values)
    assert bootstrap_ci(values, seed=3) == ci
    direct = stats.bootstrap(
        (np.array(values),), np.mean, n_resamples=10000, method="percentile", rng=np.random.default_rng(3)
    )
    assert ci["low"] == pytest.approx(direct.confidence_interval.low, abs=1e-15)
    assert ci["high"] == pytest.approx(direct.confidence_interval.high, abs=1e-15)
    assert_plain_json(ci)


def test_bootstrap_ci_narrows_with_more_seeds_and_with_lower_confidence():
    values = [0.80, 0.82, 0.84, 0.86, 0.88]
    few, many = bootstrap_ci(values), bootstrap_ci(values * 4)  # 20 seeds with the same spread
    assert many["high"] - many["low"] < 0.6 * (few["high"] - few["low"])
    narrow = bootstrap_ci(values, confidence=0.5)
    assert narrow["high"] - narrow["low"] < few["high"] - few["low"]


def test_bootstrap_ci_degenerate_inputs():
    assert bootstrap_ci([0.9]) == {"low": 0.9, "high": 0.9, "method": "none"}
    assert bootstrap_ci([0.1, 0.1, 0.1]) == {"low": 0.1, "high": 0.1, "method": "none"}
    assert bootstrap_ci([]) == {"low": None, "high": None, "method": "none"}
    two = bootstrap_ci([0.8, 0.9])  # 2 seeds: resampled means are only 0.8, 0.85, 0.9
    assert two["method"] == "percentile"
    assert 0.8 == pytest.approx(two["low"]) and two["high"] == pytest.approx(0.9)


# ---------------------------------------------------------------- paired_difference


def test_paired_difference_hand_case():
    baseline, other = [0.50, 0.25, 0.75], [0.53, 0.27, 0.77]  # differences 0.03, 0.02, 0.02
    r = paired_difference(baseline, other)
    assert r["n"] == 3
    assert r["mean_difference"] == pytest.approx(0.07 / 3)
    # sd = 0.01/√3, so t = mean / (sd/√3) = (0.07/3) / (0.01/3) = 7; with 2 df, two-sided p = 1 − t / √(t² + 2)
    assert r["t_p_value"] == pytest.approx(1 - 7 / math.sqrt(51), rel=1e-6)
    # all three differences positive: exact two-sided Wilcoxon p = 2 · (1/2)³
    assert r["wilcoxon_p_value"] == pytest.approx(0.25)
    assert paired_difference(other, baseline)["mean_difference"] == pytest.approx(-0.07 / 3)
    assert_plain_json(r)


def test_paired_difference_degenerate():
    zero = paired_difference([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert zero == {"mean_difference": 0.0, "t_p_value": None, "wilcoxon_p_value": None, "n": 3}
    constant = paired_difference([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])  # zero variance: t undefined, Wilcoxon is not
    assert constant["t_p_value"] is None and constant["wilcoxon_p_value"] == pytest.approx(0.25)
    single = paired_difference([0.5], [0.6])
    assert single["t_p_value"] is None and single["wilcoxon_p_value"] is None
    assert single["mean_difference"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="one baseline score"):
        paired_difference([0.5, 0.6], [0.5])


# ---------------------------------------------------------------- DeLong


def test_delong_hand_case():
    y = [1, 1, 0, 0]
    a = [0.9, 0.4, 0.6, 0.1]  # pairs (pos, neg): (.9,.6) (.9,.1) (.4,.1) right, (.4,.6) wrong -> AUC 3/4
    b = [0.8, 0.7, 0.3, 0.2]  # perfect -> AUC 1
    # V10 (per positive) a: [1, ½], b: [1, 1]; V01 (per negative) a: [½, 1], b: [1, 1]
    # Var(diff) = var([0, ½]) / 2 + var([½, 0]) / 2 = ⅛ / 2 + ⅛ / 2 = ⅛, z = ¼ / √⅛ = 1/√2
    r = delong_test(y, a, b)
    assert r["auc_a"] == pytest.approx(0.75) and r["auc_b"] == pytest.approx(1.0)
    assert r["difference"] == pytest.approx(0.25)
    assert r["z"] == pytest.approx(1 / math.sqrt(2))
    assert r["p_value"] == pytest.approx(math.erfc(0.5))  # 2·Φ(−1/√2)
    assert slow_delong(y, a, b) == pytest.approx((0.75, 1.0, 1 / math.sqrt(2), math.erfc(0.5)))
    assert_plain_json(r)


@pytest.mark.parametrize("seed", range(5))
def test_delong_matches_slow_reference_and_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 40 + 17 * seed
    y = rng.integers(0, 2, n)
    # one-decimal rounding gives many ties within and across classes
    a = np.round(rng.normal(0.6 * y, 1.0), 1)
    b = np.round(0.5 * a + rng.normal(0.9 * y, 0.8), 1) if seed % 2 else np.round(rng.integers(0, 4, n) + y, 0)
    r = delong_test(y, a, b)
    auc_a, auc_b, z, p = slow_delong(y, a, b)
    assert r["auc_a"] == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert r["auc_b"] == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert r["auc_a"] == pytest.approx(auc_a, abs=1e-10) and r["auc_b"] == pytest.approx(auc_b, abs=1e-10)
    assert r["difference"] == pytest.approx(auc_b - auc_a, abs=1e-10)
    assert r["z"] == pytest.approx(z, abs=1e-10)
    assert r["p_value"] == pytest.approx(p, abs=1e-10)


def test_delong_sign_and_identical_scores():
    rng = np.random.default_rng(7)
    y = np.repeat([0, 1], 100)
    weak, strong = rng.normal(0.3 * y), rng.normal(2.0 * y)
    forward, backward = delong_test(y, weak, strong), delong_test(y, strong, weak)
    assert forward["difference"] > 0 and forward["z"] > 3 and forward["p_value"] < 1e-3
    assert backward["z"] == pytest.approx(-forward["z"]) and backward["p_value"] == pytest.approx(forward["p_value"])
    same = delong_test(y, weak, weak.copy())
    assert same["difference"] == 0.0 and same["z"] == 0.0 and same["p_value"] == 1.0


def test_delong_undefined_and_invalid():
    assert delong_test([1, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1]) == dict.fromkeys(
        ("auc_a", "auc_b", "difference", "z", "p_value")
    )
    one_positive = delong_test([1, 0, 0], [0.9, 0.2, 0.3], [0.1, 0.2, 0.3])
    assert one_positive["auc_a"] == 1.0 and one_positive["auc_b"] == 0.0 and one_positive["p_value"] is None
    # a separates perfectly, b is constant: every structural component difference is ½, so the variance is 0
    flat = delong_test([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], [0.5, 0.5, 0.5, 0.5])
    assert flat["difference"] == -0.5 and flat["z"] is None and flat["p_value"] is None
    with pytest.raises(ValueError, match="binary"):
        delong_test([0, 1, 2], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="one score per label"):
        delong_test([0, 1, 1], [0.1, 0.2], [0.1, 0.2, 0.3])


def test_delong_multiclass_is_one_vs_rest_per_class():
    rng = np.random.default_rng(11)
    y = rng.integers(0, 3, 150)
    logits_a = rng.normal(size=(150, 3)) + np.eye(3)[y]
    logits_b = rng.normal(size=(150, 3)) + 2 * np.eye(3)[y]
    pa = np.exp(logits_a) / np.exp(logits_a).sum(1, keepdims=True)
    pb = np.exp(logits_b) / np.exp(logits_b).sum(1, keepdims=True)
    r = delong_test_multiclass(y, pa, pb)
    assert len(r["per_class"]) == 3
    for k, per in enumerate(r["per_class"]):
        assert per == delong_test((y == k).astype(int), pa[:, k], pb[:, k])
    assert r["mean_difference"] == pytest.approx(np.mean([per["difference"] for per in r["per_class"]]))
    assert np.mean([per["auc_a"] for per in r["per_class"]]) == pytest.approx(
        roc_auc_score(y, pa, multi_class="ovr", average="macro")
    )
    assert r["mean_difference"] > 0
    assert_plain_json(r)
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        delong_test_multiclass(y, pa, pb[:, :2])


# ---------------------------------------------------------------- McNemar


def _paired_predictions(b: int, c: int, both_right: int = 5, both_wrong: int = 3):
    """Labels and two prediction vectors with b images only a gets right and c only b gets right."""
    y = np.zeros(b + c + both_right + both_wrong, dtype=int)
    right_a = np.r_[np.ones(b), np.zeros(c), np.ones(both_right), np.zeros(both_wrong)].astype(bool)
    right_b = np.r_[np.zeros(b), np.ones(c), np.ones(both_right), np.zeros(both_wrong)].astype(bool)
    return y, np.where(right_a, 0, 1), np.where(right_b, 0, 2)


def test_mcnemar_exact_hand_case():
    r = mcnemar_test(*_paired_predictions(10, 2))
    assert (r["b"], r["c"], r["method"]) == (10, 2, "exact")
    # two-sided binomial(12, ½): P(X ≤ 2) + P(X ≥ 10) = 2 · (1 + 12 + 66) / 4096
    assert r["p_value"] == pytest.approx(158 / 4096) and round(r["p_value"], 4) == 0.0386
    assert r["statistic"] == 2.0
    swapped = mcnemar_test(*_paired_predictions(2, 10))
    assert (swapped["b"], swapped["c"]) == (2, 10) and swapped["p_value"] == pytest.approx(r["p_value"])
    assert_plain_json(r)


def test_mcnemar_chi_square_hand_case_and_switch():
    r = mcnemar_test(*_paired_predictions(30, 10))
    assert r["method"] == "chi2"
    assert r["statistic"] == pytest.approx(19**2 / 40)  # (|30 − 10| − 1)² / 40 = 9.025
    assert r["p_value"] == pytest.approx(math.erfc(math.sqrt(9.025 / 2)))  # chi² with 1 df: P = erfc(√(x/2))
    assert mcnemar_test(*_paired_predictions(16, 8))["method"] == "exact"  # b + c = 24
    assert mcnemar_test(*_paired_predictions(17, 8))["method"] == "chi2"  # b + c = 25
    assert_plain_json(r)


def test_mcnemar_no_discordant_pairs():
    y = np.array([0, 1, 2, 1])
    r = mcnemar_test(y, np.array([0, 1, 0, 0]), np.array([0, 1, 1, 2]))  # same right/wrong pattern
    assert r == {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0, "method": "exact"}
    with pytest.raises(ValueError, match="equally many"):
        mcnemar_test(y, y[:3], y)


# ---------------------------------------------------------------- Friedman


TABLE = {
    "d1": {"A": 0.90, "B": 0.80, "C": 0.80, "D": 0.99},  # ranks A 1, B 2.5, C 2.5 (tie)
    "d2": {"A": 0.70, "B": 0.90, "C": 0.60},  # A 2, B 1, C 3
    "d3": {"A": 0.95, "B": 0.85, "C": 0.75},  # A 1, B 2, C 3
}


def test_friedman_ranks_hand_table_with_ties():
    r = friedman_ranks(TABLE)
    assert r["dropped"] == ["D"] and r["n_datasets"] == 3
    assert list(r["average_ranks"]) == ["A", "B", "C"]
    assert r["average_ranks"] == pytest.approx({"A": 4 / 3, "B": 5.5 / 3, "C": 8.5 / 3})
    direct = stats.friedmanchisquare([0.90, 0.70, 0.95], [0.80, 0.90, 0.85], [0.80, 0.60, 0.75])
    assert r["statistic"] == pytest.approx(direct.statistic) and r["p_value"] == pytest.approx(direct.pvalue)
    lower = friedman_ranks(TABLE, higher_is_better=False)
    assert list(lower["average_ranks"]) == ["C", "B", "A"]
    assert lower["average_ranks"] == pytest.approx({"A": 8 / 3, "B": 6.5 / 3, "C": 3.5 / 3})
    assert lower["p_value"] == pytest.approx(r["p_value"])
    assert_plain_json(r)


def test_friedman_statistic_by_hand_without_ties():
    # same order on both datasets: rank sums 2, 4, 6; χ² = 12 / (n k (k+1)) · ΣR² − 3 n (k+1) = ½ · 56 − 24 = 4
    r = friedman_ranks({"d1": {"x": 3, "y": 2, "z": 1}, "d2": {"x": 4, "y": 3, "z": 2}})
    assert r["average_ranks"] == {"x": 1.0, "y": 2.0, "z": 3.0}
    assert r["statistic"] == pytest.approx(4.0) and r["p_value"] == pytest.approx(math.exp(-2))  # χ²₂ sf = e^(−x/2)


def test_friedman_undefined_cases():
    two_strategies = friedman_ranks({"d1": {"x": 1, "y": 2}, "d2": {"x": 1, "y": 3}})
    assert two_strategies["average_ranks"] == {"y": 1.0, "x": 2.0}
    assert two_strategies["p_value"] is None
    one_dataset = friedman_ranks({"d1": {"x": 1, "y": 2, "z": 3}})
    assert one_dataset["average_ranks"] == {"z": 1.0, "y": 2.0, "x": 3.0}
    assert one_dataset["p_value"] is None
    all_tied = friedman_ranks({"d1": {"x": 1, "y": 1, "z": 1}, "d2": {"x": 2, "y": 2, "z": 2}})
    assert all_tied["average_ranks"] == {"x": 2.0, "y": 2.0, "z": 2.0} and all_tied["p_value"] is None
    disjoint = friedman_ranks({"d1": {"x": 1}, "d2": {"y": 1}})
    assert disjoint["average_ranks"] == {} and disjoint["dropped"] == ["x", "y"]
    with pytest.raises(ValueError, match="at least one dataset"):
        friedman_ranks({})
