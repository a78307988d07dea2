"""The GPU check, one script: what a lent GPU does with medaugbench, printed as one JSON object.

* train: classifier images/s of medaugbench's loop (`geometric`, batch-wise on the device) against the compute limit
  (the same model stepping on one pre-staged batch) and a MedMNIST-style DataLoader pipeline, with and without
  bf16 AMP and channels-last (both act only on CUDA);
* generators: training steps/s and sampled images/s of cgan, dcgan, vae and ddpm, each at its default recipe;
* ddpm_sampling: DDIM (50 steps, unguided and at guidance weight 1, which runs the denoiser twice), DPM-Solver++
  (20 steps) and the full 1000-step DDPM sampler, images/s;
* grid: wall time of a reduced `standard` grid (PneumoniaMNIST; none, geometric, ddpm; one generator seed with two
  classifier seeds, so the second run reuses the generator) with 1 against N workers per GPU (on CPU: 1 against N
  worker processes), each with a fresh cache; the ddpm cells choose their guidance weight on the training holdout
  and score class fidelity, and the report shows both;
* robustness: one `none` cell scored on its test split's MedMNIST-C corruptions (`robustness = true`), or why it
  was skipped (the medmnistc package or ImageMagick's MagickWand missing).

    python benchmarks/gpu_check.py                      # on the GPU: meant to fit 10 minutes of one H100/H200
    python benchmarks/gpu_check.py --device cpu --tiny  # tiny sizes on CPU, minutes: proves the script runs

Not yet run on a GPU in this form (the grid's ddpm cells, with guidance choice, class fidelity and a quality report,
replaced the first edition's cgan); its full sizes are untimed.

Needs PneumoniaMNIST in $MEDAUGBENCH_DATA_DIR (and BreastMNIST for the tiny robustness cell).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks, also when imported by a test

import generators  # noqa: E402
import train_throughput  # noqa: E402

from benchmark.data.dataset import load_dataset  # noqa: E402
from benchmark.errors import MedAugBenchError  # noqa: E402
from benchmark.evaluate import robustness  # noqa: E402
from benchmark.grid.config import BudgetBlock, GridConfig, load_preset  # noqa: E402
from benchmark.grid.executor import LocalExecutor  # noqa: E402
from benchmark.grid.runner import run_grid  # noqa: E402
from benchmark.grid.store import records_dir  # noqa: E402
from benchmark.train.device import describe, pick_device  # noqa: E402

TINY_DDPM = {"block_out_channels": [16, 32, 32], "attention": False}
TINY_GRID_DDPM = TINY_DDPM | {"sample_steps": 5}  # the grid's ddpm samples its holdout once per guidance weight


@dataclass(frozen=True)
class Sizes:
    """How much each part measures: the full check on a GPU, or `tiny` to prove the script on CPU."""

    backbone: str
    backbone_params: dict
    train_steps: int
    batch_size: int
    generator_steps: int
    samples: int
    full_ddpm_samples: int
    ddpm_params: dict
    grid_classifier_steps: int
    grid_generator_steps: int
    grid_fraction: float
    workers: int
    robustness_dataset: str


FULL = Sizes("resnet18", {"stem": "small"}, 100, 128, 30, 512, 16, {}, 500, 500, 1.0, 4, "pneumoniamnist")
TINY = Sizes("simple_cnn", {}, 3, 16, 2, 8, 1, TINY_DDPM, 4, 4, 0.1, 2, "breastmnist")


def train_throughput_table(sizes: Sizes, device: torch.device) -> dict:
    """Images/s of ours, the compute limit and the DataLoader pipeline, for each AMP × channels-last setting."""
    settings = [(False, False), (True, True)] if device.type != "cuda" else [(a, c) for a in (0, 1) for c in (0, 1)]
    table = {}
    for amp, channels_last in settings:
        precision = train_throughput.Precision(bool(amp), bool(channels_last))
        args = (sizes.backbone, sizes.train_steps, sizes.batch_size)
        limit = train_throughput.compute_limit(*args, device, precision, **sizes.backbone_params)
        reference = train_throughput.reference_pipeline(*args, device, precision, **sizes.backbone_params)
        ours = train_throughput.ours(*args, str(device), precision, **sizes.backbone_params)
        table[f"amp={int(amp)},channels_last={int(channels_last)}"] = {
            "ours_images_per_s": round(ours, 1),
            "compute_limit_images_per_s": round(limit, 1),
            "dataloader_images_per_s": round(reference, 1),
            "ours_over_limit": round(ours / limit, 3),
            "ours_over_dataloader": round(ours / reference, 2),
        }
    return {"backbone": sizes.backbone, "backbone_params": sizes.backbone_params, "settings": table}


def generator_speeds(sizes: Sizes, device: torch.device) -> tuple[dict, dict]:
    """Training steps/s and sampling images/s per generator; then DDIM-50 against full DDPM sampling."""
    data = load_dataset("pneumoniamnist")
    speeds, ddpm = {}, None
    for name in ("cgan", "dcgan", "vae", "ddpm"):
        params = sizes.ddpm_params if name == "ddpm" else {}
        steps_per_s, (model, cond) = generators.time_training(
            name, data, sizes.generator_steps, sizes.batch_size, device, **params
        )
        speeds[name] = {
            "train_steps_per_s": round(steps_per_s, 2),
            "sample_images_per_s": round(generators.time_sampling(model, cond, sizes.samples, device)[0], 1),
        }
        if name == "ddpm":
            ddpm = (model, cond)
    return speeds, ddpm_sampling(*ddpm, sizes, device)


def ddpm_sampling(model, cond: torch.Tensor | None, sizes: Sizes, device: torch.device) -> dict:
    """Images/s of DDIM with 50 steps (unguided and at guidance weight 1), DPM-Solver++ with 20 and the full
    1000-step ancestral sampler, on the same model."""
    rates = {}
    runs = (
        ("ddim_50", "ddim", 50, 0.0, sizes.samples),
        ("ddim_50_guided", "ddim", 50, 1.0, sizes.samples),
        ("dpm_solver_20", "dpm_solver", 20, 0.0, sizes.samples),
        ("ddpm_1000", "ddpm", 1000, 0.0, sizes.full_ddpm_samples),
    )
    for label, sampler, steps, guidance, n in runs:
        model.sampler, model.sample_steps = sampler, steps
        model.set_guidance(guidance)
        rates[label] = round(generators.time_sampling(model, cond, n, device)[0], 3)
    return rates | {"ddim_50_over_ddpm_1000": round(rates["ddim_50"] / rates["ddpm_1000"], 1)}


def reduced_standard(sizes: Sizes) -> GridConfig:
    """`standard` cut to PneumoniaMNIST, none/geometric/ddpm and one generator seed with two classifier seeds, with
    this check's budgets, without robustness scoring (timed on its own in `robustness_cell`); class fidelity stays
    on. Tiny: no quality report, a small DDPM and a briefly trained selection extractor."""
    grid = load_preset("standard")
    budget = BudgetBlock(classifier_steps=sizes.grid_classifier_steps, generator_steps=sizes.grid_generator_steps)
    tiny = {"quality_extractor": None, "monitor_params": {"steps": 20}, "generator_params": TINY_GRID_DDPM}
    params = {"ddpm": tiny} if sizes is TINY else {}
    return dataclasses.replace(
        grid,
        name="gpu-check",
        datasets=("pneumoniamnist",),
        dataset_fractions={"pneumoniamnist": (sizes.grid_fraction,)},
        strategies=("none", "geometric", "ddpm"),
        backbones=(sizes.backbone,),
        generator_seeds=(0,),
        classifier_seeds=2,
        budget=budget,
        train=grid.train | {"robustness": False},
        backbone_params={sizes.backbone: sizes.backbone_params},
        strategy_params=params,
        variants={},
    )


def timed_grid(grid: GridConfig, executor: LocalExecutor) -> tuple[float, list[dict]]:
    """Seconds for `grid` from a fresh cache and results folder, and its cells' run records (as JSON); a failed cell
    stops the check."""
    os.environ["MEDAUGBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="medaugbench-gpu-check-cache-")
    with tempfile.TemporaryDirectory(prefix="medaugbench-gpu-check-") as results:
        started = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # the runner's per-cell lines: stdout is the JSON report
            run = run_grid(grid, Path(results), executor, progress=False)
        seconds = time.perf_counter() - started
        if run.failed:
            raise RuntimeError(f"grid {grid.name} failed: {[o.error for o in run.failed]}")
        files = sorted(records_dir(Path(results)).glob("*.json"))
        records = [json.loads(path.read_text())["result"] for path in files]
    return seconds, records


def executor_for(device: torch.device, workers: int) -> LocalExecutor:
    """`workers` cells at a time: per GPU on CUDA, worker processes on CPU."""
    return LocalExecutor(workers_per_gpu=workers) if device.type == "cuda" else LocalExecutor(workers=workers)


def synthesis_facts(records: list[dict]) -> dict:
    """Per generative run (generator seed/classifier seed): the guidance weight it chose, its overall class fidelity
    and flags, its generator's cache folder and whether it came from the cache."""
    facts = {}
    for record in records:
        strategy = record["strategy"]
        if "generator" not in strategy:
            continue
        config, card = record["config"], strategy["generator"]
        training = record["compute"]["phases"]["generator_training"]
        chosen = {name: choice["chosen"] for name, choice in (card.get("guidance") or {}).items()}
        facts[f"{strategy['name']} {config['generator_seed']}/{config['seed']}"] = {
            "guidance_chosen": chosen,
            "fidelity": strategy["fidelity"]["overall"]["fidelity"],
            "flags": strategy["flags"],
            "generator": training.get("generator"),
            "generator_reused": bool(training.get("reused")),
        }
    return facts


