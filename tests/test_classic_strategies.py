"""Classic strategies: per-image auto-augment operations equal to torchvision's, drawn only from the run's generator."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from benchmark.data.dataset import LoadedDataset, Split
from benchmark.data.task import TaskSpec
from benchmark.errors import MedAugBenchError
from benchmark.registry import create
from benchmark.train.config import Budget, TrainConfig
from benchmark.train.loop import train
from plugins import classic_ops
from plugins.classic_ops import (
    AUGMIX,
    AUGMIX_BINS,
    RANDAUGMENT,
    TRIVIALAUGMENT,
    apply_layer,
    magnitude_table,
    op_space,
)
from tests.helpers import require_medmnist

AUTO_AUGMENTS = ["randaugment", "trivialaugment", "augmix"]
UINT8_OPS = {"Posterize", "Solarize", "AutoContrast", "Equalize"}
SHAPES = [(1, 28), (3, 28), (1, 64), (3, 64)]


def sample_image(channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """A (1, C, S, S) uint8 image with structure (a gradient) and a range short of 0-255, so no op is a no-op."""
    noise = torch.randint(0, 60, (1, channels, size, size), generator=torch.Generator().manual_seed(seed))
    ramp = torch.linspace(30, 160, size).view(1, 1, 1, size)
    return (noise + ramp).to(torch.uint8)


def copies(channels: int, size: int, n: int = 64) -> torch.Tensor:
    return (sample_image(channels, size).float() / 255).expand(n, -1, -1, -1).contiguous()


def one_hot(n: int, classes: int = 2) -> torch.Tensor:
    return torch.eye(classes)[torch.arange(n) % classes]


def in_memory_dataset(name: str) -> LoadedDataset:
    """A tiny dataset named `name`: what a strategy prepared for it sees (its name decides the modality)."""
    split = Split(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
    task = TaskSpec("binary", ("a", "b"), 1)
    return LoadedDataset(name=name, task=task, train=split, val=split, test=split, source_size=28, image_size=28)


def augment(name: str, images: torch.Tensor, seed: int, **params) -> tuple[torch.Tensor, torch.Tensor]:
    return create("strategy", name, **params).augment(images, one_hot(len(images)), torch.Generator().manual_seed(seed))


def torchvision_op(image: torch.Tensor, name: str, magnitude: float, interpolation: str) -> torch.Tensor:
    """torchvision's own operation on a (1, C, H, W) uint8 image: on the uint8 image for the ops defined on 0-255,
    on the float image otherwise; returned as float in [0, 1]."""
    reference = v2.RandAugment(interpolation=interpolation)
    source = image if name in UINT8_OPS else image.float() / 255
    out = reference._apply_image_or_video_transform(
        source, name, float(magnitude), interpolation=reference.interpolation, fill=reference._fill
    )
    return out.float() / 255 if name in UINT8_OPS else out


@pytest.mark.parametrize(
    "space, num_bins, interpolation",
    [
        (RANDAUGMENT, 31, "nearest"),
        (TRIVIALAUGMENT, 31, "nearest"),
        (AUGMIX, AUGMIX_BINS, "bilinear"),
    ],
    ids=["randaugment", "trivialaugment", "augmix"],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_every_operation_equals_torchvisions(space, num_bins, interpolation, channels):
    image = sample_image(channels, 28)
    table, signed = magnitude_table(space, num_bins, 28, 28)
    for op_id, op in enumerate(space):
        for level in (1, num_bins // 2, num_bins - 1):
            for sign in (1, -1) if op.signed else (1,):
                magnitude = table[op_id, level] * sign
                ours = apply_layer(image.float() / 255, space, torch.tensor([op_id]), magnitude.view(1), interpolation)
                expected = torchvision_op(image, op.name, magnitude, interpolation)
                assert torch.allclose(ours, expected, atol=1e-5), (op.name, level, sign)


def test_magnitude_bins_are_torchvisions_but_trivialaugments_shifts_scale():
    """Every bin is torchvision's, except TrivialAugmentWide's shifts: 32/224 of the side, not an absolute 32 px."""
    for space, reference, num_bins in (
        (RANDAUGMENT, v2.RandAugment, 31),
        (TRIVIALAUGMENT, v2.TrivialAugmentWide, 31),
        (AUGMIX, v2.AugMix, 10),
    ):
        assert {op.name for op in space} == set(reference._AUGMENTATION_SPACE)
        for op in space:
            bins, signed = reference._AUGMENTATION_SPACE[op.name]
            expected = bins(num_bins, 64, 64)
            if space is TRIVIALAUGMENT and op.name.startswith("Translate"):
                assert expected[-1] == 32.0
                expected = torch.linspace(0.0, 32.0 / 224.0 * 64, num_bins)
            assert op.signed == signed and (op.bins is None) == (expected is None), op.name
            if expected is not None:
                assert torch.equal(op.bins(num_bins, 64, 64).float(), expected.float()), op.name


@pytest.mark.parametrize("size", [28, 64])
@pytest.mark.parametrize("kind", ["randaugment", "trivialaugment", "augmix"])
def test_the_largest_shift_keeps_all_but_its_fraction_of_the_image_in_the_frame(kind, size):
    """A white image shifted by the largest bin, either way, keeps at least 1 - translate of its columns (rows)."""
    space, share = op_space(kind), classic_ops.MAXIMA[kind].translate
    table, _ = magnitude_table(space, 31, size, size)
    for name, axis in (("TranslateX", -2), ("TranslateY", -1)):  # columns, rows that keep the image
        k = next(i for i, op in enumerate(space) if op.name == name)
        assert table[k, -1] == pytest.approx(share * size, rel=1e-6)  # magnitudes scale with the side
        for sign in (1.0, -1.0):
            out = apply_layer(torch.ones(1, 1, size, size), space, torch.tensor([k]), table[k, -1:] * sign, "nearest")
            kept = int(out.amax(dim=axis).gt(0).sum())
            assert kept >= size - share * size and kept < size, (name, sign)


def test_modalities_follow_the_dataset_unless_asked():
    """Chest radiographs: no mirror images, rotations up to 10°; dermatoscopy and unknown datasets keep flips."""
    chest = in_memory_dataset("pneumoniamnist")
    geometric = create("strategy", "geometric")
    assert geometric.params()["modality"] == "generic" and geometric.params()["flip_p"] == 0.5
    geometric.prepare_for(chest)
    assert geometric.params() == {"modality": "chest_xray", "flip_p": 0.0, "degrees": 10.0}
    asked = create("strategy", "geometric", flip_p=0.5, degrees=30.0)
    asked.prepare_for(chest)
    assert asked.params() == {"modality": "chest_xray", "flip_p": 0.5, "degrees": 30.0}
    skin = create("strategy", "geometric")
    skin.prepare_for(in_memory_dataset("dermamnist"))
    assert skin.params() == {"modality": "dermatoscopy", "flip_p": 0.5, "degrees": 15.0}
    trivial = create("strategy", "trivialaugment")
    trivial.prepare_for(chest)
    rotate = next(i for i, op in enumerate(trivial.space()) if op.name == "Rotate")
    assert magnitude_table(trivial.space(), 31, 28, 28)[0][rotate, -1] == pytest.approx(10.0)
    assert (
        trivial.params()["max_rotation"] == 10.0
        and create("strategy", "trivialaugment").params()["max_rotation"] == 135.0
    )
    with pytest.raises(MedAugBenchError, match="modality"):
        create("strategy", "geometric", modality="mri")


def test_chest_xray_geometry_never_mirrors():
    """With rotation off, chest-xray geometric returns every left-right asymmetric image unchanged; generic mirrors
    about half of them."""
    images = torch.linspace(0, 1, 28).view(1, 1, 1, 28).expand(64, 1, 28, 28).contiguous()
    targets = one_hot(64)
    chest = create("strategy", "geometric", modality="chest_xray", degrees=0.0)
    out, _ = chest.augment(images, targets, torch.Generator().manual_seed(0))
    assert torch.allclose(out, images, atol=1e-6)
    generic = create("strategy", "geometric", modality="generic", degrees=0.0)
    out, _ = generic.augment(images, targets, torch.Generator().manual_seed(0))
    mirrored = int((~torch.isclose(out, images, atol=1e-6)).flatten(1).any(dim=1).sum())
    assert 16 < mirrored < 48


def test_augment_with_follows_the_dataset_of_the_strategy_that_delegates():
    """A rebalancing or generative strategy's `augment_with="geometric"` gets the modality the loop prepares it for."""
    for name in ("oversample", "cgan"):
        strategy = create("strategy", name, augment_with="geometric")
        strategy.prepare_for(in_memory_dataset("pneumoniamnist"))
        assert strategy._augmenter.params()["modality"] == "chest_xray"


