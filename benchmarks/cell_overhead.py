"""Where a classifier-only cell's wall time goes: a `none` cell of a preset (default cpu-answer on BreastMNIST, its
classifier budget and thread count) run by the grid's own job (`benchmark.grid.runner.RunCell`), split into data
loading, FLOP counting, synthesis, quality scoring, training steps, evaluations (validation during training), test
metrics, robustness scoring, model set-up and record writing, beside the pure training time of the same steps.

The split reads the seconds the run record keeps (`RunRecord.budget.seconds`: load, synthesize, quality, train,
eval, test, total) and the cell's wall time; the record's `load` holds data loading and FLOP counting, split in the
ratio of the two timed apart after the cells (`load_data`, and `classifier_step_flops` as `prepare` calls it; warm,
the least of three calls each). Record writing is the wall time after the record's total (assembling the record with
its code version, predictions and JSON written). Pure training: `classifier_step` alone, the cell's model, optimizer,
strategy, batch size and thread count, on batches gathered beforehand, no schedule, no evaluation, timed once after
the cells (on a shared machine it moves with the load; `load_average_1min` says how busy it was). Several cells run
in one process, as a grid worker runs them: the first pays one-off costs, the last is the steady state the shares
are taken from.

Usage: python benchmarks/cell_overhead.py [--preset cpu-answer] [--dataset breastmnist] [--cells 2]
Prints one JSON object. Needs the dataset in $MEDAUGBENCH_DATA_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from benchmark.grid.cells import Cell, expand, validate
from benchmark.grid.config import load_preset
from benchmark.grid.runner import RunCell
from benchmark.grid.store import CellRecord, read_record, record_path
from benchmark.registry import create
from benchmark.train import device as dev
from benchmark.train.config import TrainConfig
from benchmark.train.loop import (
    DeviceData,
    build_classifier,
    classifier_step,
    classifier_step_flops,
    load_data,
    targets_for,
)

OVERHEAD_LIMIT = 0.25  # the bound on everything but training steps, as a share of the cell's wall time
REPEATS = 3


def none_cells(preset: str, dataset: str, count: int) -> list[Cell]:
    """The first `count` `none` cells of `dataset` in the preset, as the grid expands them."""
    grid = load_preset(preset)
    cells = [c for c in expand(grid, validate(grid, None)) if c.coords["dataset"] == dataset]
    chosen = [c for c in cells if c.coords["strategy"] == "none"][:count]
    if len(chosen) < count:
        raise SystemExit(f"preset {preset} has {len(chosen)} `none` cells of {dataset}, fewer than --cells {count}")
    return chosen


def run_cell(cell: Cell, results_dir: Path) -> CellRecord:
    """The cell run by the grid's job into `results_dir`, and its record read back."""
    outcome = RunCell(results_dir, progress=False)(cell)
    record = read_record(record_path(results_dir, cell.cell_id))
    if record is None or not record.ok:
        raise SystemExit(f"cell {cell.cell_id} failed: {outcome.error}")
    return record


def least_seconds(call: Callable[[], object], device: torch.device, repeats: int = REPEATS) -> float:
    """The least wall seconds of `repeats` calls: the one least slowed by other processes."""
    seconds = []
    for _ in range(repeats):
        started = dev.clock(device)
        call()
        seconds.append(dev.clock(device) - started)
    return min(seconds)


def load_split(config: TrainConfig) -> dict[str, float]:
    """Data loading (`load_data`) and FLOP counting (`classifier_step_flops` on the first batch, as `prepare` calls
    it), each timed apart: the shares the record's `load` seconds are split in."""
    with dev.torch_threads(config.threads):
        device = dev.pick_device(config.device)
        data = load_data(config, None)
        strategy = create("strategy", config.strategy, **config.strategy_params)
        strategy.prepare_for(data)
        batch = data.train.subset(torch.arange(min(config.batch_size, len(data.train))))
        count = partial(classifier_step_flops, config, data, strategy, batch, device)
        return {
            "data_loading": least_seconds(partial(load_data, config, None), device),
            "flop_counting": least_seconds(count, device),
        }


