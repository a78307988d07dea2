"""The one interface every generator implements (diffusers style: the model holds architecture and loss only).

The shared machinery (`benchmark/generate/loop.py`) owns batching, the budget, seeding, the conditioning check,
divergence checks, logging and checkpoints; a model only says which optimizers it has (`make_optimizers`), how to
take one training step (`training_step`, stepping each optimizer through `self.optimize`), how many fresh real
batches that step consumes (`real_batches_per_step`), and how to sample (`sample`). A subclass missing one of the
three abstract methods cannot be instantiated.

Conditioning is a float vector per image: one-hot for single-label tasks, multi-hot for multi-label ones
(ChestMNIST's 14 labels). Images are float in [-1, 1], shape (B, C, H, W).

How the harness learns whether a generator conditions: it builds the generator for the task's spec (`cond_dim` =
the number of labels) and reads the instance's `model.conditional`, which is True when the model's own spec has a
conditioning vector (`can_condition` below). A model that cannot condition builds itself for `spec.unconditional()`
(cond_dim 0), so it reports False whatever factory made it (a class, a functools.partial or a lambda alike); the
harness then trains one unconditional model per class (per label for multi-label data), each built with cond_dim 0
and given `cond=None`. A conditional model must also accept cond_dim 0: that is how it is built when a run turns
conditioning off (`-S conditioning=false`).

Guidance (optional; the DDPM's classifier-free guidance): a model with a sampling-time guidance weight lists the
weights worth trying in `guidance_candidates()` (default `()`: nothing to choose) and takes the chosen one through
`set_guidance(weight)` (default: raises `MedAugBenchError`). The synthesis stage picks the weight on the cell's own
training holdout, never on validation or test images. The model keeps the weight in a registered buffer, so its
`state_dict()` (a safetensors checkpoint, the loop's best-checkpoint copy) carries it and a loaded model samples
with it.
"""

from __future__ import annotations

import dataclasses
from abc import ABCMeta, abstractmethod
from typing import Any

import torch
from torch import nn

from benchmark.errors import MedAugBenchError
from benchmark.provenance import plugin_provenance
from benchmark.registry import create, declare_product, entries, get_entry
from benchmark.train.flops import isolated_rng


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """What a generator must produce: channels, square size, the conditioning vector's length (0: none), and
    whether those vectors are multi-hot (a multi-label task: a row may hold no label or several) or one-hot."""

    channels: int
    image_size: int
    cond_dim: int = 0
    multilabel: bool = False

    def unconditional(self) -> ImageSpec:
        """This spec without a conditioning vector: what a model that cannot condition builds itself for."""
        return dataclasses.replace(self, cond_dim=0)


class GenerativeModel(nn.Module, metaclass=ABCMeta):
    """Base class of generator plugins. `factory(spec: ImageSpec, **params)` must return a subclass instance."""

    def __init__(self, spec: ImageSpec) -> None:
        super().__init__()
        self.spec = spec

    @property
    def conditional(self) -> bool:
        """Whether this model conditions on labels: its spec has a conditioning vector (see the module docstring)."""
        return self.spec.cond_dim > 0

    @property
    def real_batches_per_step(self) -> int:
        """Fresh real batches one training step consumes (one generator update with all its discriminator/critic
        updates, each on its own batch: WGAN-GP's n_critic). The shared loop draws that many and passes them stacked
        in `training_step`'s `images` (and `cond`), so `images.chunk(k)` gives them back; 1 for most models."""
        return 1

    @abstractmethod
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimizers by name (e.g. {'g': …, 'd': …}); the shared loop keeps and checkpoints them."""

    @abstractmethod
    def training_step(
        self,
        images: torch.Tensor,
        cond: torch.Tensor | None,
        optimizers: dict[str, torch.optim.Optimizer],
        generator: torch.Generator,
    ) -> dict[str, torch.Tensor]:
        """One generator step (all its optimizer steps, each through `self.optimize`) on `real_batches_per_step`
        stacked fresh batches; returns detached scalar losses by name. `cond` was checked against the spec.

        Every random draw must use `generator` (on the batch's device) so that a seed fixes the weights.
        """

    @abstractmethod
    def sample(self, cond: torch.Tensor | None, n: int, generator: torch.Generator) -> torch.Tensor:
        """`n` images in [-1, 1] for the conditioning rows `cond` (n, cond_dim), or unconditionally when None; the
        shared loop checks `cond` and runs this without gradients."""

    def guidance_candidates(self) -> tuple[float, ...]:
        """Guidance weights the synthesis stage may choose between (on the cell's training holdout); `()`: this model
        has no guidance weight."""
        return ()

    def set_guidance(self, weight: float) -> None:
        """Sample with guidance weight `weight` from now on, kept in the state_dict; only for a model that lists
        `guidance_candidates()`."""
        raise MedAugBenchError(
            f"generator {type(self).__name__} has no guidance weight to set (its guidance_candidates() is empty); "
            "call set_guidance only on a model that lists candidates"
        )

    def optimize(
        self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, clip_grad_norm: float | None = None
    ) -> None:
        """One update of `optimizer` on `loss`: zero its gradients, backpropagate, clip the gradient norm of its
        parameters to `clip_grad_norm` (None or 0: no clipping), step."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad_norm:
            parameters = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(parameters, clip_grad_norm)
        optimizer.step()


declare_product("generator", GenerativeModel)


def can_condition(name: str, spec: ImageSpec, **params: Any) -> bool:
    """Whether the registered generator `name` conditions on labels: it is built for `spec` (which has a
    conditioning vector) with `params`, and asked; every RNG state is left as it was."""
    with isolated_rng(torch.device("cpu")):
        return create("generator", name, spec=spec, **params).conditional


def generator_provenance(name: str, spec: ImageSpec, **params: Any) -> dict:
    """`plugin_provenance` of the registered generator `name`: its factory and the model it builds for `spec` (so a
    lambda factory's model class counts too); every RNG state is left as it was."""
    with isolated_rng(torch.device("cpu")):
        model = create("generator", name, spec=spec, **params)
    return plugin_provenance(get_entry("generator", name).factory, model)


def registered_generators() -> dict[str, str]:
    """Every registered generator's name and description."""
    return {name: entry.description for name, entry in entries("generator").items()}
