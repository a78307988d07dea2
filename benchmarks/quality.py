"""Quality-metric speed on the current device: feature extraction images/s for each extractor, the time of a full
quality report on 2,000 synthetic images (noised real images stand in for a generator's output), and the time of the
memorisation audit of 1,000 synthetic images against the whole PneumoniaMNIST training split (4,708 images).

Usage: python benchmarks/quality.py [--n 2000] [--audit-n 1000] [--extractors domain,inception]
Prints one JSON object. Needs PneumoniaMNIST in $MEDAUGBENCH_DATA_DIR; `inception` needs its weights (skipped
with the reason otherwise).
"""

from __future__ import annotations

import argparse
import json

import torch

from benchmark.data.dataset import LoadedDataset, Split, load_dataset
from benchmark.errors import MedAugBenchError
from benchmark.evaluate.features import FeatureExtractor, make_extractor
from benchmark.evaluate.quality import extract_features, memorisation_audit, quality_report, real_images
from benchmark.train.device import clock, describe, pick_device


def noised_training_images(data: LoadedDataset, n: int, generator: torch.Generator) -> Split:
    """n random training images with Gaussian noise (sigma 20 grey levels): a stand-in for a generator's output."""
    pick = torch.randperm(len(data.train), generator=generator)[:n]
    noise = torch.randn(data.train.images[pick].shape, generator=generator) * 20
    images = (data.train.images[pick].float() + noise).clamp(0, 255).round().to(torch.uint8)
    return Split(images, data.train.labels[pick])


def extraction_speed(extractor: FeatureExtractor, images: torch.Tensor, device: torch.device) -> float:
    """Images per second through the extractor, in batches of 256 after one warm-up batch."""
    images = images.to(device)
    with torch.no_grad():
        extractor(images[:8])
        started = clock(device)
        for start in range(0, len(images), 256):
            extractor(images[start : start + 256])
        return len(images) / (clock(device) - started)


def audit_time(data: LoadedDataset, fake: Split, extractor: FeatureExtractor, device: torch.device) -> dict:
    """Seconds to extract the audit's features, and to search them and the pixels over every training image."""
    started = clock(device)
    features = [extract_features(images, extractor) for images in (fake.images, data.train.images, data.test.images)]
    extracted = clock(device)
    audit = memorisation_audit(fake.images, data.train.images, data.test.images, *features, device=device)
    return {
        "n_fake": audit["n_fake"],
        "n_train": audit["n_train"],
        "n_test": audit["n_test"],
        "feature_extraction_seconds": round(extracted - started, 2),
        "search_seconds_pixel_and_feature": round(clock(device) - extracted, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--audit-n", type=int, default=1000)
    parser.add_argument("--extractors", default="domain,inception")
    args = parser.parse_args()
    device = pick_device()
    data = load_dataset("pneumoniamnist")
    generator = torch.Generator().manual_seed(0)
    fake = noised_training_images(data, args.n, generator)
    audit_fake = noised_training_images(data, args.audit_n, generator)
    results = {}
    for name in args.extractors.split(","):
        try:
            extractor = make_extractor(name, data).to(device).eval()
        except MedAugBenchError as error:
            results[name] = {"skipped": str(error)}
            continue
        per_s = extraction_speed(extractor, data.test.images, device)
        started = clock(device)
        report = quality_report(real_images(data), fake, data.task, extractor, max_images=args.n)
        matched = report.matched
        results[name] = {
            "features_images_per_s": round(per_s, 1),
            "report_seconds": round(clock(device) - started, 2),
            "report_images": args.n,
            "matched_n": matched.n,
            "fid": matched.fake_vs_real.fid,
            "fid_floor": matched.floor.fid,
            "fid_shift": matched.shift.fid,
            "rank_deficient": matched.rank_deficient,
            "audit": audit_time(data, audit_fake, extractor, device),
        }
    print(json.dumps({"benchmark": "quality", "environment": describe(device), "results": results}, indent=2))


if __name__ == "__main__":
    main()
