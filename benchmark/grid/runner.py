"""The benchmark runner: validate a grid, skip the cells already on disk, run the rest through an executor, and
record every cell (finished or failed) as it ends, so a killed run resumes losing only the cell in flight."""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from benchmark.data.images import save_class_grid
from benchmark.evaluate.quality import save_closest_pairs_png
from benchmark.grid.cells import Cell, expand, validate
from benchmark.grid.config import GridConfig
from benchmark.grid.executor import CellOutcome, Executor, record_failure
from benchmark.grid.store import (
    FAILED,
    OK,
    CellRecord,
    check_results_dir,
    load_records,
    pairs_path,
    remove_stale_temp_files,
    samples_path,
    write_grid_file,
    write_record,
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


def plan(
    grid: GridConfig, results_dir: Path, data_dir: Path | None, retry_failed: bool
) -> tuple[list[Cell], list[Cell]]:
    """Validate the grid (all problems at once, before any training) and split its cells into (to run, already done)."""
    check_results_dir(results_dir)
    cells = expand(grid, validate(grid, data_dir))
    done = {r.cell_id: r for r in load_records(results_dir)}
    todo = [c for c in cells if c.cell_id not in done or (retry_failed and done[c.cell_id].status == FAILED)]
    running = {c.cell_id for c in todo}
    return todo, [c for c in cells if c.cell_id not in running]


def run_grid(
    grid: GridConfig,
    results_dir: Path,
    executor: Executor,
    data_dir: Path | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> GridRun:
    """Run every cell of `grid` not yet recorded in `results_dir` (failed ones too with `retry_failed`)."""
    results_dir = Path(results_dir)
    started = time.perf_counter()
    todo, done = plan(grid, results_dir, data_dir, retry_failed)
    remove_stale_temp_files(results_dir)
    write_grid_file(results_dir, grid.to_dict(), environment(), now())
    run = GridRun(results_dir=results_dir, total=len(todo) + len(done), skipped=len(done))
    job = RunCell(results_dir=results_dir, data_dir=data_dir, progress=progress)
    with tqdm(total=len(todo), desc=f"grid {grid.name}", unit="cell", disable=not progress) as bar:
        if done:
            bar.write(
                f"{len(done)} of {run.total} cells already recorded in {results_dir}; running the other {len(todo)}"
            )
        for wave in generator_waves(todo):
            for outcome in executor.run(wave, job):
                run.outcomes.append(outcome)
                bar.update(1)
                mark = "ok" if outcome.status == OK else f"FAILED ({outcome.error})"
                bar.write(f"[{len(run.outcomes)}/{len(todo)}] {outcome.label}: {mark} in {outcome.seconds:.0f} s")
    run.seconds = time.perf_counter() - started
    _append_log(results_dir, grid, run, type(executor).__name__)
    return run


def generator_waves(cells: list[Cell]) -> list[list[Cell]]:
    """The cells in two waves, so that no two workers train one generator at once: first every cell but the later
    classifier seeds of a generative cell whose first classifier seed (same coordinates and generator seed) also runs,
    then those, which find its generator in the cache. Waves keep the cells' order; an empty one is left out."""
    seen: set[str] = set()
    leaders: list[Cell] = []
    siblings: list[Cell] = []
    for cell in cells:
        key = json.dumps({k: v for k, v in cell.coords.items() if k != "seed"}, sort_keys=True, default=str)
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
    with open(results_dir / "runs.jsonl", "a") as log:
        log.write(json.dumps(entry) + "\n")
