"""GAN generator plugins: every variant passes the conformance kit (shared loop, shapes, conditioning, seeds,
save/load), every loss trains and samples at 28 and 64 px, a cGAN learns a label, and the small-data recipe
(DiffAugment, a discriminator at least the generator's size, EMA sampling, projection conditioning, the auxiliary
classifier, hinge loss) does what it says, with the old recipe still reachable."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F

import plugins.gan
from benchmark import ImageSpec, MedAugBenchError
from benchmark.generate import loop as gt
from benchmark.registry import entries, resolved
from benchmark.testing import check_generator
from plugins.gan import DCGAN, GAN, LOSSES, OLD_RECIPE, class_loss, diff_augment, parameter_count

VARIANTS = {
    "dcgan": DCGAN,
    "cgan": partial(GAN, loss="non_saturating"),
    "saturating": partial(GAN, loss="saturating"),
    "hinge": partial(GAN, loss="hinge"),
    "concat": partial(GAN, conditioning="concat"),
    "no_ac": partial(GAN, ac_weight=0.0),
    "lsgan": partial(GAN, loss="lsgan"),
    "wgan_gp": partial(GAN, loss="wgan_gp", n_critic=5, lr=1e-4, betas=(0.0, 0.9), spectral_norm=False),
    "old_recipe": partial(GAN, loss="non_saturating", **OLD_RECIPE),
}


def batch(spec: ImageSpec, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random images in [-1, 1] and one-hot rows (None when unconditional)."""
    images = torch.rand(n, spec.channels, spec.image_size, spec.image_size, generator=generator) * 2 - 1
    if spec.cond_dim == 0:
        return images, None
    return images, F.one_hot(torch.randint(0, spec.cond_dim, (n,), generator=generator), spec.cond_dim).float()


def train(model: GAN, spec: ImageSpec, steps: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """`steps` training steps, each on `real_batches_per_step` stacked batches of 8 (as the shared loop passes them)."""
    generator = torch.Generator().manual_seed(seed)
    optimizers = model.make_optimizers()
    n = 8 * model.real_batches_per_step
    return [model.training_step(*batch(spec, n, generator), optimizers, generator) for _ in range(steps)]


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_passes_the_conformance_kit(name: str) -> None:
    check_generator(VARIANTS[name], base_channels=8)


@pytest.mark.parametrize("channels, size", [(1, 28), (3, 64)])
@pytest.mark.parametrize("name", VARIANTS)
def test_variant_trains_and_samples(name: str, channels: int, size: int) -> None:
    spec = ImageSpec(channels, size, cond_dim=0 if name == "dcgan" else 3)
    model = VARIANTS[name](spec, base_channels=16)
    assert set(model.make_optimizers()) == {"g", "d"}
    before = {key: value.clone() for key, value in model.named_parameters()}

    for losses in train(model, spec, steps=2, seed=0):
        assert set(losses) == {"d_loss", "g_loss"}
        assert all(loss.ndim == 0 and not loss.requires_grad and torch.isfinite(loss) for loss in losses.values())
    unchanged = [key for key, value in model.named_parameters() if torch.equal(value, before[key])]
    # every weight of G, D and the EMA copy took a step, except the output bias of the WGAN critic and of the hinge D
    # (every logit inside the margin at first), which cancels in D(fake) − D(real)
    assert unchanged == (["d_net.head.bias"] if name in ("wgan_gp", "hinge") else [])

    cond = None if spec.cond_dim == 0 else torch.eye(3)[torch.tensor([0, 1, 2, 0, 1])]
    images = gt.sample(model, cond, 5, torch.Generator().manual_seed(1))
    assert images.shape == (5, channels, size, size) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1


GANS = ("dcgan", "cgan", "wgan_gp", "lsgan")


def test_hook_register_generators() -> None:
    """The four generators are registered (by reference, in plugins/builtin.py) with their recipes."""
    generators = entries("generator")
    found = {name: (generators[name].factory, generators[name].description) for name in GANS}
    assert all(description for _, description in found.values())
    assert resolved(found["dcgan"][0]) is DCGAN
    wgan = found["wgan_gp"][0](ImageSpec(1, 28, 2), base_channels=4)
    assert (wgan.loss, wgan.n_critic, wgan.lr, wgan.betas) == ("wgan_gp", 5, 1e-4, (0.0, 0.9))
    assert not any(isinstance(m, torch.nn.utils.parametrize.ParametrizationList) for m in wgan.d_net.modules())
    cgan = found["cgan"][0](ImageSpec(1, 28, 2), base_channels=4)
    assert (cgan.loss, cgan.z_dim, cgan.lr, cgan.betas) == ("non_saturating", 128, 2e-4, (0.5, 0.999))
    assert cgan.d_net.projection and cgan.g_ema is not None and len(cgan.augments) == 3
    assert cgan.ac_weight == 1.0 and cgan.d_net.classifier is not None


def test_losses_match_their_formulas() -> None:
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-1.0, 0.0])
    d_prob = torch.sigmoid(fake)
    bce_d = -(torch.log(torch.sigmoid(real)).mean() + torch.log(1 - d_prob).mean())
    expected = {  # (discriminator, generator), written out from the papers
        "non_saturating": (bce_d, -torch.log(d_prob).mean()),
        "saturating": (bce_d, torch.log(1 - d_prob).mean()),
        "hinge": (torch.relu(1 - real).mean() + torch.relu(1 + fake).mean(), -fake.mean()),
        "lsgan": (0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean(), 0.5 * ((fake - 1) ** 2).mean()),
        "wgan_gp": (fake.mean() - real.mean(), -fake.mean()),
    }
    assert expected.keys() == LOSSES.keys()
    for name, (d_loss, g_loss) in LOSSES.items():
        torch.testing.assert_close((d_loss(real, fake), g_loss(fake)), expected[name], msg=name)


