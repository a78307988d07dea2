"""Class-conditional DDPM generator (Ho et al. 2020) built from diffusers parts, with EMA weights and DDIM sampling.

Architecture only (the shared loop in `benchmark/generate/loop.py` owns batching, budget and checkpoints):

- Denoiser: `diffusers.UNet2DModel` predicting the noise (or the velocity, see below). Conditioning vectors
  (one-hot or multi-hot, e.g. ChestMNIST's 14 labels) go through one `nn.Linear(cond_dim, time_embed_dim)` and enter
  the UNet as `class_labels` with `class_embed_type="identity"`, i.e. they are added to the timestep embedding
  (time_embed_dim = block_out_channels[0] * 4). With `cond_dim == 0` the UNet has no class embedding and `cond` must
  be None.
  Down blocks are plain `DownBlock2D`s plus, with `attention=True`, an `AttnDownBlock2D` at the lowest resolution
  (and attention in the mid block); the image size must be divisible by 2**(len(block_out_channels) - 1): with the
  default three levels 28 → 14 → 7 and 64 → 32 → 16.
- Training: `diffusers.DDPMScheduler` (linear betas); per step noise ~ N(0, I) and t ~ U{0..T-1} drawn with the
  passed generator, `add_noise`, MSE between the UNet's output and its target; AdamW; gradient-norm clipping at
  `grad_clip`. The target is the noise (`prediction_type="epsilon"`, Ho et al.) or the velocity
  sqrt(a)·noise − sqrt(1−a)·x0 (`"v_prediction"`, Salimans & Ho 2022); the sampling schedulers inherit the choice.
  Measured on a toy task (constant dark vs bright images per class, 28 px, UNet (16, 32, 32)): with epsilon the
  samples' brightness still followed the start noise rather than the label after 1500 steps at batch 32, because the
  linear schedule leaves a little signal in x_T and an x0 error at high t costs epsilon-MSE only ~1e-3; with
  v-prediction the samples followed the label after 150 steps. Equal-budget comparisons are about small budgets,
  so v_prediction is the default; `prediction_type="epsilon"` gives Ho et al.'s original objective.
- EMA: `self.ema` is a deep copy of the denoiser (a registered submodule, so its weights are in `state_dict()` and
  hence in checkpoints), updated after every optimizer step with decay min(ema_decay, (1 + s) / (10 + s)) where s is
  the number of updates so far (a buffer, so resuming keeps it): the warm-up lets tiny budgets follow the trained
  weights instead of staying near the random init. `sample` uses the EMA weights.
- Sampling: `sampler="ddim"` (default) runs `DDIMScheduler.from_config(<the DDPM scheduler's config>)` for
  `sample_steps` steps with eta = 0 (deterministic given the start noise); `sampler="ddpm"` runs the full
  T-step ancestral DDPM sampler, whose per-step noise uses the generator. Both clip the predicted x0 to [-1, 1]
  (`clip_sample`, the schedulers' default) and the output is clamped to [-1, 1]. Sampling runs in chunks of
  `sample_batch` images.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from torch import nn

from benchmark import GenerativeModel, ImageSpec, MedAugBenchError, Register, hookimpl

SAMPLERS = ("ddim", "ddpm")
PREDICTION_TYPES = ("epsilon", "v_prediction")


class Denoiser(nn.Module):
    """UNet2DModel plus the projection of the conditioning vector to the timestep-embedding width."""

    def __init__(self, unet: UNet2DModel, cond_dim: int, time_embed_dim: int) -> None:
        super().__init__()
        self.unet = unet
        self.cond_proj = nn.Linear(cond_dim, time_embed_dim) if cond_dim > 0 else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        labels = None if self.cond_proj is None else self.cond_proj(cond.to(x.dtype))
        return self.unet(x, t, class_labels=labels).sample


def _check_unet(spec: ImageSpec, channels: tuple[int, ...], norm_num_groups: int) -> None:
    """The UNet's widths must be positive multiples of the GroupNorm groups, and its levels must halve the image."""
    levels = len(channels)
    if levels < 1 or any(c <= 0 or c % norm_num_groups for c in channels):
        raise MedAugBenchError(
            f"ddpm block_out_channels must be positive multiples of norm_num_groups={norm_num_groups}; got {channels}"
        )
    if spec.image_size % 2 ** (levels - 1):
        raise MedAugBenchError(
            f"ddpm with {levels} UNet levels needs an image size divisible by {2 ** (levels - 1)}; "
            f"got {spec.image_size} (use fewer block_out_channels)"
        )


