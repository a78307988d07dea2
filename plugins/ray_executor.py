"""Grid executor `ray`: every cell is a Ray task, on a local Ray instance or on a cluster (`-X address=...`).

    pip install "medaugbench[ray]"
    medaugbench run paper --executor ray                        # a local Ray instance using every core here
    medaugbench run paper --executor ray -X address=auto        # join the cluster `ray start` runs on this machine
    medaugbench run paper --executor ray -X address=ray://head:10001   # Ray Client to a remote cluster

Options (`-X key=value`, see `RayExecutor`): `address`, `cpus_per_cell`, `workers_per_gpu`, `max_retries`.

Resources: on a cluster with GPUs each cell takes one GPU, or 1/`workers_per_gpu` of one (Ray sets its
CUDA_VISIBLE_DEVICES, so `device = "auto"` picks it); otherwise each cell takes `cpus_per_cell` CPUs (default 1,
so a 16-core node runs 16 cells at once; `-X cpus_per_cell=2` gives each two). Each task sets torch's intra-op
threads to the CPUs it was given, unless the cell's config pins `threads` (every preset does), which then decides.

Where the results live: the driver's machine (the one running `medaugbench run`) holds the results folder; the
workers need no shared filesystem for it. A task trains its cell into a fresh temporary folder on its worker, reads
back every file the cell wrote there (`records/<cell_id>.json`, `.npz`, `.samples.png`, `.pairs.png`), deletes the
folder and returns the files as bytes; the driver writes them into the results folder atomically (temp file +
os.replace), the cell's JSON last, so a record present on disk is complete, exactly as with the `local` executor.

What every node needs: medaugbench (and any third-party plugin the grid uses) installed, and the dataset files.
`--data-dir` (or `MEDAUGBENCH_DATA_DIR`) must name a folder that is valid on every node (copy the .npz files there
or mount them); the driver's MEDAUGBENCH_* environment variables are passed to every task through Ray's
`runtime_env`, so set them on the driver. A local instance started by the executor also inherits the driver's
environment (PYTHONPATH included), so plugins importable in the driver are importable in its workers.

Failures: an exception while training is recorded as a failed cell by the job itself (and not retried). A worker
that dies mid-cell (killed, out of memory, node lost) is retried by Ray up to `max_retries` times; if it still dies
the driver records the cell as failed (error type "WorkerCrashed"), so every cell ends with exactly one record.
`medaugbench run --retry-failed` runs such cells again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from benchmark import Cell, CellJob, CellOutcome, MedAugBenchError
from benchmark.grid.executor import check_count, read_cell_files, record_lost_cell, write_cell_files

INSTALL = '--executor ray needs Ray: pip install "medaugbench[ray]"'
ENV_PREFIX = "MEDAUGBENCH_"
CRASHED = "WorkerCrashed"
SCRATCH = "medaugbench-ray-"  # + the worker's pid: a cell's temp folder on its worker
# what `ray.get` raises when the process running a task is gone (checked by name: not every Ray version has each)
DIED = ("WorkerCrashedError", "OutOfMemoryError", "NodeDiedError", "LocalRayletDiedError")


def import_ray():
    """The `ray` module, or an error saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise MedAugBenchError(INSTALL) from error
    return ray


