"""Leaderboard statistics: spread over seeds, bootstrap CIs, paired tests over seeds and over test images, rank tests.

Conventions: in every paired comparison the first argument is the baseline ("a") and differences are
other − baseline (b − a), so a positive difference or z means the second model is better. Outputs are plain
Python floats/ints, with None where a quantity is undefined (too few samples, zero variance), so they are JSON-able.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats


def mean_std(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean and sample std (ddof=1) over seeds, the error bar the seed papers leave out; None where undefined."""
    x = _vector(values)
    return {
        "mean": float(x.mean()) if x.size else None,
        "std": float(x.std(ddof=1)) if x.size >= 2 else None,
        "n": int(x.size),
    }


def bootstrap_ci(
    values: Sequence[float], confidence: float = 0.95, n_resamples: int = 10000, seed: int = 0
) -> dict[str, float | str | None]:
    """Percentile bootstrap CI of the mean over seeds (BCa degenerates for 2-3 seeds); deterministic for a seed.

    With n < 2 or constant values there is nothing to resample: low = high = that value and method is "none".
    With few seeds the percentile interval is coarse and too narrow (n=2 gives at most [min, max]).
    """
    x = _vector(values)
    if x.size == 0:
        return {"low": None, "high": None, "method": "none"}
    if x.size < 2 or np.all(x == x[0]):
        return {"low": float(x[0]), "high": float(x[0]), "method": "none"}
    result = stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    return {"low": float(ci.low), "high": float(ci.high), "method": "percentile"}


def paired_difference(baseline: Sequence[float], other: Sequence[float]) -> dict[str, float | int | None]:
    """Per-seed paired differences other − baseline with paired t-test and Wilcoxon p-values, since seeds pair runs.

    t-test p is None for n < 2 or identical differences (zero variance); Wilcoxon p is None with fewer than two
    non-zero differences. The exact two-sided Wilcoxon p can never go below 2 / 2**n (0.0625 for 5 seeds).
    """
    a, b = _vector(baseline), _vector(other)
    if a.shape != b.shape:
        raise ValueError(f"need one baseline score per other score, got {a.size} and {b.size}")
    d = b - a
    t_p = None
    if d.size >= 2 and np.ptp(d) > 1e-12 * max(1.0, float(np.abs(d).max())):
        t_p = float(stats.ttest_rel(b, a).pvalue)
    w_p = float(stats.wilcoxon(d).pvalue) if np.count_nonzero(d) >= 2 else None
    return {
        "mean_difference": float(d.mean()) if d.size else None,
        "t_p_value": t_p,
        "wilcoxon_p_value": w_p,
        "n": int(d.size),
    }


def delong_test(y_true: Sequence[int], score_a: Sequence[float], score_b: Sequence[float]) -> dict[str, float | None]:
    """DeLong's test of two correlated ROC AUCs on the same test images (fast midrank form of Sun & Xu, 2014).

    difference and z are auc_b − auc_a. AUCs are None without both classes; z and p_value are None with fewer
    than two images of a class, or when the difference is non-zero but its estimated variance is zero.
    """
    y, a, b = np.asarray(y_true).ravel(), _vector(score_a), _vector(score_b)
    if not y.size == a.size == b.size:
        raise ValueError(f"need one score per label, got {y.size} labels and {a.size}, {b.size} scores")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold binary labels 0/1")
    scores = np.stack([a, b])
    positives, negatives = scores[:, y == 1], scores[:, y == 0]
    m, n = positives.shape[1], negatives.shape[1]
    result: dict[str, float | None] = dict.fromkeys(("auc_a", "auc_b", "difference", "z", "p_value"))
    if m == 0 or n == 0:
        return result
    # Midranks: rank within the pooled set minus rank within its own class counts the other class below each score.
    pooled = stats.rankdata(np.concatenate([positives, negatives], axis=1), axis=1)
    v10 = (pooled[:, :m] - stats.rankdata(positives, axis=1)) / n  # per positive: share of negatives below it
    v01 = 1.0 - (pooled[:, m:] - stats.rankdata(negatives, axis=1)) / m  # per negative: share of positives above
    auc = v10.mean(axis=1)
    difference = float(auc[1] - auc[0])
    result.update(auc_a=float(auc[0]), auc_b=float(auc[1]), difference=difference)
    if m < 2 or n < 2:
        return result
    # Variance of the difference from the differenced structural components: exactly 0 for identical scores.
    variance = np.var(v10[1] - v10[0], ddof=1) / m + np.var(v01[1] - v01[0], ddof=1) / n
    if variance > 0:
        z = difference / float(np.sqrt(variance))
        result.update(z=z, p_value=float(2 * stats.norm.sf(abs(z))))
    elif difference == 0:
        result.update(z=0.0, p_value=1.0)
    return result


