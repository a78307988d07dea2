"""Example medaugbench plugin: adds zero-mean Gaussian noise to every training batch."""

from dataclasses import dataclass

import torch

from benchmark import Strategy, hookimpl


@dataclass
class GaussianNoise(Strategy):
    """Additive Gaussian noise with standard deviation `sigma` (images are in [0, 1])."""

    name = "gaussian_noise"
    sigma: float = 0.05

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
        return (images + self.sigma * noise).clamp(0.0, 1.0), targets


@hookimpl
def register_strategies(register):
    register("gaussian_noise", GaussianNoise, "additive Gaussian noise on each batch (example plugin)")
