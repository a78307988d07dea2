"""Quality-metric speed on the current device: feature extraction images/s for each extractor, and the time of a
full quality report on 2,000 synthetic images (noised real images stand in for a generator's output).

Usage: python benchmarks/quality.py [--n 2000] [--extractors domain,inception]
Prints one JSON object. Needs PneumoniaMNIST in $MEDAUGBENCH_DATA_DIR; `inception` needs its weights (skipped
with the reason otherwise).
"""

from __future__ import annotations

import argparse
import json

import torch

from benchmark.dataset import Split, load_dataset
from benchmark.device import clock, describe, pick_device
from benchmark.errors import MedAugBenchError
from benchmark.features import make_extractor
from benchmark.quality import quality_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--extractors", default="domain,inception")
    args = parser.parse_args()
    device = pick_device()
    data = load_dataset("pneumoniamnist")
    generator = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(data.train), generator=generator)[: args.n]
    noise = torch.randn(data.train.images[pick].shape, generator=generator) * 20
    fake = Split((data.train.images[pick].float() + noise).clamp(0, 255).round().to(torch.uint8), data.train.labels[pick])
    results = {}
    for name in args.extractors.split(","):
        try:
            extractor = make_extractor(name, data).to(device).eval()
        except MedAugBenchError as error:
            results[name] = {"skipped": str(error)}
            continue
        images = data.test.images.to(device)
        with torch.no_grad():
            extractor(images[:8])
            started = clock(device)
            for start in range(0, len(images), 256):
                extractor(images[start : start + 256])
            per_s = len(images) / (clock(device) - started)
        started = clock(device)
        report = quality_report(data.train, data.test, fake, data.task, extractor, max_images=args.n)
        results[name] = {"features_images_per_s": round(per_s, 1), "report_seconds": round(clock(device) - started, 2),
                         "report_images": args.n, "fid": report["overall"]["fake_vs_train"]["fid"],
                         "fid_real_test_floor": report["overall"]["test_vs_train"]["fid"]}
    print(json.dumps({"benchmark": "quality", "environment": describe(device), "results": results}, indent=2))


if __name__ == "__main__":
    main()
