"""Class-conditional DDPM generator (Ho et al. 2020) from diffusers parts: EMA weights, classifier-free guidance,
DDIM / DPM-Solver++ / UniPC sampling.

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
- Classifier-free guidance (Ho & Salimans 2022): during training each conditioning row is replaced, with
  probability `cond_drop` (drawn with the passed generator), by a learned null embedding (`net.null_cond`, in the
  timestep-embedding space, so it stays distinct from every label vector, including ChestMNIST's all-zero "no
  finding"); the same UNet thus also learns the unconditional model. Sampling with guidance weight w uses
  out = out_cond + w·(out_cond − out_uncond) (Ho & Salimans' w; diffusers' `guidance_scale` is 1 + w). With w = 0
  the unconditional pass is skipped, so the images are exactly those of the unguided conditional sampler. The
  combination is linear, so it is the same on the velocity as on the noise (v is affine in eps given x_t). The
  weight lives in the `guidance` buffer (in `state_dict()`, so checkpoints keep it); the synthesis stage chooses it
  among `guidance_candidates` on the cell's own training holdout (`GenerativeModel.set_guidance`). An unconditional
  model, or one trained with `cond_drop=0`, has no null model to guide against and lists no candidates.
- EMA: `self.ema` is a copy of the denoiser registered as a submodule, so its weights are in `state_dict()` and
  hence in safetensors checkpoints and the loop's best-checkpoint copies. `diffusers.training_utils.EMAModel` does
  the averaging (decay min(ema_decay, (1 + s) / (10 + s)) after a first full copy; s counts updates), but it keeps
  its shadow weights in a plain list and its step count in a Python int, neither of which `state_dict()` sees: so
  before every update its shadow list is pointed at the registered copy's parameters and its count is set from the
  `ema_updates` buffer (resuming keeps it). The warm-up lets tiny budgets follow the trained weights instead of
  staying near the random init. `sample` uses the EMA weights.
- Sampling: `sampler="ddim"` (default; eta = 0), `"dpm_solver"` (`DPMSolverMultistepScheduler`, DPM-Solver++ of
  order 2) or `"unipc"` (`UniPCMultistepScheduler`, order 2), each built `from_config(<the DDPM scheduler's
  config>)` for `sample_steps` steps with `timestep_spacing` ("trailing" by default, so the first step starts at
  t = T−1 as Lin et al. 2024 recommend; "leading" was the old default); all three are deterministic given the
  start noise. `sampler="ddpm"` runs the full T-step ancestral sampler, whose per-step noise uses the generator.
  DDIM and DDPM clip the predicted x0 to [-1, 1] (`clip_sample`); every output is clamped to [-1, 1]. Sampling
  runs in chunks of `sample_batch` images, each with a fresh scheduler (the multistep solvers keep state).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    SchedulerMixin,
    UNet2DModel,
    UniPCMultistepScheduler,
)
from diffusers.training_utils import EMAModel
from torch import nn

from benchmark import GenerativeModel, ImageSpec, MedAugBenchError

# The few-step samplers: scheduler class and the options that pick the variant.
SOLVERS: dict[str, tuple[type[SchedulerMixin], dict]] = {
    "ddim": (DDIMScheduler, {}),
    "dpm_solver": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "unipc": (UniPCMultistepScheduler, {}),
}
SAMPLERS = (*SOLVERS, "ddpm")
PREDICTION_TYPES = ("epsilon", "v_prediction")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")


class Denoiser(nn.Module):
    """UNet2DModel plus the projection of the conditioning vector to the timestep-embedding width, and the learned
    null embedding that stands in for a dropped conditioning vector (classifier-free guidance)."""

    def __init__(self, unet: UNet2DModel, cond_dim: int, time_embed_dim: int) -> None:
        super().__init__()
        self.unet = unet
        self.cond_proj = nn.Linear(cond_dim, time_embed_dim) if cond_dim > 0 else None
        self.null_cond = nn.Parameter(torch.zeros(time_embed_dim)) if cond_dim > 0 else None

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The UNet's output; rows where the boolean `keep` is False get the null embedding instead of `cond`'s."""
        labels = None if self.cond_proj is None else self.cond_proj(cond.to(x.dtype))
        if labels is not None and keep is not None:
            labels = torch.where(keep[:, None], labels, self.null_cond.to(labels.dtype))
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