def test_wgan_gp_takes_n_critic_steps_per_generator_step_each_on_its_own_batch(monkeypatch) -> None:
    spec = ImageSpec(1, 28, 2)
    model = VARIANTS["wgan_gp"](spec, base_channels=4)
    assert model.real_batches_per_step == 5 and VARIANTS["cgan"](spec, base_channels=4).real_batches_per_step == 1
    generator = torch.Generator().manual_seed(0)
    optimizers = model.make_optimizers()
    seen = []
    critic_step = model._critic_step
    monkeypatch.setattr(
        model, "_critic_step", lambda real, cond, *rest: seen.append(real) or critic_step(real, cond, *rest)
    )
    images, cond = batch(spec, 5 * 4, generator)
    model.training_step(images, cond, optimizers, generator)
    steps = {name: {int(state["step"]) for state in opt.state.values()} for name, opt in optimizers.items()}
    assert steps == {"d": {5}, "g": {1}}
    assert [len(real) for real in seen] == [4] * 5 and torch.equal(torch.cat(seen), images)  # each critic: its batch
    with pytest.raises(ValueError, match="5 equal stacked batches"):
        model.training_step(images[:4], cond[:4], optimizers, generator)


def test_wgan_gp_critic_has_no_batchnorm() -> None:
    model = GAN(ImageSpec(1, 28, 2), base_channels=16, loss="wgan_gp", spectral_norm=False)
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in model.d_net.modules())
    assert any(isinstance(module, torch.nn.GroupNorm) for module in model.d_net.modules())


