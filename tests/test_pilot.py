"""The pilot's budget choice follows from its curves (fabricated ones here, with a known answer)."""

from __future__ import annotations

import pytest

from benchmark.grid.pilot import LIMIT, PLATEAU, choose_classifier_steps, choose_generator_steps


def test_generator_budget_is_the_last_one_whose_doubling_still_paid():
    steps = [250, 500, 1000, 2000, 4000]
    fid = [120.0, 80.0, 60.0, 57.0, 56.0]  # 33 %, 25 %, then 5 %: doubling past 1000 no longer pays
    choice = choose_generator_steps(steps, fid)
    assert (choice.steps, choice.reason) == (1000, PLATEAU)
    assert "1000 → 2000" in choice.detail and "5.0%" in choice.detail


def test_a_worse_fid_after_doubling_is_a_plateau_too():
    assert choose_generator_steps([100, 200, 400], [90.0, 70.0, 75.0]).steps == 200


def test_generator_still_improving_takes_the_most_measured_and_says_so():
    choice = choose_generator_steps([250, 500, 1000], [100.0, 70.0, 50.0])
    assert (choice.steps, choice.reason) == (1000, LIMIT)
    assert "still improved by 28.6%" in choice.detail


def test_generator_budgets_must_double():
    with pytest.raises(ValueError, match="must double"):
        choose_generator_steps([250, 500, 750], [3.0, 2.0, 1.0])


def test_classifier_budget_is_where_smoothed_val_auc_reaches_its_plateau():
    steps = list(range(100, 1100, 100))
    auc = [0.70, 0.80, 0.86, 0.90, 0.91, 0.915, 0.912, 0.916, 0.914, 0.915]
    choice = choose_classifier_steps(steps, auc, tolerance=0.005, window=3)
    # 3-evaluation means: 0.8900 (500), 0.9083 (600), 0.9123 (700), 0.9143 (800), 0.9140, best 0.9150 (1000): the
    # first within 0.005 of the best is step 700
    assert (choice.steps, choice.reason) == (700, PLATEAU)


def test_classifier_still_rising_at_the_end_is_the_limit():
    choice = choose_classifier_steps([100, 200, 300, 400], [0.6, 0.7, 0.8, 0.9], tolerance=0.001, window=1)
    assert (choice.steps, choice.reason) == (400, LIMIT)


def test_a_curve_must_have_one_value_per_increasing_step():
    with pytest.raises(ValueError, match="as many values"):
        choose_classifier_steps([100, 200], [0.5])
    with pytest.raises(ValueError, match="must increase"):
        choose_generator_steps([200, 100], [1.0, 2.0])
