"""How cells are run: the executor interface, the built-in `local` executor (in-process one cell at a time, or
one worker process per visible GPU), and helpers for executors that run cells on other machines. Executors are
plugins (`register_executors`), so a distributed one plugs in without touching the runner: it receives picklable
cells and a picklable job, and yields each cell's outcome. Its options come from the command line as
`medaugbench run --executor NAME -X key=value`, i.e. `registry.create("executor", NAME, key=value)`.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from benchmark.data.files import atomic_output
from benchmark.errors import MedAugBenchError
from benchmark.grid.cells import Cell
from benchmark.grid.store import FAILED, CellRecord, cell_files, records_dir, write_record
from benchmark.provenance import now
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
    """`workers=None` (`-X workers=N` sets it): `workers_per_gpu` workers per visible GPU (default 1; a 28-px model
    leaves a large GPU mostly idle, so several cells may share one), each cell pinned to its worker's GPU, workers
    dealt round-robin over the GPUs; without a GPU one in-process worker. `workers=N > 1` on CPU splits the cores
    between N processes. The CPU cores are split between all workers; a cell whose config pins `threads` (every
    preset does) trains at that count instead."""

    name = "local"

    def __init__(self, workers: int | None = None, workers_per_gpu: int = 1) -> None:
        check_count("workers", workers, 1)
        check_count("workers_per_gpu", workers_per_gpu, 1)
        gpus = visible_gpus()
        self.workers = workers if workers is not None else max(1, gpus * workers_per_gpu)
        self.worker_devices: list[int | None] = [index % gpus if gpus else None for index in range(self.workers)]
        """The GPU each worker process owns (None: CPU), in the order workers start."""

    def run(self, cells: Sequence[Cell], job: CellJob) -> Iterator[CellOutcome]:
        if self.workers == 1 or len(cells) <= 1:
            for cell in cells:
                yield job(cell)
            return
        context = multiprocessing.get_context("spawn")
        devices = context.Queue()
        for device in self.worker_devices:
            devices.put(device)
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        with ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_init_worker, initargs=(devices, threads, os.getpid())
        ) as pool:
            for future in as_completed([pool.submit(job, cell) for cell in cells]):
                yield future.result()


def _init_worker(devices: multiprocessing.Queue[int | None], threads: int, driver: int) -> None:
    """Each worker process owns one GPU (its default CUDA device, which `device = "auto"` picks) and its CPU share,
    and ends with its driver (`exit_with_parent`)."""
    exit_with_parent(driver)
    torch.set_num_threads(threads)
    gpu = devices.get()
    if gpu is not None:
        torch.cuda.set_device(gpu)


def exit_with_parent(parent: int, every: float = 2.0) -> threading.Thread:
    """End this process soon after `parent` is gone. A worker whose driver was killed would otherwise finish its
    cell and write the record after a new run of the same folder had planned that cell again, so it ran twice."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def check_count(name: str, value: object, minimum: int) -> None:
    """Refuse an executor option that must be a whole number of at least `minimum` when set (`-X workers=two` stays
    text, and True is no count), with one message naming it."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < minimum):
        raise MedAugBenchError(f"{name} must be an integer of at least {minimum}, got {value!r}")


# For executors that run cells elsewhere: the worker runs the job into a scratch results folder and sends back the
# cell's files (`read_cell_files`); the driver writes them into the real one (`write_cell_files`), and records a
# cell whose worker was lost as failed (`record_lost_cell`), so every cell ends with exactly one record.


def read_cell_files(results_dir: Path) -> dict[str, bytes]:
    """Every finished file a job wrote into `results_dir/records/` (temp files of an interrupted write left out)."""
    folder = records_dir(results_dir)
    return {
        path.name: path.read_bytes()
        for path in sorted(folder.iterdir())
        if path.is_file() and not path.name.endswith(".tmp")
    }


def write_cell_files(results_dir: Path, cell_id: str, files: dict[str, bytes]) -> None:
    """Write a cell's files into `results_dir/records/` atomically, its `<cell_id>.json` last (it marks completion)."""
    folder = records_dir(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    record = f"{cell_id}.json"
    for name in files:
        if Path(name).name != name or not name.startswith(cell_id):
            raise MedAugBenchError(f"a worker returned the file {name!r} for cell {cell_id}; expected {cell_id}.*")
    with cell_files(results_dir, cell_id):  # all of them or none
        for name in sorted(files, key=lambda n: n == record):
            with atomic_output(folder / name, "wb") as handle:
                handle.write(files[name])


def record_failure(results_dir: Path, cell: Cell, error: dict, timing: dict) -> CellOutcome:
    """Write a failed cell's record (`error`: type, message, traceback) and the outcome the driver reports."""
    write_record(
        results_dir,
        CellRecord(
            cell.cell_id, FAILED, cell.coords, cell.config.to_dict(), grid=cell.grid, error=error, timing=timing
        ),
    )
    return CellOutcome(
        cell.cell_id, cell.label(), FAILED, timing["wall_seconds"], f"{error['type']}: {error['message']}"
    )


def record_lost_cell(results_dir: Path, cell: Cell, error: dict, seconds: float) -> CellOutcome:
    """Write the failed record of a cell whose worker never reported back (`error`: type, message, traceback;
    `seconds` since it was submitted) and return its outcome, as the job does for a cell that raised."""
    return record_failure(results_dir, cell, error, {"finished": now(), "wall_seconds": seconds})
