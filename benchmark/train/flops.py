"""FLOP counting for compute budgets and records: torch.utils.flop_counter.FlopCounterMode around one real call,
with every RNG state restored afterwards, so counting never changes what a seeded run draws or computes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

COUNTER = (
    "torch.utils.flop_counter.FlopCounterMode: matrix multiplications, convolutions and attention, forward and "
    "backward (a multiply-add is 2 FLOPs), counted once per model and multiplied by the steps or images; "
    "element-wise ops, normalisation, optimizer updates, augmentation without matmuls, data loading and evaluation "
    "are not counted"
)


@contextlib.contextmanager
def isolated_rng(device: torch.device) -> Iterator[None]:
    """Run a block with the global CPU (and this CUDA device's) RNG state restored when it ends."""
    cuda = device.type == "cuda"
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    with torch.random.fork_rng(devices=devices):
        yield


class _TotalsOnly:
    """Stands in for FlopCounterMode's per-module tracker, keeping only the global total: the tracker's backward
    hooks break torch.autograd.grad on leaf inputs (WGAN-GP's gradient penalty)."""

    parents = frozenset({"Global"})

    def __enter__(self) -> _TotalsOnly:
        return self

    def __exit__(self, *args: object) -> None:
        return None


def _cpu_attention(query: tuple, key: tuple, value: tuple, *args: object, out_shape: object = None, **kwargs) -> int:
    """torch's sdpa formula for the CPU flash kernel (shapes (B, H, L, E), as FlopCounterMode passes them)."""
    return sdpa_flop_count(query, key, value)


def _cpu_attention_backward(
    grad_out: tuple, query: tuple, key: tuple, value: tuple, *args: object, out_shape: object = None, **kwargs
) -> int:
    """torch's sdpa backward formula for the CPU flash kernel's backward."""
    return sdpa_backward_flop_count(grad_out, query, key, value)


# What F.scaled_dot_product_attention runs on a CPU, which FlopCounterMode has no formula for (its CUDA kernels have).
MISSING_FORMULAS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward,
}


def count_flops(run: Callable[[], object]) -> int:
    """FLOPs of one call of `run` as FlopCounterMode counts them (its global total), CPU attention included."""
    counter = FlopCounterMode(display=False, custom_mapping=MISSING_FORMULAS)
    counter.mod_tracker = _TotalsOnly()
    with counter:
        run()
    return int(counter.get_total_flops())