def pure_training_seconds(config: TrainConfig, steps: int) -> float:
    """Seconds of `steps` calls of `classifier_step` alone, on the cell's model, optimizer and strategy, with batches
    of its size gathered beforehand."""
    with dev.torch_threads(config.threads):
        device = dev.pick_device(config.device)
        data = load_data(config, None)
        strategy = create("strategy", config.strategy, **config.strategy_params)
        strategy.prepare_for(data)
        model, optimizer = build_classifier(config, data, device)
        train = DeviceData(data.train.images.to(device), targets_for(data.train.labels, data.task).to(device))
        generator = torch.Generator(device=device).manual_seed(0)
        size = min(config.batch_size, len(train))
        index = torch.randint(0, len(train), (steps, size), generator=torch.Generator().manual_seed(0))
        batches = [(train.images[i], train.targets[i]) for i in index]
        weights = strategy.class_weights(data.train.labels, data.task)
        started = dev.clock(device)
        for images, targets in batches:
            classifier_step(model, optimizer, strategy, images, targets, generator, data.task, config, device, weights)
        return dev.clock(device) - started


def phases(record: CellRecord, apart: dict[str, float]) -> dict[str, float]:
    """The cell's wall seconds by phase, summing to its wall time; the record's `load` split between data loading and
    FLOP counting in the ratio of their seconds timed apart."""
    seconds = record.result.budget.seconds
    robustness = getattr(record.result, "robustness", None)
    robustness_seconds = robustness.seconds if robustness is not None else 0.0
    load_share = {name: value / sum(apart.values()) for name, value in apart.items()}
    named = {name: seconds["load"] * share for name, share in load_share.items()} | {
        "synthesis": seconds.get("synthesize", 0.0),
        "quality_scoring": seconds.get("quality", 0.0),
        "training_steps": seconds["train"],
        "evaluations": seconds["eval"],
        "test_metrics": seconds["test"],
    }
    inside = sum(seconds.get(key, 0.0) for key in ("load", "synthesize", "quality", "train", "eval", "test"))
    wall = record.timing["wall_seconds"]
    return named | {
        "model_setup_and_other": seconds["total"] - inside,
        "robustness_scoring": robustness_seconds,
        "record_writing": wall - seconds["total"] - robustness_seconds,
    }


def summary(record: CellRecord, apart: dict[str, float], pure: float) -> dict:
    """One cell's split, its overhead share (everything but training steps over wall) and the share over pure
    training, and the largest overhead phase."""
    split = phases(record, apart)
    wall = record.timing["wall_seconds"]
    overhead = {name: value for name, value in split.items() if name != "training_steps"}
    return {
        "cell_id": record.cell_id,
        "seed": record.cell["seed"],
        "wall_seconds": round(wall, 3),
        "phases_seconds": {name: round(value, 3) for name, value in split.items()},
        "evaluations": len(record.result.curves.step),
        "pure_training_seconds": round(pure, 3),
        "loop_seconds_over_pure": round(split["training_steps"] - pure, 3),
        "overhead_share": round(sum(overhead.values()) / wall, 4),
        "overhead_share_over_pure": round((wall - pure) / wall, 4),
        "largest_overhead": max(overhead, key=overhead.get),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-answer")
    parser.add_argument("--dataset", default="breastmnist")
    parser.add_argument("--cells", type=int, default=2, help="none cells run in one process, as a grid worker does")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    cells = none_cells(args.preset, args.dataset, args.cells)
    with tempfile.TemporaryDirectory() as folder:
        records = [run_cell(cell, Path(folder)) for cell in cells]
    config = cells[-1].config
    apart = load_split(config)
    pure = pure_training_seconds(config, records[-1].result.budget.steps)
    runs = [summary(record, apart, pure) for record in records]
    steady = runs[-1]
    report = {
        "preset": args.preset,
        "dataset": args.dataset,
        "strategy": "none",
        "steps": records[-1].result.budget.steps,
        "batch_size": config.batch_size,
        "eval_every": config.eval_every,
        "threads": config.threads,
        "device": records[-1].result.environment.get("device"),
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "load_split_apart_seconds": {name: round(value, 3) for name, value in apart.items()},
        "cells": runs,
        "steady_state": steady["cell_id"],
        "overhead_share": steady["overhead_share"],
        "overhead_within_limit": steady["overhead_share"] <= OVERHEAD_LIMIT,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
