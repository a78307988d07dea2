"""Run-level inference for leaderboards: the paired test over training runs with generator and classifier seeds,
variance components, the smallest difference a table can detect, and the across-task summaries (probability of
improvement and IQM with stratified-bootstrap CIs, Nemenyi's critical difference).

A run is one (generator seed, classifier seed) pair. Under the random-effects model d_gc = μ + a_g + e_gc (a_g the
generator seed's effect, e_gc the classifier seed's, both normal), the mean over a generator seed's C runs has
variance σ_a² + σ_e²/C, so with balanced C the G generator-seed means are i.i.d. normal and a one-sample Student-t
over them (df = G − 1) is exact. With one run per generator seed it is the paired t-test over runs. rliable's
stratified bootstrap and Demšar's Nemenyi test are implemented here (rliable pulls arch and seaborn) and checked
against hand-computed values in tests/test_inference.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

POWER = 0.8
IQM_CUT = 0.25  # the interquartile mean drops the lowest and the highest quarter


@dataclass(frozen=True)
class RunTest:
    """The run-level paired comparison: mean difference over generator seeds, its Student-t CI and two-sided p
    (None where undefined: fewer than two generator seeds, or identical means), and the sizes behind them."""

    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    sd: float | None  # sample std of the generator-seed means
    n_runs: int
    n_generator_seeds: int


@dataclass(frozen=True)
class Components:
    """Variance of a run metric by source: generator seed (σ_a²), classifier seed (σ_e²), both None where the
    design cannot separate them (no generator seed with two runs), and the total between-run variance."""

    generator: float | None
    classifier: float | None
    runs: float | None


def seed_means(values: Sequence[float], generator_seeds: Sequence[object]) -> np.ndarray:
    """The mean of the values of each generator seed, in seed order."""
    x, seeds = np.asarray(values, dtype=float), np.asarray(generator_seeds)
    return np.array([x[seeds == g].mean() for g in np.unique(seeds)])


def run_test(differences: Sequence[float], generator_seeds: Sequence[object], confidence: float = 0.95) -> RunTest:
    """One-sample Student-t interval and test of the paired differences' mean over generator-seed means (df = G − 1),
    the primary comparison of two strategies: it counts generator- and classifier-seed variance, unlike a bootstrap
    over test images."""
    means = seed_means(differences, generator_seeds)
    g, n = means.size, len(differences)
    if g == 0:
        return RunTest(None, None, None, None, None, n, 0)
    mean = float(means.mean())
    if g < 2:
        return RunTest(mean, None, None, None, None, n, g)
    sd = float(means.std(ddof=1))
    if sd <= 1e-12 * max(1.0, abs(mean)):
        return RunTest(mean, None, None, None, sd, n, g)
    se = sd / np.sqrt(g)
    half = float(stats.t.ppf((1 + confidence) / 2, g - 1) * se)
    p = float(2 * stats.t.sf(abs(mean) / se, g - 1))
    return RunTest(mean, mean - half, mean + half, p, sd, n, g)


def variance_components(values: Sequence[float], generator_seeds: Sequence[object]) -> Components:
    """One-way random-effects ANOVA (method of moments) of a row's run metric: σ_e² = MS_within, σ_a² =
    max(0, (MS_between − MS_within) / n₀) with n₀ = (N − Σnᵢ²/N) / (G − 1), exact for balanced designs."""
    x, seeds = np.asarray(values, dtype=float), np.asarray(generator_seeds)
    n = x.size
    runs = float(x.var(ddof=1)) if n >= 2 else None
    groups = [x[seeds == g] for g in np.unique(seeds)]
    g = len(groups)
    if n - g < 1:
        return Components(None, None, runs)
    within = float(sum(((v - v.mean()) ** 2).sum() for v in groups) / (n - g))
    if g < 2:
        return Components(None, within, runs)
    sizes = np.array([v.size for v in groups])
    between = float((sizes * (np.array([v.mean() for v in groups]) - x.mean()) ** 2).sum() / (g - 1))
    n0 = (n - (sizes**2).sum() / n) / (g - 1)
    return Components(max(0.0, (between - within) / n0), within, runs)


def minimum_detectable_difference(sd: float | None, n: int, m: int, alpha: float = 0.05) -> float | None:
    """The smallest true mean difference a two-sided one-sample t-test over n units with std `sd` detects with
    POWER at level alpha / m (Bonferroni over m comparisons: Holm's first step); None where n < 2 or sd unknown."""
    if sd is None or not np.isfinite(sd) or n < 2 or m < 1:
        return None
    if sd == 0:
        return 0.0
    df, level = n - 1, alpha / m
    critical = stats.t.ppf(1 - level / 2, df)

    def shortfall(effect: float) -> float:
        shift = effect * np.sqrt(n) / sd
        lower = np.nan_to_num(stats.nct.cdf(-critical, df, shift))  # negligible; scipy returns NaN far out
        return float(stats.nct.sf(critical, df, shift) + lower) - POWER

    upper = sd
    while shortfall(upper) < 0:
        upper *= 2
    return float(optimize.brentq(shortfall, 0.0, upper, xtol=1e-10 * sd))


def probability_of_improvement(x_tasks: Sequence[np.ndarray], y_tasks: Sequence[np.ndarray]) -> float:
    """rliable's probability of improvement: the mean over tasks of P(X > Y) + ½ P(X = Y) for a random run X of
    the first and Y of the second strategy on that task (the Mann–Whitney U statistic over m·n pairs)."""
    scores = []
    for x, y in zip(x_tasks, y_tasks, strict=True):
        x, y = np.asarray(x, dtype=float)[:, None], np.asarray(y, dtype=float)[None, :]
        scores.append(float(((x > y) + 0.5 * (x == y)).mean()))
    return float(np.mean(scores))


def iqm(tasks: Sequence[np.ndarray]) -> float:
    """Interquartile mean of all runs of all tasks pooled: the mean of the middle half (scipy's trim_mean, as
    rliable computes it)."""
    return float(stats.trim_mean(np.concatenate([np.asarray(t, dtype=float) for t in tasks]), IQM_CUT))


def stratified_bootstrap_ci(
    statistic: Callable[..., float],
    samples: Sequence[Sequence[np.ndarray]],
    rng: np.random.Generator,
    n_resamples: int = 2000,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of statistic(*samples) when each argument's runs are resampled with replacement within each
    task separately (rliable's stratified bootstrap: tasks are fixed, runs are the random part)."""
    arrays = [_array_tasks(arg) for arg in samples]
    draws = []
    for _ in range(n_resamples):
        resampled = [[t[rng.integers(0, t.size, t.size)] for t in arg] for arg in arrays]
        draws.append(statistic(*resampled))
    low, high = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def nemenyi_critical_difference(k: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Demšar's (2006) critical difference of average ranks for k strategies over n_blocks blocks:
    q_α √(k(k+1) / (6N)), q_α the studentized range quantile over √2 (2.343 for k = 3 at α = 0.05)."""
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
    return float(q * np.sqrt(k * (k + 1) / (6 * n_blocks)))


def _array_tasks(tasks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each task's runs as a float array."""
    return [np.asarray(t, dtype=float) for t in tasks]
