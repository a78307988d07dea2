"""Every generative strategy end to end on real data: tiny-budget fits, requested counts, save/load, determinism,
failure handling, equal total budgets, fresh batches, early stopping inside the cell, honest caches, and the CLI
(`synth`, `train --strategy cgan`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark import GenerativeModel, ImageSpec, MedAugBenchError, StrategyContext, TaskSpec, create
from benchmark.data.dataset import DataOptions, Split, load_dataset
from benchmark.generate import loop as gt
from benchmark.provenance import code_version
from benchmark.registry import entries
from benchmark.synthesis.keys import ModelKey
from tests.helpers import DATA_DIR, fake_chestmnist, install_plugin, require_medmnist

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
# The DDPM cases take ~10 s each (checkpoint and guidance choice sample several times): slow, the rest fast.
GENERATOR_CASES = [pytest.param(g, marks=pytest.mark.slow) if g == "ddpm" else g for g in GENERATORS]
# An untrained GAN generator or VAE decoder emits near-constant grey, which the collapse check rightly rejects; ~30
# steps of a tiny GAN (60 for the tiny VAE, whose KL term starts near 0) are enough to leave that state. A DDPM samples
# varied noise from the first step. dcgan's per-class models share its total: 150 gives each of RetinaMNIST's five
# classes 30.
STEPS = {"vae": 60, "ddpm": 2, "dcgan": 150, "cgan": 30, "lsgan": 30, "wgan_gp": 20}


def test_every_registered_generator_has_a_strategy_and_a_tiny_config():
    assert set(entries("generator")) == set(TINY)
    assert set(TINY) <= set(entries("strategy"))


def context_for(name: str, tmp_path, per_class_cap: int = 40, image_size: int | None = None) -> StrategyContext:
    data = load_dataset(name, DataOptions(per_class_cap=per_class_cap, image_size=image_size))
    return StrategyContext(dataset=data, device=torch.device("cpu"), seed=0, work_dir=tmp_path, progress=False)


def tiny(generator: str, **kwargs):
    params = dict(
        generator_steps=STEPS[generator],
        generator_batch_size=16,
        generator_params=TINY[generator],
        quality_extractor=None,
        class_fidelity=False,
        select_points=2,
    )  # quality records are tested in tests/test_quality_integration.py; two selection points keep these fast
    return create("strategy", generator, **{**params, **kwargs})


@pytest.mark.parametrize("generator", GENERATOR_CASES)
def test_grayscale_pneumonia_fit_and_requested_counts(generator, tmp_path):
    require_medmnist("pneumoniamnist")
    context = context_for("pneumoniamnist", tmp_path)
    strategy = tiny(generator, policy="fixed", counts={"normal": 5, "pneumonia": 3})
    synthetic = strategy.synthesize(context)
    assert synthetic.images.dtype == torch.uint8 and synthetic.images.shape == (8, 1, 28, 28)
    assert synthetic.labels.tolist() == [0] * 5 + [1] * 3
    report = strategy.report()
    assert report["synthesis"]["plan"] == [5, 3]
    expected_models = {"normal", "pneumonia"} if generator == "dcgan" else {"all"}  # per-class models: class names
    assert set(report["generator"]["models"]) == expected_models
    assert sum(h["steps"] for h in report["generator"]["histories"].values()) == STEPS[generator]  # the total


@pytest.mark.parametrize("generator", GENERATOR_CASES)
def test_rgb_retina(generator, tmp_path):
    require_medmnist("retinamnist")
    context = context_for("retinamnist", tmp_path, per_class_cap=16)
    synthetic = tiny(generator, policy="multiply", multiplier=0.25).synthesize(context)
    assert synthetic.images.shape == (20, 3, 28, 28)  # 0.25 × 16 per class × 5 classes
    assert torch.bincount(synthetic.labels).tolist() == [4] * 5


@pytest.mark.parametrize("generator", ["cgan", "vae", "ddpm"])
@pytest.mark.slow
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
    fake_chestmnist(
        tmp_path, monkeypatch, sizes=(48, 16, 16), images={s: real[f"{s}_images"] for s in ("train", "val", "test")}
    )


@pytest.mark.parametrize("generator", GENERATOR_CASES)
def test_multilabel_conditioning_on_multi_hot_vectors(generator, chest, tmp_path):
    context = context_for("chestmnist", tmp_path / "work", per_class_cap=None)
    strategy = tiny(generator, policy="fixed", counts={"hernia": 3, "mass": 2})
    synthetic = strategy.synthesize(context)
    assert synthetic.images.shape == (5, 1, 28, 28) and synthetic.labels.shape == (5, 14)
    assert synthetic.labels.dtype == torch.float32
    hernia, mass = context.dataset.task.labels.index("hernia"), context.dataset.task.labels.index("mass")
    assert (synthetic.labels[:2, mass] == 1).all() and (synthetic.labels[2:, hernia] == 1).all()
    models, _ = strategy.fitted(context)  # from the cache: the models know their vectors are multi-hot
    assert all(model.spec.multilabel == (model.spec.cond_dim > 0) for model in models.values())


@pytest.mark.parametrize("generator", ["cgan", "ddpm"])
@pytest.mark.slow
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
    strategy = tiny("vae", policy="multiply")
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
    plain, geometric = (
        create("strategy", "cgan", augment_with="none"),
        create("strategy", "cgan", augment_with="geometric"),
    )
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


def fit_on_blank_images(model: GenerativeModel, steps: int, **options) -> gt.FitHistory:
    """`gt.fit` on 8 black 28-px images, batch 4, on the CPU, seed 0, without a progress bar."""
    images = torch.zeros(8, 1, 28, 28, dtype=torch.uint8)
    return gt.fit(
        model, images, None, gt.GeneratorBudget(steps=steps), 4, torch.device("cpu"), 0, progress=False, **options
    )


def test_the_loop_checks_cond_before_every_training_step_and_sampling_call():
    conditional, generator = Exploding(ImageSpec(1, 28, 2)), torch.Generator()
    with pytest.raises(ValueError, match=r"Exploding needs cond of shape \(4, 2\) for 4 images; got None"):
        fit_on_blank_images(conditional, 1)
    with pytest.raises(ValueError, match=r"needs cond of shape \(3, 2\) for 3 images; got \(3, 3\)"):
        gt.sample(conditional, torch.zeros(3, 3), 3, generator)
    with pytest.raises(ValueError, match="unconditional"):
        gt.sample(Exploding(ImageSpec(1, 28)), torch.zeros(2, 2), 2, generator)
    assert gt.sample(conditional, torch.zeros(2, 2), 2, generator).shape == (2, 1, 28, 28)


def test_saved_cards_carry_the_code_version_and_cards_without_one_still_load(tmp_path):
    model = Exploding(ImageSpec(1, 28))
    card = {"generator": "exploding", "generator_params": {}, "models": {"all": {"channels": 1, "image_size": 28}}}
    directory = gt.save(tmp_path / "saved", {"all": model}, card)
    written = json.loads((directory / gt.CARD).read_text())
    now = code_version()
    assert (written["code"]["medaugbench"], written["code"]["git_commit"]) == (now["medaugbench"], now["git_commit"])
    assert "code" not in card  # the caller's card is not changed
    kept = gt.save(tmp_path / "again", {"all": model}, {**card, "code": {"git_commit": "the trainer's"}})
    assert json.loads((kept / gt.CARD).read_text())["code"] == {"git_commit": "the trainer's"}
    (directory / gt.CARD).write_text(json.dumps(card))  # a card from before code versions
    models, loaded = gt.load(directory, torch.device("cpu"), build=Exploding)
    assert "code" not in loaded and torch.equal(models["all"].weight, model.weight)


LAMBDA_DCGAN = """
from benchmark import hookimpl
from plugins.gan import DCGAN


