"""Device choice and measurement: CUDA when present, else CPU; peak memory and synchronised timing."""

from __future__ import annotations

import contextlib
import platform
import resource
import sys
import time
from collections.abc import Iterator

import torch

from benchmark.errors import MedAugBenchError


def pick_device(name: str = "auto") -> torch.device:
    """`auto` → CUDA if available, else CPU; an explicit device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MedAugBenchError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu or auto")
    return device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> float:
    """Seconds on a monotonic clock after the device has finished its queued work (device-seconds)."""
    synchronize(device)
    return time.perf_counter()


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak device memory allocated by torch on CUDA; the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux, bytes on macOS
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)


def describe(device: torch.device) -> dict:
    """Machine facts stored with each record."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `count` while the block runs, the caller's restored after (None: left
    as it is). CPU reductions sum in an order that depends on it, so a cell's config, not its process, fixes it."""
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