class RayExecutor:
    """Runs each cell as a Ray task and yields outcomes as tasks finish; records come back to the driver.

    Options (`medaugbench run --executor ray -X key=value`):
    `address`: join that Ray cluster ("auto", "host:6379", "ray://host:10001"); None: join the Ray instance this
    process already initialised, else start a local one on this machine's cores. Only a connection this executor
    opened is shut down. `cpus_per_cell`: CPUs per cell (default 1). `workers_per_gpu`: cells sharing one GPU on a
    cluster with GPUs (each asks for 1/N of a GPU; default 1). `max_retries`: reruns of a cell whose worker died
    before it is recorded as failed.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        cpus_per_cell: int | None = None,
        workers_per_gpu: int = 1,
        max_retries: int = 1,
    ) -> None:
        if address is not None and not isinstance(address, str):
            raise MedAugBenchError(f"address must be a Ray address such as auto or ray://host:10001, got {address!r}")
        check_count("cpus_per_cell", cpus_per_cell, 1)
        check_count("max_retries", max_retries, 0)
        check_count("workers_per_gpu", workers_per_gpu, 1)
        self.workers_per_gpu = workers_per_gpu
        self.ray = import_ray()
        self.address = address
        self.cpus_per_cell = cpus_per_cell
        self.max_retries = max_retries

    def _connect(self, env: dict[str, str]) -> bool:
        """Join or start Ray (its job passing `env` to every worker); True if this call opened the connection."""
        ray = self.ray
        if ray.is_initialized():
            return False
        runtime_env = {"env_vars": env} if env else None
        if self.address is not None:
            ray.init(address=self.address, runtime_env=runtime_env, logging_level=logging.WARNING)
        else:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            ray.init(
                num_cpus=cores or 1, runtime_env=runtime_env, include_dashboard=False, logging_level=logging.WARNING
            )
        return True

    def task_resources(self, gpus: bool) -> dict[str, float]:
        """The GPU share each cell's task asks Ray for: 1/workers_per_gpu of one GPU on a cluster with GPUs."""
        return {"num_gpus": 1 / self.workers_per_gpu if gpus else 0}

    def run(self, cells: Sequence[Cell], job: CellJob) -> Iterator[CellOutcome]:
        if not cells:
            return
        if not (dataclasses.is_dataclass(job) and hasattr(job, "results_dir")):
            raise MedAugBenchError(
                f"the ray executor runs jobs with a results_dir (benchmark.grid.runner.RunCell), not {job!r}"
            )
        ray = self.ray
        env = {key: value for key, value in os.environ.items() if key.startswith(ENV_PREFIX)}
        opened = self._connect(env)
        pending: dict = {}
        try:
            gpus = ray.cluster_resources().get("GPU", 0) >= 1
            cpus = self.cpus_per_cell or 1
            options = {"num_cpus": cpus, "max_retries": self.max_retries, "retry_exceptions": False}
            options |= self.task_resources(gpus)
            job_env = dict((ray.get_runtime_context().runtime_env or {}).get("env_vars") or {})
            if any(job_env.get(key) != value for key, value in env.items()):
                # joined a Ray instance this process initialised with other variables: pass ours with each task
                # (workers are started per distinct runtime_env, so the job-level one is preferred)
                options["runtime_env"] = {"env_vars": {**job_env, **env}}
            task = ray.remote(run_cell_task).options(**options)
            submitted = time.perf_counter()
            pending = {task.remote(job, cell, cpus): cell for cell in cells}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    cell = pending.pop(ref)
                    try:
                        outcome, files = ray.get(ref)
                    except ray.exceptions.RayError as error:
                        yield self._record_crash(job.results_dir, cell, error, time.perf_counter() - submitted)
                        continue
                    write_cell_files(job.results_dir, cell.cell_id, files)
                    yield outcome
        finally:
            for ref in pending:  # the driver stopped early (Ctrl-C, an error): do not leave cells running
                with contextlib.suppress(Exception):  # best effort: the task may have just finished
                    ray.cancel(ref, force=True)
            if opened:
                ray.shutdown()

    def _record_crash(self, results_dir: Path, cell: Cell, error: Exception, seconds: float) -> CellOutcome:
        """A cell whose task failed in Ray (its worker died on every try): one failed record, like any failed cell."""
        exceptions = self.ray.exceptions
        died = tuple(getattr(exceptions, name) for name in DIED if hasattr(exceptions, name))
        cause = getattr(error, "cause", None) if isinstance(error, exceptions.RayTaskError) else None
        if isinstance(error, died):
            kind = CRASHED
            tries = f"{self.max_retries + 1} attempt(s) (max_retries={self.max_retries})"
            message = (
                f"the Ray worker running this cell died ({type(error).__name__}: killed, out of memory or its "
                f"node was lost) on all {tries}"
            )
        elif cause is not None:  # raised on the worker outside the job's own error handling: not retried
            kind, message = type(cause).__name__, f"{cause} (raised in the Ray task)"
        else:
            kind = type(error).__name__
            lines = str(error).strip().splitlines()
            message = f"the Ray task failed: {lines[-1] if lines else kind}"
        return record_lost_cell(results_dir, cell, {"type": kind, "message": message, "traceback": str(error)}, seconds)


def run_cell_task(job: CellJob, cell: Cell, threads: int) -> tuple[CellOutcome, dict[str, bytes]]:
    """On a Ray worker: run the job into a fresh temp folder and return its outcome and the files it wrote."""
    import torch

    torch.set_num_threads(threads)
    remove_dead_scratch()
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH}{os.getpid()}-"))
    try:
        # per-cell progress bars would interleave in the driver's log; the driver prints one line per cell
        quiet = {"progress": False} if hasattr(job, "progress") else {}
        outcome = dataclasses.replace(job, results_dir=scratch, **quiet)(cell)
        files = read_cell_files(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return outcome, files


def remove_dead_scratch() -> None:
    """Delete the temp folders of workers that were killed mid-cell on this machine (their pid is gone)."""
    for path in Path(tempfile.gettempdir()).glob(f"{SCRATCH}*-*"):
        pid = path.name[len(SCRATCH) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
