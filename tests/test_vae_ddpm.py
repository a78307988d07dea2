"""The conditional VAE and the diffusers DDPM generators: the conformance kit, steps and sampling at every spec,
EMA, the samplers and conditioning that steers the samples."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark import ImageSpec, MedAugBenchError
from benchmark.generate import loop as gt
from benchmark.testing import check_generator
from plugins.ddpm import DDPM
from plugins.vae import VAE

SMALL = {
    "vae": (VAE, {"base_channels": 8, "latent_dim": 8}),
    "ddpm": (DDPM, {"block_out_channels": (16, 32, 32), "sample_steps": 5}),
}
SPECS = {
    "28px-1ch-2cls": (ImageSpec(1, 28, 2), "onehot"),
    "64px-3ch-5cls": (ImageSpec(3, 64, 5), "onehot"),
    "28px-1ch-14multi": (ImageSpec(1, 28, 14), "multihot"),
    "28px-1ch-uncond": (ImageSpec(1, 28, 0), None),
}


def make(name: str, spec: ImageSpec, seed: int = 0, **extra):
    cls, params = SMALL[name]
    torch.manual_seed(seed)
    return cls(spec, **{**params, **extra})


def batch(spec: ImageSpec, kind: str | None, n: int, seed: int = 123):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand((n, spec.channels, spec.image_size, spec.image_size), generator=g) * 2 - 1
    if kind is None:
        return images, None
    if kind == "onehot":
        return images, torch.eye(spec.cond_dim)[torch.randint(0, spec.cond_dim, (n,), generator=g)]
    return images, (torch.rand((n, spec.cond_dim), generator=g) < 0.3).float()


def train(model, spec, kind, steps: int, seed: int = 1, n: int = 4):
    opts = model.make_optimizers()
    g = torch.Generator().manual_seed(seed)
    images, cond = batch(spec, kind, n)
    return [model.training_step(images, cond, opts, g) for _ in range(steps)]


def trained_weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("ema.")}


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("spec_id", list(SPECS))
def test_train_and_sample(name, spec_id):
    spec, kind = SPECS[spec_id]
    model = make(name, spec)
    opts = model.make_optimizers()
    assert opts and all(isinstance(o, torch.optim.Optimizer) for o in opts.values())
    before = trained_weights(model)
    for losses in train(model, spec, kind, steps=2):
        assert "loss" in losses
        for value in losses.values():
            assert value.ndim == 0 and not value.requires_grad and math.isfinite(value.item())
    after = trained_weights(model)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2, "most weight tensors should move after two steps"

    _, cond = batch(spec, kind, 3, seed=7)
    out = gt.sample(model, cond, 3, torch.Generator().manual_seed(0))
    assert out.shape == (3, spec.channels, spec.image_size, spec.image_size)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("name", list(SMALL))
def test_passes_the_conformance_kit(name):
    """Shared loop, sample shape and range, conditioning, seed determinism and the save → load round trip."""
    cls, params = SMALL[name]
    check_generator(cls, **params)


@pytest.mark.parametrize("size,channels", [(28, 1), (64, 3)])
def test_ddpm_default_unet_runs(size, channels):
    """The default UNet (32, 64, 64) with attention at the lowest level: 28 → 14 → 7 and 64 → 32 → 16."""
    spec = ImageSpec(channels, size, 3)
    torch.manual_seed(0)
    model = DDPM(spec, sample_steps=2)
    assert model.net.unet.config.block_out_channels == (32, 64, 64)
    assert model.net.cond_proj.out_features == 32 * 4
    images, cond = batch(spec, "onehot", 2)
    losses = model.training_step(images, cond, model.make_optimizers(), torch.Generator().manual_seed(0))
    assert math.isfinite(losses["loss"].item())
    out = gt.sample(model, cond, 2, torch.Generator().manual_seed(0))
    assert out.shape == (2, channels, size, size) and out.abs().max() <= 1


def test_ddpm_ema_in_state_dict_and_used_for_sampling():
    spec, kind = SPECS["28px-1ch-2cls"]
    model = make("ddpm", spec)
    train(model, spec, kind, steps=4)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    assert int(sd["ema_updates"]) == 4
    net_keys = [k for k in sd if k.startswith("net.")]
    assert net_keys and all("ema." + k[len("net.") :] in sd for k in net_keys)
    differs = [k for k in net_keys if not torch.equal(sd[k], sd["ema." + k[len("net.") :]])]
    assert len(differs) > len(net_keys) // 2
    assert all(not p.requires_grad for p in model.ema.parameters())
    opt_params = {id(p) for o in model.make_optimizers().values() for group in o.param_groups for p in group["params"]}
    assert id(model.net.cond_proj.weight) in opt_params
    assert not opt_params & {id(p) for p in model.ema.parameters()}

    _, cond = batch(spec, kind, 2, seed=3)
    with_ema = gt.sample(model, cond, 2, torch.Generator().manual_seed(0))
    model.ema.load_state_dict(model.net.state_dict())
    with_raw = gt.sample(model, cond, 2, torch.Generator().manual_seed(0))
    assert not torch.equal(with_ema, with_raw), "sample must read the EMA weights"

    restored = make("ddpm", spec, seed=42)
    restored.load_state_dict(sd)
    assert torch.equal(gt.sample(restored, cond, 2, torch.Generator().manual_seed(0)), with_ema)


def test_ddpm_ancestral_sampler_and_chunks():
    spec, kind = SPECS["28px-1ch-2cls"]
    model = make("ddpm", spec, sampler="ddpm", num_train_timesteps=20, sample_batch=2)
    train(model, spec, kind, steps=1)
    _, cond = batch(spec, kind, 3, seed=3)
    a = gt.sample(model, cond, 3, torch.Generator().manual_seed(0))
    b = gt.sample(model, cond, 3, torch.Generator().manual_seed(0))
    assert a.shape == (3, 1, 28, 28) and a.abs().max() <= 1
    assert torch.equal(a, b)
    assert model._sampling_scheduler().timesteps.numel() == 20


def test_bad_parameters_are_rejected():
    with pytest.raises(MedAugBenchError, match="divisible by 4"):
        VAE(ImageSpec(1, 30, 2))
    with pytest.raises(MedAugBenchError, match="sampler"):
        DDPM(ImageSpec(1, 28, 2), sampler="euler")
    with pytest.raises(MedAugBenchError, match="prediction_type"):
        DDPM(ImageSpec(1, 28, 2), prediction_type="sample")
    with pytest.raises(MedAugBenchError, match="divisible by 8"):
        DDPM(ImageSpec(1, 28, 2), block_out_channels=(16, 16, 16, 16))
    with pytest.raises(MedAugBenchError, match="multiples of norm_num_groups"):
        DDPM(ImageSpec(1, 28, 2), block_out_channels=(12, 16))
    with pytest.raises(MedAugBenchError, match="sample_steps"):
        DDPM(ImageSpec(1, 28, 2), num_train_timesteps=10, sample_steps=20)
    with pytest.raises(MedAugBenchError, match="ema_decay"):
        DDPM(ImageSpec(1, 28, 2), ema_decay=1.0)


def test_plugins_register_their_generators():
    import plugins.ddpm
    import plugins.vae

    seen = {}
    for module in (plugins.vae, plugins.ddpm):
        module.register_generators(lambda name, factory, description="": seen.update({name: (factory, description)}))
    assert seen["vae"][0] is VAE and seen["ddpm"][0] is DDPM
    assert all(description for _, description in seen.values())


@pytest.mark.slow
def test_vae_learns_the_conditioning():
    """Class 0 images are uniformly dark (-0.8), class 1 bright (+0.8): samples must follow the label.

    Why 150 steps are enough: the whole signal is one brightness value per class, and the decoder sees the one-hot
    label directly through its first linear layer, so it only has to learn a label-dependent offset, while the KL term
    makes it costly for z to carry what the label already says. Measured (1 thread, ~3 s): with lr 3e-3 the dark/bright
    gap of the sample means after 150 steps was 0.95-1.37 over seeds 0-5 (1.06 for the seed used here), twice
    the asserted 0.5; after 50 steps it is already 0.5-0.9 at lr 2e-3.
    """
    spec = ImageSpec(1, 28, 2)
    torch.manual_seed(0)
    model = VAE(spec, latent_dim=4, base_channels=8, lr=3e-3)
    opts = model.make_optimizers()
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(32) % 2
    cond = torch.eye(2)[labels]
    images = torch.where(labels[:, None, None, None] == 1, 0.8, -0.8).expand(32, 1, 28, 28).contiguous()
    images = images + 0.05 * torch.randn(images.shape, generator=g)
    for _ in range(150):
        losses = model.training_step(images, cond, opts, g)
    assert math.isfinite(losses["loss"].item())
    sample_g = torch.Generator().manual_seed(1)
    dark = gt.sample(model, torch.eye(2)[[0] * 16], 16, sample_g).mean()
    bright = gt.sample(model, torch.eye(2)[[1] * 16], 16, sample_g).mean()
    assert bright - dark > 0.5, (dark.item(), bright.item())


@pytest.mark.slow
def test_ddpm_v_prediction_learns_the_conditioning():
    """Same dark/bright task for the DDPM, trained with v-prediction (`prediction_type="v_prediction"`).

    With v-prediction a tiny UNet at 16 px follows the label after 60 steps at batch 16 (measured, seeds 0-2:
    sample-mean gap 1.23-1.33, ~4 s on one thread; at 28 px 0.81-1.07). The default epsilon-prediction is not tested
    this way: on this task its samples' brightness follows the start noise's mean rather than the label even after
    1500 steps (the linear schedule leaves x_T with a little signal, and an error in x0 at high t costs epsilon-MSE
    only ~1e-3), so it would need a budget
    far beyond a unit test.
    """
    spec = ImageSpec(1, 16, 2)
    torch.manual_seed(0)
    model = DDPM(
        spec, block_out_channels=(8, 16, 16), attention=False, lr=3e-3, sample_steps=5, prediction_type="v_prediction"
    )
    assert model.noise_scheduler.config.prediction_type == "v_prediction"
    assert model._sampling_scheduler().config.prediction_type == "v_prediction"
    opts = model.make_optimizers()
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(16) % 2
    cond = torch.eye(2)[labels]
    images = torch.where(labels[:, None, None, None] == 1, 0.8, -0.8).expand(16, 1, 16, 16).contiguous()
    for _ in range(60):
        losses = model.training_step(images, cond, opts, g)
    assert math.isfinite(losses["loss"].item())
    sample_g = torch.Generator().manual_seed(1)
    dark = gt.sample(model, torch.eye(2)[[0] * 8], 8, sample_g).mean()
    bright = gt.sample(model, torch.eye(2)[[1] * 8], 8, sample_g).mean()
    assert bright - dark > 0.5, (dark.item(), bright.item())