def grid_wall_times(sizes: Sizes, device: torch.device) -> dict:
    """Seconds for the reduced grid with one worker (per GPU) and with `sizes.workers`, each from a fresh cache, and
    what its generative cells chose (`synthesis_facts`, from the one-worker run)."""
    grid = reduced_standard(sizes)
    walls, records = {}, []
    for workers in (1, sizes.workers):
        walls[workers], found = timed_grid(grid, executor_for(device, workers))
        records = records or found
    per = "workers_per_gpu" if device.type == "cuda" else "cpu_workers"
    return {
        "cells": len(records),
        per: sizes.workers,
        "seconds_1": round(walls[1], 1),
        f"seconds_{sizes.workers}": round(walls[sizes.workers], 1),
        "speedup": round(walls[1] / walls[sizes.workers], 2),
        "synthesis": synthesis_facts(records),
    }


def robustness_cell(sizes: Sizes, device: torch.device) -> dict:
    """One `none` cell with `robustness = true`: its wall time, the corrupted sets it was scored on and their mean
    balanced error against the clean one; or, without the medmnistc package, why it was skipped."""
    try:
        robustness.load_registry()
    except MedAugBenchError as error:
        return {"skipped": str(error)}
    grid = GridConfig(
        name="gpu-check-robustness",
        datasets=(sizes.robustness_dataset,),
        backbones=(sizes.backbone,),
        budget=BudgetBlock(classifier_steps=sizes.grid_classifier_steps),
        train=load_preset("standard").train | {"robustness": True},
        backbone_params={sizes.backbone: sizes.backbone_params},
    )
    seconds, (record,) = timed_grid(grid, executor_for(device, 1))
    scores = record["robustness"]["scores"]
    return {
        "dataset": sizes.robustness_dataset,
        "cell_seconds": round(seconds, 1),
        "scoring_seconds": round(record["robustness"]["seconds"], 1),
        "corrupted_sets": len(scores),
        "images_per_set": record["robustness"]["images"],
        "clean_balanced_error": round(1 - record["metrics"]["test"]["balanced_accuracy"], 4),
        "mean_corrupted_balanced_error": round(sum(s["balanced_error"] for s in scores) / len(scores), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1 …")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: proves the script on CPU in a few minutes")
    args = parser.parse_args()
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    sizes = TINY if args.tiny else FULL
    started = time.perf_counter()
    speeds, sampling = generator_speeds(sizes, device)
    report = {
        "benchmark": "gpu_check",
        "tiny": args.tiny,
        "environment": describe(device),
        "train": train_throughput_table(sizes, device),
        "generators": speeds,
        "ddpm_sampling": sampling,
        "grid": grid_wall_times(sizes, device),
        "robustness": robustness_cell(sizes, device),
    }
    print(json.dumps(report | {"seconds": round(time.perf_counter() - started, 1)}, indent=2))


if __name__ == "__main__":
    main()
