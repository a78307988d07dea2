"""The results folder of a benchmark grid: one JSON record per cell (keyed by the hash of its resolved config) and
the cell's test predictions beside it, both written atomically; readers that skip damaged or half-written files.

Layout of RESULTS_DIR:
    grid.json                      the resolved grid config run into this folder, with the environment (and the
                                   different grids run into it before, under `earlier`)
    run.lock                       who runs into the folder now (pid, host, start), held with flock; empty when free
    records/<cell_id>.json         one record per cell (status "ok" or "failed"); its presence marks the cell done
    records/<cell_id>.npz          test labels and scores of an "ok" cell (no pickles), for paired tests
    records/<cell_id>.samples.png  synthetic images per class (strategies that synthesise)
    records/<cell_id>.pairs.png    the memorisation audit's closest synthetic/training pairs
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import socket
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from benchmark.data.files import atomic_output, write_json_atomic
from benchmark.errors import MedAugBenchError
from benchmark.train.record import RunRecord

SCHEMA_PREFIX = "medaugbench.cell/"
SCHEMA = f"{SCHEMA_PREFIX}1"
RECORDS = "records"
GRID_FILE = "grid.json"
LOCK_FILE = "run.lock"
OK, FAILED = "ok", "failed"


@dataclass
class CellRecord:
    """What one grid cell produced.

    `cell` holds the grid coordinates shown in leaderboards: dataset, strategy (the leaderboard label: a plugin
    name or a variant name such as `cgan_no_conditioning`), base_strategy (the plugin), backbone, seed (the
    classifier's), generator_seed (absent from older records: the same as seed), train_fraction and policy (None for
    strategies that synthesise nothing). `result` is the cell's `RunRecord` (metrics, budget, curves, strategy report
    with generator histories and quality; its JSON form is read with `RunRecord.from_dict`) for an "ok" cell; `error`
    holds type, message and traceback for a "failed" one.
    """

    cell_id: str
    status: str
    cell: dict
    config: dict
    grid: str = ""
    result: RunRecord | None = None
    error: dict | None = None
    timing: dict = field(default_factory=dict)
    schema: str = SCHEMA

    def __post_init__(self) -> None:
        if isinstance(self.result, dict):
            self.result = RunRecord.from_dict(self.result)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_dict(self) -> dict:
        """The JSON form, the run record in its own (versioned) JSON form."""
        result = None if self.result is None else self.result.to_dict()
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)} | {"result": result}


def check_results_dir(results_dir: Path) -> Path:
    """The results folder, refused with one message when the path or its `records` exists but is not a folder."""
    path = Path(results_dir)
    if path.exists() and not path.is_dir():
        raise MedAugBenchError(f"the results path {path} is a file, not a folder; pass -o a folder (new or existing)")
    records = records_dir(path)
    if records.exists() and not records.is_dir():
        raise MedAugBenchError(
            f"{records} is a file, not the folder of cell records; move it away (or pass -o another folder)"
        )
    return path


WRITE_FIXES = {
    errno.ENOSPC: "free some space and rerun the same command (recorded cells are kept; the unrecorded cell reruns)",
    errno.EDQUOT: "free some space and rerun the same command (recorded cells are kept; the unrecorded cell reruns)",
    errno.EACCES: "make the folder writable, or pass -o a folder you can write to",
    errno.EPERM: "make the folder writable, or pass -o a folder you can write to",
    errno.EROFS: "it is on a read-only file system: pass -o a folder you can write to",
    errno.ENOTDIR: "part of the path is a file, not a folder: move it away, or pass -o another folder",
}


@contextlib.contextmanager
def writing(results_dir: Path, what: str) -> Iterator[None]:
    """Turn an OSError of the block (a full disk, a read-only folder) into one message naming `what` was being
    written, the folder, the cause and the fix."""
    try:
        yield
    except OSError as error:
        fix = WRITE_FIXES.get(error.errno, "check the folder, then rerun the same command")
        raise MedAugBenchError(f"cannot {what} in {results_dir} ({error.strerror or error}): {fix}") from None


@contextlib.contextmanager
def cell_files(results_dir: Path, cell_id: str) -> Iterator[None]:
    """Write a cell's files in the block, all or none: if it fails, the cell's predictions and images written so far
    are removed (its JSON record, written last, is what marks it done), and an OSError becomes one message."""
    try:
        with writing(results_dir, f"write the files of cell {cell_id}"):
            yield
    except BaseException:
        for path in (predictions_path, samples_path, pairs_path):
            with contextlib.suppress(OSError):
                path(results_dir, cell_id).unlink(missing_ok=True)
        raise


def records_dir(results_dir: Path) -> Path:
    return Path(results_dir) / RECORDS


def record_path(results_dir: Path, cell_id: str) -> Path:
    return records_dir(results_dir) / f"{cell_id}.json"


def predictions_path(results_dir: Path, cell_id: str) -> Path:
    return records_dir(results_dir) / f"{cell_id}.npz"


def samples_path(results_dir: Path, cell_id: str) -> Path:
    return records_dir(results_dir) / f"{cell_id}.samples.png"


def pairs_path(results_dir: Path, cell_id: str) -> Path:
    return records_dir(results_dir) / f"{cell_id}.pairs.png"


def write_record(
    results_dir: Path, record: CellRecord, labels: np.ndarray | None = None, scores: np.ndarray | None = None
) -> Path:
    """Write the predictions (if any), then the record: the JSON appears last, so a present record is complete (a
    failed write leaves neither, see `cell_files`)."""
    path = record_path(results_dir, record.cell_id)
    with cell_files(results_dir, record.cell_id):
        if labels is not None and scores is not None:
            with atomic_output(predictions_path(results_dir, record.cell_id), "wb") as handle:
                np.savez_compressed(handle, labels=np.asarray(labels), scores=np.asarray(scores, dtype=np.float32))
        write_json_atomic(path, record.to_dict())
    return path


def write_grid_file(results_dir: Path, grid: dict, environment: dict, written: str) -> Path:
    """grid.json: the resolved grid config and the environment it ran in; a different grid run into the folder
    before (one it grew from: `benchmark.grid.plan.check_same_grid` refuses the others) is kept under `earlier`
    with the time it was written, so the file says every grid the folder's records came from."""
    path = Path(results_dir) / GRID_FILE
    previous = read_grid_file(results_dir)
    earlier = list(previous.get("earlier", []))
    if previous.get("grid") not in (None, json.loads(json.dumps(grid, default=str))):  # as read back
        earlier.append({"grid": previous["grid"], "written": previous.get("written")})
    payload = {"grid": grid, "environment": environment, "written": written} | ({"earlier": earlier} if earlier else {})
    with writing(results_dir, f"write {GRID_FILE}"):
        write_json_atomic(path, payload)
    return path