def _check_sampling(prediction_type: str, sampler: str, sample_steps: int, num_train_timesteps: int) -> None:
    """A known prediction target and sampler, and no more sampling steps than training timesteps."""
    if prediction_type not in PREDICTION_TYPES:
        raise MedAugBenchError(
            f"ddpm prediction_type must be one of {', '.join(PREDICTION_TYPES)}; got {prediction_type!r}"
        )
    if sampler not in SAMPLERS:
        raise MedAugBenchError(f"ddpm sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    if not 0 < sample_steps <= num_train_timesteps:
        raise MedAugBenchError(
            f"ddpm sample_steps must be in 1..num_train_timesteps ({num_train_timesteps}); got {sample_steps}"
        )


def _check_training(lr: float, ema_decay: float, sample_batch: int) -> None:
    """A positive learning rate, an EMA decay below 1, and at least one image per sampling chunk."""
    if not 0.0 <= ema_decay < 1.0 or sample_batch < 1 or lr <= 0:
        raise MedAugBenchError(
            f"ddpm parameters: ema_decay in [0, 1), sample_batch >= 1, lr > 0; "
            f"got ema_decay={ema_decay}, sample_batch={sample_batch}, lr={lr}"
        )


def _unet(
    spec: ImageSpec, channels: tuple[int, ...], layers_per_block: int, attention: bool, norm_num_groups: int
) -> UNet2DModel:
    """The diffusers UNet: plain down/up blocks, with attention at the lowest resolution (and in the mid block) when
    `attention`; a class embedding (added to the timestep embedding) when the spec has a conditioning vector."""
    levels = len(channels)
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if attention and levels > 1:
        down[-1] = "AttnDownBlock2D"
        up[0] = "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=spec.image_size,
        in_channels=spec.channels,
        out_channels=spec.channels,
        block_out_channels=channels,
        layers_per_block=layers_per_block,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=norm_num_groups,
        add_attention=attention,
        class_embed_type="identity" if spec.cond_dim > 0 else None,
    )


