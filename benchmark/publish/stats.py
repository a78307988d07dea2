"""Leaderboard statistics: spread and Student-t CIs over runs, paired tests, a paired bootstrap over test images and
runs and a run's test-image bootstrap variance, Holm's correction, per-run tests over test images, rank tests (the
run-level inference itself is in benchmark.publish.inference).

Conventions: in every paired comparison the first argument is the baseline ("a") and differences are
other − baseline (b − a), so a positive difference or z means the second model is better. Outputs are plain
Python floats/ints, with None where a quantity is undefined (too few samples, zero variance), so they are JSON-able.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
from scipy import stats

from benchmark.train.metrics import predicted_labels

# The exact two-sided Wilcoxon signed-rank p is at least 2 / 2**n: below 0.05 only from n = 6 non-zero differences.
WILCOXON_MIN_N = 6
BOOTSTRAP_METRICS = ("accuracy", "auc")
TASK_KINDS = ("binary", "multiclass", "ordinal", "multilabel")
FRIEDMAN_MIN_BLOCKS = 3  # Friedman's test and the critical-difference diagram need at least three blocks
CHUNK_ELEMENTS = 1 << 22  # resamples × images held at once by the paired bootstrap (~32 MB per float64 array)


def mean_std(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean and sample std (ddof=1) over seeds, the error bar the seed papers leave out; None where undefined."""
    x = _vector(values)
    return {
        "mean": float(x.mean()) if x.size else None,
        "std": float(x.std(ddof=1)) if x.size >= 2 else None,
        "n": int(x.size),
    }


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, float | str | None]:
    """Student-t CI of the mean over seeds, mean ± t_{(1+c)/2, n-1} · s / √n: exact for normal seed scores at any n.

    One seed (or none) has no interval: low = high = None and method "none". Constant values give low = high = mean.
    """
    x = _vector(values)
    if x.size < 2:
        return {"low": None, "high": None, "method": "none"}
    half = float(stats.t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    mean = float(x.mean())
    return {"low": mean - half, "high": mean + half, "method": "t"}


def paired_difference(baseline: Sequence[float], other: Sequence[float]) -> dict[str, float | int | None]:
    """Per-seed paired differences other − baseline with paired t-test and Wilcoxon p-values, since seeds pair runs.

    t-test p is None for n < 2 or identical differences (zero variance). Wilcoxon p is None with fewer than
    WILCOXON_MIN_N non-zero differences (`wilcoxon_n`): below that its exact two-sided p cannot reach 0.05.
    """
    a, b = _vector(baseline), _vector(other)
    if a.shape != b.shape:
        raise ValueError(f"need one baseline score per other score, got {a.size} and {b.size}")
    d = b - a
    t_p = None
    if d.size >= 2 and np.ptp(d) > 1e-12 * max(1.0, float(np.abs(d).max())):
        t_p = float(stats.ttest_rel(b, a).pvalue)
    nonzero = d[d != 0]
    w_p = float(stats.wilcoxon(nonzero).pvalue) if nonzero.size >= WILCOXON_MIN_N else None
    return {
        "mean_difference": float(d.mean()) if d.size else None,
        "t_p_value": t_p,
        "wilcoxon_p_value": w_p,
        "wilcoxon_n": int(nonzero.size),
        "n": int(d.size),
    }


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values of one family: the i-th smallest of m defined p's becomes
    max over j ≤ i of min(1, (m − j + 1) · p_(j)); None and NaN entries are not hypotheses and stay None."""
    defined = [i for i, p in enumerate(p_values) if p is not None and not np.isnan(p)]
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(defined, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (len(defined) - rank) * float(p_values[i])))
        adjusted[i] = running
    return adjusted


def paired_bootstrap(
    kind: str,
    labels: np.ndarray,
    baseline: Sequence[np.ndarray],
    other: Sequence[np.ndarray],
    rng: np.random.Generator,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> dict[str, object]:
    """Accuracy and AUC difference other − baseline with a paired bootstrap over test images and seeds.

    `baseline[s]` and `other[s]` are the two runs' test scores (N, K) of seed s, all on the same test images
    `labels` (N,) or (N, L) multi-hot. Each resample draws S seeds with replacement and N image indices with
    replacement; the same image indices serve both strategies and every drawn seed (seeds and images are crossed:
    every seed's models see the same test set). It computes accuracy and AUC as benchmark.train.metrics defines them for
    `kind` (binary: positive-class AUC; multiclass/ordinal: macro one-vs-rest AUC, argmax accuracy; multilabel:
    macro AUC over labels, mean per-label accuracy) for both, averaged over the drawn seeds. Resamples where an
    AUC is undefined (a class not drawn) are left out (`n_valid` counts the rest).

    Per metric: `difference` is the observed mean over seeds of metric(other) − metric(baseline); the CI is the
    percentile interval of the resampled differences d*; the two-sided p is 2 · Φ(−|difference| / se), with se the
    standard deviation of d* (1 when se = 0 and difference = 0, 0 when se = 0 otherwise). This normal form is used
    rather than counting resamples beyond 0, whose floor 2 / (B + 1) would stop Holm's correction from ever
    reaching 0.05 in a table of many comparisons.
    """
    if kind not in TASK_KINDS:
        raise ValueError(f"unknown task kind {kind!r}: expected one of {', '.join(TASK_KINDS)}")
    a, b = _score_stack(labels, baseline), _score_stack(labels, other)
    if a.shape != b.shape:
        raise ValueError(f"need one baseline run per other run with the same shape, got {a.shape} and {b.shape}")
    labels = np.asarray(labels)
    observed = {
        m: float(_seed_differences(kind, m, labels, a, b, np.ones((1, len(labels)))).mean()) for m in BOOTSTRAP_METRICS
    }
    draws = _resampled_differences(kind, labels, a, b, rng, n_resamples)
    result: dict[str, object] = {m: _bootstrap_summary(observed[m], draws[m], confidence) for m in BOOTSTRAP_METRICS}
    return result | {"n_seeds": a.shape[0], "n_images": labels.shape[0], "n_resamples": n_resamples}


def _seed_differences(
    kind: str, metric: str, labels: np.ndarray, a: np.ndarray, b: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """metric(b) − metric(a) of each seed under each resample of image `counts` (B, N): (B, S)."""
    return np.stack(
        [_metric(kind, metric, labels, y, counts) - _metric(kind, metric, labels, x, counts) for x, y in zip(a, b)],
        axis=1,
    )


def _resampled_differences(
    kind: str, labels: np.ndarray, a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n_resamples: int
) -> dict[str, np.ndarray]:
    """Per metric, the seed-averaged difference b − a of each of `n_resamples` resamples (test images and seeds
    drawn with replacement, the same images for every seed), drawn in chunks that bound memory."""
    seeds, n = a.shape[0], labels.shape[0]
    draws: dict[str, list[np.ndarray]] = {m: [] for m in BOOTSTRAP_METRICS}
    for size in _chunks(n_resamples, n):
        counts = _draw_counts(rng, size, n)
        weights = _draw_counts(rng, size, seeds) / seeds
        for m in BOOTSTRAP_METRICS:
            draws[m].append((_seed_differences(kind, m, labels, a, b, counts) * weights).sum(axis=1))
    return {m: np.concatenate(draws[m]) for m in BOOTSTRAP_METRICS}


def image_bootstrap_variance(
    kind: str, metric: str, labels: np.ndarray, scores: np.ndarray, rng: np.random.Generator, n_resamples: int = 200
) -> float | None:
    """Variance of one run's test accuracy or AUC over resamples of its test images (drawn with replacement): the
    test-image part of a row's variance decomposition. None where fewer than two resamples define the metric."""
    labels = np.asarray(labels)
    stack = _score_stack(labels, [scores])[0]
    draws = np.concatenate(
        [
            _metric(kind, metric, labels, stack, _draw_counts(rng, size, labels.shape[0]))
            for size in _chunks(n_resamples, labels.shape[0])
        ]
    )
    valid = draws[np.isfinite(draws)]
    return float(valid.var(ddof=1)) if valid.size >= 2 else None


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


def largest_complete_table(blocks: Mapping[str, Collection[str]]) -> tuple[list[str], set[str]]:
    """The blocks, and the models present in all of them, that hold the most (model, block) scores.

    A block where few models ran (a learning curve's extra fractions) is left out rather than every model it lacks;
    a model missing from one block (a failed cell) is left out rather than the block. Ties go to more blocks. Fewer
    than two models rank nothing, so then every block is kept with the models common to all of them.
    """
    names = list(blocks)
    models = [set(blocks[name]) for name in names]
    candidates = [*models, set.intersection(*models)] if names else [set()]

    def size(common: set[str]) -> tuple[int, int]:
        kept = sum(common <= m for m in models)
        return (len(common) * kept if len(common) >= 2 else 0, kept)

    best = max(candidates[::-1], key=size)  # reversed: the all-block intersection wins ties (and when nothing ranks)
    return [name for name, m in zip(names, models, strict=True) if best <= m], best


def friedman_ranks(table: Mapping[str, Mapping[str, float]], higher_is_better: bool = True) -> dict[str, object]:
    """Average rank per strategy over blocks (datasets × fractions; 1 = best, ties averaged) and the Friedman test.

    `table[block][strategy] = score`. Ranks are taken over the largest complete table (`largest_complete_table`):
    strategies not in it are listed in "dropped", blocks left out of it in "dropped_blocks". The Friedman p-value
    needs ≥ 3 strategies and ≥ FRIEDMAN_MIN_BLOCKS blocks (its chi-square reference is meaningless below), and is
    None when every block ties all strategies. Ranks are returned best first.
    """
    if not table:
        raise ValueError("need at least one dataset")
    blocks, everywhere = largest_complete_table(table)
    rows = [table[block] for block in blocks]
    strategies = sorted(everywhere)
    dropped = sorted(set().union(*table.values()) - everywhere)
    scores = np.array([[row[s] for s in strategies] for row in rows], dtype=float).reshape(len(rows), len(strategies))
    ranks = stats.rankdata(-scores if higher_is_better else scores, axis=1)
    mean_ranks = ranks.mean(axis=0)
    statistic = p_value = None
    if len(strategies) >= 3 and len(rows) >= FRIEDMAN_MIN_BLOCKS and not np.all(scores == scores[:, :1]):
        result = stats.friedmanchisquare(*scores.T)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    order = sorted(range(len(strategies)), key=lambda i: (mean_ranks[i], strategies[i]))
    return {
        "average_ranks": {strategies[i]: float(mean_ranks[i]) for i in order},
        "statistic": statistic,
        "p_value": p_value,
        "n_datasets": len(rows),
        "dropped": dropped,
        "dropped_blocks": [block for block in table if block not in blocks],
    }


def _vector(values: Sequence[float]) -> np.ndarray:
    """A 1-D float array of the given values."""
    return np.asarray(values, dtype=float).ravel()


def _score_stack(labels: np.ndarray, runs: Sequence[np.ndarray]) -> np.ndarray:
    """The runs' (N, K) scores as one (S, N, K) float array, checked against the N labels."""
    if not len(runs):
        raise ValueError("need the scores of at least one seed")
    stack = np.stack([np.asarray(run, dtype=float) for run in runs])
    if stack.ndim != 3 or stack.shape[1] != len(labels):
        raise ValueError(f"need (N, K) scores for N={len(labels)} labels per seed, got {stack.shape[1:]}")
    return stack


def _chunks(n_resamples: int, n: int) -> list[int]:
    """Resample counts per chunk, so no (chunk, n) array exceeds CHUNK_ELEMENTS."""
    step = max(1, CHUNK_ELEMENTS // n)
    return [min(step, n_resamples - start) for start in range(0, n_resamples, step)]


def _draw_counts(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """(size, n): how often each of n items (test images, seeds) is drawn in each of `size` resamples of n draws
    with replacement."""
    draws = rng.integers(0, n, (size, n)) + n * np.arange(size)[:, None]
    return np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).astype(float)


def _metric(kind: str, metric: str, labels: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Accuracy or AUC (train.metrics' definitions for `kind`) of each resample given by image counts: (B,)."""
    if metric == "accuracy":
        correct = predicted_labels(kind, scores) == labels
        per_image = correct.mean(axis=1) if kind == "multilabel" else correct.astype(float)
        return (counts * per_image).sum(axis=1) / labels.shape[0]  # not BLAS: its threads stall on a busy CPU
    if kind == "binary":
        return _resampled_auc(labels == 1, scores[:, 1], counts)
    positive = labels.astype(bool) if kind == "multilabel" else labels[:, None] == np.arange(scores.shape[1])
    return np.mean([_resampled_auc(positive[:, k], scores[:, k], counts) for k in range(scores.shape[1])], axis=0)


def _resampled_auc(positive: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Rank (Mann–Whitney) AUC per resample, each image weighted by its draw count, ties counting ½; NaN without
    both classes. Negatives sorted by score once give, per positive, the drawn negatives below and tied with it."""
    negative = np.flatnonzero(~positive)
    negative = negative[np.argsort(score[negative], kind="stable")]
    below_or_at = np.zeros((len(counts), negative.size + 1))  # column j: drawn negatives among the j lowest
    np.cumsum(counts[:, negative], axis=1, out=below_or_at[:, 1:])
    where = np.flatnonzero(positive)
    sorted_scores, at = score[negative], score[where]
    below = below_or_at[:, np.searchsorted(sorted_scores, at, side="left")]
    through = below_or_at[:, np.searchsorted(sorted_scores, at, side="right")]
    weight = counts[:, where]
    pairs = (weight * (below + through)).sum(axis=1) / 2  # negatives below + ½ · tied = (below + through) / 2
    n_pairs = weight.sum(axis=1) * below_or_at[:, -1]
    return np.divide(pairs, n_pairs, out=np.full(len(counts), np.nan), where=n_pairs > 0)


def _bootstrap_summary(observed: float, draws: np.ndarray, confidence: float) -> dict[str, float | int | None]:
    """Observed difference, percentile CI, bootstrap se and normal two-sided p of one metric (None if undefined)."""
    valid = draws[np.isfinite(draws)]
    summary: dict[str, float | int | None] = dict.fromkeys(("difference", "ci_low", "ci_high", "se", "p_value"))
    summary["n_valid"] = int(valid.size)
    if not np.isfinite(observed) or valid.size < 2:
        return summary
    low, high = np.quantile(valid, [(1 - confidence) / 2, (1 + confidence) / 2])
    se = float(valid.std(ddof=1))
    if se > 0:
        p = float(2 * stats.norm.sf(abs(observed) / se))
    else:
        p = 1.0 if observed == 0 else 0.0
    return summary | {"difference": observed, "ci_low": float(low), "ci_high": float(high), "se": se, "p_value": p}
