"""Every generative strategy end to end on real data: tiny-budget fits, requested counts, save/load, determinism,
failure handling, and the CLI (`synth`, `train --strategy cgan`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark import generator_training as gt
from benchmark.dataset import DataOptions, load_dataset
from benchmark.generative import GenerativeModel, ImageSpec
from benchmark.registry import create_strategy, entries
from benchmark.strategy import StrategyContext
from tests.conftest import fake_chestmnist, require_medmnist

# Small networks so that every generator fits in a second or two on CPU; architecture, loss and the shared loop
# are the same code paths as the defaults.
TINY = {
    "vae": {"base_channels": 8, "latent_dim": 8},
    "dcgan": {"base_channels": 8},
    "cgan": {"base_channels": 8},
    "wgan_gp": {"base_channels": 8, "n_critic": 2},
    "lsgan": {"base_channels": 8},
    "ddpm": {"block_out_channels": [16, 16, 16], "attention": False, "sample_steps": 2},
}
GENERATORS = sorted(TINY)
# An untrained GAN generator or VAE decoder emits near-constant grey, which the collapse check rightly rejects; ~30 steps of a
# tiny GAN (60 for the tiny VAE, whose KL term starts near 0) are enough to leave that state. A DDPM samples varied noise from the first step.
STEPS = {"vae": 60, "ddpm": 2, "dcgan": 30, "cgan": 30, "lsgan": 30, "wgan_gp": 20}


def test_every_registered_generator_has_a_strategy_and_a_tiny_config():
    assert set(entries("generator")) == set(TINY)
    assert set(TINY) <= set(entries("strategy"))


def context_for(name: str, tmp_path, per_class_cap: int = 40, image_size: int | None = None) -> StrategyContext:
    data = load_dataset(name, DataOptions(per_class_cap=per_class_cap, image_size=image_size))
    return StrategyContext(dataset=data, device=torch.device("cpu"), seed=0, work_dir=tmp_path, progress=False)


def tiny(generator: str, **kwargs):
    params = dict(generator_steps=STEPS[generator], generator_batch_size=16, generator_params=TINY[generator],
                  quality_extractor=None)  # quality records are tested in tests/test_quality_integration.py
    return create_strategy(generator, **{**params, **kwargs})


@pytest.mark.parametrize("generator", GENERATORS)
def test_grayscale_pneumonia_fit_and_requested_counts(generator, tmp_path):
    require_medmnist("pneumoniamnist")
    context = context_for("pneumoniamnist", tmp_path)
    strategy = tiny(generator, policy="fixed", counts={"normal": 5, "pneumonia": 3})
    synthetic = strategy.synthesize(context)
    assert synthetic.images.dtype == torch.uint8 and synthetic.images.shape == (8, 1, 28, 28)
    assert synthetic.labels.tolist() == [0] * 5 + [1] * 3
    report = strategy.report()
    assert report["synthesis"]["plan"] == [5, 3]
    expected_models = {"group_0", "group_1"} if generator == "dcgan" else {"all"}
    assert set(report["generator"]["models"]) == expected_models
    assert all(h["steps"] == STEPS[generator] for h in report["generator"]["histories"].values())


@pytest.mark.parametrize("generator", GENERATORS)
def test_rgb_retina(generator, tmp_path):
    require_medmnist("retinamnist")
    context = context_for("retinamnist", tmp_path, per_class_cap=16)
    synthetic = tiny(generator, policy="multiply", multiplier=0.25).synthesize(context)
    assert synthetic.images.shape == (20, 3, 28, 28)  # 0.25 × 16 per class × 5 classes
    assert torch.bincount(synthetic.labels).tolist() == [4] * 5


@pytest.mark.parametrize("generator", ["cgan", "vae", "ddpm"])
def test_64_pixel_pipeline(generator, tmp_path):
    """Every model also runs at 64 px and 1/3 channels (tests/test_gan.py, test_vae_ddpm.py); one model each here."""
    require_medmnist("retinamnist")
    context = context_for("retinamnist", tmp_path, per_class_cap=8, image_size=64)
    synthetic = tiny(generator, policy="fixed", counts={"4": 3}).synthesize(context)
    assert synthetic.images.shape == (3, 3, 64, 64) and synthetic.labels.tolist() == [4, 4, 4]


@pytest.fixture
def chest(tmp_path, monkeypatch):
    """The ChestMNIST layout with real chest X-rays (PneumoniaMNIST images), so generators have structure to learn."""
    real = np.load(require_medmnist("pneumoniamnist"))
    fake_chestmnist(tmp_path, monkeypatch, sizes=(48, 16, 16), images={s: real[f"{s}_images"] for s in ("train", "val", "test")})


@pytest.mark.parametrize("generator", GENERATORS)
def test_multilabel_conditioning_on_multi_hot_vectors(generator, chest, tmp_path):
    context = context_for("chestmnist", tmp_path / "work", per_class_cap=None)
    strategy = tiny(generator, policy="fixed", counts={"hernia": 3, "mass": 2})
    synthetic = strategy.synthesize(context)
    assert synthetic.images.shape == (5, 1, 28, 28) and synthetic.labels.shape == (5, 14)
    assert synthetic.labels.dtype == torch.float32
    hernia, mass = context.dataset.task.labels.index("hernia"), context.dataset.task.labels.index("mass")
    assert (synthetic.labels[:2, mass] == 1).all() and (synthetic.labels[2:, hernia] == 1).all()


@pytest.mark.parametrize("generator", ["cgan", "ddpm"])
def test_same_seed_same_weights_and_samples_and_reuse_after_save(generator, tmp_path):
    require_medmnist("breastmnist")
    context = context_for("breastmnist", tmp_path, per_class_cap=32)
    first = tiny(generator, policy="multiply", multiplier=0.25, reuse=False).synthesize(context)
    again = tiny(generator, policy="multiply", multiplier=0.25, reuse=False).synthesize(context)
    assert torch.equal(first.images, again.images)
    reused_strategy = tiny(generator, policy="multiply", multiplier=0.25)
    reused = reused_strategy.synthesize(context)  # loads the safetensors checkpoint saved by the runs above
    assert "reused_from" in reused_strategy.report()["generator"]
    assert torch.equal(first.images, reused.images)


def test_saved_generator_round_trip(tmp_path):
    require_medmnist("breastmnist")
    context = context_for("breastmnist", tmp_path, per_class_cap=32)
    strategy = tiny("vae")
    models, card = strategy.fitted(context)
    gt.save(tmp_path / "saved", models, card)
    loaded, loaded_card = gt.load(tmp_path / "saved", torch.device("cpu"))
    assert loaded_card["generator"] == "vae" and set(loaded) == {"all"}
    for key, value in models["all"].state_dict().items():
        assert torch.equal(value, loaded["all"].state_dict()[key])
    from_dir = tiny("vae", generator_dir=str(tmp_path / "saved"), policy="fixed", counts={"0": 4})
    assert len(from_dir.synthesize(context)) == 4


def test_synthetic_only_replaces_the_real_training_set(tmp_path):
    require_medmnist("breastmnist")
    context = context_for("breastmnist", tmp_path, per_class_cap=20)
    strategy = tiny("cgan", policy="synthetic_only")
    synthetic = strategy.synthesize(context)
    combined = strategy.combine(context.dataset.train, synthetic)
    assert combined is synthetic and len(combined) == len(context.dataset.train) == 40


def test_gan_plus_geometric_augments_batches():
    plain, geometric = create_strategy("cgan", augment_with="none"), create_strategy("cgan", augment_with="geometric")
    images = torch.rand(4, 1, 28, 28)
    targets = torch.eye(2)[[0, 1, 0, 1]]
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(plain.augment(images, targets, generator)[0], images)
    assert not torch.equal(geometric.augment(images, targets, generator)[0], images)


class Exploding(GenerativeModel):
    """A generator whose loss becomes NaN: the shared loop must stop it and say why."""

    def __init__(self, spec: ImageSpec) -> None:
        super().__init__(spec)
        self.weight = torch.nn.Parameter(torch.ones(1))

    def make_optimizers(self):
        return {"opt": torch.optim.SGD(self.parameters(), lr=0.1)}

    def training_step(self, images, cond, optimizers, generator):
        return {"loss": (self.weight * float("nan")).sum().detach()}

    def sample(self, cond, n, generator):
        return torch.zeros(n, self.spec.channels, self.spec.image_size, self.spec.image_size)


def test_divergence_stops_training_with_a_recorded_reason():
    model = Exploding(ImageSpec(1, 28))
    history = gt.fit(model, torch.zeros(8, 1, 28, 28, dtype=torch.uint8), None, gt.GeneratorBudget(steps=500), 4,
                     torch.device("cpu"), 0, progress=False, log_every=10)
    assert history.steps == 10 and history.failure == "divergence: non-finite loss by step 10"


def test_divergence_reaches_the_strategy_as_a_failure(tmp_path, monkeypatch):
    require_medmnist("breastmnist")
    failed = gt.FitHistory(steps=3, failure="divergence: non-finite d_loss by step 3")
    monkeypatch.setattr(gt, "fit", lambda *args, **kwargs: failed)
    with pytest.raises(gt.GeneratorFailure, match="stopped: divergence: non-finite d_loss"):
        tiny("cgan").synthesize(context_for("breastmnist", tmp_path))


def test_collapse_is_detected():
    constant = torch.full((16, 1, 28, 28), 128, dtype=torch.uint8)
    assert "mode collapse" in gt.collapse_reason(constant)
    flat = torch.arange(16, dtype=torch.uint8).mul(10).view(16, 1, 1, 1).expand(16, 1, 28, 28).contiguous()
    assert "constant images" in gt.collapse_reason(flat)
    assert gt.collapse_reason(torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)) is None


def test_early_stopping_on_a_quality_plateau():
    model = Exploding(ImageSpec(1, 28))
    model.training_step = lambda images, cond, optimizers, generator: {"loss": torch.tensor(1.0)}
    scores = iter([5.0, 4.0, 4.5, 4.2, 4.1, 3.0])
    monitor = gt.QualityMonitor(score=lambda m: next(scores), every=10, patience=3)
    history = gt.fit(model, torch.zeros(8, 1, 28, 28, dtype=torch.uint8), None, gt.GeneratorBudget(steps=1000), 4,
                     torch.device("cpu"), 0, progress=False, monitor=monitor)
    assert history.stopped_early and history.steps == 50 and history.quality == [5.0, 4.0, 4.5, 4.2, 4.1]


def test_synth_cli_writes_generator_samples_and_curves(cli, tmp_path):
    require_medmnist("retinamnist")
    out = tmp_path / "cgan-retina"
    result = cli("synth", "--dataset", "retinamnist", "--strategy", "cgan", "--generator-steps", "30", "--seed", "0",
                 "--out", str(out), "-S", "generator_params.base_channels=8", "--per-class", "4")
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"generator.safetensors", "card.json", "samples.png", "losses.png"}
    card = json.loads((out / "card.json").read_text())
    assert card["generator"] == "cgan" and card["histories"]["all"]["steps"] == 30 and card["labels"] == ["0", "1", "2", "3", "4"]


def test_train_cli_with_a_generative_strategy(cli, tmp_path):
    require_medmnist("retinamnist")
    out = tmp_path / "record.json"
    result = cli("train", "--dataset", "retinamnist", "--strategy", "cgan", "--generator-steps", "30", "--steps", "3",
                 "--batch-size", "16", "--eval-every", "3", "-S", "generator_params.base_channels=8", "-S", "quality_extractor=none",
                 "--out", str(out))
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["dataset"]["train_synthetic"] == 358 + 280 + 292 + 420  # balance policy on RetinaMNIST's counts
    assert record["strategy"]["generator"]["histories"]["all"]["steps"] == 30


def test_generator_budget_on_a_classic_strategy_is_rejected(cli):
    result = cli("train", "--strategy", "geometric", "--generator-steps", "10", "--steps", "1")
    assert result.exit_code == 1 and "apply to generative strategies" in result.output
