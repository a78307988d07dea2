"""The rebalancing controls: `oversample` repeats real images up to exactly the synthesis plan, `class_weighted`
weighs the loss to the prior that plan gives; both run through the loop and combine with classic augmentation."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from benchmark.data.dataset import DataOptions, LoadedDataset, Split, load_dataset
from benchmark.data.task import TaskSpec
from benchmark.errors import MedAugBenchError
from benchmark.generate.synthesis import SynthesisPolicy
from benchmark.registry import create
from benchmark.train.config import Budget, TrainConfig
from benchmark.train.loop import loss_fn, train
from benchmark.train.strategy import StrategyContext
from tests.helpers import require_medmnist

CHEST = TaskSpec("multilabel", ("a", "b", "c"), 1)


def in_memory(task: TaskSpec, labels: torch.Tensor) -> LoadedDataset:
    """A dataset whose training images are all different (image i holds the value i % 256 and its index bits)."""
    n = len(labels)
    images = torch.zeros(n, task.channels, 4, 4, dtype=torch.uint8)
    images[:, :, 0, 0] = (torch.arange(n) % 256).view(-1, 1).to(torch.uint8)
    images[:, :, 0, 1] = (torch.arange(n) // 256).view(-1, 1).to(torch.uint8)
    split = Split(images, labels)
    return LoadedDataset(name="fake", task=task, train=split, val=split, test=split, source_size=4, image_size=4)


def oversampled(data: LoadedDataset, seed: int = 0, **params) -> Split:
    context = StrategyContext(dataset=data, device=torch.device("cpu"), seed=seed, progress=False)
    return create("strategy", "oversample", **params).synthesize(context)


@pytest.mark.parametrize("flag", ["pneumoniamnist", pytest.param("retinamnist", marks=pytest.mark.slow)])
def test_oversample_adds_per_class_what_a_generative_strategy_synthesises(flag, tmp_path):
    """2 and 5 classes: a (tiny) DDPM under the default balance policy and `oversample` add the same class counts."""
    require_medmnist(flag)
    data = load_dataset(flag, DataOptions(train_fraction=0.1, seed=0))
    context = StrategyContext(dataset=data, device=torch.device("cpu"), seed=0, work_dir=tmp_path, progress=False)
    ddpm = create(
        "strategy",
        "ddpm",
        generator_steps=1,
        generator_params={"block_out_channels": [8, 8, 8], "attention": False, "sample_steps": 1, "norm_num_groups": 4},
        quality_extractor=None,
        class_fidelity=False,
    )
    synthetic = ddpm.synthesize(context)
    assert oversampled(data).class_counts(data.task) == synthetic.class_counts(data.task)


@pytest.mark.parametrize("flag", ["pneumoniamnist", "retinamnist"])
@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_oversample_adds_exactly_what_balance_would_synthesise(flag, ratio):
    """2 and 5 classes: per class, the plan of a generative strategy's balance policy; at ratio 1 every class then
    has as many images as the largest."""
    require_medmnist(flag)
    data = load_dataset(flag, DataOptions(train_fraction=0.1, seed=0))
    task, real = data.task, data.train
    plan = SynthesisPolicy(kind="balance", ratio=ratio).plan(real.class_counts(task), task)
    added = oversampled(data, ratio=ratio)
    assert added.class_counts(task) == plan and sum(plan) > 0
    combined = create("strategy", "oversample", ratio=ratio).combine(real, added).class_counts(task)
    if ratio == 1.0:
        assert combined == [max(real.class_counts(task))] * task.num_outputs


def test_retinamnist_rebalancing_counts_are_exact():
    """All of RetinaMNIST's 1080 training images (5 ordinal classes: 486, 128, 206, 194, 66), counted by hand: balance
    and oversample bring every class to 486 (half-way at ratio 0.5), class_weighted gives each
    class the mass of 1080 / 5 = 216 images."""
    require_medmnist("retinamnist")
    data = load_dataset("retinamnist", DataOptions(seed=0))
    task, real = data.task, data.train
    assert real.class_counts(task) == [486, 128, 206, 194, 66]
    for ratio, expected in [(1.0, [0, 358, 280, 292, 420]), (0.5, [0, 179, 140, 146, 210])]:
        added = oversampled(data, ratio=ratio)
        assert SynthesisPolicy(kind="balance", ratio=ratio).plan(real.class_counts(task), task) == expected
        assert added.class_counts(task) == expected
        for group in range(task.num_outputs):  # each real image of a class (all distinct) repeated evenly
            members = [image.numpy().tobytes() for image in real.images[real.labels.flatten() == group]]
            times = Counter(image.numpy().tobytes() for image in added.images[added.labels.flatten() == group])
            assert set(times) <= set(members) and sum(times.values()) == expected[group]
            per_member = [times[member] for member in members]
            assert max(per_member) - min(per_member) <= 1
    combined = create("strategy", "oversample").combine(real, oversampled(data)).class_counts(task)
    assert combined == [486] * 5
    weights = create("strategy", "class_weighted").class_weights(real.labels.flatten(), task)
    assert (torch.tensor([486, 128, 206, 194, 66]) * weights).tolist() == pytest.approx([216.0] * 5)


def test_oversample_repeats_each_real_image_of_a_class_evenly():
    """Class 1 has 3 images and needs 7 more: each comes twice, one of them a third time; no other class's image."""
    data = in_memory(TaskSpec("binary", ("x", "y"), 1), torch.tensor([0] * 10 + [1] * 3))
    added = oversampled(data)
    assert len(added) == 7 and (added.labels == 1).all()
    index = added.images[:, 0, 0, 0].long()
    assert sorted(torch.bincount(index, minlength=13)[10:].tolist()) == [2, 2, 3]
    assert torch.equal(added.images, data.train.images[index])
    assert torch.equal(oversampled(data, seed=0).images, added.images)
    seeds = {tuple(oversampled(data, seed=s).images[:, 0, 0, 0].tolist()) for s in range(8)}
    assert len(seeds) == 3  # the third copy goes to one of the three images, drawn with the seed


