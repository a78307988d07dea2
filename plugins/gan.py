"""Generator plugins of the GAN family: DCGAN-style generators with a small-data recipe for the discriminator
(DiffAugment, spectral norm, projection conditioning with an auxiliary classifier, a discriminator at least as large
as the generator)
and EMA generator weights for sampling; non-saturating, saturating, hinge, LSGAN and WGAN-GP losses.

Networks, for any even image side of at least 8 px:
  * The side is halved while it stays even and at least 4 px; that gives the start resolution and the number of
    2x stages (28 → 7, two stages; 64 → 4, four stages).
  * Generator: [z ; cond] → Linear → (base·2^(stages−1), side, side) → BN+ReLU → ConvTranspose2d(4, 2, 1)+BN+ReLU
    stages, halving the width → a last ConvTranspose2d to `channels` with Tanh, so images lie in [-1, 1].
  * Discriminator (SN-GAN's "standard CNN" shape, Miyato et al., 2018): per stage `d_convs_per_stage − 1`
    Conv2d(3, 1, 1) and one Conv2d(4, 2, 1), widths doubling from `base`, LeakyReLU(0.2) → flatten → a hidden
    Linear of `d_hidden` units (the generator's input Linear mirrored; by default the smallest multiple of 8 that
    gives the discriminator at least the generator's parameter count) → one logit. Spectral norm on every layer by
    default; without it, a norm layer after every conv but the first (BatchNorm; layer normalisation for the WGAN-GP
    critic, whose gradient penalty is per sample, which batch statistics would couple, Gulrajani et al., 2017).
  * Conditioning (one-hot or multi-hot): "projection" (default) adds ⟨cond·V, φ(x)⟩ to the logit, φ the last
    features (Miyato & Koyama, 2018); "concat" broadcasts it as constant extra input channels of the discriminator.
    The generator always takes the label beside z.
  * Auxiliary classifier (AC-GAN, Odena et al., 2017), with either conditioning: a Linear class head on φ; the
    discriminator's loss adds `ac_weight` × its classification loss on the real images' labels, the generator's
    `ac_weight` × that loss on its fakes' intended labels (softmax cross-entropy for one-hot rows, per-label binary
    cross-entropy for multi-label ones). Default 1: projection alone gave BreastMNIST a stable FID but a weak label
    (a real-data PneumoniaMNIST classifier recognised 14 of 100 "normal" cGAN samples after 300 steps; 33 with it,
    FID still flat over 2000 steps). `ac_weight=0`: no class head.
  * Weights start from N(0, 0.02), norm scales from N(1, 0.02), as in DCGAN (Radford et al., 2016).

Small data (Zhao et al., 2020, DiffAugment): every image the discriminator sees, real or fake, in its own step and
in the generator's, passes through the same differentiable random ops (`diffaugment`: colour = brightness, saturation,
contrast; translation by up to 1/8 of the side, zero padded; cutout of a square half the side), drawn per image from
the training generator, so the generator's gradient flows through them and the augmentations do not leak into its
samples.

EMA: `g_ema`, a copy of the generator (a submodule, so its weights are in state_dict, checkpoints and best-checkpoint
selection), follows the trained weights after every generator update with diffusers' `EMAModel` rule (decay
min(ema_decay, (1 + s)/(10 + s)) after s updates: short budgets do not sample near-random weights) and copies its
BatchNorm statistics; `sample` uses it (`ema_decay=0`: no copy, sample the trained generator).

The recipe before this one (issue 21's BreastMNIST cGAN that drifted to checkerboards) is `OLD_RECIPE`:
`diffaugment="", spectral_norm=False, conditioning="concat", ema_decay=0, d_convs_per_stage=1, d_hidden=0,
ac_weight=0`.

Conditioning of the fakes: Algorithm 1 of the seed paper draws fake labels uniformly; here fakes reuse the batch's
own conditioning rows, which follows the label distribution and also yields valid multi-hot combinations.

One training step is one generator update with its `n_critic` discriminator updates, each on a fresh real batch
(`real_batches_per_step = n_critic`: the shared loop draws them; WGAN-GP's critic never sees one batch twice per step).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from benchmark import GenerativeModel, ImageSpec, MedAugBenchError

Loss = Callable[..., torch.Tensor]
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


LOSSES: dict[str, tuple[Loss, Loss]] = {
    # name: (discriminator loss(real_logits, fake_logits), generator loss(fake_logits))
    "non_saturating": (lambda real, fake: _bce(real, 1.0) + _bce(fake, 0.0), lambda fake: _bce(fake, 1.0)),
    # the minimax generator loss, mean log(1 − D(G(z))): the seed paper's ablation
    "saturating": (lambda real, fake: _bce(real, 1.0) + _bce(fake, 0.0), lambda fake: -_bce(fake, 0.0)),
    # Lim & Ye (2017), as in SN-GAN and BigGAN
    "hinge": (lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean(), lambda fake: -fake.mean()),
    # Mao et al. (2017), a-b-c = 0-1-1 coding with the ½ factors
    "lsgan": (
        lambda real, fake: 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean(),
        lambda fake: 0.5 * ((fake - 1) ** 2).mean(),
    ),
    # the gradient penalty is added in `GAN._critic_step`
    "wgan_gp": (lambda real, fake: fake.mean() - real.mean(), lambda fake: -fake.mean()),
}


def _uniform(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One U(0, 1) draw per image, shaped to broadcast over (C, H, W)."""
    return torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=x.device, dtype=x.dtype)


