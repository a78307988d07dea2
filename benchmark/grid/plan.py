"""A grid's plan: validate it, expand it into cells and split them against its results folder (to run, recorded,
damaged), after checking that the folder's records belong to this grid. Imports no torch, so `run --dry-run`
starts fast; `benchmark.grid.runner` runs the plan."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.errors import MedAugBenchError
from benchmark.grid.cells import Cell, expand, validate, without_added_defaults
from benchmark.grid.config import GridConfig
from benchmark.grid.store import (
    FAILED,
    CellRecord,
    check_results_dir,
    damaged_predictions,
    load_records,
    predictions_path,
    records_dir,
)


@dataclass
class Plan:
    """A grid's cells split against its results folder: to run, already recorded, and the recorded cells that run
    again because their predictions file is damaged (`damaged`, those files)."""

    todo: list[Cell]
    done: list[Cell]
    damaged: list[Path] = field(default_factory=list)


def plan(grid: GridConfig, results_dir: Path, data_dir: Path | None, retry_failed: bool, build: bool = True) -> Plan:
    """Validate the grid (all problems at once, before any training; `build=False` checks plugin parameters by name
    only, see `validate`) and split its cells against the folder."""
    check_results_dir(results_dir)
    return split_cells(expand(grid, validate(grid, data_dir, build=build)), results_dir, retry_failed)


def split_cells(cells: list[Cell], results_dir: Path, retry_failed: bool) -> Plan:
    """The cells not yet recorded in `results_dir` (failed ones too with `retry_failed`, and "ok" ones whose
    predictions are damaged), after checking that the folder's records belong to this grid (`check_same_grid`)."""
    records = load_records(results_dir)
    check_same_grid(cells, records, results_dir)
    done = {r.cell_id: r for r in records}
    damaged = {r.cell_id for r in records if r.ok and damaged_predictions(results_dir, r.cell_id)}
    todo = [
        c
        for c in cells
        if c.cell_id not in done or c.cell_id in damaged or (retry_failed and done[c.cell_id].status == FAILED)
    ]
    running = {c.cell_id for c in todo}
    return Plan(
        todo,
        [c for c in cells if c.cell_id not in running],
        [predictions_path(results_dir, cell_id) for cell_id in sorted(damaged & running)],
    )


ROW_KEYS = ("dataset", "strategy", "backbone", "train_fraction", "policy")  # a leaderboard row's coordinates
RUN_FIELDS = ("seed", "generator_seed", "device")  # what may differ between the runs of one row


def check_same_grid(cells: list[Cell], records: list[CellRecord], results_dir: Path) -> None:
    """Refuse a folder holding records of this grid's rows trained under another config (an edited grid): the
    leaderboard would pool both configs as runs of one row. Records of other seeds or of rows the grid does not run
    are no clash (a grid may gain or lose seeds and rows)."""
    ids = {cell.cell_id for cell in cells}
    rows: dict[str, dict] = {}
    for cell in cells:
        rows.setdefault(row_key(cell.coords), config_signature(cell.config.to_dict()))
    clashes = [
        (record, difference)
        for record in records
        if record.cell_id not in ids and row_key(record.cell) in rows
        if (difference := config_difference(config_signature(record.config), rows[row_key(record.cell)]))
    ]
    if clashes:
        record, difference = clashes[0]
        row = " · ".join(str(record.cell.get(key)) for key in ROW_KEYS if record.cell.get(key) is not None)
        raise MedAugBenchError(
            f"{results_dir} holds {len(clashes)} record(s) of this grid's rows under another config (e.g. {row}: "
            f"{difference}; the folder's value first), which the leaderboard would pool with this grid's as runs of "
            f"one row; run the edited grid into a new folder (-o), or move those records out of "
            f"{records_dir(results_dir)}"
        )


def row_key(coords: dict) -> str:
    """A cell's leaderboard row (its coordinates without the seeds), as a comparable string."""
    return json.dumps([coords.get(key) for key in ROW_KEYS], default=str)


def config_signature(config: dict) -> dict:
    """A cell config as JSON without its seeds and device, and without fields added later at their default (as its
    id has them), so a record and a cell of one row compare equal exactly when they trained alike."""
    data = json.loads(json.dumps(config, default=str))
    return without_added_defaults({k: v for k, v in data.items() if k not in RUN_FIELDS})


def config_difference(recorded: dict, wanted: dict) -> str:
    """The first three fields in which two config signatures differ, as 'key recorded → wanted'; '' when equal."""
    old, new = flat(recorded), flat(wanted)
    missing = "(absent)"
    changes = [
        f"{key} {json.dumps(old.get(key, missing))} → {json.dumps(new.get(key, missing))}"
        for key in sorted(set(old) | set(new))
        if old.get(key, missing) != new.get(key, missing)
    ]
    return ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")


def flat(config: dict, prefix: str = "") -> dict:
    """A nested config as {dotted key: value}."""
    items: dict = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            items |= flat(value, f"{prefix}{key}.")
        else:
            items[f"{prefix}{key}"] = value
    return items