def _check_sampling(
    prediction_type: str, sampler: str, sample_steps: int, num_train_timesteps: int, timestep_spacing: str
) -> None:
    """A known prediction target, sampler and spacing, and no more sampling steps than training timesteps."""
    if prediction_type not in PREDICTION_TYPES:
        raise MedAugBenchError(
            f"ddpm prediction_type must be one of {', '.join(PREDICTION_TYPES)}; got {prediction_type!r}"
        )
    if sampler not in SAMPLERS:
        raise MedAugBenchError(f"ddpm sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    if timestep_spacing not in TIMESTEP_SPACINGS:
        raise MedAugBenchError(
            f"ddpm timestep_spacing must be one of {', '.join(TIMESTEP_SPACINGS)}; got {timestep_spacing!r}"
        )
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


def _check_weight(weight: float) -> float:
    """A guidance weight is a finite number >= 0 (0: no guidance)."""
    if not (math.isfinite(weight) and weight >= 0):
        raise MedAugBenchError(f"ddpm guidance weights must be finite and >= 0 (0: unguided); got {weight}")
    return float(weight)


def _check_guidance(cond_drop: float, guidance: float, candidates: tuple[float, ...]) -> None:
    """A label-dropout probability in [0, 1) and valid guidance weights."""
    if not 0.0 <= cond_drop < 1.0:
        raise MedAugBenchError(f"ddpm cond_drop must be in [0, 1) (e.g. 0.15; 0: no guidance); got {cond_drop}")
    for weight in (guidance, *candidates):
        _check_weight(weight)


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
    num_train_timesteps=1000, prediction_type="v_prediction", sampler="ddim", sample_steps=50,
    timestep_spacing="trailing", cond_drop=0.15, guidance=0.0, guidance_candidates=(0.0, 0.5, 1.0, 2.0), ...)`.

    Other params: norm_num_groups=8 (GroupNorm groups; must divide every block width), weight_decay=0.0,
    grad_clip=1.0 (None/0 disables), beta_schedule="linear", sample_batch=256. `guidance` is the weight used until
    `set_guidance` changes it; the candidates are Ho & Salimans' w (their best FID was at w 0.1-0.3, their best
    Inception score at w >= 1), a small ladder for a chooser that scores a few hundred holdout images.
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
        timestep_spacing: str = "trailing",
        sample_batch: int = 256,
        cond_drop: float = 0.15,
        guidance: float = 0.0,
        guidance_candidates: tuple[float, ...] | list[float] = (0.0, 0.5, 1.0, 2.0),
    ) -> None:
        super().__init__(spec)
        channels = tuple(int(c) for c in block_out_channels)
        candidates = tuple(float(w) for w in guidance_candidates)
        _check_unet(spec, channels, norm_num_groups)
        _check_sampling(prediction_type, sampler, sample_steps, num_train_timesteps, timestep_spacing)
        _check_training(lr, ema_decay, sample_batch)
        _check_guidance(cond_drop, guidance, candidates)
        self.lr, self.weight_decay, self.grad_clip = lr, weight_decay, grad_clip
        self.sampler, self.sample_steps, self.timestep_spacing = sampler, sample_steps, timestep_spacing
        self.sample_batch, self.cond_drop, self._candidates = sample_batch, cond_drop, candidates
        unet = _unet(spec, channels, layers_per_block, attention, norm_num_groups)
        self.net = Denoiser(unet, spec.cond_dim, time_embed_dim=channels[0] * 4)
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self._averager = EMAModel([], decay=ema_decay, foreach=True)
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("guidance", torch.tensor(float(guidance)))
        self.noise_scheduler = DDPMScheduler(
            num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, prediction_type=prediction_type
        )

    def guidance_candidates(self) -> tuple[float, ...]:
        """The guidance weights to choose between; none without a null model (unconditional, or `cond_drop=0`)."""
        return self._candidates if self.conditional and self.cond_drop > 0 else ()

    def set_guidance(self, weight: float) -> None:
        """Sample with classifier-free guidance weight `weight` (kept in the `guidance` buffer)."""
        if not self.guidance_candidates():
            super().set_guidance(weight)
        self.guidance.fill_(_check_weight(weight))

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """AdamW over the denoiser (the EMA copy is not trained)."""
        return {"unet": torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)}

    @torch.no_grad()
    def update_ema(self) -> None:
        """One `EMAModel` step of the registered EMA copy towards the trained weights (see the module docstring)."""
        self._averager.shadow_params = list(self.ema.parameters())
        self._averager.optimization_step = int(self.ema_updates.item())
        self._averager.step(self.net.parameters())
        self.ema_updates += 1

    def _keep_mask(self, n: int, device: torch.device, generator: torch.Generator) -> torch.Tensor | None:
        """Which of `n` conditioning rows stay (the rest are dropped with probability `cond_drop`); None: all stay."""
        if not self.conditional or self.cond_drop == 0:
            return None
        return torch.rand(n, generator=generator, device=device) >= self.cond_drop

    def training_step(
        self,
        images: torch.Tensor,
        cond: torch.Tensor | None,
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
    ) -> dict[str, torch.Tensor]:
        """One clipped update on the MSE to the noise (or velocity) target, labels dropped at rate `cond_drop`,
        then an EMA update."""
        n = images.shape[0]
        device = images.device
        noise = torch.randn(images.shape, generator=generator, device=device, dtype=images.dtype)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (n,), generator=generator, device=device)
        keep = self._keep_mask(n, device, generator)
        noisy = self.noise_scheduler.add_noise(images, noise, t)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(images, noise, t)
        else:
            target = noise
        loss = F.mse_loss(self.net(noisy, t, cond, keep).float(), target.float())
        self.optimize(optimizers["unet"], loss, clip_grad_norm=self.grad_clip)
        self.update_ema()
        return {"loss": loss.detach()}

    def _sampling_scheduler(self) -> SchedulerMixin:
        """The sampler set up for `sample_steps` steps (the full T for ancestral DDPM), from the training config."""
        config = self.noise_scheduler.config
        if self.sampler == "ddpm":
            scheduler = DDPMScheduler.from_config(config)
            scheduler.set_timesteps(config.num_train_timesteps)
            return scheduler
        cls, options = SOLVERS[self.sampler]
        scheduler = cls.from_config(config, timestep_spacing=self.timestep_spacing, **options)
        scheduler.set_timesteps(self.sample_steps)
        return scheduler

    def _predict(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """The EMA denoiser's output, guided with the `guidance` weight (one batched conditional + null pass)."""
        weight = float(self.guidance.item())
        if cond is None or weight == 0.0:
            return self.ema(x, t, cond)
        m = x.shape[0]
        keep = torch.arange(2 * m, device=x.device) < m
        out_cond, out_null = self.ema(torch.cat([x, x]), t, torch.cat([cond, cond]), keep).chunk(2)
        return out_cond + weight * (out_cond - out_null)

    def _sample_chunk(self, cond: torch.Tensor | None, m: int, generator: torch.Generator) -> torch.Tensor:
        """`m` images from fresh start noise, run through a fresh sampling scheduler."""
        param = next(self.ema.parameters())
        c, s = self.spec.channels, self.spec.image_size
        scheduler = self._sampling_scheduler()
        step_options = {"generator": generator} if self.sampler == "ddpm" else {}
        x = torch.randn((m, c, s, s), generator=generator, device=param.device, dtype=param.dtype)
        for t in scheduler.timesteps:
            out = self._predict(x, t.to(param.device), cond)
            x = scheduler.step(out, t, x, **step_options).prev_sample
        return x.float().clamp(-1.0, 1.0)

    def sample(self, cond: torch.Tensor | None, n: int, generator: torch.Generator) -> torch.Tensor:
        """`n` images from the EMA weights with the sampling scheduler, in chunks of `sample_batch`."""
        device = next(self.ema.parameters()).device
        chunks = []
        for start in range(0, n, self.sample_batch):
            m = min(self.sample_batch, n - start)
            part = None if cond is None else cond[start : start + m].to(device)
            chunks.append(self._sample_chunk(part, m, generator))
        if not chunks:
            c, s = self.spec.channels, self.spec.image_size
            return torch.empty((0, c, s, s), device=device)
        return torch.cat(chunks)
