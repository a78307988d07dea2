"""How long a grid will take on this machine, before it starts: one real `none` cell per dataset of the preset (its
budget, schedule, thread count and robustness scoring) timed by the grid's own job, scaled per strategy by a pilot's
records (results/pilot-2 by default).

Per dataset, a classic cell costs the timed `none` cell's wall time plus its classifier training time times (the
strategy's seconds per classifier step in the pilot / a plain step's there - 1, at least 0; a plain step: the median
over the pilot's strategies without augmentation): augmentation that costs more per step costs proportionally more.
A generative cell adds, once per generator (the first classifier seed of each generator seed; its other classifier
seeds and its variants reuse it), the pilot cell's generator seconds (training, checkpoint and guidance choice,
synthesis: its `synthesize` seconds less the seconds its generators spent scoring their FID at the pilot's tracking
points), and in every cell the pilot's quality-scoring seconds. Some pilot cells shared the machine, so generator
seconds may be an overestimate. Pilot per-step seconds count the budget branches the pilot trained beside the
main run (`budget_branches`: each from its fork to its end).

Usage: python benchmarks/answer_hours.py [--preset cpu-answer-2] [--pilot results/pilot-2] [--workers 2]
Prints one JSON object. Needs the preset's datasets in $MEDAUGBENCH_DATA_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

from benchmark.grid.cells import Cell, expand, validate
from benchmark.grid.config import load_preset
from benchmark.grid.runner import RunCell, generator_waves
from benchmark.grid.store import CellRecord, load_records, read_record, record_path

PLAIN = ("none", "oversample", "class_weighted", "vae", "dcgan", "cgan", "ddpm")  # no augmentation of a batch


def per_step_seconds(record: CellRecord) -> float:
    """Classifier training seconds per step of a pilot cell, its budget branches' steps included."""
    result = record.result
    branches = sum(b.steps - b.forked_at for b in result.budget_branches)
    return result.budget.seconds["train"] / (result.budget.steps + branches)


def pilot_costs(pilot: Path) -> dict[tuple[str, str], dict[str, float]]:
    """Per (dataset, strategy) of the pilot's first seed: seconds per classifier step, generator seconds and quality
    seconds."""
    costs = {}
    for record in load_records(pilot):
        cell = record.cell
        if not record.ok or cell.get("generator_seed", cell.get("seed")) != 0:
            continue
        seconds = record.result.budget.seconds
        histories = (record.result.strategy.facts.get("generator") or {}).get("histories") or {}
        monitoring = sum(h.get("monitor_seconds", 0.0) for h in histories.values())  # the pilot's FID tracking
        costs[(cell["dataset"], cell["strategy"])] = {
            "step": per_step_seconds(record),
            "generator": seconds.get("synthesize", 0.0) - monitoring,
            "quality": seconds.get("quality", 0.0),
        }
    return costs


def reference_step(costs: dict, dataset: str) -> float | None:
    """A classifier step without augmentation on `dataset`: the median per-step seconds of the pilot's strategies
    that add none (`none`, the rebalancing controls and the generative rows), robust to a few cells that shared the
    machine."""
    steps = sorted(costs[(dataset, s)]["step"] for s in PLAIN if (dataset, s) in costs)
    return steps[len(steps) // 2] if steps else None


def timed_none(cell: Cell) -> dict[str, float]:
    """Wall and classifier-training seconds of one real `none` cell of the preset, run by the grid's job."""
    with tempfile.TemporaryDirectory() as folder:
        outcome = RunCell(Path(folder), progress=False)(cell)
        record = read_record(record_path(Path(folder), cell.cell_id))
        if record is None or not record.ok:
            raise SystemExit(f"the none cell {cell.cell_id} failed: {outcome.error}")
        return {"wall": record.timing["wall_seconds"], "train": record.result.budget.seconds["train"]}


def estimate(cells: list[Cell], costs: dict, none: dict[str, dict[str, float]]) -> dict:
    """Estimated seconds per cell, per (dataset, strategy) and in total."""
    leaders = {id(c) for c in generator_waves(cells)[0]}
    by_row: dict[str, float] = defaultdict(float)
    missing = set()
    for cell in cells:
        dataset, strategy = cell.coords["dataset"], cell.coords["strategy"]
        pilot, base = costs.get((dataset, strategy)), reference_step(costs, dataset)
        if pilot is None or base is None:
            missing.add(f"{dataset}/{strategy}")
            continue
        extra = 0.0 if strategy in PLAIN else max(0.0, pilot["step"] / base - 1)  # augmentation per step
        seconds = none[dataset]["wall"] + none[dataset]["train"] * extra
        seconds += pilot["quality"]
        if cell.coords["policy"] is not None and id(cell) in leaders:
            seconds += costs.get((dataset, cell.coords["base_strategy"]), pilot)["generator"]
        by_row[f"{dataset}/{strategy}"] += seconds
    total = sum(by_row.values())
    return {
        "seconds_by_row": {k: round(v) for k, v in sorted(by_row.items())},
        "seconds": total,
        "missing": sorted(missing),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-answer-2")
    parser.add_argument("--pilot", type=Path, default=Path("results/pilot-2"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    grid = load_preset(args.preset)
    cells = expand(grid, validate(grid, None))
    none = {}
    for dataset in grid.datasets:
        first = next(c for c in cells if c.coords["dataset"] == dataset and c.coords["strategy"] == "none")
        none[dataset] = timed_none(first)
    result = estimate(cells, pilot_costs(args.pilot), none)
    worker_hours = result["seconds"] / 3600
    print(
        json.dumps(
            {
                "benchmark": "answer_hours",
                "preset": args.preset,
                "pilot": str(args.pilot),
                "cells": len(cells),
                "none_cell_seconds": {d: {k: round(v, 1) for k, v in t.items()} for d, t in none.items()},
                **result,
                "worker_hours": round(worker_hours, 2),
                "wall_hours": round(worker_hours / args.workers, 2),
                "workers": args.workers,
                "cpu_count": os.cpu_count(),
                "load_average_1min": os.getloadavg()[0],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