@pytest.mark.parametrize("name", AUTO_AUGMENTS)
@pytest.mark.parametrize("channels, size", SHAPES)
def test_identical_images_come_out_with_different_operations(name, channels, size):
    images = copies(channels, size)
    out, _ = augment(name, images, seed=0)
    assert len({row.numpy().tobytes() for row in out}) >= 32
    assert out.shape == images.shape and out.dtype == images.dtype and out.device == images.device
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_randaugment_draws_one_operation_per_image():
    """num_ops=1 at a fixed magnitude: each output is one of torchvision's ops on the image, and they differ."""
    image = sample_image(3, 28)
    out, _ = augment("randaugment", copies(3, 28), seed=0, num_ops=1, magnitude=9)
    table, _ = magnitude_table(RANDAUGMENT, 31, 28, 28)
    candidates = {
        (op.name, sign): torchvision_op(image, op.name, table[k, 9] * sign, "nearest")[0]
        for k, op in enumerate(RANDAUGMENT)
        for sign in ((1, -1) if op.signed else (1,))
    }
    found = [{key for key, expected in candidates.items() if torch.allclose(row, expected, atol=1e-5)} for row in out]
    assert all(found), "every output is one torchvision operation"
    assert len({name for keys in found for name, _ in keys}) >= 10