@pytest.mark.parametrize("size, stages", [(28, 2), (64, 4), (32, 3), (8, 1)])
def test_networks_fit_the_image_size(size: int, stages: int) -> None:
    model = GAN(ImageSpec(1, size, 2), base_channels=4)
    upsampling = [m for m in model.g_net.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    downsampling = [m for m in model.d_net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(upsampling) == len(downsampling) == stages


def test_multi_hot_conditioning() -> None:
    spec = ImageSpec(1, 28, cond_dim=14)
    model = GAN(spec, base_channels=8)
    generator = torch.Generator().manual_seed(0)
    cond = (torch.rand(8, 14, generator=generator) < 0.3).float()
    cond[0] = 0  # "no finding" rows are all zeros
    cond[1] = 1
    images = torch.rand(8, 1, 28, 28, generator=generator) * 2 - 1
    losses = model.training_step(images, cond, model.make_optimizers(), generator)
    assert all(torch.isfinite(loss) for loss in losses.values())
    assert gt.sample(model, cond, 8, generator).shape == (8, 1, 28, 28)


def test_dcgan_drops_the_conditioning_vector_and_says_it_is_not_conditional() -> None:
    """Whatever factory builds it, a model for a conditional spec reports whether it conditions (the harness then
    trains dcgan one model per class); the loop refuses cond for it."""
    for factory in (DCGAN, partial(DCGAN), lambda spec, **params: DCGAN(spec, **params)):
        dcgan = factory(ImageSpec(1, 28, 2), base_channels=4)
        assert dcgan.spec == ImageSpec(1, 28, 0) and not dcgan.conditional
    assert VARIANTS["cgan"](ImageSpec(1, 28, 2), base_channels=4).conditional
    assert not GAN(ImageSpec(1, 28, 0), base_channels=4).conditional
    with pytest.raises(ValueError, match="unconditional"):
        gt.sample(dcgan, torch.eye(2), 2, torch.Generator())


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(MedAugBenchError, match="wgan_gp"):
        GAN(ImageSpec(1, 28, 2), loss="bogus")
    with pytest.raises(MedAugBenchError, match="conditioning 'label'.*ema_decay 1.0"):
        GAN(ImageSpec(1, 28, 2), ema_decay=1.0, conditioning="label")
    with pytest.raises(MedAugBenchError, match="unknown DiffAugment op.*flip"):
        GAN(ImageSpec(1, 28, 2), diffaugment="color,flip")
    with pytest.raises(MedAugBenchError, match="ac_weight -1"):
        GAN(ImageSpec(1, 28, 2), ac_weight=-1)
    with pytest.raises(MedAugBenchError, match="even image size"):
        GAN(ImageSpec(1, 6, 2))


@pytest.mark.slow
def test_cgan_learns_a_label_dependent_brightness() -> None:
    """Class 0 dark (−0.8), class 1 bright (+0.8): after 100 steps the cGAN's samples follow the label.

    Budget: Adam moves each weight by about `lr` per step, so with the default lr 2e-4 the output of a freshly
    initialised G (N(0, 0.02) weights, outputs near 0) drifts only ~±0.3 in 150 steps (measured). With lr 1e-3 the
    class means separate by 1.3-1.5 after 100 steps of batch 32 on four seeds tried (0-3), about 4 s on one CPU thread
    (not asserted: wall time on a shared CPU is noisy; see `pytest --durations`).
    """
    spec = ImageSpec(1, 28, cond_dim=2)
    torch.manual_seed(0)
    model = GAN(spec, base_channels=16, lr=1e-3)
    optimizers = model.make_optimizers()
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        labels = torch.randint(0, 2, (32,), generator=generator)
        images = (labels.float() * 1.6 - 0.8)[:, None, None, None] + 0.05 * torch.randn(
            32, 1, 28, 28, generator=generator
        )
        model.training_step(images, F.one_hot(labels, 2).float(), optimizers, generator)
    samples = gt.sample(model, torch.eye(2).repeat_interleave(64, dim=0), 128, generator)
    dark, bright = samples[:64].mean().item(), samples[64:].mean().item()
    assert bright - dark > 0.5 and dark < 0 < bright, (dark, bright)


def test_hinge_loss_on_a_hand_example() -> None:
    """D: mean(max(0, 1 − real)) + mean(max(0, 1 + fake)) = (0 + 0.5)/2 + (0 + 1)/2; G: −mean(fake) = 0.5."""
    d_loss, g_loss = LOSSES["hinge"]
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-1.0, 0.0])
    assert d_loss(real, fake).item() == pytest.approx(0.75) and g_loss(fake).item() == pytest.approx(0.5)


def test_diffaugment_is_seeded_differentiable_and_stays_within_its_ranges() -> None:
    image = -torch.ones(16, 1, 28, 28)
    image[:, :, 14, 14] = 1.0  # one bright pixel: translation moves it at most 4 px (1/8 of 28, rounded)
    (translate,) = diff_augment("translation")
    moved = translate(image, torch.Generator().manual_seed(0))
    where = (moved == 1).nonzero()[:, 2:]
    assert len(where) == 16 and (where - 14).abs().max() <= 4 and len({tuple(p.tolist()) for p in where}) > 1
    (cutout,) = diff_augment("cutout")
    zeros = (cutout(torch.ones(16, 1, 28, 28), torch.Generator().manual_seed(0)) == 0).flatten(1).sum(1)
    assert zeros.min() > 0 and zeros.max() <= 14 * 14  # a 14-px square, clipped at the border
    ops = diff_augment("color,translation,cutout")
    images = (torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1).requires_grad_(True)

    def augmented(seed: int) -> torch.Tensor:
        out, generator = images, torch.Generator().manual_seed(seed)
        for op in ops:
            out = op(out, generator)
        return out

    assert torch.equal(augmented(0), augmented(0)) and not torch.equal(augmented(0), augmented(1))
    augmented(0).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert diff_augment("") == diff_augment(None) == [] and diff_augment(" color ") == ops[:1]


