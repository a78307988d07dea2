"""Conditional VAE generator (Kingma & Welling 2014; conditioning as in Sohn et al. 2015, "CVAE").

Architecture only (the shared loop in `benchmark/generate/loop.py` owns batching, budget and checkpoints):

- Encoder: the image concatenated with the conditioning vector broadcast as constant channels, two stride-2 4x4
  convolutions (size/2, size/4) with a 3x3 convolution after each, flattened, then one linear layer to (mu, logvar).
- Decoder: [z, cond] → linear → (2·base, size/4, size/4) → two stride-2 transposed convolutions (each followed by a
  3x3 convolution) back to the image size → tanh, so samples lie in [-1, 1].
- Loss: the Gaussian decoder's negative log-likelihood of the [-1, 1] image, summed per image and averaged over the
  batch, plus `beta` times the KL divergence to N(0, I) (summed over latent dimensions, averaged over the batch):
  the negative ELBO at `beta=1`, a β-VAE (Higgins et al. 2017) otherwise. `decoder_variance` is the decoder's σ²:
  a fixed number (default 0.5, where the NLL is exactly the summed squared error, the old loss; the constant
  ½·log σ² per pixel is left out), `"learned"` (one log σ² for the whole image) or `"learned_pixel"` (a log σ² per
  channel and pixel), learned ones with their ½·log σ² term and log σ² clamped to [-9, 2] so that constant pixels
  (black borders) cannot drive it to -∞. The learned variance weighs reconstruction against KL by itself (Rybkin
  et al. 2021, "σ-VAE"); a fixed small σ² trades diversity for sharpness. Samples are the decoder's mean.

Image sizes must be multiples of 4 (28 and 64 in the benchmark). No batch norm, so a batch's images never influence
each other and sampling needs no eval mode. Unconditional when `spec.cond_dim == 0` (then `cond` must be None).
"""

from __future__ import annotations

import torch
from torch import nn

from benchmark import GenerativeModel, ImageSpec, MedAugBenchError

LEARNED_VARIANCES = ("learned", "learned_pixel")
LOG_VAR_RANGE = (-9.0, 2.0)


def _check_variance(decoder_variance: float | str) -> None:
    """The decoder variance is a positive number or one of the learned kinds."""
    if isinstance(decoder_variance, str):
        if decoder_variance not in LEARNED_VARIANCES:
            raise MedAugBenchError(
                f"vae decoder_variance must be a positive number or one of {', '.join(LEARNED_VARIANCES)}; "
                f"got {decoder_variance!r}"
            )
    elif not decoder_variance > 0:
        raise MedAugBenchError(f"vae decoder_variance must be > 0 (default 0.5) or 'learned'; got {decoder_variance}")


def _decoder_log_var(spec: ImageSpec, decoder_variance: float | str) -> nn.Parameter | None:
    """The learned log σ² (one value, or one per channel and pixel); None for a fixed variance."""
    if decoder_variance == "learned":
        return nn.Parameter(torch.zeros(()))
    if decoder_variance == "learned_pixel":
        return nn.Parameter(torch.zeros(spec.channels, spec.image_size, spec.image_size))
    return None


