"""Example medaugbench generator: a class-conditional Gaussian. Each pixel is N(base + cond · offsets, σ²), so a
one-hot label picks its class's mean image (multi-hot rows add their labels' offsets); base, offsets and the
per-pixel σ are fitted by maximum likelihood."""

import torch
from torch import nn

from benchmark import GenerativeModel, ImageSpec, hookimpl


class ClassGaussian(GenerativeModel):
    def __init__(self, spec: ImageSpec, lr: float = 0.05) -> None:
        super().__init__(spec)
        self.lr, pixels = lr, spec.channels * spec.image_size**2
        self.base = nn.Parameter(torch.zeros(pixels))
        self.offsets = nn.Parameter(torch.zeros(spec.cond_dim, pixels))
        self.log_std = nn.Parameter(torch.zeros(pixels))

    def mean(self, cond: torch.Tensor | None) -> torch.Tensor:
        return self.base if cond is None else self.base + cond @ self.offsets

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": torch.optim.Adam(self.parameters(), lr=self.lr)}

    def training_step(self, images, cond, optimizers, generator) -> dict[str, torch.Tensor]:
        z = (images.flatten(1) - self.mean(cond)) / self.log_std.exp()
        nll = (0.5 * z**2 + self.log_std).mean()  # Gaussian negative log-likelihood per pixel, up to a constant
        self.optimize(optimizers["adam"], nll)
        return {"nll": nll.detach()}

    def sample(self, cond, n, generator) -> torch.Tensor:
        noise = torch.randn(n, self.base.numel(), generator=generator, device=self.base.device)
        images = self.mean(cond) + self.log_std.exp() * noise
        return images.clamp(-1, 1).view(n, self.spec.channels, self.spec.image_size, self.spec.image_size)


@hookimpl
def register_generators(register) -> None:
    register("class_gaussian", ClassGaussian, "a Gaussian per class: mean image per label, per-pixel std (example)")