@hookimpl
def register_generators(register):
    register("lambda_dcgan", lambda spec, **params: DCGAN(spec, **params), "dcgan made by a lambda")
"""


def test_a_lambda_factory_is_trained_per_class_like_the_class_it_wraps(tmp_path, monkeypatch):
    """Whether a generator conditions is asked of the model it makes, not read from its factory."""
    install_plugin(tmp_path, monkeypatch, "medaugbench-lambda-dcgan", "medaugbench_lambda_dcgan", LAMBDA_DCGAN)
    task = TaskSpec("binary", ("a", "b"), channels=1)
    real = Split(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
    rng = torch.get_rng_state()
    for name in ("dcgan", "lambda_dcgan", "cgan"):
        jobs = create("strategy", name, generator_params={"base_channels": 4}).jobs(real, task, [1, 1], 0)
        assert {key.name(task.labels) for key in jobs} == ({"all"} if name == "cgan" else {"a", "b"}), name
    off = create("strategy", "cgan", conditioning=False).jobs(real, task, [1, 1], 0)
    assert set(off) == {ModelKey(0), ModelKey(1)} and all(job.cond is None for job in off.values())
    assert torch.equal(torch.get_rng_state(), rng)  # asking the model left the seeded run's RNG alone


def test_a_record_names_every_plugin_it_used_with_its_distribution_and_version(tmp_path, monkeypatch):
    from benchmark.train.record import PluginUse, plugins_used

    install_plugin(tmp_path, monkeypatch, "medaugbench-lambda-dcgan", "medaugbench_lambda_dcgan", LAMBDA_DCGAN)
    strategy = create("strategy", "lambda_dcgan", quality_extractor="domain", augment_with="geometric")
    assert strategy.plugins_used() == [
        ("generator", "lambda_dcgan"),
        ("strategy", "geometric"),
        ("extractor", "domain"),
    ]
    used = plugins_used([("dataset", "breastmnist"), ("strategy", "lambda_dcgan"), *strategy.plugins_used()])
    generator = next(use for use in used if use.kind == "generator")
    assert (generator.distribution, generator.version) == ("medaugbench-lambda-dcgan", "0.1")
    assert used[0] == PluginUse.of("dataset", "breastmnist") and used[0].distribution == "medaugbench"


def test_divergence_stops_training_with_a_recorded_reason():
    history = fit_on_blank_images(Exploding(ImageSpec(1, 28)), 500, log_every=10)
    assert history.steps == 10 and history.failure == "divergence: non-finite loss by step 10"


def test_divergence_reaches_the_strategy_as_a_failure(tmp_path, monkeypatch):
    require_medmnist("breastmnist")
    failed = gt.FitHistory(steps=3, failure="divergence: non-finite d_loss by step 3")
    monkeypatch.setattr(gt, "fit", lambda *args, **kwargs: failed)
    with pytest.raises(gt.GeneratorFailure, match="stopped: divergence: non-finite d_loss"):
        tiny("cgan", policy="multiply").synthesize(context_for("breastmnist", tmp_path))


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
    history = fit_on_blank_images(model, 1000, monitor=monitor)
    assert history.stopped_early and history.steps == 50 and history.quality == [5.0, 4.0, 4.5, 4.2, 4.1]


@pytest.mark.slow
def test_synth_cli_writes_generator_samples_and_curves(cli, tmp_path):
    require_medmnist("retinamnist")
    out = tmp_path / "cgan-retina"
    result = cli(
        "synth",
        "--dataset",
        "retinamnist",
        "--strategy",
        "cgan",
        "--generator-steps",
        "30",
        "--seed",
        "0",
        "--out",
        str(out),
        "-S",
        "generator_params.base_channels=8",
        "--per-class",
        "4",
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"generator.safetensors", "card.json", "samples.png", "losses.png"}
    card = json.loads((out / "card.json").read_text())
    assert (
        card["generator"] == "cgan"
        and card["histories"]["all"]["steps"] == 30
        and card["labels"] == ["0", "1", "2", "3", "4"]
    )


@pytest.mark.slow
def test_train_cli_with_a_generative_strategy(cli, tmp_path):
    require_medmnist("retinamnist")
    out = tmp_path / "record.json"
    result = cli(
        "train",
        "--dataset",
        "retinamnist",
        "--strategy",
        "cgan",
        "--generator-steps",
        "30",
        "--steps",
        "3",
        "--batch-size",
        "16",
        "--eval-every",
        "3",
        "-S",
        "generator_params.base_channels=8",
        "-S",
        "quality_extractor=none",
        "-S",
        "class_fidelity=false",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["dataset"]["train_synthetic"] == 358 + 280 + 292 + 420  # balance policy on RetinaMNIST's counts
    assert record["strategy"]["generator"]["histories"]["all"]["steps"] == 30


def test_generator_budget_on_a_classic_strategy_is_rejected(cli):
    result = cli("train", "--strategy", "geometric", "--generator-steps", "10", "--steps", "1")
    assert result.exit_code == 1 and "apply to generative strategies" in result.output


# -- equal generator budgets -------------------------------------------------------------------------------------
def test_generator_budget_split_is_proportional_with_a_minimum_and_sums_to_the_total():
    split = gt.GeneratorBudget(steps=101).split({"a": 300, "b": 100})
    assert {name: b.steps for name, b in split.items()} == {"a": 76, "b": 25}  # 75.75 / 25.25, largest remainder
    minimum = gt.GeneratorBudget(steps=100).split({"big": 990, "small": 10})
    assert {name: b.steps for name, b in minimum.items()} == {"big": 95, "small": 5}  # 5 % floor, not 1 step
    derma = gt.GeneratorBudget(steps=5000).split(dict(zip("abcdefg", [228, 359, 769, 80, 779, 4693, 99])))
    assert sum(b.steps for b in derma.values()) == 5000 and min(b.steps for b in derma.values()) == 250
    seconds = gt.GeneratorBudget(steps=None, seconds=10.0).split({"a": 300, "b": 100})
    assert {name: b.seconds for name, b in seconds.items()} == pytest.approx({"a": 7.5, "b": 2.5})
    many = gt.GeneratorBudget(steps=30).split({str(i): 1 + 100 * (i == 0) for i in range(30)})
    assert all(b.steps == 1 for b in many.values())  # more models than 1/5 %: an equal share each
    assert gt.GeneratorBudget(steps=7).split({"all": 10}) == {"all": gt.GeneratorBudget(steps=7)}
    with pytest.raises(MedAugBenchError, match="give at least 3"):
        gt.GeneratorBudget(steps=2).split({"a": 5, "b": 5, "c": 5})


def test_cgan_and_dcgan_cells_spend_the_same_total_generator_steps(tmp_path):
    """Per-class models share the cell's budget (in proportion to their images); the card says what each got."""
    require_medmnist("breastmnist")
    data = load_dataset("breastmnist", DataOptions(train_fraction=0.1))  # 15 malignant, 40 normal
    context = StrategyContext(dataset=data, device=torch.device("cpu"), seed=0, work_dir=tmp_path, progress=False)
    options = dict(generator_steps=20, generator_batch_size=8, policy="multiply", select_points=0)
    cards = {name: tiny(name, **options).fitted(context)[1] for name in ("cgan", "dcgan")}
    for card in cards.values():
        budget = card["budget"]
        assert budget["kind"] == "steps" and budget["total"] == 20 and budget["spent"]["steps"] == 20
        assert sum(h["steps"] for h in card["histories"].values()) == 20
        assert budget["spent"]["images_seen"] == 20 * 8 == sum(m["images_seen"] for m in budget["per_model"].values())
        assert budget["spent"]["seconds"] == pytest.approx(sum(h["seconds"] for h in card["histories"].values()))
    per_model = cards["dcgan"]["budget"]["per_model"]
    assert {name: (m["train_images"], m["allotted"], m["steps"]) for name, m in per_model.items()} == {
        "malignant": (15, 5, 5),
        "normal, benign": (40, 15, 15),
    }  # 20 × 15/55 = 5.45, 20 × 40/55 = 14.5
    assert cards["dcgan"]["budget"]["split_rule"] == gt.GeneratorBudget.SPLIT_RULE
    assert cards["cgan"]["budget"]["per_model"]["all"]["allotted"] == 20


