"""A pilot's budget branches: from one classifier run, the validation scores that runs with smaller budgets reach
under the same config, schedule and seed. A smaller budget leaves the run at the first step where its learning rate
differs (under `wsd`: where its decay starts, so one run serves every budget; under `cosine`: at step 1, so each
budget is a run of its own) and a copy of the whole loop (weights, optimizer, every generator and sampler) trains to
its own end: the steps a standalone run with that budget takes, so the same scores on the same device."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmark.errors import MedAugBenchError
from benchmark.train.config import Budget, OptimConfig

if TYPE_CHECKING:
    from benchmark.train.loop import StepLoop


@dataclass
class BranchScore:
    """How a run with classifier budget `steps` ends on validation (AUC, balanced accuracy, the mean train loss since
    the evaluation before) and the checkpoint it selects (`best_step`, `best_score` in the loop's selection metric);
    `forked_at`: the step its branch left the pilot's run (equal to `steps` for the run's own budget)."""

    steps: int
    forked_at: int
    val_auc: float | None
    val_balanced_accuracy: float
    train_loss: float
    best_step: int
    best_score: float


def fork_points(optim: OptimConfig, budgets: Sequence[int], total: int) -> dict[int, list[int]]:
    """Each budget below `total`, keyed by the first step at which its learning rate differs from a `total`-step
    run's (its own end when none does, e.g. under a constant rate)."""
    points: dict[int, list[int]] = {}
    for steps in sorted(set(budgets) - {total}):
        start = next((s for s in range(steps) if _factor(optim, s, steps) != _factor(optim, s, total)), steps)
        points.setdefault(start, []).append(steps)
    return points


def _factor(optim: OptimConfig, step: int, steps: int) -> float:
    """The schedule's factor at `step` of a `steps`-step run, computed as the loop computes it."""
    return optim.factor(Budget(steps=steps).spent(step, 0.0), step)


class Branches:
    """The branches of one run: before each step, every budget of `pilot_budgets` that leaves the run there is
    forked and trained to its end; none when the run is no pilot (empty `pilot_budgets`)."""

    def __init__(self, optim: OptimConfig, budgets: Sequence[int], budget: Budget) -> None:
        if any(steps > budget.steps for steps in budgets):
            raise MedAugBenchError(
                f"pilot_budgets {sorted(budgets)} go beyond the run's classifier budget of {budget.steps} steps; raise "
                "the budget (classifier_steps) to the largest budget the pilot measures"
            )
        self.measured = bool(budgets)
        self.points = fork_points(optim, budgets, budget.steps) if budgets else {}
        self.scores: list[BranchScore] = []

    def before_step(self, loop: StepLoop) -> None:
        """Fork and finish the branches that leave the run at its current step."""
        for steps in self.points.pop(loop.used.steps, []):
            self.scores.append(run_branch(loop, steps))

    def with_run(self, loop: StepLoop) -> list[BranchScore]:
        """The branches' scores and the finished run's own, by budget; empty for a run that is no pilot."""
        if not self.measured:
            return []
        return sorted([*self.scores, score(loop, loop.used.steps)], key=lambda s: s.steps)


def run_branch(loop: StepLoop, steps: int) -> BranchScore:
    """Copy the loop where it stands, train the copy to a budget of `steps` and score its end."""
    forked_at = loop.used.steps
    fork = copy.deepcopy(loop, memo=_shared(loop))
    fork.budget = loop.budget.of("steps", steps)
    fork.used.limit = float(steps)
    fork.run()
    return score(fork, forked_at)


def _shared(loop: StepLoop) -> dict:
    """deepcopy's memo for a fork: the read-only config and data stay shared, the fork gets a silent progress bar and
    no branches of its own; everything else (model, optimizer, strategy, generators, samplers, curves) is copied."""
    memo = {id(item): item for item in (loop.config, loop.task, loop.val, loop.val_images, loop.train)}
    memo[id(loop.bar)] = loop.budget.progress_bar("branch", enabled=False)
    memo[id(loop.branches)] = Branches(loop.optim, (), loop.budget)
    return memo


def score(loop: StepLoop, forked_at: int) -> BranchScore:
    """A finished loop's end on validation (its last evaluation is at its last step) and its selected checkpoint."""
    curves = loop.curves
    return BranchScore(
        steps=loop.used.steps,
        forked_at=forked_at,
        val_auc=curves.val_auc[-1],
        val_balanced_accuracy=curves.val_balanced_accuracy[-1],
        train_loss=curves.train_loss[-1],
        best_step=loop.best.step,
        best_score=loop.best.score,
    )