class DDPM(GenerativeModel):
    """`DDPM(spec, block_out_channels=(32, 64, 64), layers_per_block=1, attention=True, lr=2e-4, ema_decay=0.999,
    num_train_timesteps=1000, prediction_type="v_prediction", sampler="ddim", sample_steps=50, sample_batch=256, ...)`.

    Other params: norm_num_groups=8 (GroupNorm groups; must divide every block width), weight_decay=0.0,
    grad_clip=1.0 (None/0 disables), beta_schedule="linear", timestep_spacing="leading" (DDIM's spacing; "trailing"
    starts at t = T-1).
    """

    def __init__(
        self,
        spec: ImageSpec,
        block_out_channels: tuple[int, ...] | list[int] = (32, 64, 64),
        layers_per_block: int = 1,
        attention: bool = True,
        norm_num_groups: int = 8,
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        grad_clip: float | None = 1.0,
        ema_decay: float = 0.999,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        prediction_type: str = "v_prediction",
        sampler: str = "ddim",
        sample_steps: int = 50,
        timestep_spacing: str = "leading",
        sample_batch: int = 256,
    ) -> None:
        super().__init__(spec)
        channels = tuple(int(c) for c in block_out_channels)
        _check_unet(spec, channels, norm_num_groups)
        _check_sampling(prediction_type, sampler, sample_steps, num_train_timesteps)
        _check_training(lr, ema_decay, sample_batch)
        self.lr, self.weight_decay, self.grad_clip, self.ema_decay = lr, weight_decay, grad_clip, ema_decay
        self.sampler, self.sample_steps, self.timestep_spacing = sampler, sample_steps, timestep_spacing
        self.sample_batch = sample_batch
        unet = _unet(spec, channels, layers_per_block, attention, norm_num_groups)
        self.net = Denoiser(unet, spec.cond_dim, time_embed_dim=channels[0] * 4)
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self.noise_scheduler = DDPMScheduler(
            num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, prediction_type=prediction_type
        )

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """AdamW over the denoiser (the EMA copy is not trained)."""
        return {"unet": torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)}

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the EMA weights towards the trained ones (decay warmed up over the first updates)."""
        s = float(self.ema_updates.item())
        decay = min(self.ema_decay, (1.0 + s) / (10.0 + s))
        for e, p in zip(self.ema.parameters(), self.net.parameters()):
            e.lerp_(p.detach(), 1.0 - decay)
        for e, b in zip(self.ema.buffers(), self.net.buffers()):
            e.copy_(b)
        self.ema_updates += 1

    def training_step(
        self,
        images: torch.Tensor,
        cond: torch.Tensor | None,
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
    ) -> dict[str, torch.Tensor]:
        """One clipped update on the MSE to the noise (or velocity) target, then an EMA update."""
        n = images.shape[0]
        device = images.device
        noise = torch.randn(images.shape, generator=generator, device=device, dtype=images.dtype)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (n,), generator=generator, device=device)
        noisy = self.noise_scheduler.add_noise(images, noise, t)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(images, noise, t)
        else:
            target = noise
        loss = F.mse_loss(self.net(noisy, t, cond).float(), target.float())
        self.optimize(optimizers["unet"], loss, clip_grad_norm=self.grad_clip)
        self.update_ema()
        return {"loss": loss.detach()}

    def _sampling_scheduler(self) -> DDIMScheduler | DDPMScheduler:
        """DDIM with `sample_steps` steps, or the full ancestral DDPM sampler, from the training schedule's config."""
        config = self.noise_scheduler.config
        if self.sampler == "ddpm":
            scheduler = DDPMScheduler.from_config(config)
            scheduler.set_timesteps(config.num_train_timesteps)
        else:
            scheduler = DDIMScheduler.from_config(config, timestep_spacing=self.timestep_spacing)
            scheduler.set_timesteps(self.sample_steps)
        return scheduler

    def sample(self, cond: torch.Tensor | None, n: int, generator: torch.Generator) -> torch.Tensor:
        """`n` images from the EMA weights with the sampling scheduler, in chunks of `sample_batch`."""
        param = next(self.ema.parameters())
        device, dtype = param.device, param.dtype
        c, s = self.spec.channels, self.spec.image_size
        scheduler = self._sampling_scheduler()
        chunks = []
        for start in range(0, n, self.sample_batch):
            m = min(self.sample_batch, n - start)
            part = None if cond is None else cond[start : start + m].to(device)
            x = torch.randn((m, c, s, s), generator=generator, device=device, dtype=dtype)
            for t in scheduler.timesteps:
                eps = self.ema(x, t.to(device), part)
                x = scheduler.step(eps, t, x, generator=generator).prev_sample
            chunks.append(x.float().clamp(-1.0, 1.0))
        if not chunks:
            return torch.empty((0, c, s, s), device=device)
        return torch.cat(chunks)


@hookimpl
def register_generators(register: Register) -> None:
    register(
        "ddpm",
        DDPM,
        "class-conditional DDPM (diffusers UNet2DModel + DDPMScheduler), EMA weights, DDIM sampling",
    )
