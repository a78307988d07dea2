"""The results folder of a benchmark grid: one JSON record per cell (keyed by the hash of its resolved config) and
the cell's test predictions beside it, both written atomically; readers that skip damaged or half-written files.

Layout of RESULTS_DIR:
    grid.json                      the resolved grid config(s) run into this folder, with the environment
    records/<cell_id>.json         one record per cell (status "ok" or "failed"); its presence marks the cell done
    records/<cell_id>.npz          test labels and scores of an "ok" cell (no pickles), for paired tests
    records/<cell_id>.samples.png  synthetic images per class (strategies that synthesise)
    records/<cell_id>.pairs.png    the memorisation audit's closest synthetic/training pairs
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.data.files import atomic_output, write_json_atomic
from benchmark.errors import MedAugBenchError
from benchmark.train.record import RunRecord

SCHEMA_PREFIX = "medaugbench.cell/"
SCHEMA = f"{SCHEMA_PREFIX}1"
RECORDS = "records"
GRID_FILE = "grid.json"
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
    """The results folder, refused with one message when the path exists but is not a folder."""
    path = Path(results_dir)
    if path.exists() and not path.is_dir():
        raise MedAugBenchError(f"the results path {path} is a file, not a folder; pass -o a folder (new or existing)")
    return path


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
    """Write the predictions (if any), then the record: the JSON appears last, so a present record is complete."""
    if labels is not None and scores is not None:
        with atomic_output(predictions_path(results_dir, record.cell_id), "wb") as handle:
            np.savez_compressed(handle, labels=np.asarray(labels), scores=np.asarray(scores, dtype=np.float32))
    path = record_path(results_dir, record.cell_id)
    write_json_atomic(path, record.to_dict())
    return path


def write_grid_file(results_dir: Path, grid: dict, environment: dict, written: str) -> Path:
    """grid.json: the resolved grid config and the environment it ran in."""
    path = Path(results_dir) / GRID_FILE
    write_json_atomic(path, {"grid": grid, "environment": environment, "written": written})
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
        return CellRecord(**{k: v for k, v in data.items() if k in names})
    except MedAugBenchError as error:
        raise MedAugBenchError(f"record {path}: {error}") from None


def load_records(results_dir: Path) -> list[CellRecord]:
    """Every readable cell record in the folder, sorted by cell coordinates for stable tables."""
    folder = records_dir(results_dir)
    records = (
        [r for r in (read_record(p) for p in sorted(folder.glob("*.json"))) if r is not None] if folder.is_dir() else []
    )
    return sorted(records, key=lambda r: json.dumps(r.cell, sort_keys=True, default=str))


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
    except (OSError, ValueError, KeyError):
        return None


def remove_stale_temp_files(results_dir: Path) -> int:
    """Delete temp files a killed run left behind (a write in flight); returns how many."""
    folder = records_dir(results_dir)
    stale = list(folder.glob("*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)
