"""Choosing budgets from a pilot: the generator budget where class-matched FID (mean over generator seeds) stops
improving over a doubling, the classifier budget where the slowest strategy's validation AUC (mean over seeds) has
plateaued; each says whether a plateau, an early peak or the machine's limit decided it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PLATEAU, LIMIT, PEAKED = "plateau", "limit", "peaked early"


@dataclass(frozen=True)
class BudgetChoice:
    """The chosen steps, and why: `plateau` (the curve stopped improving), `peaked early` (best, then clearly worse
    at the largest budget measured) or `limit` (still improving at the largest budget measured, the most this machine
    allows)."""

    steps: int
    reason: str
    detail: str


def choose_generator_steps(steps: Sequence[int], fid: Sequence[float], min_gain: float = 0.10) -> BudgetChoice:
    """`steps` doubling budgets (each twice the one before) with their FIDs (lower is better; the mean over the
    pilot's generator seeds when it ran several, `benchmark.publish.pilot.seed_curve`): the smallest budget
    from which no larger one measured improves FID by `min_gain` (relative) or more, i.e. within `min_gain` of the
    best FID measured. Robust to a GAN's FID rising after one doubling and falling after the next. `limit` when
    that is the largest budget (FID was still improving there); `peaked early` when the largest budget's FID is
    `min_gain` or more worse than the best."""
    _check_curve(steps, fid)
    for i in range(1, len(steps)):
        if steps[i] != 2 * steps[i - 1]:
            raise ValueError(f"generator budgets must double: {steps[i - 1]} then {steps[i]}")
    best = min(fid)
    first = next(i for i, value in enumerate(fid) if 1.0 - best / value < min_gain)
    if first < len(steps) - 1 and 1.0 - best / fid[-1] >= min_gain:
        detail = (
            f"FID {fid[first]:.4g} at {steps[first]} steps is within {min_gain:.0%} of the best measured, {best:.4g} "
            f"at {steps[fid.index(best)]}; more steps made it worse: {fid[-1]:.4g} at {steps[-1]}"
        )
        return BudgetChoice(steps[first], PEAKED, detail)
    if first < len(steps) - 1:
        detail = (
            f"FID {fid[first]:.4g} at {steps[first]} steps is within {min_gain:.0%} of the best measured, {best:.4g}: "
            f"more steps (up to {steps[-1]}) improved it by {1.0 - best / fid[first]:.1%}"
        )
        return BudgetChoice(steps[first], PLATEAU, detail)
    gain = 1.0 - fid[-1] / fid[-2] if len(fid) > 1 else float("nan")
    detail = f"FID still improved by {gain:.1%} over the last doubling to {steps[-1]} steps, the most measured"
    return BudgetChoice(steps[-1], LIMIT, detail)


def choose_strategy_steps(steps: Sequence[int], val_auc: Sequence[float], tolerance: float = 0.005) -> BudgetChoice:
    """One strategy's classifier budget from its candidate budgets' validation AUCs (each the end of a run with that
    budget, averaged over seeds): the smallest within `tolerance` of the best. `limit` when that is the largest
    candidate (still improving there); `peaked early` when the largest candidate is more than `tolerance` below the
    best (the curve fell after its best, so it is no plateau)."""
    _check_curve(steps, val_auc)
    best = max(val_auc)
    first = next(i for i, value in enumerate(val_auc) if value >= best - tolerance)
    at = f"mean val AUC {val_auc[first]:.4f} at {steps[first]} steps"
    if first == len(steps) - 1:
        gain = val_auc[-1] - max(val_auc[:-1]) if len(steps) > 1 else float("nan")
        detail = f"{at}, the largest budget measured, is {gain:+.4f} over every smaller one: still improving"
        return BudgetChoice(steps[first], LIMIT, detail)
    if val_auc[-1] < best - tolerance:
        detail = (
            f"{at} is within {tolerance} of the best {best:.4f} at {steps[val_auc.index(best)]}; larger budgets fell "
            f"to {val_auc[-1]:.4f} at {steps[-1]}"
        )
        return BudgetChoice(steps[first], PEAKED, detail)
    detail = f"{at} is within {tolerance} of the best {best:.4f}; larger budgets (up to {steps[-1]}) stay within it"
    return BudgetChoice(steps[first], PLATEAU, detail)


@dataclass(frozen=True)
class ClassifierBudget:
    """The classifier budget of a run: the largest of its strategies' choices, so the slowest strategy has plateaued
    too (`strategy` names it; its `reason` is the budget's: `limit` when it was still improving at the largest
    candidate)."""

    steps: int
    reason: str
    strategy: str
    detail: str


def choose_classifier_budget(choices: Mapping[str, BudgetChoice]) -> ClassifierBudget:
    """The budget where the slowest strategy (of `choices`, by name) has plateaued; among ties, a `limit` one sets it,
    so a budget the machine's limit bound always says so."""
    if not choices:
        raise ValueError("choosing a classifier budget needs at least one strategy's choice")
    slowest = max(choices, key=lambda name: (choices[name].steps, choices[name].reason == LIMIT))
    choice = choices[slowest]
    return ClassifierBudget(choice.steps, choice.reason, slowest, choice.detail)


def _check_curve(steps: Sequence[int], values: Sequence[float]) -> None:
    if len(steps) != len(values) or not steps:
        raise ValueError(f"a curve needs as many values as steps (got {len(steps)} steps, {len(values)} values)")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"steps must increase: {list(steps)}")
