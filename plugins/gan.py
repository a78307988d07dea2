"""Generator plugins of the GAN family: DCGAN-style networks with the non-saturating, saturating, LSGAN and WGAN-GP
losses.

Networks (shared by every loss), for any even image side of at least 8 px:
  * The side is halved while it stays even and at least 4 px; that gives the start resolution and the number of
    2x stages (28 → 7, two stages; 64 → 4, four stages).
  * Generator: [z ; cond] → Linear → (base·2^(stages−1), side, side) → BN+ReLU → ConvTranspose2d(4, 2, 1)+BN+ReLU
    stages, halving the width → a last ConvTranspose2d to `channels` with Tanh, so images lie in [-1, 1].
  * Discriminator: Conv2d(4, 2, 1) stages doubling the width from `base`, LeakyReLU(0.2), BatchNorm on all but the
    first → Linear → one logit. The conditioning vector (one-hot or multi-hot) enters as constant extra input
    channels broadcast over H×W, which serves single- and multi-label conditioning alike. The WGAN-GP critic uses
    layer normalisation (GroupNorm with one group) instead of BatchNorm: the gradient penalty is taken per sample,
    which batch statistics would couple (Gulrajani et al., 2017).
  * Weights start from N(0, 0.02), norm scales from N(1, 0.02), as in DCGAN (Radford et al., 2016).

Conditioning of the fakes: Algorithm 1 of the seed paper draws fake labels uniformly; here fakes reuse the batch's
own conditioning rows, which follows the label distribution and also yields valid multi-hot combinations.

One training step is one generator update with its `n_critic` discriminator updates, each on a fresh real batch
(`real_batches_per_step = n_critic`: the shared loop draws them; WGAN-GP's critic never sees one batch twice per step).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from benchmark import GenerativeModel, ImageSpec, MedAugBenchError, Register, hookimpl

Loss = Callable[..., torch.Tensor]


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


LOSSES: dict[str, tuple[Loss, Loss]] = {
    # name: (discriminator loss(real_logits, fake_logits), generator loss(fake_logits))
    "non_saturating": (lambda real, fake: _bce(real, 1.0) + _bce(fake, 0.0), lambda fake: _bce(fake, 1.0)),
    # the minimax generator loss, mean log(1 − D(G(z))): the seed paper's ablation
    "saturating": (lambda real, fake: _bce(real, 1.0) + _bce(fake, 0.0), lambda fake: -_bce(fake, 0.0)),
    # Mao et al. (2017), a-b-c = 0-1-1 coding with the ½ factors
    "lsgan": (
        lambda real, fake: 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean(),
        lambda fake: 0.5 * ((fake - 1) ** 2).mean(),
    ),
    # the gradient penalty is added in `GAN._critic_step`
    "wgan_gp": (lambda real, fake: fake.mean() - real.mean(), lambda fake: -fake.mean()),
}


def _stages(image_size: int) -> tuple[int, int]:
    """Start side and number of 2x stages: halve while the side stays even and at least 4 px."""
    side, stages = image_size, 0
    while side % 2 == 0 and side // 2 >= 4:
        side, stages = side // 2, stages + 1
    if stages == 0:
        raise MedAugBenchError(f"GAN generators need an even image size of at least 8 px, got {image_size}")
    return side, stages


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: weights from N(0, 0.02), normalisation scales from N(1, 0.02), biases zero."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
    else:
        return
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """[z ; cond] → Linear → transposed-conv stages with BN+ReLU → Tanh image."""

    def __init__(self, spec: ImageSpec, z_dim: int, base_channels: int) -> None:
        super().__init__()
        side, stages = _stages(spec.image_size)
        width = base_channels * 2 ** (stages - 1)
        layers: list[nn.Module] = [
            nn.Linear(z_dim + spec.cond_dim, width * side * side, bias=False),
            nn.Unflatten(1, (width, side, side)),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(inplace=True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, spec.channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return self.net(z if cond is None else torch.cat([z, cond], dim=1))


class Discriminator(nn.Module):
    """Strided-conv stages with LeakyReLU(0.2) (`norm` on all but the first) → Linear → one logit per image."""

    def __init__(self, spec: ImageSpec, base_channels: int, norm: Callable[[int], nn.Module]) -> None:
        super().__init__()
        side, stages = _stages(spec.image_size)
        width = base_channels
        layers: list[nn.Module] = [nn.Conv2d(spec.channels + spec.cond_dim, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        for _ in range(stages - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), norm(width * 2), nn.LeakyReLU(0.2)]
            width *= 2
        layers += [nn.Flatten(), nn.Linear(width * side * side, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if cond is not None:
            images = torch.cat([images, cond[:, :, None, None].expand(-1, -1, *images.shape[2:])], dim=1)
        return self.net(images).squeeze(1)


class GAN(GenerativeModel):
    """Conditional DCGAN-style GAN; `loss` picks non_saturating, saturating, lsgan or wgan_gp (critic without
    BatchNorm)."""

    def __init__(
        self,
        spec: ImageSpec,
        z_dim: int = 128,
        base_channels: int = 64,
        loss: str = "non_saturating",
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        n_critic: int = 1,
        gp_weight: float = 10.0,
    ) -> None:
        super().__init__(spec)
        if loss not in LOSSES:
            raise MedAugBenchError(f"unknown GAN loss {loss!r}; choose one of {', '.join(LOSSES)}")
        if n_critic < 1:
            raise MedAugBenchError(f"n_critic must be at least 1, got {n_critic}")
        self.z_dim, self.loss, self.lr, self.betas = z_dim, loss, lr, tuple(betas)
        self.n_critic, self.gp_weight = n_critic, gp_weight
        self.g_net = Generator(spec, z_dim, base_channels)
        norm = partial(nn.GroupNorm, 1) if loss == "wgan_gp" else nn.BatchNorm2d
        self.d_net = Discriminator(spec, base_channels, norm)
        self.apply(_dcgan_init)

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Adam for the generator ('g') and the discriminator ('d'), same lr and betas."""
        return {
            "g": torch.optim.Adam(self.g_net.parameters(), lr=self.lr, betas=self.betas),
            "d": torch.optim.Adam(self.d_net.parameters(), lr=self.lr, betas=self.betas),
        }

    @property
    def real_batches_per_step(self) -> int:
        """One fresh real batch per discriminator update."""
        return self.n_critic

    def training_step(
        self,
        images: torch.Tensor,
        cond: torch.Tensor | None,
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
    ) -> dict[str, torch.Tensor]:
        """`n_critic` discriminator updates, each on its own real batch (`images` stacks `n_critic` equal batches),
        then one generator update whose fakes take the last batch's conditioning rows."""
        self.train()
        if len(images) % self.n_critic:
            raise ValueError(
                f"{self.n_critic} critic updates need {self.n_critic} equal stacked batches, got {len(images)} rows"
            )
        cond = self._beside(cond, images)
        reals = images.chunk(self.n_critic)
        conds = cond.chunk(self.n_critic) if cond is not None else [None] * self.n_critic
        for real, rows in zip(reals, conds):
            d_loss = self._critic_step(real, rows, optimizers["d"], generator)
        self.d_net.requires_grad_(False)  # the generator step needs gradients through D, not for D's weights
        g_loss = LOSSES[self.loss][1](self.d_net(self.g_net(self._noise(reals[-1], generator), conds[-1]), conds[-1]))
        self.optimize(optimizers["g"], g_loss)
        self.d_net.requires_grad_(True)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}

    def sample(self, cond: torch.Tensor | None, n: int, generator: torch.Generator) -> torch.Tensor:
        """`n` images from the generator in eval mode (BatchNorm running statistics)."""
        self.g_net.eval()
        reference = torch.empty(n, device=next(self.parameters()).device)
        return self.g_net(self._noise(reference, generator), self._beside(cond, reference))

    def _critic_step(
        self,
        images: torch.Tensor,
        cond: torch.Tensor | None,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """One discriminator update on real images and fresh fakes; WGAN-GP adds the gradient penalty."""
        with torch.no_grad():
            fake = self.g_net(self._noise(images, generator), cond)
        loss = LOSSES[self.loss][0](self.d_net(images, cond), self.d_net(fake, cond))
        if self.loss == "wgan_gp":
            loss = loss + self.gp_weight * self._gradient_penalty(images, fake, cond, generator)
        self.optimize(optimizer, loss)
        return loss

    def _gradient_penalty(
        self, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        """E[(‖∇ D(x̂)‖₂ − 1)²] at random interpolates x̂ between real and fake images (Gulrajani et al., 2017)."""
        eps = torch.rand(real.shape[0], 1, 1, 1, generator=generator, device=real.device, dtype=real.dtype)
        mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.d_net(mixed, cond).sum(), mixed, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()

    def _noise(self, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """z ~ N(0, I) for each row of `like`, on its device, drawn from `generator`."""
        return torch.randn(like.shape[0], self.z_dim, generator=generator, device=like.device)

    def _beside(self, cond: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
        """`cond` as a float tensor on `like`'s device (None for an unconditional model)."""
        return None if cond is None else cond.to(device=like.device, dtype=like.dtype)


class DCGAN(GAN):
    """Unconditional DCGAN with the non-saturating loss, trained one model per class (balancing paper): built for any
    spec, it drops the conditioning vector, so `conditional` is False."""

    def __init__(self, spec: ImageSpec, **params) -> None:
        super().__init__(spec.unconditional(), **params)


@hookimpl
def register_generators(register: Register) -> None:
    register(
        "dcgan",
        DCGAN,
        "DCGAN, one unconditional model per class (transposed convs, BN+ReLU, Tanh; D conv+BN+LeakyReLU)",
    )
    register(
        "cgan",
        partial(GAN, loss="non_saturating"),
        (
            "conditional GAN of the seed paper (Algorithm 1): z∈R^128 + one-hot label, non-saturating loss, "
            "Adam 2e-4 (0.5, 0.999)"
        ),
    )
    register("wgan_gp", partial(GAN, loss="wgan_gp", n_critic=5, lr=1e-4, betas=(0.0, 0.9)), "conditional WGAN-GP")
    register("lsgan", partial(GAN, loss="lsgan"), "conditional least-squares GAN")