def delong_test_multiclass(
    y_true: Sequence[int], probs_a: np.ndarray, probs_b: np.ndarray
) -> dict[str, list[dict[str, float | None]] | float | None]:
    """One-vs-rest DeLong test per class and the mean AUC difference (b − a); per-class tests, not one joint test."""
    a, b = np.asarray(probs_a, dtype=float), np.asarray(probs_b, dtype=float)
    y = np.asarray(y_true).ravel()
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] != y.size:
        raise ValueError(f"need two (N, K) probability arrays for N={y.size} labels, got {a.shape} and {b.shape}")
    per_class = [delong_test((y == k).astype(int), a[:, k], b[:, k]) for k in range(a.shape[1])]
    differences = [r["difference"] for r in per_class if r["difference"] is not None]
    return {"per_class": per_class, "mean_difference": float(np.mean(differences)) if differences else None}


def mcnemar_test(y_true: Sequence[int], pred_a: Sequence[int], pred_b: Sequence[int]) -> dict[str, float | int | str]:
    """McNemar's test of paired accuracy on the same test images: exact binomial when b + c < 25, else chi-square.

    b counts images a got right and b wrong, c the reverse. statistic is min(b, c) for "exact" and the
    continuity-corrected chi-square (|b − c| − 1)² / (b + c) for "chi2".
    """
    y, pa, pb = np.asarray(y_true).ravel(), np.asarray(pred_a).ravel(), np.asarray(pred_b).ravel()
    if not y.shape == pa.shape == pb.shape:
        raise ValueError(f"need equally many labels and predictions, got {y.size}, {pa.size} and {pb.size}")
    right_a, right_b = pa == y, pb == y
    b, c = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    if b + c == 0:
        return {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0, "method": "exact"}
    if b + c < 25:
        p = stats.binomtest(b, b + c, 0.5).pvalue
        return {"b": b, "c": c, "statistic": float(min(b, c)), "p_value": float(p), "method": "exact"}
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    p = stats.chi2.sf(statistic, 1)
    return {"b": b, "c": c, "statistic": float(statistic), "p_value": float(p), "method": "chi2"}


def friedman_ranks(table: Mapping[str, Mapping[str, float]], higher_is_better: bool = True) -> dict[str, object]:
    """Average rank per strategy over datasets (1 = best, ties averaged) and the Friedman test, for leaderboards.

    `table[dataset][strategy] = score`. Only strategies scored on every dataset are ranked; the rest are listed
    in "dropped". The Friedman p-value needs ≥ 3 strategies and ≥ 2 datasets, and is None when every dataset ties
    all strategies. Ranks are returned best first.
    """
    rows = list(table.values())
    if not rows:
        raise ValueError("need at least one dataset")
    everywhere = set(rows[0]).intersection(*rows[1:])
    strategies = sorted(everywhere)
    dropped = sorted(set().union(*rows) - everywhere)
    scores = np.array([[row[s] for s in strategies] for row in rows], dtype=float).reshape(len(rows), len(strategies))
    ranks = stats.rankdata(-scores if higher_is_better else scores, axis=1)
    mean_ranks = ranks.mean(axis=0)
    statistic = p_value = None
    if len(strategies) >= 3 and len(rows) >= 2 and not np.all(scores == scores[:, :1]):
        result = stats.friedmanchisquare(*scores.T)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    order = sorted(range(len(strategies)), key=lambda i: (mean_ranks[i], strategies[i]))
    return {
        "average_ranks": {strategies[i]: float(mean_ranks[i]) for i in order},
        "statistic": statistic,
        "p_value": p_value,
        "n_datasets": len(rows),
        "dropped": dropped,
    }


def _vector(values: Sequence[float]) -> np.ndarray:
    """A 1-D float array of the given values."""
    return np.asarray(values, dtype=float).ravel()
