"""Synthesis-policy arithmetic on real label counts, and label vectors for multi-label data."""

from __future__ import annotations

import pytest
import torch

from benchmark.data.dataset import Split, load_dataset
from benchmark.data.task import TaskSpec
from benchmark.errors import MedAugBenchError
from benchmark.generate.synthesis import SynthesisPolicy, conditioning, label_rows, plan_counts
from tests.helpers import require_medmnist


@pytest.fixture(scope="module")
def pneumonia():
    require_medmnist("pneumoniamnist")
    return load_dataset("pneumoniamnist")


@pytest.fixture(scope="module")
def retina():
    require_medmnist("retinamnist")
    return load_dataset("retinamnist")


def test_balance_fills_the_deficit_times_r(pneumonia, retina):
    # PneumoniaMNIST train: 1214 normal, 3494 pneumonia (seed Algorithm 2: (max − count) × r)
    counts = pneumonia.train.class_counts(pneumonia.task)
    assert SynthesisPolicy("balance", ratio=1.0).plan(counts, pneumonia.task) == [2280, 0]
    assert SynthesisPolicy("balance", ratio=0.5).plan(counts, pneumonia.task) == [1140, 0]
    # RetinaMNIST train: 486, 128, 206, 194, 66
    counts = retina.train.class_counts(retina.task)
    assert SynthesisPolicy("balance").plan(counts, retina.task) == [0, 358, 280, 292, 420]


def test_plan_counts_applies_the_policy_to_the_real_labels(pneumonia):
    """The one plan function: what generative strategies synthesise and `oversample` repeats."""
    assert plan_counts(pneumonia.train.labels, pneumonia.task, SynthesisPolicy("balance")) == [2280, 0]
    task = TaskSpec("multilabel", ("a", "b", "c"), 1)
    labels = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 0]], dtype=torch.float32)
    assert plan_counts(labels, task, SynthesisPolicy("multiply", multiplier=2)) == [8, 2, 2]


def test_multiply_fixed_and_synthetic_only(pneumonia):
    counts = pneumonia.train.class_counts(pneumonia.task)
    assert SynthesisPolicy("multiply", multiplier=0.5).plan(counts, pneumonia.task) == [607, 1747]
    # the balancing paper: +400 synthetic normal images
    assert SynthesisPolicy("fixed", counts={"normal": 400}).plan(counts, pneumonia.task) == [400, 0]
    assert SynthesisPolicy("fixed", counts={"1": 10}).plan(counts, pneumonia.task) == [0, 10]
    only = SynthesisPolicy("synthetic_only")
    assert only.plan(counts, pneumonia.task) == [1214, 3494] and only.replaces_real


def test_multilabel_minority_is_defined_per_label():
    task = TaskSpec("multilabel", ("a", "b", "c"), 1)
    labels = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 0]], dtype=torch.float32)
    counts = Split(torch.zeros(5, 1, 4, 4, dtype=torch.uint8), labels).class_counts(task)
    assert counts == [4, 1, 1]
    assert SynthesisPolicy("balance").plan(counts, task) == [0, 3, 3]
    rows = label_rows(
        Split(torch.zeros(5, 1, 4, 4, dtype=torch.uint8), labels), task, 1, 6, torch.Generator().manual_seed(0)
    )
    assert rows.shape == (6, 3) and (rows[:, 1] == 1).all()  # conditioned on real rows positive for label b
    assert torch.equal(rows, torch.tensor([[1.0, 1.0, 0.0]]).expand(6, 3))
    assert torch.equal(conditioning(rows, task), rows)


def test_single_label_conditioning_is_one_hot():
    task = TaskSpec("multiclass", ("x", "y", "z"), 1)
    assert conditioning(torch.tensor([2, 0]), task).tolist() == [[0, 0, 1], [1, 0, 0]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kind="oversample"), "unknown synthesis policy"),
        (dict(kind="fixed"), "needs per-class counts"),
        (dict(kind="balance", ratio=-1), "non-negative"),
    ],
)
def test_bad_policies(kwargs, message):
    with pytest.raises(MedAugBenchError, match=message):
        SynthesisPolicy(**kwargs)


def test_fixed_policy_with_an_unknown_class(pneumonia):
    with pytest.raises(MedAugBenchError, match="not a class of this dataset"):
        SynthesisPolicy("fixed", counts={"covid": 5}).plan([1, 2], pneumonia.task)