def _color(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Brightness ± 0.5, saturation × [0, 2] (a no-op for one channel), contrast × [0.5, 1.5], per image."""
    x = x + (_uniform(x, generator) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x, generator) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, generator) + 0.5) + mean


def _translation(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `ratio` of its side in x and y, filling with zeros (differentiable gather)."""
    n, _, h, w = x.shape
    shifts = []
    for size in (h, w):
        most = int(size * ratio + 0.5)
        shift = torch.randint(-most, most + 1, (n, 1, 1), generator=generator, device=x.device)
        shifts.append((torch.arange(size, device=x.device)[None, :, None] + shift + 1).clamp(0, size + 1))
    rows, cols = shifts[0], shifts[1].transpose(1, 2)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[torch.arange(n, device=x.device)[:, None, None], rows, cols].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of `ratio` of the side per image, centred anywhere (clipped at the border)."""
    n, _, h, w = x.shape
    keep = []
    for size in (h, w):
        cut = int(size * ratio + 0.5)
        centre = torch.randint(0, size + (1 - cut % 2), (n, 1), generator=generator, device=x.device)
        start = centre - cut // 2
        position = torch.arange(size, device=x.device)[None, :]
        keep.append((position < start) | (position >= start + cut))
    mask = keep[0][:, :, None] | keep[1][:, None, :]
    return x * mask[:, None].to(x.dtype)


OLD_RECIPE: dict[str, object] = {
    # the parameters that restore the recipe before issue 21 (a BatchNorm discriminator 6x smaller than its
    # generator, the label as input channels, no DiffAugment, no EMA)
    "diffaugment": "",
    "spectral_norm": False,
    "conditioning": "concat",
    "ema_decay": 0.0,
    "d_convs_per_stage": 1,
    "d_hidden": 0,
    "ac_weight": 0.0,
}

AUGMENTS: dict[str, Augment] = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(policy: str | None) -> list[Augment]:
    """The DiffAugment ops a comma-separated policy names, in order ("" or None, as `-S …diffaugment=none` gives:
    none)."""
    names = [name.strip() for name in (policy or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in AUGMENTS]
    if unknown:
        raise MedAugBenchError(
            f"unknown DiffAugment op(s) {', '.join(unknown)}; use a comma-separated subset of {','.join(AUGMENTS)}, "
            "or diffaugment='' for none"
        )
    return [AUGMENTS[name] for name in names]


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


def parameter_count(module: nn.Module) -> int:
    """Number of parameter values of `module`."""
    return sum(p.numel() for p in module.parameters())


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
    """Conv stages with LeakyReLU(0.2) (`norm` after every conv but the first; None: no norm layers) → flatten →
    optional hidden Linear → features φ → one logit per image; the label enters by projection onto φ or as input
    channels."""

    def __init__(
        self,
        spec: ImageSpec,
        base_channels: int,
        norm: Callable[[int], nn.Module] | None,
        convs_per_stage: int = 1,
        hidden: int = 0,
        projection: bool = True,
        classifier: bool = False,
    ) -> None:
        super().__init__()
        side, stages = _stages(spec.image_size)
        self.projection = projection and spec.cond_dim > 0
        width, layers = spec.channels + (0 if self.projection else spec.cond_dim), []
        for stage in range(stages):
            out = base_channels * 2**stage
            shapes = [(3, 1)] * (convs_per_stage - 1) + [(4, 2)]
            for kernel, stride in shapes:
                first = not layers
                layers.append(nn.Conv2d(width, out, kernel, stride, 1, bias=first or norm is None))
                layers += [] if first or norm is None else [norm(out)]
                layers.append(nn.LeakyReLU(0.2))
                width = out
        features = width * side * side
        if hidden:
            layers += [nn.Flatten(), nn.Linear(features, hidden), nn.LeakyReLU(0.2)]
            features = hidden
        else:
            layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(features, 1)
        self.embed = nn.Linear(spec.cond_dim, features, bias=False) if self.projection else None
        self.classifier = nn.Linear(features, spec.cond_dim) if classifier and spec.cond_dim else None

    def forward(self, images: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return self.score(images, cond)[0]

    def score(self, images: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Real/fake logit per image and, with the auxiliary classifier, class logits (B, cond_dim) from the same
        features (None without it)."""
        if cond is not None and not self.projection:
            images = torch.cat([images, cond[:, :, None, None].expand(-1, -1, *images.shape[2:])], dim=1)
        features = self.features(images)
        logits = self.head(features).squeeze(1)
        if self.embed is not None and cond is not None:
            logits = logits + (self.embed(cond) * features).sum(dim=1)
        return logits, None if self.classifier is None else self.classifier(features)


def class_loss(class_logits: torch.Tensor, cond: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """AC-GAN's auxiliary classification loss: per-label binary cross-entropy for multi-hot rows (a multi-label task:
    a row may hold no label or several), else softmax cross-entropy on one-hot rows. Decided by the task, not by
    looking at each batch: a multi-label batch that happened to be one-hot would otherwise switch losses."""
    if multilabel:
        return F.binary_cross_entropy_with_logits(class_logits, cond)
    return F.cross_entropy(class_logits, cond.argmax(dim=1))


def _hidden_to_match(target: int, build: Callable[[int], nn.Module]) -> int:
    """The smallest multiple of 8 hidden units for which `build(hidden)` has at least `target` parameters (built on
    the meta device: nothing is allocated and no RNG is drawn)."""
    hidden = 8
    with torch.device("meta"):
        while parameter_count(build(hidden)) < target:
            hidden += 8
    return hidden


def _with_spectral_norm(module: nn.Module) -> None:
    """Spectral norm (one power iteration per forward) on every conv and linear layer inside `module`."""
    for child in list(module.modules()):
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            _spectral_norm(child)


class GAN(GenerativeModel):
    """Conditional DCGAN-style GAN with the small-data recipe (module docstring); `loss` picks non_saturating,
    saturating, hinge, lsgan or wgan_gp (its critic uses layer normalisation when spectral norm is off)."""

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
        diffaugment: str | None = "color,translation,cutout",
        spectral_norm: bool = True,
        conditioning: str = "projection",
        ema_decay: float = 0.999,
        d_convs_per_stage: int = 1,
        d_hidden: int | None = None,
        ac_weight: float = 1.0,
    ) -> None:
        super().__init__(spec)
        _check_params(loss, n_critic, conditioning, ema_decay, d_convs_per_stage, ac_weight)
        self.z_dim, self.loss, self.lr, self.betas = z_dim, loss, lr, tuple(betas)
        self.n_critic, self.gp_weight, self.ema_decay = n_critic, gp_weight, ema_decay
        self.ac_weight = ac_weight if spec.cond_dim else 0.0
        self.augments = diff_augment(diffaugment)
        self.g_net = Generator(spec, z_dim, base_channels)
        norm = None if spectral_norm else partial(nn.GroupNorm, 1) if loss == "wgan_gp" else nn.BatchNorm2d
        build = partial(
            Discriminator,
            spec,
            base_channels,
            norm,
            d_convs_per_stage,
            projection=conditioning == "projection",
            classifier=self.ac_weight > 0,
        )
        if d_hidden is None:
            d_hidden = _hidden_to_match(parameter_count(self.g_net), lambda hidden: build(hidden=hidden))
        self.d_net = build(hidden=d_hidden)
        self.apply(_dcgan_init)
        if spectral_norm:
            _with_spectral_norm(self.d_net)
        self.g_ema = copy.deepcopy(self.g_net).requires_grad_(False) if ema_decay > 0 else None
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self._averager = EMAModel([], decay=ema_decay, foreach=True)

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
        then one generator update whose fakes take the last batch's conditioning rows, then the EMA update."""
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
        fake = self.g_net(self._noise(reals[-1], generator), conds[-1])
        logits, class_logits = self.d_net.score(self.augment(fake, generator), conds[-1])
        g_loss = LOSSES[self.loss][1](logits) + self._class_term(class_logits, conds[-1])
        self.optimize(optimizers["g"], g_loss)
        self.d_net.requires_grad_(True)
        self._update_ema()
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}

    def augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The DiffAugment policy's ops on `images` (real or fake), each drawn per image from `generator`."""
        for op in self.augments:
            images = op(images, generator)
        return images

    def sample(self, cond: torch.Tensor | None, n: int, generator: torch.Generator) -> torch.Tensor:
        """`n` images from the EMA generator (the trained one without EMA) in eval mode (BatchNorm running
        statistics)."""
        net = self.g_ema if self.g_ema is not None else self.g_net
        net.eval()
        reference = torch.empty(n, device=next(self.parameters()).device)
        return net(self._noise(reference, generator), self._beside(cond, reference))

    def _update_ema(self) -> None:
        """Move `g_ema` towards the trained generator with diffusers' `EMAModel` (it keeps its shadow weights in a
        list and its count in an int, which state_dict does not see: both are pointed at `g_ema` and the
        `ema_updates` buffer first) and copy the BatchNorm statistics."""
        if self.g_ema is None:
            return
        self._averager.shadow_params = list(self.g_ema.parameters())
        self._averager.optimization_step = int(self.ema_updates)
        self._averager.step(self.g_net.parameters())
        with torch.no_grad():
            for mine, trained in zip(self.g_ema.buffers(), self.g_net.buffers()):
                mine.copy_(trained)
        self.ema_updates += 1

    def _critic_step(
        self,
        images: torch.Tensor,
        cond: torch.Tensor | None,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """One discriminator update on augmented real images and fresh augmented fakes; WGAN-GP adds the gradient
        penalty (between the augmented images)."""
        with torch.no_grad():
            fake = self.augment(self.g_net(self._noise(images, generator), cond), generator)
        real = self.augment(images, generator)
        real_logits, class_logits = self.d_net.score(real, cond)
        loss = LOSSES[self.loss][0](real_logits, self.d_net(fake, cond)) + self._class_term(class_logits, cond)
        if self.loss == "wgan_gp":
            loss = loss + self.gp_weight * self._gradient_penalty(real, fake, cond, generator)
        self.optimize(optimizer, loss)
        return loss

    def _class_term(self, class_logits: torch.Tensor | None, cond: torch.Tensor | None) -> torch.Tensor | float:
        """`ac_weight` × the auxiliary classifier's loss on the intended labels (0 without the classifier)."""
        if class_logits is None or cond is None:
            return 0.0
        return self.ac_weight * class_loss(class_logits, cond, self.spec.multilabel)

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


def _check_params(
    loss: str, n_critic: int, conditioning: str, ema_decay: float, d_convs_per_stage: int, ac_weight: float
) -> None:
    """One error naming every bad GAN parameter and its allowed values."""
    problems = []
    if loss not in LOSSES:
        problems.append(f"loss {loss!r} (choose one of {', '.join(LOSSES)})")
    if n_critic < 1:
        problems.append(f"n_critic {n_critic} (at least 1)")
    if conditioning not in ("projection", "concat"):
        problems.append(f"conditioning {conditioning!r} (projection or concat)")
    if not 0.0 <= ema_decay < 1.0:
        problems.append(f"ema_decay {ema_decay} (in [0, 1); 0 turns EMA off)")
    if d_convs_per_stage < 1:
        problems.append(f"d_convs_per_stage {d_convs_per_stage} (at least 1)")
    if ac_weight < 0:
        problems.append(f"ac_weight {ac_weight} (at least 0; 0 turns the auxiliary classifier off)")
    if problems:
        raise MedAugBenchError(f"bad GAN parameters: {'; '.join(problems)}")


class DCGAN(GAN):
    """Unconditional DCGAN (non-saturating loss by default), trained one model per class (balancing paper): built for
    any spec, it drops the conditioning vector, so `conditional` is False."""

    def __init__(self, spec: ImageSpec, **params) -> None:
        super().__init__(spec.unconditional(), **params)