@pytest.mark.parametrize("policy", ["color,translation,cutout", ""])
def test_diffaugment_reaches_the_discriminator_for_real_and_fake_images(policy: str, monkeypatch) -> None:
    """One step augments the fakes and the real batch of D's update and the fakes of G's update, and D sees exactly
    the augmented images; with diffaugment="" D sees the real batch itself."""
    spec = ImageSpec(1, 28, 2)
    generator = torch.Generator().manual_seed(0)
    images, cond = batch(spec, 8, generator)
    model = GAN(spec, base_channels=8, diffaugment=policy)
    augments, seen = [], []
    augment = model.augment
    monkeypatch.setattr(model, "augment", lambda x, g: augments.append((x, augment(x, g))) or augments[-1][1])
    score = model.d_net.score  # every discriminator call (forward too) goes through it
    monkeypatch.setattr(model.d_net, "score", lambda x, c: seen.append(x) or score(x, c))
    model.training_step(images, cond, model.make_optimizers(), generator)
    assert len(augments) == 3 and torch.equal(augments[1][0], images)  # D step: fakes, reals; G step: fakes
    assert [x.data_ptr() for x in seen] == [augments[i][1].data_ptr() for i in (1, 0, 2)]  # D(real), D(fake), G's
    assert torch.equal(seen[0], images) == (policy == "")


@pytest.mark.parametrize("size", [28, 64])
@pytest.mark.parametrize("params", [{}, {"z_dim": 64, "base_channels": 32}])
@pytest.mark.parametrize("name", ["dcgan", "cgan"])
def test_discriminator_is_at_least_as_large_as_the_generator(name: str, params: dict, size: int) -> None:
    """Defaults and the pilot's sizes; the old recipe's discriminator was 6x smaller than its generator."""
    model = VARIANTS[name](ImageSpec(1, size, 2), **params)
    assert parameter_count(model.d_net) >= parameter_count(model.g_net)
    assert any(isinstance(m, torch.nn.utils.parametrize.ParametrizationList) for m in model.d_net.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.d_net.modules())


def test_old_recipe_is_reachable_by_parameters() -> None:
    """Issue 21's BreastMNIST cGAN (pilot sizes): a 37,601-parameter BatchNorm discriminator with the label as input
    channels, no spectral norm, no DiffAugment, no EMA copy."""
    model = VARIANTS["old_recipe"](ImageSpec(1, 28, 2), z_dim=64, base_channels=32)
    assert parameter_count(model.d_net) == 37_601 and model.d_net.embed is None and model.g_ema is None
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.d_net.modules()) and model.augments == []
    assert not any(key.startswith("g_ema.") for key in model.state_dict())