def test_multilabel_oversample_repeats_rows_positive_for_each_label():
    """Label j's added rows are real rows positive for j, with their own label vectors, as balance's are."""
    labels = torch.tensor([[1, 0, 0]] * 6 + [[1, 1, 0]] * 2 + [[0, 0, 1]] * 3, dtype=torch.float32)
    data = in_memory(CHEST, labels)
    plan = SynthesisPolicy(kind="balance").plan(data.train.class_counts(CHEST), CHEST)
    assert plan == [0, 6, 5]
    added = oversampled(data)
    assert len(added) == sum(plan)
    assert (added.labels[:6, 1] == 1).all() and (added.labels[6:, 2] == 1).all()
    assert torch.equal(added.labels, labels[added.images[:, 0, 0, 0].long()])


def test_class_weighted_loss_is_cross_entropy_reweighted_to_the_balanced_prior():
    labels = torch.tensor([0] * 6 + [1] * 2 + [2] * 4)
    task = TaskSpec("multiclass", ("a", "b", "c"), 1)
    weights = create("strategy", "class_weighted").class_weights(labels, task)
    mass = torch.bincount(labels, minlength=3) * weights
    assert mass.tolist() == pytest.approx([4.0, 4.0, 4.0])  # every class weighs what 6 images / 18 * 12 would
    logits = torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
    per_image = F.cross_entropy(logits, labels, reduction="none")
    expected = (weights[labels] * per_image).mean()
    assert loss_fn(logits, F.one_hot(labels, 3).float(), task, weights) == pytest.approx(float(expected), rel=1e-6)


def test_multilabel_class_weights_are_positive_weights_per_label():
    labels = torch.tensor([[1, 0, 0]] * 6 + [[1, 1, 0]] * 2 + [[0, 0, 1]] * 3, dtype=torch.float32)
    weights = create("strategy", "class_weighted").class_weights(labels, CHEST)
    assert weights.tolist() == pytest.approx([1.0, 8 / 2, 8 / 3])  # (positives + plan) / positives
    logits = torch.randn(11, 3, generator=torch.Generator().manual_seed(0))
    p = torch.sigmoid(logits)
    expected = -(weights * labels * torch.log(p) + (1 - labels) * torch.log(1 - p)).mean()
    assert loss_fn(logits, labels, CHEST, weights) == pytest.approx(float(expected), rel=1e-5)


def test_rebalancing_refuses_what_it_cannot_do():
    with pytest.raises(MedAugBenchError, match="adds to the real images"):
        create("strategy", "oversample", policy="synthetic_only")
    data = in_memory(TaskSpec("binary", ("x", "y"), 1), torch.tensor([0] * 4))
    with pytest.raises(MedAugBenchError, match="no training image of y"):
        oversampled(data)


def test_rebalancing_takes_classic_augmentation():
    images = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    targets = torch.eye(2)[torch.arange(8) % 2]
    for name in ("oversample", "class_weighted"):
        plain = create("strategy", name).augment(images, targets, torch.Generator().manual_seed(0))[0]
        augmented = create("strategy", name, augment_with="geometric").augment(
            images, targets, torch.Generator().manual_seed(0)
        )[0]
        assert torch.equal(plain, images) and not torch.equal(augmented, images)


def test_rebalancing_runs_through_the_loop_and_changes_training():
    """Same seed, same budget: the weighted loss and the repeated images each change what `none` trains."""
    require_medmnist("breastmnist")
    config = TrainConfig(dataset="breastmnist", budget=Budget(steps=4), eval_every=2, batch_size=32)
    runs = {name: train(dataclasses.replace(config, strategy=name), progress=False) for name in ("none", "oversample")}
    runs["class_weighted"] = train(dataclasses.replace(config, strategy="class_weighted"), progress=False)
    losses = {name: run.curves.train_loss for name, run in runs.items()}
    assert losses["none"] != losses["class_weighted"] and losses["none"] != losses["oversample"]
    assert runs["oversample"].dataset.train_synthetic > 0
    assert runs["class_weighted"].strategy.facts["class_weighted"]["weights"][0] > 1  # benign is the minority