def read_grid_file(results_dir: Path) -> dict:
    """grid.json as a dict ({"grid", "environment", "written"}), or {} when it is missing or damaged."""
    try:
        data = json.loads((Path(results_dir) / GRID_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_record(path: Path) -> CellRecord | None:
    """The record in `path`, or None if it is unreadable or not a cell record (it is then simply re-run). A cell
    record of a layout this code cannot read is one message naming the file and what to do."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    schema = data.get("schema") if isinstance(data, dict) else None
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        return None
    try:
        if schema != SCHEMA:
            raise MedAugBenchError(
                f"it has schema {schema!r}; this medaugbench reads {SCHEMA!r}: upgrade medaugbench, or delete the "
                "record and run the grid again to re-run the cell"
            )
        names = {f.name for f in dataclasses.fields(CellRecord)}
        record = CellRecord(**{k: v for k, v in data.items() if k in names})
        if not (isinstance(record.cell, dict) and isinstance(record.config, dict) and record.status in (OK, FAILED)):
            raise TypeError("its cell, config or status has the wrong type")
        return record
    except MedAugBenchError as error:
        raise MedAugBenchError(f"record {path}: {error}") from None
    except (TypeError, KeyError, ValueError, AttributeError) as error:
        raise MedAugBenchError(
            f"record {path} is not a cell record this medaugbench can read ({type(error).__name__}: {error}); move "
            f"it out of {Path(path).parent} (or delete it) and rerun: its cell then runs again"
        ) from None


def load_records(results_dir: Path) -> list[CellRecord]:
    """Every readable cell record in the folder, sorted by cell coordinates for stable tables."""
    folder = records_dir(results_dir)
    records = (
        [r for r in (read_record(p) for p in sorted(folder.glob("*.json"))) if r is not None] if folder.is_dir() else []
    )
    return sorted(records, key=lambda r: json.dumps(r.cell, sort_keys=True, default=str))


def unreadable_records(results_dir: Path) -> list[Path]:
    """The `records/*.json` files that are no readable cell record (half-written, damaged or foreign JSON), which
    `load_records` leaves out (and `run` re-runs)."""
    folder = records_dir(results_dir)
    return [p for p in sorted(folder.glob("*.json")) if read_record(p) is None] if folder.is_dir() else []


@dataclass
class ComputeTotal:
    """What a results folder's "ok" cells spent together (counted FLOPs and device-seconds), each generator's
    training counted once however many cells used it: `generators` trainings counted, `reused` uses left out."""

    flops: float = 0.0
    seconds: float = 0.0
    generators: int = 0
    reused: int = 0

    def add(self, phase: dict) -> None:
        self.flops += phase.get("flops", 0)
        self.seconds += phase.get("seconds", 0.0)


def compute_total(records: list[CellRecord]) -> ComputeTotal:
    """Sum every "ok" record's compute phases; a generator's training (its phase names the generator's cache
    folder, `generator`) counts once across the records, a training without that name (older records) each time."""
    total, trained = ComputeTotal(), set[str]()
    for record in records:
        phases = record.result.compute.get("phases", {}) if record.ok and record.result is not None else {}
        for name, phase in phases.items():
            if name != "generator_training" or not phase.get("flops"):
                total.add(phase)
            elif phase.get("generator") in trained:
                total.reused += 1
            else:
                total.add(phase)
                total.generators += 1
                trained |= {phase["generator"]} if phase.get("generator") else set()
    return total


def load_predictions(results_dir: Path, cell_id: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Test labels (N,) or (N, K) multi-hot, and scores (N, K), of an "ok" cell; None if absent or damaged."""
    path = predictions_path(results_dir, cell_id)
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["labels"], data["scores"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def damaged_predictions(results_dir: Path, cell_id: str) -> bool:
    """Whether an "ok" cell's predictions file is present but unreadable (truncated, damaged): the cell is lost."""
    return predictions_path(results_dir, cell_id).is_file() and load_predictions(results_dir, cell_id) is None


def remove_stale_temp_files(results_dir: Path) -> int:
    """Delete temp files a killed run left behind (a write in flight); returns how many. Call it only while holding
    the folder's lock (`results_lock`): another live run's temp files are its writes in flight."""
    folder = records_dir(results_dir)
    stale = list(folder.glob("*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


@dataclass(frozen=True)
class LockHolder:
    """Who holds a results folder's lock: the process, its machine and when it started."""

    pid: int
    host: str
    started: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}"


@contextlib.contextmanager
def results_lock(results_dir: Path, started: str, say: Callable[[str], None] = print) -> Iterator[LockHolder]:
    """Hold RESULTS_DIR/run.lock while the block runs, so two `run`s never train into one folder: an exclusive
    flock (the system frees it when its process dies) and, inside, who holds it. A held lock stops this run with
    one message naming its holder; a lock left by a run that is gone is taken over, saying so (`say`)."""
    path = Path(results_dir) / LOCK_FILE
    me = LockHolder(os.getpid(), socket.gethostname(), started)
    with writing(results_dir, f"take the lock {LOCK_FILE}"):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")  # held open (and flocked) while the block runs
    try:
        _lock(handle, path, me, say)
        try:
            yield me
        finally:
            handle.truncate(0)  # free: an empty lock file (deleting it would race with a run opening it)
            handle.flush()
    finally:
        handle.close()


def _lock(handle: IO[str], path: Path, me: LockHolder, say: Callable[[str], None]) -> None:
    """Take the flock on the open lock file and write `me` into it, or raise naming the holder."""
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = read_lock(path)
        who = holder.describe() if holder is not None else "a process that has not yet written its name"
        raise MedAugBenchError(
            f"{path.parent} is in use by another `medaugbench run` ({who}); wait for it to finish, or run into "
            "another folder with -o"
        ) from None
    previous = read_lock(path)
    if previous is not None and previous.host != me.host:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        raise MedAugBenchError(
            f"{path} names a run on another machine ({previous.describe()}), which this one cannot check; if it has "
            f"ended, delete {path} and rerun, else wait for it or use another folder with -o"
        )
    if previous is not None:
        say(f"took over the lock of {path.parent} from a run that is no longer running ({previous.describe()})")
    handle.seek(0)
    handle.truncate(0)
    handle.write(json.dumps(dataclasses.asdict(me)))
    handle.flush()


def read_lock(path: Path) -> LockHolder | None:
    """The holder a lock file names, or None when it is empty (free) or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return LockHolder(int(data["pid"]), str(data["host"]), str(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