def test_ema_weights_are_in_the_state_dict_warm_up_and_are_what_sample_uses() -> None:
    spec = ImageSpec(1, 28, 2)
    model = GAN(spec, base_channels=8, ema_decay=0.999)
    names = {key.removeprefix("g_net.") for key in model.g_net.state_dict(prefix="g_net.")}
    assert {key.removeprefix("g_ema.") for key in model.state_dict() if key.startswith("g_ema.")} == names
    train(model, spec, steps=1, seed=0)
    # warm-up: the first update copies the trained weights (decay 0), not 0.999 of the random init
    assert all(torch.equal(a, b) for a, b in zip(model.g_ema.state_dict().values(), model.g_net.state_dict().values()))
    train(model, spec, steps=3, seed=1)
    assert int(model.ema_updates) == 4
    assert not torch.equal(model.g_ema.net[0].weight, model.g_net.net[0].weight)
    cond = torch.eye(2)[torch.tensor([0, 1, 0, 1])]
    before = gt.sample(model, cond, 4, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.g_net.net[0].weight.zero_()  # the trained generator does not sample
    assert torch.equal(gt.sample(model, cond, 4, torch.Generator().manual_seed(0)), before)
    with torch.no_grad():
        model.g_ema.net[0].weight.mul_(2)
    assert not torch.equal(gt.sample(model, cond, 4, torch.Generator().manual_seed(0)), before)


def test_projection_conditioning_changes_the_logit_by_the_label_embedding() -> None:
    """D(x, y) = ψ(φ(x)) + ⟨y·V, φ(x)⟩ (Miyato & Koyama, 2018): changing the label changes the logit by exactly the
    projection term; with "concat" the label enters as input channels and there is no embedding."""
    spec = ImageSpec(1, 28, 3)
    model = GAN(spec, base_channels=8).eval()
    images = batch(spec, 4, torch.Generator().manual_seed(0))[0]
    first, second = torch.eye(3)[[0, 0, 0, 0]], torch.eye(3)[[1, 2, 1, 2]]
    with torch.no_grad():
        features = model.d_net.features(images)
        expected = ((model.d_net.embed(second) - model.d_net.embed(first)) * features).sum(1)
        change = model.d_net(images, second) - model.d_net(images, first)
    assert change.abs().min() > 0
    torch.testing.assert_close(change, expected)
    concat = GAN(spec, base_channels=8, conditioning="concat")
    assert concat.d_net.embed is None and concat.d_net.features[0].in_channels == 1 + 3


def test_a_seed_fixes_the_weights_with_diffaugment_on() -> None:
    spec = ImageSpec(1, 28, 2)

    def trained(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        model = GAN(spec, base_channels=8)
        train(model, spec, steps=2, seed=seed)
        return model.state_dict()

    first, again, other = trained(0), trained(0), trained(1)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


def test_auxiliary_classifier_loss_on_a_hand_example() -> None:
    """A single-label task: softmax cross-entropy; a multi-label one (rows of none, one or several labels): per-label
    BCE, also on a batch whose rows happen to be one-hot (the loss is the task's, not the batch's)."""
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    one_hot = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = (torch.log1p(torch.exp(torch.tensor(-2.0))) + torch.log(torch.tensor(2.0))) / 2
    torch.testing.assert_close(class_loss(logits, one_hot, multilabel=False), expected)
    multi_hot = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    softplus = torch.log1p(torch.exp(torch.tensor([-2.0, 0.0, 0.0, 0.0])))  # −log σ(2), −log σ(0), −log(1 − σ(0))
    torch.testing.assert_close(class_loss(logits, multi_hot, multilabel=True), softplus.mean())
    one_hot_bce = torch.log1p(torch.exp(torch.tensor([-2.0, 0.0, 0.0, 0.0]))).mean()  # −log σ(2), then 3 × log 2
    torch.testing.assert_close(class_loss(logits, one_hot, multilabel=True), one_hot_bce)


@pytest.mark.parametrize("conditioning", ["projection", "concat"])
def test_auxiliary_classifier_gives_class_logits_of_the_conditioning_width(conditioning: str) -> None:
    spec = ImageSpec(1, 28, 3)
    images, cond = batch(spec, 5, torch.Generator().manual_seed(0))
    logits, class_logits = GAN(spec, base_channels=8, conditioning=conditioning).d_net.score(images, cond)
    assert logits.shape == (5,) and class_logits.shape == (5, 3)
    assert GAN(spec, base_channels=8, ac_weight=0.0).d_net.score(images, cond)[1] is None
    assert DCGAN(spec, base_channels=8).d_net.classifier is None


def test_auxiliary_classifier_term_enters_both_losses_on_the_intended_labels(monkeypatch) -> None:
    """The discriminator's loss gains ac_weight × the class loss on the real rows' labels, the generator's the same on
    its fakes' (the batch's rows); a constant class loss shifts both by exactly that and nothing else."""
    spec = ImageSpec(1, 28, 2)
    seen: list[torch.Tensor] = []

    def losses(value: float) -> dict[str, torch.Tensor]:
        def constant(class_logits: torch.Tensor, cond: torch.Tensor, multilabel: bool) -> torch.Tensor:
            seen.append(cond)
            return torch.tensor(value)

        monkeypatch.setattr(plugins.gan, "class_loss", constant)
        torch.manual_seed(0)
        return train(GAN(spec, base_channels=8, ac_weight=0.5), spec, steps=1, seed=0)[0]

    without, shifted = losses(0.0), losses(4.0)
    for name in ("d_loss", "g_loss"):
        torch.testing.assert_close(shifted[name], without[name] + 2.0)
    assert len(seen) == 4 and all(torch.equal(cond, seen[0]) for cond in seen)


def test_a_seed_fixes_the_weights_with_the_auxiliary_classifier() -> None:
    spec = ImageSpec(1, 28, 2)

    def trained(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        model = GAN(spec, base_channels=8, ac_weight=1.0, conditioning="concat")
        train(model, spec, steps=2, seed=seed)
        return model.state_dict()

    first, again, other = trained(0), trained(0), trained(1)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not torch.equal(
        first["d_net.classifier.parametrizations.weight.original"],
        other["d_net.classifier.parametrizations.weight.original"],
    )
