"""Run-level inference: coverage under a simulated random-effects model (against the image bootstrap's), variance
components, the minimum detectable difference against a Monte Carlo power, PoI / IQM / stratified bootstrap and the
Nemenyi critical difference against hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from benchmark.publish import inference

# d_gc = μ + a_g + e_gc + i_gc: generator seed, classifier seed and test-image noise of the paired difference.
G, C, REPLICATES = 3, 4, 1000
SD_GENERATOR, SD_CLASSIFIER, SD_IMAGES, TRUE_DIFFERENCE = 0.02, 0.01, 0.005, 0.01


@pytest.fixture(scope="module")
def simulated() -> tuple[np.ndarray, np.ndarray]:
    """REPLICATES tables of G × C paired run differences (flattened, generator-seed major) and their seeds."""
    rng = np.random.default_rng(20)
    d = (
        TRUE_DIFFERENCE
        + rng.normal(0, SD_GENERATOR, (REPLICATES, G, 1))
        + rng.normal(0, SD_CLASSIFIER, (REPLICATES, G, C))
        + rng.normal(0, SD_IMAGES, (REPLICATES, G, C))
    )
    return d.reshape(REPLICATES, G * C), np.repeat(np.arange(G), C)


def test_run_level_ci_covers_the_true_difference_at_its_level(simulated):
    d, seeds = simulated
    tests = [inference.run_test(x, seeds) for x in d]
    coverage = np.mean([t.ci_low <= TRUE_DIFFERENCE <= t.ci_high for t in tests])
    assert 0.93 <= coverage <= 0.97
    rejections = np.mean([t.p_value < 0.05 for t in (inference.run_test(x - TRUE_DIFFERENCE, seeds) for x in d)])
    assert 0.03 <= rejections <= 0.07  # the test keeps its level under the null


def test_image_bootstrap_intervals_undercover_when_seeds_dominate(simulated):
    """What the leaderboard used as its primary test: an interval from test-image noise (alone, or with runs
    resampled as if independent) misses the generator-seed variance and covers far less than 95%."""
    d, _ = simulated
    n, mean = G * C, d.mean(axis=1)
    image_only = np.abs(mean - TRUE_DIFFERENCE) <= 1.96 * SD_IMAGES / math.sqrt(n)
    runs_as_independent = d.var(axis=1, ddof=1) * (n - 1) / n / n + SD_IMAGES**2 / n  # resampling runs and images
    seeds_and_images = np.abs(mean - TRUE_DIFFERENCE) <= 1.96 * np.sqrt(runs_as_independent)
    assert image_only.mean() < 0.5 and seeds_and_images.mean() < 0.8


def test_variance_components_recover_the_simulated_ones(simulated):
    d, seeds = simulated
    parts = [inference.variance_components(x, seeds) for x in d]
    assert np.mean([p.generator for p in parts]) == pytest.approx(SD_GENERATOR**2, rel=0.1)
    assert np.mean([p.classifier for p in parts]) == pytest.approx(SD_CLASSIFIER**2 + SD_IMAGES**2, rel=0.05)


def test_one_run_per_generator_seed_is_the_paired_t_test():
    a, b = np.array([0.80, 0.82, 0.79, 0.85]), np.array([0.83, 0.84, 0.78, 0.90])
    test = inference.run_test(b - a, [0, 1, 2, 3])
    assert test.p_value == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert test.n_generator_seeds == 4 and test.n_runs == 4
    parts = inference.variance_components(b, [0, 1, 2, 3])
    assert parts.generator is None and parts.classifier is None and parts.runs == pytest.approx(b.var(ddof=1))


def test_variance_components_by_hand():
    # two generator seeds of two runs: means 1 and 3, within-seed deviations ±1 → MSW = 2, MSB = 2·(1 + 1) = 4
    parts = inference.variance_components([0, 2, 2, 4], [0, 0, 1, 1])
    assert parts.classifier == pytest.approx(2.0) and parts.generator == pytest.approx((4 - 2) / 2)
    clipped = inference.variance_components([0, 4, 1, 3], [0, 0, 1, 1])  # equal means: MSB = 0 < MSW
    assert clipped.generator == 0.0


def test_undefined_cases_are_none():
    assert inference.run_test([0.1], [0]).ci_low is None
    assert inference.run_test([0.1, 0.1], [0, 1]).p_value is None  # identical means: no variance
    assert inference.run_test([0.1, 0.3], [0, 0]).p_value is None  # one generator seed
    assert inference.minimum_detectable_difference(None, 3, 2) is None
    assert inference.minimum_detectable_difference(0.1, 1, 2) is None


def test_minimum_detectable_difference_has_the_power_it_claims():
    n, sd, m = 5, 0.02, 3
    effect = inference.minimum_detectable_difference(sd, n, m)
    rng = np.random.default_rng(1)
    samples = rng.normal(effect, sd, (40_000, n))
    p = stats.ttest_1samp(samples, 0, axis=1).pvalue
    assert np.mean(p < 0.05 / m) == pytest.approx(0.8, abs=0.01)
    assert inference.minimum_detectable_difference(sd, n, 1) < effect  # fewer tests, smaller detectable difference


def test_probability_of_improvement_and_iqm_by_hand():
    # task 1: pairs (1,1) tie, (1,0), (2,1), (2,0) → 3.5 / 4; task 2: 0 beats neither 1 nor 2 → 0
    assert inference.probability_of_improvement([[1, 2], [0]], [[1, 0], [1, 2]]) == pytest.approx(0.4375)
    assert inference.iqm([[1, 2, 3, 4], [5, 6, 7, 8]]) == pytest.approx(4.5)  # middle half 3, 4, 5, 6


def test_stratified_bootstrap_resamples_within_tasks():
    rng = np.random.default_rng(0)
    low, high = inference.stratified_bootstrap_ci(lambda tasks: float(np.mean(tasks[0])), [[[0, 0, 0], [1, 1]]], rng)
    assert (low, high) == (0.0, 0.0)  # task 1 never borrows task 2's runs
    low, high = inference.stratified_bootstrap_ci(inference.probability_of_improvement, [[[3, 4]], [[1, 2]]], rng)
    assert (low, high) == (1.0, 1.0)
    low, high = inference.stratified_bootstrap_ci(inference.iqm, [[[0.0, 1.0, 2.0, 3.0]]], rng, 500)
    assert 0 <= low < inference.iqm([[0.0, 1.0, 2.0, 3.0]]) < high <= 3


def test_nemenyi_critical_difference_matches_demsar():
    # Demšar (2006), Table 5(a): q_0.05 = 2.343 (k = 3), 2.569 (k = 4), 3.164 (k = 10)
    assert inference.nemenyi_critical_difference(3, 5) == pytest.approx(2.343 * math.sqrt(3 * 4 / 30), abs=1e-3)
    assert inference.nemenyi_critical_difference(10, 14) == pytest.approx(3.164 * math.sqrt(110 / 84), abs=1e-3)