class VAE(GenerativeModel):
    """Conditional convolutional VAE;
    `VAE(spec, latent_dim=32, base_channels=32, lr=1e-3, beta=1.0, decoder_variance=0.5)`."""

    def __init__(
        self,
        spec: ImageSpec,
        latent_dim: int = 32,
        base_channels: int = 32,
        lr: float = 1e-3,
        beta: float = 1.0,
        decoder_variance: float | str = 0.5,
    ) -> None:
        super().__init__(spec)
        if spec.image_size % 4 != 0:
            raise MedAugBenchError(f"vae needs an image size divisible by 4; got {spec.image_size}")
        if latent_dim < 1 or base_channels < 1 or lr <= 0 or beta < 0:
            raise MedAugBenchError(
                "vae parameters: latent_dim and base_channels must be positive, lr > 0, beta >= 0; "
                f"got latent_dim={latent_dim}, base_channels={base_channels}, lr={lr}, beta={beta}"
            )
        _check_variance(decoder_variance)
        self.latent_dim = latent_dim
        self.lr = lr
        self.beta = beta
        self.decoder_variance = decoder_variance
        self.log_var = _decoder_log_var(spec, decoder_variance)
        c, k, b = spec.channels, spec.cond_dim, base_channels
        self.bottom = spec.image_size // 4
        act = nn.SiLU
        self.encoder = nn.Sequential(
            nn.Conv2d(c + k, b, 4, stride=2, padding=1), act(),
            nn.Conv2d(b, b, 3, padding=1), act(),
            nn.Conv2d(b, 2 * b, 4, stride=2, padding=1), act(),
            nn.Conv2d(2 * b, 2 * b, 3, padding=1), act(),
            nn.Flatten(),
        )  # fmt: skip
        flat = 2 * b * self.bottom * self.bottom
        self.to_stats = nn.Linear(flat, 2 * latent_dim)
        self.from_latent = nn.Linear(latent_dim + k, flat)
        self.decoder = nn.Sequential(
            act(),
            nn.ConvTranspose2d(2 * b, b, 4, stride=2, padding=1), act(),
            nn.Conv2d(b, b, 3, padding=1), act(),
            nn.ConvTranspose2d(b, b, 4, stride=2, padding=1), act(),
            nn.Conv2d(b, c, 3, padding=1),
            nn.Tanh(),
        )  # fmt: skip
        self._base = b

    def encode(self, images: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z | x, cond), each (B, latent_dim)."""
        x = images
        if cond is not None:
            size = images.shape[-1]
            planes = cond.to(images.dtype)[:, :, None, None].expand(-1, -1, size, size)
            x = torch.cat([images, planes], dim=1)
        mu, logvar = self.to_stats(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Images in [-1, 1] for latents `z` (B, latent_dim) and conditioning rows `cond`."""
        if cond is not None:
            z = torch.cat([z, cond.to(z.dtype)], dim=1)
        h = self.from_latent(z).view(z.shape[0], 2 * self._base, self.bottom, self.bottom)
        return self.decoder(h)

    def reconstruction_nll(self, recon_images: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """The Gaussian decoder's negative log-likelihood per image (without constants), averaged over the batch."""
        squared = (recon_images - images).pow(2)
        if self.log_var is None:
            per_pixel = squared / (2.0 * self.decoder_variance)
        else:
            log_var = self.log_var.clamp(*LOG_VAR_RANGE)
            per_pixel = 0.5 * (squared * torch.exp(-log_var) + log_var)
        return per_pixel.flatten(1).sum(1).mean()

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One Adam over encoder, decoder and the learned decoder variance."""
        return {"vae": torch.optim.Adam(self.parameters(), lr=self.lr)}

    def training_step(
        self,
        images: torch.Tensor,
        cond: torch.Tensor | None,
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
    ) -> dict[str, torch.Tensor]:
        """One update on the (β-weighted) negative ELBO (reparameterised z drawn with `generator`)."""
        mu, logvar = self.encode(images, cond)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        recon_images = self.decode(z, cond)
        recon = self.reconstruction_nll(recon_images, images)
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        loss = recon + self.beta * kl
        self.optimize(optimizers["vae"], loss)
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}

    def sample(self, cond: torch.Tensor | None, n: int, generator: torch.Generator) -> torch.Tensor:
        """Decode z ~ N(0, I) drawn with `generator`."""
        param = self.from_latent.weight
        z = torch.randn((n, self.latent_dim), generator=generator, device=param.device, dtype=param.dtype)
        if cond is not None:
            cond = cond.to(param.device)
        return self.decode(z, cond).float().clamp(-1.0, 1.0)