@pytest.mark.parametrize("name", AUTO_AUGMENTS + ["cutmix_mixup"])
def test_same_seed_repeats_and_another_seed_differs(name):
    images = copies(1, 28) * torch.linspace(0.5, 1.0, 64).view(-1, 1, 1, 1)  # distinct images, so mixing shows
    first, second, other = (augment(name, images, seed)[0] for seed in (3, 3, 4))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("name", AUTO_AUGMENTS)
def test_multi_hot_targets_pass_through_unchanged(name):
    targets = (torch.rand(16, 14, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    _, out = create("strategy", name).augment(copies(1, 28, 16), targets.clone(), torch.Generator().manual_seed(0))
    assert torch.equal(out, targets)


def test_cutmix_mixup_ignores_the_global_rng():
    images = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        runs.append(augment("cutmix_mixup", images, seed=5))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_cutmix_mixup_mixes_targets_by_the_images_share():
    """Constant images: MixUp gives lam*c_i + (1-lam)*c_(i-1); CutMix pastes a box covering 1 - lam of the pixels."""
    n = 8
    levels = torch.linspace(0.1, 0.8, n)
    images = levels.view(-1, 1, 1, 1).expand(n, 1, 28, 28).contiguous()
    previous = levels.roll(1, 0)
    seen = set()
    for seed in range(12):
        out, targets = augment("cutmix_mixup", images, seed)
        own_share = targets[torch.arange(n), torch.arange(n) % 2]  # one_hot alternates, so t_i and t_(i-1) differ
        pasted = torch.isclose(out, previous.view(-1, 1, 1, 1)).flatten(1).float().mean(1)
        is_cutmix = bool((pasted > 0).any()) or torch.allclose(out, images)
        expected = 1 - pasted if is_cutmix else (out.flatten(1)[:, 0] - previous) / (levels - previous)
        assert torch.allclose(own_share, expected, atol=1e-5)
        seen.add(is_cutmix)
    assert seen == {True, False}


@pytest.mark.parametrize(
    "name, params",
    [
        ("randaugment", {"magnitude": 31}),
        ("randaugment", {"num_ops": -1}),
        ("trivialaugment", {"num_magnitude_bins": 1}),
        ("augmix", {"severity": 11}),
        ("augmix", {"alpha": 0.0}),
        ("augmix", {"interpolation": "bicubic"}),
    ],
)
def test_bad_parameters_name_the_problem(name, params):
    with pytest.raises(MedAugBenchError, match=name):
        create("strategy", name, **params)


@pytest.mark.parametrize("name", AUTO_AUGMENTS + ["cutmix_mixup"])
def test_strategy_runs_through_the_training_loop(name):
    require_medmnist("breastmnist")
    config = TrainConfig(dataset="breastmnist", strategy=name, budget=Budget(steps=2), batch_size=32, eval_every=2)
    record = train(config, progress=False)
    assert record.budget.steps == 2 and record.config["strategy"] == name


def test_uint8_ops_see_the_0_255_image():
    """Posterize keeps the top bits of the 8-bit value (torchvision's float kernel would give k/2^bits levels)."""
    image = torch.full((1, 1, 4, 4), 200 / 255)
    out = classic_ops.posterize(image, torch.tensor([2.0], dtype=torch.float64))
    assert torch.allclose(out, torch.full_like(image, 192 / 255))
