"""Augmentation throughput (images/s) of each classic strategy's batch path against `geometric`.

Each strategy's `augment` runs on one batch of grey images (uint8 values as float in [0, 1]) on the device: a few
warm-up calls, then the median of `--repeats` timed calls of `--calls` each, at every torch thread count asked for.
For context, `torchvision_loop` times torchvision's own transform applied image by image (the per-image Python loop
the strategies avoid), on uint8 images.

Usage: python benchmarks/augment.py [--batch-size 128] [--size 28] [--threads 1,2] [--repeats 7] [--calls 10]
Prints one JSON object: {"batch_size", "size", "device", "images_per_s": {threads: {strategy: x}},
"torchvision_loop": {threads: {strategy: x}}, "relative_to_geometric": {threads: {strategy: x}}}.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable

import torch
from torchvision.transforms import v2

from benchmark.registry import create
from benchmark.train.device import clock, describe, pick_device

STRATEGIES = ("geometric", "cutmix_mixup", "randaugment", "trivialaugment", "augmix")
TORCHVISION = {"randaugment": v2.RandAugment, "trivialaugment": v2.TrivialAugmentWide, "augmix": v2.AugMix}


def images_per_s(run: Callable[[], object], n: int, repeats: int, calls: int, device: torch.device) -> float:
    """Median over `repeats` of n * calls / seconds for `calls` calls of `run`, after 3 warm-up calls."""
    for _ in range(3):
        run()
    rates = []
    for _ in range(repeats):
        started = clock(device)
        for _ in range(calls):
            run()
        rates.append(n * calls / (clock(device) - started))
    return statistics.median(rates)


def strategy_rates(batch: torch.Tensor, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    targets = torch.eye(2, device=device)[torch.arange(len(batch), device=device) % 2]
    generator = torch.Generator(device=device).manual_seed(0)
    rates = {}
    for name in STRATEGIES:
        strategy = create("strategy", name)
        rates[name] = images_per_s(
            lambda strategy=strategy: strategy.augment(batch, targets, generator),
            len(batch),
            args.repeats,
            args.calls,
            device,
        )
    return rates


def torchvision_loop_rates(batch: torch.Tensor, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    uint8 = (batch * 255).round().to(torch.uint8)
    rates = {}
    for name, transform_class in TORCHVISION.items():
        transform = transform_class()
        rates[name] = images_per_s(
            lambda transform=transform: [transform(image) for image in uint8],
            len(batch),
            args.repeats,
            max(1, args.calls // 5),
            device,
        )
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    shape = (args.batch_size, 1, args.size, args.size)
    batch = (torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(0)).float() / 255).to(device)
    result = {
        "batch_size": args.batch_size,
        "size": args.size,
        "device": describe(device)["device_name"],
        "images_per_s": {},
        "torchvision_loop": {},
        "relative_to_geometric": {},
    }
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        rates = strategy_rates(batch, args, device)
        result["images_per_s"][threads] = {k: round(v) for k, v in rates.items()}
        result["relative_to_geometric"][threads] = {k: round(v / rates["geometric"], 3) for k, v in rates.items()}
        loop_rates = torchvision_loop_rates(batch, args, device)
        result["torchvision_loop"][threads] = {k: round(v) for k, v in loop_rates.items()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
