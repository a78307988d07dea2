"""Leaderboard statistics: hand-checked cases, DeLong against a slow structural-components reference, scipy, the
paired bootstrap against benchmark.train.metrics and against an unpaired bootstrap."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from benchmark.data.task import TaskSpec
from benchmark.publish.stats import (
    WILCOXON_MIN_N,
    _resampled_auc,
    delong_test,
    delong_test_multiclass,
    friedman_ranks,
    holm,
    image_bootstrap_variance,
    largest_complete_table,
    mcnemar_test,
    mean_std,
    paired_bootstrap,
    paired_difference,
    t_interval,
)
from benchmark.train.metrics import classification_metrics

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


# ---------------------------------------------------------------- mean_std / t_interval


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx({"mean": 2.5, "std": math.sqrt(5 / 3), "n": 4})
    assert mean_std([0.7]) == {"mean": 0.7, "std": None, "n": 1}
    assert mean_std([]) == {"mean": None, "std": None, "n": 0}
    assert_plain_json(mean_std(np.array([0.1, 0.2])))


def test_t_interval_hand_case_and_scipy():
    # mean 2.5, s = √(5/3), se = s / 2; t(0.975, 3 df) = 3.182446305284263
    ci = t_interval([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert ci == pytest.approx({"low": 2.5 - half, "high": 2.5 + half, "method": "t"})
    direct = stats.t.interval(0.95, 3, loc=2.5, scale=stats.sem([1.0, 2.0, 3.0, 4.0]))
    assert (ci["low"], ci["high"]) == pytest.approx(direct)
    # two seeds: t(0.975, 1) = 12.706: far wider than the [min, max] a percentile bootstrap of 2 seeds would give
    two = t_interval([0.8, 0.9])
    assert (two["low"], two["high"]) == pytest.approx((0.85 - 12.706204736 * 0.05, 0.85 + 12.706204736 * 0.05))
    narrow = t_interval([1.0, 2.0, 3.0, 4.0], confidence=0.5)
    assert narrow["high"] - narrow["low"] < ci["high"] - ci["low"]
    assert_plain_json(ci)


def test_t_interval_one_seed_has_none():
    assert t_interval([0.9]) == {"low": None, "high": None, "method": "none"}
    assert t_interval([]) == {"low": None, "high": None, "method": "none"}
    assert t_interval([0.1, 0.1, 0.1]) == pytest.approx({"low": 0.1, "high": 0.1, "method": "t"})


# ---------------------------------------------------------------- paired_difference


def test_paired_difference_hand_case():
    baseline, other = [0.50, 0.25, 0.75], [0.53, 0.27, 0.77]  # differences 0.03, 0.02, 0.02
    r = paired_difference(baseline, other)
    assert r["n"] == 3
    assert r["mean_difference"] == pytest.approx(0.07 / 3)
    # sd = 0.01/√3, so t = mean / (sd/√3) = (0.07/3) / (0.01/3) = 7; with 2 df, two-sided p = 1 − t / √(t² + 2)
    assert r["t_p_value"] == pytest.approx(1 - 7 / math.sqrt(51), rel=1e-6)
    # 3 seeds: the exact two-sided Wilcoxon p is at least 2 / 2³ = 0.25, so it is not reported
    assert r["wilcoxon_p_value"] is None and r["wilcoxon_n"] == 3
    assert paired_difference(other, baseline)["mean_difference"] == pytest.approx(-0.07 / 3)
    assert_plain_json(r)


def test_wilcoxon_needs_six_nonzero_differences():
    assert 2 / 2 ** (WILCOXON_MIN_N - 1) >= 0.05 > 2 / 2**WILCOXON_MIN_N
    assert stats.wilcoxon([0.1, 0.2, 0.3, 0.4, 0.5]).pvalue == pytest.approx(0.0625)  # n = 5: never below 0.05
    six = paired_difference([0.0] * 6, [0.1, 0.2, 0.25, 0.3, 0.15, 0.4])
    assert six["wilcoxon_n"] == 6 and six["wilcoxon_p_value"] == pytest.approx(2 / 2**6)
    one_zero = paired_difference([0.0] * 6, [0.0, 0.2, 0.25, 0.3, 0.15, 0.4])
    assert one_zero["wilcoxon_n"] == 5 and one_zero["wilcoxon_p_value"] is None


def test_paired_difference_degenerate():
    zero = paired_difference([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert zero == {"mean_difference": 0.0, "t_p_value": None, "wilcoxon_p_value": None, "wilcoxon_n": 0, "n": 3}
    constant = paired_difference([1.0, 2, 3, 4, 5, 6], [2.0, 3, 4, 5, 6, 7])  # zero variance: t undefined, Wilcoxon not
    assert constant["t_p_value"] is None and constant["wilcoxon_p_value"] == pytest.approx(2 / 2**6)
    single = paired_difference([0.5], [0.6])
    assert single["t_p_value"] is None and single["wilcoxon_p_value"] is None
    assert single["mean_difference"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="one baseline score"):
        paired_difference([0.5, 0.6], [0.5])


# ---------------------------------------------------------------- Holm


def test_holm_hand_example():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # undefined p's are not hypotheses: m = 2 here, not 4
    assert holm([None, 0.02, float("nan"), 0.04]) == [None, pytest.approx(0.04), None, pytest.approx(0.04)]
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1, and monotone
    assert holm([]) == [] and holm([0.03]) == [0.03]


# ---------------------------------------------------------------- paired bootstrap over test images and seeds

TASKS = {
    "binary": TaskSpec(kind="binary", labels=("a", "b"), channels=1),
    "multiclass": TaskSpec(kind="multiclass", labels=("a", "b", "c", "d"), channels=1),
    "multilabel": TaskSpec(kind="multilabel", labels=("a", "b", "c"), channels=1),
}


def _predictions(kind: str, n: int, skills: list[float], seed: int = 0):
    """Labels of one test set and, per skill, scores that favour the truth by that much (softmax or sigmoid)."""
    rng = np.random.default_rng(seed)
    k = TASKS[kind].num_outputs
    if kind == "multilabel":
        labels = rng.integers(0, 2, (n, k))
        return labels, [1 / (1 + np.exp(-(rng.normal(size=(n, k)) + skill * (2 * labels - 1)))) for skill in skills]
    labels = rng.integers(0, k, n)
    runs = []
    for skill in skills:
        logits = rng.normal(size=(n, k)) + skill * np.eye(k)[labels]
        runs.append(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))
    return labels, runs


@pytest.mark.parametrize("kind", TASKS)
def test_bootstrap_observed_difference_is_benchmark_metrics(kind):
    labels, (a0, a1, b0, b1) = _predictions(kind, 150, [0.5, 0.6, 1.0, 1.2])
    r = paired_bootstrap(kind, labels, [a0, a1], [b0, b1], np.random.default_rng(0), n_resamples=50)
    for metric in ("accuracy", "auc"):
        score = {id(s): classification_metrics(TASKS[kind], labels, s)[metric] for s in (a0, a1, b0, b1)}
        per_seed = [score[id(b)] - score[id(a)] for a, b in ((a0, b0), (a1, b1))]
        assert r[metric]["difference"] == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert (r["n_seeds"], r["n_images"], r["n_resamples"]) == (2, 150, 50)
    assert_plain_json(r)


@pytest.mark.parametrize("kind", TASKS)
def test_bootstrap_identical_predictions_give_zero_and_p_one(kind):
    labels, (a, b) = _predictions(kind, 120, [1.0, 1.0])
    r = paired_bootstrap(kind, labels, [a, b], [a.copy(), b.copy()], np.random.default_rng(1))
    for metric in ("accuracy", "auc"):
        assert r[metric]["difference"] == 0.0 and r[metric]["p_value"] == 1.0
        assert r[metric]["ci_low"] == r[metric]["ci_high"] == 0.0 and r[metric]["n_valid"] == 1000


@pytest.mark.parametrize("kind", TASKS)
def test_bootstrap_clearly_better_model_excludes_zero(kind):
    labels, (a0, a1, a2, b0, b1, b2) = _predictions(kind, 300, [0.3, 0.3, 0.3, 2.5, 2.5, 2.5])
    r = paired_bootstrap(kind, labels, [a0, a1, a2], [b0, b1, b2], np.random.default_rng(2))
    for metric in ("accuracy", "auc"):
        assert 0 < r[metric]["ci_low"] < r[metric]["difference"] < r[metric]["ci_high"]
        assert r[metric]["p_value"] < 1e-6
    backwards = paired_bootstrap(kind, labels, [b0, b1, b2], [a0, a1, a2], np.random.default_rng(2))
    assert backwards["auc"]["ci_high"] < 0 and backwards["auc"]["difference"] == pytest.approx(-r["auc"]["difference"])


def test_bootstrap_draws_the_same_images_for_both_strategies():
    # a is right on ~70 % of very unequal images; b only fixes 4 of a's mistakes. Drawing the same images for both
    # keeps the resampled difference in [0, a few images]; independent draws would spread it over ±7 points.
    rng = np.random.default_rng(3)
    n = 400
    labels = rng.integers(0, 2, n)
    logit = rng.normal(0, 2, n) + (2 * labels - 1)
    p_a = 1 / (1 + np.exp(-logit))
    wrong = np.flatnonzero((p_a > 0.5) != labels)[:4]
    p_b = p_a.copy()
    p_b[wrong] = np.where(labels[wrong] == 1, 0.9, 0.1)
    a, b = np.stack([1 - p_a, p_a], axis=1), np.stack([1 - p_b, p_b], axis=1)
    r = paired_bootstrap("binary", labels, [a], [b], np.random.default_rng(4))
    assert r["accuracy"]["difference"] == pytest.approx(4 / n)
    draws = np.random.default_rng(5).integers(0, n, (2, 1000, n))
    right_a, right_b = (p_a > 0.5) == labels, (p_b > 0.5) == labels
    unpaired = np.quantile(right_b[draws[1]].mean(axis=1) - right_a[draws[0]].mean(axis=1), [0.025, 0.975])
    assert unpaired[1] - unpaired[0] > 0.08
    assert r["accuracy"]["ci_low"] >= 0 and r["accuracy"]["ci_high"] - r["accuracy"]["ci_low"] < 0.02
    assert r["auc"]["ci_low"] >= 0 and r["auc"]["ci_high"] - r["auc"]["ci_low"] < 0.02


def test_bootstrap_resamples_seeds():
    # seed 0: b fixes a's 40 mistakes (+0.1), seed 1: b makes 40 new ones (−0.1). The same images serve both seeds,
    # so image draws alone cancel exactly; drawing seeds puts a quarter of the resamples at +0.1, a quarter at −0.1.
    n = 400
    labels = np.repeat([0, 1], n // 2)
    right = np.stack([1.0 - labels, labels.astype(float)], axis=1) * 0.8 + 0.1
    mixed = np.where(np.arange(n)[:, None] < 40, right[:, ::-1], right)
    r = paired_bootstrap("binary", labels, [mixed, right], [right, mixed], np.random.default_rng(6))
    assert r["accuracy"]["difference"] == 0.0
    assert r["accuracy"]["ci_low"] < -0.07 and r["accuracy"]["ci_high"] > 0.07


def test_bootstrap_is_deterministic_and_checks_shapes():
    labels, (a, b) = _predictions("binary", 100, [0.5, 1.5])
    first = paired_bootstrap("binary", labels, [a], [b], np.random.default_rng(7), n_resamples=200)
    assert paired_bootstrap("binary", labels, [a], [b], np.random.default_rng(7), n_resamples=200) == first
    assert paired_bootstrap("binary", labels, [a], [b], np.random.default_rng(8), n_resamples=200) != first
    with pytest.raises(ValueError, match="one baseline run per other run"):
        paired_bootstrap("binary", labels, [a, a], [b], np.random.default_rng(0))
    with pytest.raises(ValueError, match="N=100"):
        paired_bootstrap("binary", labels, [a[:50]], [b[:50]], np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown task kind 'regression'"):
        paired_bootstrap("regression", labels, [a], [b], np.random.default_rng(0))


def test_bootstrap_undefined_auc_is_none():
    labels = np.zeros(20, dtype=int)  # one class only: no AUC, accuracy still defined
    scores = np.full((20, 2), 0.5)
    r = paired_bootstrap("binary", labels, [scores], [scores], np.random.default_rng(0), n_resamples=20)
    assert r["auc"]["difference"] is None and r["auc"]["p_value"] is None and r["auc"]["n_valid"] == 0
    assert r["accuracy"]["p_value"] == 1.0


@pytest.mark.parametrize("seed", range(3))
def test_resampled_auc_is_sklearn_on_the_drawn_images_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 80)
    score = np.round(rng.normal(y, 1.0), 1)
    counts = rng.integers(0, 3, (4, 80)).astype(float)
    counts[0] = 1
    expected = [roc_auc_score(np.repeat(y, c.astype(int)), np.repeat(score, c.astype(int))) for c in counts]
    assert _resampled_auc(y == 1, score, counts) == pytest.approx(expected, abs=1e-12)


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
    # same order on three blocks: rank sums 3, 6, 9; χ² = 12 / (n k (k+1)) · ΣR² − 3 n (k+1) = ⅓ · 126 − 36 = 6
    r = friedman_ranks({"d1": {"x": 3, "y": 2, "z": 1}, "d2": {"x": 4, "y": 3, "z": 2}, "d3": {"x": 9, "y": 5, "z": 0}})
    assert r["average_ranks"] == {"x": 1.0, "y": 2.0, "z": 3.0}
    assert r["statistic"] == pytest.approx(6.0) and r["p_value"] == pytest.approx(math.exp(-3))  # χ²₂ sf = e^(−x/2)


def test_friedman_is_not_tested_over_two_blocks():
    r = friedman_ranks({"d1": {"x": 3, "y": 2, "z": 1}, "d2": {"x": 4, "y": 3, "z": 2}})
    assert r["average_ranks"] == {"x": 1.0, "y": 2.0, "z": 3.0} and r["p_value"] is None and r["statistic"] is None


def test_largest_complete_table_leaves_out_a_curves_extra_blocks_and_a_failed_cells_row():
    main = {"none", "geometric", "cgan", "vae"}
    curve = {"d1": main, "d2": main, "d3": main, "d1@0.05": {"none", "geometric"}, "d1@0.2": {"none", "geometric"}}
    assert largest_complete_table(curve) == (["d1", "d2", "d3"], main)  # 12 scores, not 2 rows × 5 blocks = 10
    failed = {"d1": main, "d2": main, "d3": main - {"vae"}}
    assert largest_complete_table(failed) == (["d1", "d2", "d3"], main - {"vae"})  # 9 scores, not 8
    tied = {"d1": {"x", "y"}, "d2": {"x", "y", "z"}, "d3": {"x", "y", "z"}}  # 6 scores either way: more blocks win
    assert largest_complete_table(tied) == (["d1", "d2", "d3"], {"x", "y"})
    assert largest_complete_table({"d1": {"x"}, "d2": {"y"}}) == (["d1", "d2"], set())
    ranks = friedman_ranks({b: {s: float(len(s)) for s in models} for b, models in curve.items()})
    assert ranks["n_datasets"] == 3 and ranks["dropped_blocks"] == ["d1@0.05", "d1@0.2"] and ranks["dropped"] == []


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


def test_image_bootstrap_variance_of_accuracy_is_binomial():
    """Resampling N test images gives the accuracy a variance p̂(1 − p̂)/N; AUC gets one too, a lone class none."""
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 100)
    right = np.arange(200) % 5 != 0  # 80% right
    p = np.where(right, labels, 1 - labels) * 0.6 + 0.2
    scores = np.stack([1 - p, p], axis=1)
    variance = image_bootstrap_variance("binary", "accuracy", labels, scores, rng, 4000)
    assert variance == pytest.approx(0.8 * 0.2 / 200, rel=0.1)
    assert image_bootstrap_variance("binary", "auc", labels, scores, rng, 200) > 0
    assert image_bootstrap_variance("binary", "auc", np.zeros(20, int), scores[:20], rng, 50) is None
