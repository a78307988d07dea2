"""Choosing budgets from a pilot: the generator budget where class-matched FID stops improving over a doubling,
the classifier budget where validation AUC has plateaued, each saying whether a plateau or the machine's limit
decided it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PLATEAU, LIMIT = "plateau", "limit"


@dataclass(frozen=True)
class BudgetChoice:
    """The chosen steps, and why: `plateau` (the curve stopped improving) or `limit` (still improving at the largest
    budget measured, the most this machine allows)."""

    steps: int
    reason: str
    detail: str


def choose_generator_steps(steps: Sequence[int], fid: Sequence[float], min_gain: float = 0.10) -> BudgetChoice:
    """`steps` doubling budgets (each twice the one before) with their FIDs (lower is better): the smallest budget
    from which no larger one measured improves FID by `min_gain` (relative) or more, i.e. within `min_gain` of the
    best FID measured. Robust to a GAN's FID rising after one doubling and falling after the next. `limit` when
    that is the largest budget (FID was still improving there)."""
    _check_curve(steps, fid)
    for i in range(1, len(steps)):
        if steps[i] != 2 * steps[i - 1]:
            raise ValueError(f"generator budgets must double: {steps[i - 1]} then {steps[i]}")
    best = min(fid)
    first = next(i for i, value in enumerate(fid) if 1.0 - best / value < min_gain)
    if first < len(steps) - 1:
        detail = (
            f"FID {fid[first]:.4g} at {steps[first]} steps is within {min_gain:.0%} of the best measured, {best:.4g}: "
            f"more steps (up to {steps[-1]}) improved it by {1.0 - best / fid[first]:.1%}"
        )
        return BudgetChoice(steps[first], PLATEAU, detail)
    gain = 1.0 - fid[-1] / fid[-2] if len(fid) > 1 else float("nan")
    detail = f"FID still improved by {gain:.1%} over the last doubling to {steps[-1]} steps, the most measured"
    return BudgetChoice(steps[-1], LIMIT, detail)


def choose_classifier_steps(
    steps: Sequence[int], val_auc: Sequence[float], tolerance: float = 0.005, window: int = 3
) -> BudgetChoice:
    """The first evaluated step whose validation AUC, averaged over the last `window` evaluations (noise), is within
    `tolerance` of the best such average; `limit` when that is the curve's last point (it may still be rising)."""
    _check_curve(steps, val_auc)
    smooth = [_mean(val_auc[max(0, i - window + 1) : i + 1]) for i in range(len(steps))]
    best = max(smooth)
    first = next(i for i, value in enumerate(smooth) if value >= best - tolerance)
    reason = LIMIT if first == len(steps) - 1 else PLATEAU
    detail = (
        f"mean val AUC over {window} evaluations reaches {smooth[first]:.4f} at step {steps[first]}, within "
        f"{tolerance} of the best {best:.4f}" + (" at the last step measured" if reason == LIMIT else "")
    )
    return BudgetChoice(steps[first], reason, detail)


def _check_curve(steps: Sequence[int], values: Sequence[float]) -> None:
    if len(steps) != len(values) or not steps:
        raise ValueError(f"a curve needs as many values as steps (got {len(steps)} steps, {len(values)} values)")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"steps must increase: {list(steps)}")


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)
