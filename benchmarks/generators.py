"""Generator speed on the current device at 28 px: training steps/s and sampled images/s for every registered
generator (default parameters), and DDPM sampling with DDIM 25/50/100 steps against the full 1000-step sampler:
time, and the FID (domain features) of each sampler's images against the real test split.

The FID is only meaningful for a trained DDPM: `--ddpm-train-steps` trains it that many steps first (thousands,
on a GPU); with the default 0 the samplers are compared on an untrained model, i.e. for speed only.

Usage: python benchmarks/generators.py [--steps 20] [--batch-size 64] [--samples 256] [--generators cgan,ddpm]
       [--ddpm-train-steps 0]
Prints one JSON object. Needs PneumoniaMNIST in $MEDAUGBENCH_DATA_DIR (real images are used as training batches).
"""

from __future__ import annotations

import argparse
import json

import torch

from benchmark.data.dataset import load_dataset
from benchmark.evaluate.features import make_extractor
from benchmark.evaluate.quality import fid_kid
from benchmark.generate.loop import sample, to_model_range, to_uint8
from benchmark.generate.model import ImageSpec, can_condition
from benchmark.generate.synthesis import conditioning
from benchmark.registry import create, entries
from benchmark.train.device import clock, describe, pick_device


def conditioned(model_conditional: bool, labels: torch.Tensor, task) -> tuple[int, torch.Tensor | None]:
    return (task.num_outputs, conditioning(labels, task)) if model_conditional else (0, None)


def time_training(
    name: str, data, steps: int, batch_size: int, device: torch.device, extra_steps: int = 0, **params
) -> tuple[float, object]:
    spec = ImageSpec(data.task.channels, data.image_size, data.task.num_outputs)
    conditional = can_condition(name, spec, **params)
    spec = spec if conditional else spec.unconditional()
    model = create("generator", name, spec=spec, **params).to(device)
    n = batch_size * model.real_batches_per_step  # one step takes that many fresh batches (WGAN-GP: n_critic)
    cond = conditioned(conditional, data.train.labels[:n], data.task)[1]
    optimizers = model.make_optimizers()
    generator = torch.Generator(device=device).manual_seed(0)
    images = to_model_range(data.train.images[:n]).to(device)
    cond = cond.to(device) if cond is not None else None
    for _ in range(3 + (extra_steps if name == "ddpm" else 0)):
        model.training_step(images, cond, optimizers, generator)
    started = clock(device)
    for _ in range(steps):
        model.training_step(images, cond, optimizers, generator)
    return steps / (clock(device) - started), (model, cond)


def time_sampling(model, cond: torch.Tensor | None, n: int, device: torch.device) -> tuple[float, torch.Tensor]:
    """Images/s of sampling `n` images (conditioned on the first label row), and the images."""
    generator = torch.Generator(device=device).manual_seed(0)
    rows = cond[:1].expand(n, -1).contiguous() if cond is not None else None
    started = clock(device)
    images = sample(model, rows, n, generator)
    return n / (clock(device) - started), to_uint8(images).cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--generators", default=",".join(entries("generator")))
    parser.add_argument("--ddpm-train-steps", type=int, default=0)
    args = parser.parse_args()
    device = pick_device()
    data = load_dataset("pneumoniamnist")
    results = {}
    for name in args.generators.split(","):
        steps_per_s, (model, cond) = time_training(
            name, data, args.steps, args.batch_size, device, args.ddpm_train_steps
        )
        images_per_s = steps_per_s * args.batch_size * model.real_batches_per_step
        results[name] = {
            "train_steps_per_s": round(steps_per_s, 2),
            "train_images_per_s": round(images_per_s, 1),
            "sample_images_per_s": round(time_sampling(model, cond, args.samples, device)[0], 1),
        }
        if name == "ddpm":
            extractor = make_extractor("domain", data).to(device)
            real = data.test.images[
                data.test.labels == data.train.labels[0]
            ]  # the class the samples are conditioned on
            samplers = {}
            for label, settings in {
                "ddim_25": ("ddim", 25),
                "ddim_50": ("ddim", 50),
                "ddim_100": ("ddim", 100),
                "ddpm_1000": ("ddpm", 1000),
            }.items():
                model.sampler, model.sample_steps = settings
                n = max(8, args.samples // (8 if label == "ddpm_1000" else 1))
                per_s, images = time_sampling(model, cond, n, device)
                fid = fid_kid(real, images, extractor, kid_subsets=1)["fid"]
                samplers[label] = {"images_per_s": round(per_s, 2), "images": n, "fid_domain": round(fid, 2)}
            results[name]["samplers"] = samplers
            results[name]["ddpm_trained_steps"] = 3 + args.ddpm_train_steps + args.steps
    print(
        json.dumps(
            {
                "benchmark": "generators",
                "image_size": data.image_size,
                "batch_size": args.batch_size,
                "environment": describe(device),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
