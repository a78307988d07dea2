"""GAN training speed before and after issue 21's small-data recipe: steps/s of `dcgan` and `cgan` with the old
recipe's parameters (`plugins.gan.OLD_RECIPE`) and with the defaults, on real BreastMNIST batches at 28 px, one torch
thread, at the pilot's sizes (z 64, 32 base channels) unless told otherwise.

Old and new are timed in alternating rounds (the median over rounds is reported) so that load from other processes
on a shared CPU falls on both alike.

Usage: python benchmarks/generator_recipes.py [--steps 10] [--rounds 5] [--batch-size 64] [--threads 1]
       [--z-dim 64] [--base-channels 32]
Prints one JSON object. Needs BreastMNIST in $MEDAUGBENCH_DATA_DIR.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass

import torch

from benchmark.data.dataset import load_dataset
from benchmark.generate.loop import to_model_range
from benchmark.generate.model import GenerativeModel, ImageSpec
from benchmark.generate.synthesis import conditioning
from benchmark.registry import create
from benchmark.train.device import clock, describe
from plugins.gan import OLD_RECIPE, parameter_count

RECIPES = {"old": OLD_RECIPE, "new": {}}


@dataclass
class Setup:
    """One generator with one recipe, its optimizers and a fixed real batch to step on."""

    model: GenerativeModel
    optimizers: dict[str, torch.optim.Optimizer]
    images: torch.Tensor
    cond: torch.Tensor | None
    generator: torch.Generator


def build(name: str, recipe: dict, data, batch_size: int, sizes: dict) -> Setup:
    """The registered generator `name` with `recipe` and `sizes`, on the first `batch_size` training images."""
    spec = ImageSpec(data.task.channels, data.image_size, data.task.num_outputs)
    torch.manual_seed(0)
    model = create("generator", name, spec=spec, **sizes, **recipe)
    labels = data.train.labels[:batch_size]
    cond = conditioning(labels, data.task) if model.conditional else None
    images = to_model_range(data.train.images[:batch_size])
    return Setup(model, model.make_optimizers(), images, cond, torch.Generator().manual_seed(0))


def steps_per_second(setup: Setup, steps: int) -> float:
    """Training steps per second over `steps` steps."""
    started = clock(torch.device("cpu"))
    for _ in range(steps):
        setup.model.training_step(setup.images, setup.cond, setup.optimizers, setup.generator)
    return steps / (clock(torch.device("cpu")) - started)


def measure(name: str, data, args: argparse.Namespace) -> dict:
    """Median steps/s of each recipe over alternating rounds, the ratio new/old, and the parameter counts."""
    sizes = {"z_dim": args.z_dim, "base_channels": args.base_channels}
    setups = {recipe: build(name, params, data, args.batch_size, sizes) for recipe, params in RECIPES.items()}
    for setup in setups.values():
        steps_per_second(setup, 2)  # warm-up
    rounds: dict[str, list[float]] = {recipe: [] for recipe in setups}
    for _ in range(args.rounds):
        for recipe, setup in setups.items():
            rounds[recipe].append(steps_per_second(setup, args.steps))
    result = {
        recipe: {
            "train_steps_per_s": round(statistics.median(rates), 2),
            "generator_params": parameter_count(setups[recipe].model.g_net),
            "discriminator_params": parameter_count(setups[recipe].model.d_net),
        }
        for recipe, rates in rounds.items()
    }
    result["new_over_old"] = round(result["new"]["train_steps_per_s"] / result["old"]["train_steps_per_s"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--z-dim", type=int, default=64)
    parser.add_argument("--base-channels", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("breastmnist")
    results = {name: measure(name, data, args) for name in ("dcgan", "cgan")}
    report = {
        "benchmark": "generator_recipes",
        "image_size": data.image_size,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "sizes": {"z_dim": args.z_dim, "base_channels": args.base_channels},
        "old_recipe": OLD_RECIPE,
        "environment": describe(torch.device("cpu")),
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
