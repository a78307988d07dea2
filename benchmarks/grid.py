"""Wall time of a benchmark grid (default: the quick preset) on this machine, split by phase, and the harness
overhead: time that is not model work. Prints JSON.

    python benchmarks/grid.py                       # run the quick preset into a temp folder with a fresh cache
    python benchmarks/grid.py --from results/quick  # analyse a finished run (its runs.jsonl and records) instead

Phases per cell come from the records (`budget.seconds`): load, synthesize (generator training + sampling + the
quality report), train (classifier optimizer steps), eval (validation), test. Model steps are the classifier's
and the generators' optimizer steps. Harness overhead is the grid's wall time minus every measured phase: grid
validation and bookkeeping outside the cells plus the untimed parts inside them (building models, writing
records and images); target < 5 %. With parallel workers the fractions are of the summed cell time.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from benchmark.grid.store import load_records, read_grid_file

PHASES = ("load", "synthesize", "train", "eval", "test")


def run(grid_spec: str, results: Path) -> float:
    """Run the grid with a fresh cache (so generators and extractors are really trained); its wall seconds."""
    os.environ["MEDAUGBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="medaugbench-bench-cache-")
    from benchmark.grid.config import resolve_grid
    from benchmark.grid.executor import LocalExecutor
    from benchmark.grid.runner import run_grid

    started = time.perf_counter()
    run_grid(resolve_grid(grid_spec), results, LocalExecutor(), progress=False)
    return time.perf_counter() - started


def analyse(results: Path, wall: float) -> dict:
    """Phase totals over cells and the overheads; with parallel workers cells overlap, so fractions are of the
    summed cell time rather than of the wall time."""
    records = [r for r in load_records(results) if r.ok]
    phases = {p: sum(r.result.budget.seconds.get(p, 0.0) for r in records) for p in PHASES}
    cards = [r.result.strategy.facts.get("generator", {}) for r in records]
    generator_steps_s = sum(
        h.get("seconds", 0.0) for card in cards if "reused_from" not in card for h in card.get("histories", {}).values()
    )
    cell_seconds = sum(r.timing.get("wall_seconds", 0.0) for r in records)
    measured = sum(phases.values())
    model_steps = phases["train"] + generator_steps_s
    by_strategy: dict[str, list[float]] = {}
    for r in records:
        by_strategy.setdefault(r.cell["strategy"], []).append(r.timing.get("wall_seconds", 0.0))
    sequential = cell_seconds <= wall
    return {
        "results": str(results),
        "cells": len(records),
        "wall_seconds": round(wall, 1),
        "summed_cell_seconds": round(cell_seconds, 1),
        "parallel_cells": not sequential,
        "phase_seconds": {k: round(v, 1) for k, v in phases.items()},
        "generator_training_seconds": round(generator_steps_s, 1),
        "model_step_seconds": round(model_steps, 1),
        "not_model_steps_fraction": round(1 - model_steps / cell_seconds, 3) if cell_seconds else None,
        # inside cells, outside every timed phase: building models, writing records and images
        "cell_overhead_seconds": round(cell_seconds - measured, 1),
        # outside cells (sequential runs only): grid validation, skipping, logging
        "grid_overhead_seconds": round(wall - cell_seconds, 1) if sequential else None,
        "harness_overhead_fraction": round(
            (cell_seconds - measured + (wall - cell_seconds if sequential else 0.0))
            / (wall if sequential else cell_seconds),
            4,
        )
        if cell_seconds
        else None,
        "mean_cell_seconds_by_strategy": {k: round(sum(v) / len(v), 1) for k, v in sorted(by_strategy.items())},
        "machine": machine(results),
    }


def machine(results: Path) -> dict:
    """The machine the run recorded in grid.json (this one's if absent)."""
    env = read_grid_file(results).get("environment")
    if isinstance(env, dict):
        return {k: env.get(k) for k in ("processor", "cpu_count", "torch_threads", "memory_gib", "gpus")}
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpus": [torch.cuda.get_device_name(0)] if torch.cuda.is_available() else [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", default="quick", help="preset name or config file to run")
    parser.add_argument(
        "--from", dest="source", type=Path, help="analyse this finished results folder instead of running"
    )
    args = parser.parse_args()
    if args.source is not None:
        log = [json.loads(line) for line in (args.source / "runs.jsonl").read_text().splitlines() if line.strip()]
        wall = sum(entry["seconds"] for entry in log)
        print(json.dumps(analyse(args.source, wall), indent=2))
        return
    results = Path(tempfile.mkdtemp(prefix="medaugbench-bench-grid-"))
    print(json.dumps(analyse(results, run(args.grid, results)), indent=2))


if __name__ == "__main__":
    main()
