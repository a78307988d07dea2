"""How cells are run: the executor interface, and the built-in `local` executor (in-process one cell at a time, or
one worker process per visible GPU). Executors are plugins (`register_executors`), so a distributed one plugs in
without touching the runner: it receives picklable cells and a picklable job, and yields each cell's outcome.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from benchmark.errors import MedAugBenchError
from benchmark.grid.cells import Cell
from benchmark.registry import declare_product


@dataclass(frozen=True)
class CellOutcome:
    """What the driver learns about a finished cell (the record itself is on disk)."""

    cell_id: str
    label: str
    status: str
    seconds: float
    error: str | None = None


CellJob = Callable[[Cell], CellOutcome]


@runtime_checkable
class Executor(Protocol):
    """Runs `job(cell)` for every cell and yields outcomes as cells finish (in any order)."""

    name: str

    def run(self, cells: Sequence[Cell], job: CellJob) -> Iterator[CellOutcome]: ...


declare_product("executor", Executor)


def visible_gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class LocalExecutor:
    """`workers=None`: one worker per visible GPU (each cell pinned to its worker's GPU), else one in-process worker.
    `workers=N > 1` on CPU splits the cores between N processes."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise MedAugBenchError(f"--workers must be at least 1, got {workers}")
        self.workers = workers if workers is not None else max(1, visible_gpus())

    def run(self, cells: Sequence[Cell], job: CellJob) -> Iterator[CellOutcome]:
        if self.workers == 1 or len(cells) <= 1:
            for cell in cells:
                yield job(cell)
            return
        context = multiprocessing.get_context("spawn")
        devices, gpus = context.Queue(), visible_gpus()
        for index in range(self.workers):
            devices.put(index % gpus if gpus else None)
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        with ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_init_worker, initargs=(devices, threads)
        ) as pool:
            for future in as_completed([pool.submit(job, cell) for cell in cells]):
                yield future.result()


def _init_worker(devices: multiprocessing.Queue[int | None], threads: int) -> None:
    """Each worker process owns one GPU (its default CUDA device, which `device = "auto"` picks) and its CPU share."""
    torch.set_num_threads(threads)
    gpu = devices.get()
    if gpu is not None:
        torch.cuda.set_device(gpu)