def test_generator_epochs_convert_on_each_models_own_images():
    """An epoch budget is the cell's total (epochs × real training images / batch), as a conditional model gets it;
    a per-class model then gets about epochs × its own images / batch."""
    from benchmark.grid.cells import expand
    from benchmark.grid.config import BudgetBlock, GridConfig

    grid = GridConfig(
        datasets=("breastmnist",),
        strategies=("cgan", "dcgan"),
        baseline="cgan",
        budget=BudgetBlock(classifier_steps=1, generator_epochs=2),
        strategy_params={"dcgan": {"generator_batch_size": 16}, "cgan": {"generator_batch_size": 16}},
    )
    cells = {cell.coords["strategy"]: cell for cell in expand(grid, {"breastmnist": 546})}
    totals = {name: cell.config.strategy_params["generator_steps"] for name, cell in cells.items()}
    assert totals == {"cgan": 69, "dcgan": 69}  # ceil(2 × 546 / 16)
    dcgan = create("strategy", "dcgan", **cells["dcgan"].config.strategy_params)
    parts = dcgan.budget.split({"group_0": 147, "group_1": 399})
    assert sum(b.steps for b in parts.values()) == 69
    assert all(abs(parts[name].steps - 2 * n / 16) <= 1 for name, n in (("group_0", 147), ("group_1", 399)))


