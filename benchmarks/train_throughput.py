"""Training throughput (images/s) of medaugbench's loop against the compute limit and a MedMNIST-style pipeline.

(a) compute limit: the same model stepping on one pre-staged random batch, no augmentation, no data movement.
(b) reference: torch DataLoader over `medmnist.PneumoniaMNIST` with per-sample PIL transforms (flip, ±15° rotation,
    ToTensor, Normalize), as in the official MedMNIST getting-started example plus the same augmentation.
ours: `benchmark.train.loop.train` with the `geometric` strategy (batch-wise on the device), evaluation excluded.

Usage: python benchmarks/train_throughput.py [--steps 60] [--batch-size 128] [--backbones simple_cnn,resnet18]
Prints one JSON object. Needs PneumoniaMNIST in $MEDAUGBENCH_DATA_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass

import medmnist
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import transforms

from benchmark.registry import create
from benchmark.train.config import Budget, TrainConfig
from benchmark.train.device import clock, describe, pick_device
from benchmark.train.loop import train


@dataclass(frozen=True)
class Precision:
    """bf16 autocast and channels-last memory, both only on CUDA (as the training loop does)."""

    amp: bool = False
    channels_last: bool = False

    def model(self, backbone: str, device: torch.device, **params: object) -> torch.nn.Module:
        model = create("backbone", backbone, in_chans=1, num_classes=2, image_size=28, **params).to(device)
        return model.to(memory_format=torch.channels_last) if self.channels_last and device.type == "cuda" else model

    def step(self, model: torch.nn.Module, optimizer, images: torch.Tensor, labels: torch.Tensor) -> None:
        """One optimizer step on a batch, under this precision."""
        if self.channels_last and images.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        on_cuda = self.amp and images.device.type == "cuda"
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=on_cuda):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def compute_limit(
    backbone: str, steps: int, batch_size: int, device: torch.device, precision: Precision = Precision(), **params
) -> float:
    model = precision.model(backbone, device, **params)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.randn(batch_size, 1, 28, 28, device=device)
    labels = torch.randint(0, 2, (batch_size,), device=device)

    def step() -> None:
        precision.step(model, optimizer, images, labels)

    for _ in range(5):
        step()
    started = clock(device)
    for _ in range(steps):
        step()
    return steps * batch_size / (clock(device) - started)


def reference_pipeline(
    backbone: str, steps: int, batch_size: int, device: torch.device, precision: Precision = Precision(), **params
) -> float:
    transform = transforms.Compose(
        [
            transforms.RandomHorizontalFlip(),
            transforms.RandomRotation(15),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.5], std=[0.5]),
        ]
    )
    dataset = medmnist.PneumoniaMNIST(
        split="train", transform=transform, root=os.environ["MEDAUGBENCH_DATA_DIR"], download=False
    )
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    model = precision.model(backbone, device, **params)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    done, seen, started = 0, 0, None
    while done < steps + 5:
        for images, labels in loader:
            if done == 5:
                started, seen = clock(device), 0
            precision.step(model, optimizer, images.to(device), labels.squeeze(1).long().to(device))
            done += 1
            seen += len(images)
            if done >= steps + 5:
                break
    return seen / (clock(device) - started)


def ours(
    backbone: str, steps: int, batch_size: int, device: str = "auto", precision: Precision = Precision(), **params
) -> float:
    config = TrainConfig(
        dataset="pneumoniamnist",
        strategy="geometric",
        backbone=backbone,
        backbone_params=params,
        budget=Budget(steps=steps),
        batch_size=batch_size,
        eval_every=10**9,
        device=device,
        amp=precision.amp,
        channels_last=precision.channels_last,
    )
    record = train(config, progress=False)
    return record.budget.images_seen / record.budget.seconds["train"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--backbones", default="simple_cnn,resnet18")
    args = parser.parse_args()
    device = pick_device()
    results = {}
    for backbone in args.backbones.split(","):
        limit = compute_limit(backbone, args.steps, args.batch_size, device)
        reference = reference_pipeline(backbone, args.steps, args.batch_size, device)
        mine = ours(backbone, args.steps, args.batch_size)
        results[backbone] = {
            "ours_images_per_s": round(mine, 1),
            "compute_limit_images_per_s": round(limit, 1),
            "reference_images_per_s": round(reference, 1),
            "ours_over_limit": round(mine / limit, 3),
            "ours_over_reference": round(mine / reference, 2),
        }
    print(
        json.dumps(
            {
                "benchmark": "train_throughput",
                "steps": args.steps,
                "batch_size": args.batch_size,
                "environment": describe(device),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
