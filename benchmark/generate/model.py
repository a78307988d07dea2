"""The one interface every generator implements (diffusers style: the model holds architecture and loss only).

The shared machinery (`benchmark/generate/loop.py`) owns batching, the budget, seeding, divergence checks,
logging and checkpoints; a model only says how to take one training step, how many fresh real batches that step
consumes (`real_batches_per_step`), and how to sample.

Conditioning is a float vector per image: one-hot for single-label tasks, multi-hot for multi-label ones
(ChestMNIST's 14 labels). A model created with `ImageSpec.cond_dim == 0` is unconditional and gets `cond=None`;
the harness then trains one model per class. Images are float in [-1, 1], shape (B, C, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from benchmark.registry import declare_product


@dataclass(frozen=True)
class ImageSpec:
    """What a generator must produce: channels, square size, and the conditioning vector's length (0: none)."""

    channels: int
    image_size: int
    cond_dim: int = 0


class GenerativeModel(nn.Module):
    """Base class of generator plugins. `factory(spec: ImageSpec, **params)` must return a subclass instance."""

    conditional: ClassVar[bool] = True
    """False for models that can only be trained unconditionally (one model per class)."""

    def __init__(self, spec: ImageSpec) -> None:
        super().__init__()
        self.spec = spec

    @property
    def real_batches_per_step(self) -> int:
        """Fresh real batches one training step consumes (one generator update with all its discriminator/critic
        updates, each on its own batch: WGAN-GP's n_critic). The shared loop draws that many and passes them stacked
        in `training_step`'s `images` (and `cond`), so `images.chunk(k)` gives them back; 1 for most models."""
        return 1

    def check_cond(self, cond: torch.Tensor | None, n: int) -> None:
        """Raise if `cond` does not fit the spec: None for an unconditional model, else shape (n, cond_dim)."""
        if self.spec.cond_dim == 0:
            if cond is not None:
                raise ValueError("this model is unconditional (cond_dim 0) and takes cond=None")
        elif cond is None or tuple(cond.shape) != (n, self.spec.cond_dim):
            got = None if cond is None else tuple(cond.shape)
            raise ValueError(f"cond must have shape ({n}, {self.spec.cond_dim}); got {got}")

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimizers by name (e.g. {'g': …, 'd': …}); the shared loop keeps and checkpoints them."""
        raise NotImplementedError

    def training_step(
        self,
        images: torch.Tensor,
        cond: torch.Tensor | None,
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
    ) -> dict[str, torch.Tensor]:
        """One generator step (all its optimizer steps) on `real_batches_per_step` stacked fresh batches; returns
        detached scalar losses by name.

        Every random draw must use `generator` (on the batch's device) so that a seed fixes the weights.
        """
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, cond: torch.Tensor | None, n: int, generator: torch.Generator) -> torch.Tensor:
        """`n` images in [-1, 1] for the conditioning rows `cond` (n, cond_dim), or unconditionally when None."""
        raise NotImplementedError


declare_product("generator", GenerativeModel)


def is_conditional(factory: object) -> bool:
    """Whether a registered generator factory (a class, or a functools.partial of one) can condition on labels."""
    target = getattr(factory, "func", factory)
    return bool(getattr(target, "conditional", True))
