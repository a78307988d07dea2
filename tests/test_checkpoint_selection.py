"""Generators are used at their best checkpoint, chosen on images held out from the cell's own training subset: the
loop keeps the best-scoring weights, the holdout never reaches the generator's training, no validation, test or
other training image is read, and the curve, the chosen step and the selection's compute are recorded."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmark import GenerativeModel, ImageSpec, StrategyContext, create
from benchmark.data.dataset import DataOptions, Split, load_dataset
from benchmark.data.task import TaskSpec
from benchmark.evaluate.selection import RandomFeatures, holdout_split
from benchmark.generate import loop as gt
from tests.helpers import require_medmnist


class Counter(GenerativeModel):
    """A model whose one weight counts its training steps, so the weights kept say which checkpoint was chosen."""

    def __init__(self, spec: ImageSpec) -> None:
        super().__init__(spec)
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def make_optimizers(self):
        return {"opt": torch.optim.SGD(self.parameters(), lr=1.0)}

    def training_step(self, images, cond, optimizers, generator):
        with torch.no_grad():
            self.weight += 1
        return {"loss": torch.tensor(0.0)}

    def sample(self, cond, n, generator):
        return torch.zeros(n, self.spec.channels, self.spec.image_size, self.spec.image_size)


def fit_counter(scores: list[float], points: int, steps: int) -> tuple[Counter, gt.FitHistory]:
    model, curve = Counter(ImageSpec(1, 8)), iter(scores)
    selector = gt.CheckpointSelector(score=lambda m: next(curve), points=points)
    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    budget = gt.GeneratorBudget(steps=steps)
    history = gt.fit(model, images, None, budget, 2, torch.device("cpu"), 0, progress=False, selector=selector)
    return model, history


def test_the_loop_keeps_the_best_checkpoint_not_the_last_iterate():
    model, history = fit_counter([5.0, 2.0, 3.0, 4.0], points=4, steps=8)
    assert history.selection_step == [2, 4, 6, 8] and history.selection == [5.0, 2.0, 3.0, 4.0]
    assert history.selected_step == 4 and history.steps == 8
    assert model.weight.item() == 4  # the weights of step 4 were loaded back


def test_the_last_iterate_is_kept_when_it_scores_best_and_short_budgets_score_each_point_once():
    model, history = fit_counter([3.0, 1.0], points=8, steps=2)  # more points than steps: one score per step
    assert history.selection_step == [1, 2] and history.selected_step == 2 and model.weight.item() == 2


def test_the_holdout_is_stratified_seeded_and_keeps_a_training_image_of_every_class():
    task = TaskSpec("binary", ("a", "b"), channels=1)
    images = torch.arange(23, dtype=torch.uint8).view(23, 1, 1, 1).expand(23, 1, 4, 4).contiguous()
    real = Split(images, torch.tensor([0] * 20 + [1] * 3))
    fit, held = holdout_split(real, task, 0.2, seed=7)
    assert torch.bincount(held.labels, minlength=2).tolist() == [4, 1]  # round(0.2 × 20), round(0.2 × 3)
    assert len(fit) + len(held) == 23 and not set(fit.images[:, 0, 0, 0].tolist()) & set(
        held.images[:, 0, 0, 0].tolist()
    )
    assert torch.equal(holdout_split(real, task, 0.2, seed=7)[1].images, held.images)
    one = Split(images[:1], torch.tensor([1]))
    assert len(holdout_split(one, task, 0.5, seed=0)[1]) == 0  # a single image stays in training


def test_random_features_are_fixed_and_take_any_channel_count():
    grey, rgb = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8), torch.randint(0, 256, (2, 3, 64, 64))
    assert torch.equal(RandomFeatures(1)(grey), RandomFeatures(1)(grey))
    assert RandomFeatures(3)(rgb.to(torch.uint8)).shape == (2, RandomFeatures.num_features)


class Poisoned:
    """Stands for a split the generator must never read: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"a validation, test or full training split was read ({name})")


@pytest.fixture
def breast_cell():
    require_medmnist("breastmnist")
    data = load_dataset("breastmnist", DataOptions(train_fraction=0.1))  # 15 malignant, 40 normal
    return dataclasses.replace(data, val=Poisoned(), test=Poisoned(), full_train=Poisoned()), data.train


def test_generators_train_without_the_holdout_and_read_no_validation_or_test_image(breast_cell, monkeypatch):
    cell, train = breast_cell
    trained_on, real_fit = [], gt.fit
    monkeypatch.setattr(
        gt, "fit", lambda model, images, *a, **k: trained_on.append(images) or real_fit(model, images, *a, **k)
    )
    strategy = create(
        "strategy",
        "cgan",
        generator_steps=30,
        generator_batch_size=8,
        generator_params={"base_channels": 8},
        quality_extractor=None,
        class_fidelity=False,
        select_points=3,
    )
    context = StrategyContext(dataset=cell, device=torch.device("cpu"), seed=3, progress=False)
    strategy.synthesize(context)
    card = strategy.report()["generator"]
    _, held = holdout_split(train, cell.task, 0.2, seed=3 + 4)
    (images,) = trained_on
    rows = {image.numpy().tobytes() for image in images}
    held_rows = {image.numpy().tobytes() for image in held.images}
    assert torch.bincount(held.labels).tolist() == [3, 8] and not rows & held_rows
    assert rows | held_rows == {image.numpy().tobytes() for image in train.images}
    selection = card["selection"]["per_model"]["all"]
    assert selection["held_out"] == 11 and [step for step, _ in selection["curve"]] == [10, 20, 30]
    best = min(selection["curve"], key=lambda point: point[1])
    assert selection["selected_step"] == best[0] == card["histories"]["all"]["selected_step"]
    assert card["selection"]["features"]["trained_on"] is None


def test_selection_compute_is_the_strategys_generator_compute(breast_cell):
    cell, _ = breast_cell
    strategy = create(
        "strategy",
        "dcgan",
        generator_steps=30,
        generator_batch_size=8,
        generator_params={"base_channels": 8},
        quality_extractor=None,
        class_fidelity=False,
        select_points=3,
    )
    strategy.synthesize(StrategyContext(dataset=cell, device=torch.device("cpu"), seed=0, progress=False))
    report = strategy.report()
    training, model = report["compute"]["generator_training"], report["generator"]["budget"]["per_model"]["malignant"]
    cost = report["generator"]["costs"]["malignant"]
    selection = 3 * cost["selection_flops_per_score"] + cost["selection_reference_flops"]
    assert model["selection_flops"] == training["selection"]["flops"] == selection > 0
    assert training["flops"] == 30 * cost["step_flops"] + selection
    assert training["seconds"] == pytest.approx(model["seconds"] + model["selection_seconds"])
