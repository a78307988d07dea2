"""The GPU check, one script: what a lent GPU does with medaugbench, printed as one JSON object.

* train: classifier images/s of medaugbench's loop (`geometric`, batch-wise on the device) against the compute limit
  (the same model stepping on one pre-staged batch) and a MedMNIST-style DataLoader pipeline, with and without
  bf16 AMP and channels-last (both act only on CUDA);
* generators: training steps/s and sampled images/s of cgan, dcgan, vae and ddpm;
* ddpm_sampling: DDIM (50 steps) against the full 1000-step DDPM sampler, images/s;
* grid: wall time of a reduced `standard` grid (PneumoniaMNIST; none, geometric, cgan; 2 seeds) with 1 against N
  workers per GPU (on CPU: 1 against N worker processes), each with a fresh cache.

    python benchmarks/gpu_check.py                      # on the GPU, under 10 minutes on one H100/H200
    python benchmarks/gpu_check.py --device cpu --tiny  # tiny sizes on CPU, a minute: proves the script runs

Needs PneumoniaMNIST in $MEDAUGBENCH_DATA_DIR.
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
from benchmark.grid.config import BudgetBlock, load_preset  # noqa: E402
from benchmark.grid.executor import LocalExecutor  # noqa: E402
from benchmark.grid.runner import run_grid  # noqa: E402
from benchmark.train.device import describe, pick_device  # noqa: E402

TINY_DDPM = {"block_out_channels": [16, 32, 32], "attention": False}


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
    workers: int


FULL = Sizes("resnet18", {"stem": "small"}, 100, 128, 30, 512, 16, {}, 500, 500, 4)
TINY = Sizes("simple_cnn", {}, 3, 16, 2, 8, 1, TINY_DDPM, 4, 4, 2)


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
    """Images/s of DDIM with 50 steps and of the full 1000-step ancestral sampler, on the same model."""
    rates = {}
    runs = (("ddim_50", "ddim", 50, sizes.samples), ("ddpm_1000", "ddpm", 1000, sizes.full_ddpm_samples))
    for label, sampler, steps, n in runs:
        model.sampler, model.sample_steps = sampler, steps
        rates[label] = round(generators.time_sampling(model, cond, n, device)[0], 3)
    return rates | {"ddim_50_over_ddpm_1000": round(rates["ddim_50"] / rates["ddpm_1000"], 1)}


def reduced_standard(sizes: Sizes):  # noqa: ANN201 (a GridConfig)
    """`standard` cut to PneumoniaMNIST, three strategies and two seeds, with this check's budgets."""
    grid = load_preset("standard")
    budget = BudgetBlock(classifier_steps=sizes.grid_classifier_steps, generator_steps=sizes.grid_generator_steps)
    backbones = (sizes.backbone,)
    params = {"cgan": {"quality_extractor": None}} if sizes is TINY else {}
    return dataclasses.replace(
        grid,
        name="gpu-check",
        datasets=("pneumoniamnist",),
        strategies=("none", "geometric", "cgan"),
        backbones=backbones,
        seeds=(0, 1),
        budget=budget,
        backbone_params={sizes.backbone: sizes.backbone_params},
        strategy_params=params,
    )


def grid_wall_times(sizes: Sizes, device: torch.device) -> dict:
    """Seconds for the reduced grid with one worker (per GPU) and with `sizes.workers`, each from a fresh cache."""
    grid = reduced_standard(sizes)
    walls = {}
    for workers in (1, sizes.workers):
        os.environ["MEDAUGBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="medaugbench-gpu-check-cache-")
        executor = LocalExecutor(workers_per_gpu=workers) if device.type == "cuda" else LocalExecutor(workers=workers)
        with tempfile.TemporaryDirectory(prefix="medaugbench-gpu-check-") as results:
            started = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):  # the runner's per-cell lines: stdout is the JSON report
                run = run_grid(grid, Path(results), executor, progress=False)
            walls[workers] = time.perf_counter() - started
        if run.failed:
            raise RuntimeError(f"the reduced grid failed: {[o.error for o in run.failed]}")
    per = "workers_per_gpu" if device.type == "cuda" else "cpu_workers"
    return {
        "cells": len(run.outcomes),
        per: sizes.workers,
        "seconds_1": round(walls[1], 1),
        f"seconds_{sizes.workers}": round(walls[sizes.workers], 1),
        "speedup": round(walls[1] / walls[sizes.workers], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1 …")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: proves the script on CPU in about a minute")
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
    }
    print(json.dumps(report | {"seconds": round(time.perf_counter() - started, 1)}, indent=2))


if __name__ == "__main__":
    main()