def test_wgan_gp_draws_a_fresh_real_batch_for_every_critic_update(monkeypatch):
    """One generator step = n_critic critic updates, each on its own batch: 5 × 8 distinct real images per step."""
    from plugins.gan import GAN

    images = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 1, 8, 8).contiguous()  # image i ≡ i
    model = GAN(ImageSpec(1, 8), base_channels=4, loss="wgan_gp", n_critic=5)
    seen = []
    critic_step = model._critic_step

    def spy(real, cond, *rest):
        seen.append(set(gt.to_uint8(real)[:, 0, 0, 0].tolist()))
        return critic_step(real, cond, *rest)

    monkeypatch.setattr(model, "_critic_step", spy)
    history = gt.fit(model, images, None, gt.GeneratorBudget(steps=2), 8, torch.device("cpu"), 0, progress=False)
    assert len(seen) == 10 and all(len(batch) == 8 for batch in seen)
    for step in (seen[:5], seen[5:]):
        assert len(set().union(*step)) == 40  # five different batches, not one batch five times
    assert (history.steps, history.real_batches, history.images_seen) == (2, 10, 80)


# -- early stopping only on the cell's training subset, from the loaded data ----------------------------------------
def rows(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


MONITORED = dict(
    early_stop_every=5, early_stop_patience=2, generator_steps=10, monitor_params={"steps": 3}, policy="multiply"
)


def test_the_early_stopping_monitor_sees_only_the_cells_training_images(tmp_path, monkeypatch):
    from benchmark.synthesis import pipeline
    from benchmark.train import loop as training

    require_medmnist("breastmnist")
    context = context_for("breastmnist", tmp_path, per_class_cap=20)
    cell = rows(context.dataset.train.images)
    trained_on, references = [], []
    real_train_model, real_fid_kid = training.train_model, pipeline.fid_kid
    monkeypatch.setattr(
        training,
        "train_model",
        lambda config, progress=True, data=None, data_dir=None: (
            trained_on.append(data) or real_train_model(config, progress, data=data)
        ),
    )
    monkeypatch.setattr(
        pipeline,
        "fid_kid",
        lambda real, fake, *args, **kwargs: references.append(real) or real_fid_kid(real, fake, *args, **kwargs),
    )
    card = tiny("cgan", **MONITORED).fitted(context)[1]
    (extractor_data,) = trained_on  # the monitor's extractor, trained (and its checkpoint selected) in the cell
    assert rows(extractor_data.train.images) | rows(extractor_data.val.images) == cell
    assert references and all(rows(real) <= cell for real in references)
    assert len(card["histories"]["all"]["quality"]) == len(references)
    monitor = card["monitor"]
    assert monitor["extractor"]["trained_on"]["images"] == 40 and len(monitor["extractor"]["weights_sha256"]) == 64
    assert monitor["every"] == 5 and monitor["patience"] == 2 and "training images" in monitor["reference"]


@pytest.mark.slow
def test_generative_runs_on_an_imagefolder_dataset_and_an_explicit_data_dir(tmp_path, monkeypatch):
    """Both extractors are built from the loaded data, never reloaded by name."""
    from tests.test_extractors import load_image_folder, write_image_folder

    require_medmnist("breastmnist")
    write_image_folder(tmp_path / "images", {"a": 12, "b": 12})
    monkeypatch.delenv("MEDAUGBENCH_DATA_DIR")
    folder = load_image_folder(tmp_path / "images")
    breast = load_dataset("breastmnist", DataOptions(data_dir=DATA_DIR, per_class_cap=20))
    for data in (folder, breast):
        context = StrategyContext(
            dataset=data, device=torch.device("cpu"), seed=0, work_dir=tmp_path / data.name, progress=False
        )
        strategy = tiny("cgan", **MONITORED, quality_extractor="domain", quality_params={"steps": 3})
        card = strategy.fitted(context)[1]
        assert card["monitor"]["extractor"]["trained_on"]["images"] == len(data.train)
        assert strategy.extractor(context).describe()["trained_on"]["images"] == len(data.full_train)


# -- honest caches ------------------------------------------------------------------------------------------------
def test_cache_key_covers_early_stopping_monitor_selection_and_package_version(monkeypatch):
    import importlib.metadata

    real = Split(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
    task = TaskSpec("binary", ("a", "b"), channels=1)

    def key(**params) -> str:
        return tiny("cgan", **params).key(real, 0, task, 28, [2, 0])

    assert key(early_stop_every=10, early_stop_patience=2) != key(early_stop_every=10, early_stop_patience=3)
    assert key(early_stop_every=10) != key(early_stop_every=20) != key()
    assert key(early_stop_every=10, monitor_params={"steps": 5}) != key(early_stop_every=10)
    assert key(early_stop_patience=2) == key(early_stop_patience=3)  # patience without early stopping changes nothing
    assert key(select_points=4) != key() != key(select_holdout=0.3)
    before = key()
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "999.0")
    assert key() != before


def test_generator_dir_trained_on_other_images_is_refused(tmp_path):
    require_medmnist("breastmnist")
    trained = context_for("breastmnist", tmp_path, per_class_cap=32)
    models, card = tiny("cgan", generator_steps=2, policy="multiply").fitted(trained)
    gt.save(tmp_path / "saved", models, card)
    assert len(tiny("cgan", generator_dir=str(tmp_path / "saved")).fitted(trained)[0]) == 1  # same images: fine
    other = context_for("breastmnist", tmp_path, per_class_cap=20)
    with pytest.raises(MedAugBenchError, match="trained on other images .* than this cell's training set"):
        tiny("cgan", generator_dir=str(tmp_path / "saved")).fitted(other)


@pytest.mark.slow
def test_the_preview_shows_every_class_whatever_the_policy_synthesised(tmp_path):
    """`balance` on BreastMNIST synthesises malignant images only; the preview (the report's sample grid) shows both
    classes, and drawing it leaves the synthetic training images as they were."""
    import torch

    from benchmark import StrategyContext, create
    from benchmark.data.dataset import load_dataset
    from tests.helpers import require_medmnist

    require_medmnist("breastmnist")
    data = load_dataset("breastmnist")
    params = {"generator_steps": 60, "generator_batch_size": 16, "generator_params": {"base_channels": 8}}
    strategy = create("strategy", "cgan", quality_extractor=None, class_fidelity=False, reuse=False, **params)
    context = StrategyContext(dataset=data, device=torch.device("cpu"), seed=0, progress=False)
    synthetic = strategy.synthesize(context)
    assert set(synthetic.labels.tolist()) == {0}
    preview = strategy.preview()
    assert sorted(preview.labels.tolist()) == [0] * 8 + [1] * 8 and preview.images.dtype == torch.uint8
    again = create("strategy", "cgan", quality_extractor=None, class_fidelity=False, reuse=False, **params).synthesize(
        context
    )
    assert torch.equal(again.images, synthetic.images)
    assert create("strategy", "geometric").preview() is None


# -- models only for the classes the plan samples --------------------------------------------------------------------
def test_balance_trains_only_the_minority_model_with_the_whole_budget_from_one_plan(tmp_path, monkeypatch):
    from benchmark.synthesis import pipeline

    require_medmnist("breastmnist")
    data = load_dataset("breastmnist", DataOptions(train_fraction=0.1))  # 15 malignant, 40 normal
    context = StrategyContext(dataset=data, device=torch.device("cpu"), seed=0, work_dir=tmp_path, progress=False)
    plans, plan_counts = [], pipeline.plan_counts
    monkeypatch.setattr(pipeline, "plan_counts", lambda *args: plans.append(args) or plan_counts(*args))
    strategy = tiny("dcgan", generator_steps=20, generator_batch_size=8)
    synthetic = strategy.synthesize(context)
    report = strategy.report()
    assert len(plans) == 1 and report["synthesis"]["plan"] == [25, 0] and set(synthetic.labels.tolist()) == {0}
    per_model = report["generator"]["budget"]["per_model"]
    assert set(per_model) == set(report["compute"]["generator_training"]["steps"]) == {"malignant"}
    assert per_model["malignant"]["allotted"] == per_model["malignant"]["steps"] == 20  # the whole budget
    assert per_model["malignant"]["flops"] > 0 and per_model["malignant"]["seconds"] > 0
    assert sorted(strategy.preview().labels.tolist()) == [0] * 8  # the preview shows the classes trained
    task = data.task
    assert strategy.key(data.train, 0, task, 28, [25, 0]) != strategy.key(data.train, 0, task, 28, [0, 25])


# -- caches that cannot go stale ------------------------------------------------------------------------------------
MEAN_GENERATOR = """
import torch

from benchmark import GenerativeModel, hookimpl

SHIFT = 0.0


class MeanImage(GenerativeModel):
    def __init__(self, spec):
        super().__init__(spec.unconditional())
        self.mean = torch.nn.Parameter(torch.zeros(spec.channels, spec.image_size, spec.image_size))

    def make_optimizers(self):
        return {"opt": torch.optim.SGD(self.parameters(), lr=0.5)}

    def training_step(self, images, cond, optimizers, generator):
        loss = ((self.mean - images - SHIFT) ** 2).mean()
        self.optimize(optimizers["opt"], loss)
        return {"loss": loss.detach()}

    def sample(self, cond, n, generator):
        noise = torch.randn(n, *self.mean.shape, generator=generator, device=self.mean.device)
        return (self.mean + 0.3 * noise).clamp(-1, 1)


@hookimpl
def register_generators(register):
    register("mean_image", MeanImage, "a mean image plus noise")
"""


@pytest.mark.slow
def test_an_installed_generator_edited_in_place_is_retrained_not_reused(tmp_path, monkeypatch):
    import sys

    from benchmark import registry

    require_medmnist("breastmnist")
    install_plugin(tmp_path, monkeypatch, "medaugbench-mean-image", "medaugbench_mean_image", MEAN_GENERATOR)
    context = context_for("breastmnist", tmp_path / "work", per_class_cap=8)

    def card() -> dict:
        strategy = create(
            "strategy", "mean_image", generator_steps=4, quality_extractor=None, class_fidelity=False, policy="multiply"
        )
        strategy.synthesize(context)
        return strategy.report()["generator"]

    first, second = card(), card()
    assert "reused_from" not in first and second["reused_from"] == first["saved_to"]
    code = first["trained_by"]["generator"]
    assert (code["distribution"], code["version"]) == ("medaugbench-mean-image", "0.1")
    source = tmp_path / "medaugbench_mean_image.py"
    source.write_text(source.read_text().replace("SHIFT = 0.0", "SHIFT = 0.25"))  # the loss changed, no new version
    monkeypatch.delitem(sys.modules, "medaugbench_mean_image")
    registry.reset()
    edited = card()
    assert "reused_from" not in edited and edited["saved_to"] != first["saved_to"]
    assert edited["trained_by"]["generator"]["code_digest"] != code["code_digest"]
