"""The benchmark runner: validate a grid, lock its results folder, check the folder's records belong to this grid,
skip the cells already on disk, run the rest through an executor, and record every cell (finished or failed) as it
ends, so a killed run resumes losing only the cell in flight."""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from benchmark.data.images import save_class_grid
from benchmark.evaluate.quality import save_closest_pairs_png
from benchmark.evaluate.robustness import with_robustness
from benchmark.grid.cells import Cell, expand, validate
from benchmark.grid.config import GridConfig
from benchmark.grid.executor import CellOutcome, Executor, record_failure
from benchmark.grid.plan import Plan, split_cells
from benchmark.grid.store import (
    FAILED,
    OK,
    CellRecord,
    cell_files,
    check_results_dir,
    pairs_path,
    remove_stale_temp_files,
    results_lock,
    samples_path,
    write_grid_file,
    write_record,
    writing,
)
from benchmark.provenance import environment, now
from benchmark.train.loop import Trained, train_model


@dataclass(frozen=True)
class RunCell:
    """The job an executor runs per cell: train it and write its record; any exception becomes a failed record.

    Picklable (plain fields), so process pools and distributed executors can ship it to workers.
    """

    results_dir: Path
    data_dir: Path | None = None
    progress: bool = True

    def __call__(self, cell: Cell) -> CellOutcome:
        started, clock = now(), time.perf_counter()
        trained, error = None, None
        try:
            trained = train_model(cell.config, progress=self.progress, data_dir=self.data_dir)
            trained.record = with_robustness(trained, cell.config)
        except Exception as exc:  # a failing plugin is recorded and the grid goes on; KeyboardInterrupt is not caught
            error = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
        timing = {"started": started, "finished": now(), "wall_seconds": time.perf_counter() - clock}
        if trained is None:
            return record_failure(self.results_dir, cell, error, timing)
        record = CellRecord(
            cell.cell_id,
            OK,
            cell.coords,
            cell.config.to_dict(),
            grid=cell.grid,
            result=trained.record,
            timing=timing,
        )
        with cell_files(self.results_dir, cell.cell_id):  # all of the cell's files, or none
            save_images(self.results_dir, cell.cell_id, trained)
            write_record(self.results_dir, record, trained.test_labels, trained.test_scores)
        return CellOutcome(cell.cell_id, cell.label(), OK, timing["wall_seconds"])


def save_images(results_dir: Path, cell_id: str, trained: Trained) -> None:
    """For a strategy that synthesised images: a per-class grid of its preview (every class, whatever the policy
    synthesised) or else of its synthetic images, and its memorisation audit's closest synthetic/training pairs, as
    PNGs beside the record (for reports)."""
    synthetic = trained.synthetic
    if synthetic is None or len(synthetic) == 0:
        return
    shown = trained.preview if trained.preview is not None else synthetic
    save_class_grid(shown, trained.data.task, samples_path(results_dir, cell_id), per_class=8, seed=0)
    quality = trained.record.strategy.quality
    pairs = quality.memorisation.pixel.closest_pairs if quality is not None else None
    if pairs:
        save_closest_pairs_png(synthetic.images, trained.data.train.images, pairs, pairs_path(results_dir, cell_id))


@dataclass
class GridRun:
    """What one `run` did."""

    results_dir: Path
    total: int
    skipped: int = 0
    outcomes: list[CellOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == FAILED]


def run_grid(
    grid: GridConfig,
    results_dir: Path,
    executor: Executor,
    data_dir: Path | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> GridRun:
    """Run every cell of `grid` not yet recorded in `results_dir` (failed ones too with `retry_failed`), holding the
    folder's lock from the moment it reads what is recorded until the last record and the log are written."""
    results_dir = Path(results_dir)
    started = time.perf_counter()
    check_results_dir(results_dir)
    cells = expand(grid, validate(grid, data_dir))
    with results_lock(results_dir, now(), say=tqdm.write):
        planned = split_cells(cells, results_dir, retry_failed)
        remove_stale_temp_files(results_dir)  # ours to delete: no other run writes here while we hold the lock
        write_grid_file(results_dir, grid.to_dict(), environment(), now())
        run = GridRun(results_dir=results_dir, total=len(cells), skipped=len(planned.done))
        run_cells(grid, planned, executor, RunCell(results_dir=results_dir, data_dir=data_dir, progress=progress), run)
        run.seconds = time.perf_counter() - started
        _append_log(results_dir, grid, run, type(executor).__name__)
    return run


def run_cells(grid: GridConfig, planned: Plan, executor: Executor, job: RunCell, run: GridRun) -> None:
    """Run the planned cells through the executor, wave by wave, adding each outcome to `run` as it comes."""
    todo = planned.todo
    with tqdm(total=len(todo), desc=f"grid {grid.name}", unit="cell", disable=not job.progress) as bar:
        for path in planned.damaged:
            bar.write(f"{path} is damaged (unreadable predictions): its cell runs again")
        if planned.done:
            bar.write(
                f"{len(planned.done)} of {run.total} cells already recorded in {run.results_dir}; running the other "
                f"{len(todo)}"
            )
        for wave in generator_waves(todo):
            for outcome in executor.run(wave, job):
                run.outcomes.append(outcome)
                bar.update(1)
                mark = "ok" if outcome.status == OK else f"FAILED ({outcome.error})"
                bar.write(f"[{len(run.outcomes)}/{len(todo)}] {outcome.label}: {mark} in {outcome.seconds:.0f} s")


def generator_waves(cells: list[Cell]) -> list[list[Cell]]:
    """The cells in two waves, so that no two workers train one generator at once: first every cell but the later
    cells of a generator, then those, which find it in the cache. A generator is a base strategy at its coordinates
    and generator seed: its first classifier seed leads; its other classifier seeds and its variants (cgan+geometric
    after cgan) follow. Waves keep the cells' order; an empty one is left out."""
    seen: set[str] = set()
    leaders: list[Cell] = []
    siblings: list[Cell] = []
    for cell in cells:
        coords = {k: v for k, v in cell.coords.items() if k not in ("seed", "strategy")}
        key = json.dumps(coords, sort_keys=True, default=str)
        generative = cell.coords["policy"] is not None  # only a generative strategy's cell has a synthesis policy
        (siblings if generative and key in seen else leaders).append(cell)
        seen.add(key)
    return [wave for wave in (leaders, siblings) if wave]


def _append_log(results_dir: Path, grid: GridConfig, run: GridRun, executor: str) -> None:
    """One line per invocation in runs.jsonl: when, which grid, what ran and how long it took."""
    entry = {
        "finished": now(),
        "grid": grid.name,
        "executor": executor,
        "cells": run.total,
        "skipped": run.skipped,
        "ran": len(run.outcomes),
        "failed": len(run.failed),
        "seconds": round(run.seconds, 1),
    }
    with writing(results_dir, "append to runs.jsonl"), open(results_dir / "runs.jsonl", "a") as log:
        log.write(json.dumps(entry) + "\n")
