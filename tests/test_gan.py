"""GAN generator plugins: every variant passes the conformance kit (shared loop, shapes, conditioning, seeds,
save/load), every loss trains and samples at 28 and 64 px, and a cGAN learns a label."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from benchmark import ImageSpec, MedAugBenchError
from benchmark.generate import loop as gt
from benchmark.testing import check_generator
from plugins.gan import DCGAN, GAN, LOSSES, register_generators

VARIANTS = {
    "dcgan": DCGAN,
    "cgan": partial(GAN, loss="non_saturating"),
    "saturating": partial(GAN, loss="saturating"),
    "lsgan": partial(GAN, loss="lsgan"),
    "wgan_gp": partial(GAN, loss="wgan_gp", n_critic=5, lr=1e-4, betas=(0.0, 0.9)),
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
    # every weight of G and D took a step, except the WGAN critic's output bias, which cancels in D(fake) − D(real)
    assert unchanged == ([f"d_net.net.{len(model.d_net.net) - 1}.bias"] if name == "wgan_gp" else [])

    cond = None if spec.cond_dim == 0 else torch.eye(3)[torch.tensor([0, 1, 2, 0, 1])]
    images = gt.sample(model, cond, 5, torch.Generator().manual_seed(1))
    assert images.shape == (5, channels, size, size) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1


def test_hook_register_generators() -> None:
    """The hook registers the four generators with their recipes (called directly: the registry may not know the
    hook yet)."""
    found = {}
    register_generators(register=lambda name, factory, description="": found.setdefault(name, (factory, description)))
    assert set(found) == {"dcgan", "cgan", "wgan_gp", "lsgan"} and all(description for _, description in found.values())
    assert found["dcgan"][0] is DCGAN
    wgan = found["wgan_gp"][0](ImageSpec(1, 28, 2), base_channels=4)
    assert (wgan.loss, wgan.n_critic, wgan.lr, wgan.betas) == ("wgan_gp", 5, 1e-4, (0.0, 0.9))
    cgan = found["cgan"][0](ImageSpec(1, 28, 2), base_channels=4)
    assert (cgan.loss, cgan.z_dim, cgan.lr, cgan.betas) == ("non_saturating", 128, 2e-4, (0.5, 0.999))


def test_losses_match_their_formulas() -> None:
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-1.0, 0.0])
    d_prob = torch.sigmoid(fake)
    bce_d = -(torch.log(torch.sigmoid(real)).mean() + torch.log(1 - d_prob).mean())
    expected = {  # (discriminator, generator), written out from the papers
        "non_saturating": (bce_d, -torch.log(d_prob).mean()),
        "saturating": (bce_d, torch.log(1 - d_prob).mean()),
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
    model = GAN(ImageSpec(1, 28, 2), base_channels=16, loss="wgan_gp")
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
        GAN(ImageSpec(1, 28, 2), loss="hinge")
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
