"""DDPM sampler and training speed on this CPU with one thread, at 28 px: images/s of DDIM-25 against DPM-Solver++
and UniPC at 10 and 20 steps (unguided, and with classifier-free guidance, which doubles the UNet's batch), and
training steps/s with the old defaults (no label dropout, "leading" spacing) and the new ones.

Each setting is timed `--repeats` times, round-robin, and its best rate is reported: on a shared machine the other
processes only ever slow a timing down, and interleaving spreads them over all settings. Speed only: the model is
untrained (speed does not depend on the weights) and the images are random, so no dataset
is needed. The default DDPM is built for a 1-channel, 2-class spec (BreastMNIST's).

Usage: python benchmarks/samplers.py [--samples 32] [--train-steps 10] [--batch-size 64] [--threads 1]
       [--repeats 3]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from benchmark import ImageSpec
from benchmark.generate.loop import sample
from benchmark.train.device import describe
from plugins.ddpm import DDPM

SPEC = ImageSpec(channels=1, image_size=28, cond_dim=2)
OLD_DEFAULTS = {"cond_drop": 0.0, "timestep_spacing": "leading"}


@dataclass(frozen=True)
class SamplerRun:
    """One sampler setting to time."""

    sampler: str
    steps: int
    guidance: float = 0.0

    @property
    def label(self) -> str:
        guided = f"_w{self.guidance:g}" if self.guidance else ""
        return f"{self.sampler}_{self.steps}{guided}"


RUNS = (
    SamplerRun("ddim", 25),
    SamplerRun("dpm_solver", 10),
    SamplerRun("dpm_solver", 20),
    SamplerRun("unipc", 10),
    SamplerRun("unipc", 20),
    SamplerRun("ddim", 25, guidance=1.0),
    SamplerRun("dpm_solver", 20, guidance=1.0),
)


def labels(n: int) -> torch.Tensor:
    """One-hot rows alternating between the two classes."""
    return torch.eye(SPEC.cond_dim)[torch.arange(n) % SPEC.cond_dim]


def images_per_second(run: SamplerRun, n: int) -> float:
    """Images/s of sampling `n` images with the default DDPM and `run`'s sampler, steps and guidance weight."""
    torch.manual_seed(0)
    model = DDPM(SPEC, sampler=run.sampler, sample_steps=run.steps)
    model.set_guidance(run.guidance)
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    sample(model, labels(n), n, generator)
    return n / (time.perf_counter() - started)


def train_steps_per_second(params: dict, steps: int, batch_size: int) -> float:
    """Training steps/s of the DDPM built with `params` (after two warm-up steps)."""
    torch.manual_seed(0)
    model = DDPM(SPEC, **params)
    optimizers = model.make_optimizers()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand((batch_size, 1, 28, 28), generator=generator) * 2 - 1
    cond = labels(batch_size)
    for _ in range(2):
        model.training_step(images, cond, optimizers, generator)
    started = time.perf_counter()
    for _ in range(steps):
        model.training_step(images, cond, optimizers, generator)
    return steps / (time.perf_counter() - started)


def best_rates(timings: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """The best of `repeats` rates of each timing, the timings run round-robin."""
    best = dict.fromkeys(timings, 0.0)
    for _ in range(repeats):
        for label, timing in timings.items():
            best[label] = max(best[label], timing())
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipes = {"old_defaults": OLD_DEFAULTS, "new_defaults": {}}
    timings = {
        **{run.label: partial(images_per_second, run, args.samples) for run in RUNS},
        **{
            label: partial(train_steps_per_second, params, args.train_steps, args.batch_size)
            for label, params in recipes.items()
        },
    }
    best = best_rates(timings, args.repeats)
    sampling = {run.label: round(best[run.label], 2) for run in RUNS}
    training = {label: round(best[label], 3) for label in recipes}
    result = {
        "benchmark": "samplers",
        "image_size": SPEC.image_size,
        "threads": torch.get_num_threads(),
        "samples": args.samples,
        "repeats": args.repeats,
        "train_batch_size": args.batch_size,
        "environment": describe(torch.device("cpu")),
        "sample_images_per_s": sampling,
        "train_steps_per_s": training,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
