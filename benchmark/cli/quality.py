"""`medaugbench quality`: synthetic images scored against real ones (beside the in-distribution floor and the
train→test shift), copies audited."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from benchmark.cli.display import console, metric, print_table
from benchmark.cli.options import (
    DataDir,
    DatasetName,
    DeviceName,
    ImageSize,
    PluginOptions,
    Seed,
    Size,
    SkipBad,
    dataset_with_options,
    parse_options,
)
from benchmark.errors import MedAugBenchError

if TYPE_CHECKING:
    import torch

    from benchmark.data.dataset import LoadedDataset, Split
    from benchmark.train.record import DistributionScores, MemorisationAudit, QualityBlock, QualityReport

GeneratorFolder = Annotated[Path | None, typer.Option("--generator", help="A generator folder saved by `synth`.")]
SyntheticImages = Annotated[
    Path | None,
    typer.Option(
        "--images",
        help="Synthetic images from any tool: an .npz (images[, labels]) or a folder (class sub-folders, or flat).",
    ),
]
ExtractorName = Annotated[
    str, typer.Option("--extractor", help="Feature extractor: domain (offline, trained on the dataset) or inception.")
]
ExtractorOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--extractor-option",
        "-E",
        help="Extractor parameter KEY=VALUE, e.g. -E weights=/path/inception.pth or -E steps=300.",
    ),
]
ExtractorWeights = Annotated[
    Path | None,
    typer.Option(
        "--extractor-weights",
        help="Weights the extractor loads instead of training or finding its own (the same as -E weights=FILE), e.g. "
        "a results folder's extractors/<dataset>-domain-<sha>.safetensors, to recompute its published FIDs.",
    ),
]
SyntheticCount = Annotated[
    int,
    typer.Option(
        "--n",
        help=(
            "Synthetic images to draw from --generator (real training class proportions); also the report's max_images."
        ),
    ),
]
QualityOut = Annotated[
    Path | None,
    typer.Option("--out", help="Write the JSON quality record here (and the closest-pairs PNG beside it)."),
]

QUALITY_COLUMNS = {
    "fid": "FID",
    "kid_mean": "KID",
    "precision": "precision",
    "recall": "recall",
    "density": "density",
    "coverage": "coverage",
}


def quality_command(
    dataset: DatasetName = "pneumoniamnist",
    generator: GeneratorFolder = None,
    images: SyntheticImages = None,
    extractor: ExtractorName = "domain",
    extractor_option: ExtractorOptions = None,
    extractor_weights: ExtractorWeights = None,
    n: SyntheticCount = 2000,
    out: QualityOut = None,
    seed: Seed = 0,
    size: Size = 28,
    image_size: ImageSize = None,
    data_dir: DataDir = None,
    device: DeviceName = "auto",
    skip_bad: SkipBad = False,
    option: PluginOptions = None,
) -> None:
    """FID, KID, precision/recall/density/coverage against real training images of the same class composition and n
    (next to the in-distribution floor, validation images, and the train→test shift, test images), MS-SSIM diversity,
    nearest-real SSIM/PSNR, and a memorisation audit of synthetic images against every training image."""
    from benchmark.data.dataset import DataOptions, load_dataset
    from benchmark.evaluate.features import make_extractor
    from benchmark.evaluate.quality import quality_report, real_images
    from benchmark.train.device import pick_device

    if (generator is None) == (images is None):
        raise MedAugBenchError(
            "give exactly one source of synthetic images: --generator FOLDER or --images NPZ_OR_FOLDER"
        )
    plugin, dataset_params = dataset_with_options(dataset, option)
    options = DataOptions(data_dir=data_dir, size=size, image_size=image_size, seed=seed, skip_bad=skip_bad)
    data = load_dataset(plugin, options, **dataset_params)
    torch_device = pick_device(device)
    fake = synthetic_images(generator, images, data, n, torch_device, seed, skip_bad)
    extractor_params = parse_options(extractor_option, "extractor", "-E steps=300")
    if extractor_weights is not None:
        extractor_params["weights"] = str(extractor_weights)
    features = make_extractor(extractor, data, **extractor_params).to(torch_device)
    report = quality_report(real_images(data), fake, data.task, features, max_images=n, seed=seed, device=torch_device)
    print_quality(report)
    if out is not None:
        write_quality(out, report, fake, data)


def synthetic_images(
    generator: Path | None,
    images: Path | None,
    data: LoadedDataset,
    n: int,
    device: torch.device,
    seed: int,
    skip_bad: bool = False,
) -> Split:
    """The images to score: `n` drawn from a saved generator (real training class proportions), or a given set
    (its unreadable files left out with `skip_bad`)."""
    from benchmark.evaluate.image_sets import generated_split, load_image_set

    if generator is not None:
        return generated_split(generator, data, n, device, seed)
    return load_image_set(images, data, skip_bad)


def write_quality(out: Path, report: QualityReport, fake: Split, data: LoadedDataset) -> None:
    """The quality record as JSON, and the memorisation audit's closest synthetic/training pairs as a PNG beside it."""
    from benchmark.data.files import write_json_atomic
    from benchmark.evaluate.quality import save_closest_pairs_png

    write_json_atomic(out, report.to_dict())
    closest = report.memorisation.pixel.closest_pairs
    pairs = save_closest_pairs_png(fake.images, data.train.images, closest, out.with_suffix(".pairs.png"))
    console().print(f"wrote {out} and {pairs}")


def print_quality(report: QualityReport) -> None:
    """The class-matched block and the per-class blocks, each metric next to its floor and shift, then the
    memorisation audit."""
    extractor = f"{report.extractor['name']}, {report.matched.feature_dim} features"
    blocks = [("matched", report.matched), *((f"class {label}", block) for label, block in report.per_class.items())]
    print_table(
        ("group", "n", *(f"{header} (floor / shift)" for header in QUALITY_COLUMNS.values()), "MS-SSIM syn / real"),
        [_quality_row(name, block) for name, block in blocks],
        title=f"synthetic vs real training images of the same class composition and n ({extractor})",
    )
    console().print(
        f"floor: {report.floor_images or 'not measured'}, drawn with the same composition and n and scored against "
        "the same training images (the in-distribution floor: what a fresh sample of the training distribution "
        "scores). shift: real test images drawn likewise (the train→test shift). * n - 1 < feature count: singular "
        "covariance, the FID is unreliable."
    )
    print_memorisation(report.memorisation)


def _quality_row(name: str, block: QualityBlock) -> tuple[str, ...]:
    def real(scores: DistributionScores | None, key: str) -> str:
        return metric(getattr(scores, key) if scores is not None else None)

    return (
        name,
        f"{block.n}{' *' if block.rank_deficient else ''}",
        *(
            f"{metric(getattr(block.fake_vs_real, key))} ({real(block.floor, key)} / {real(block.shift, key)})"
            for key in QUALITY_COLUMNS
        ),
        f"{metric(block.ms_ssim_fake)} / {metric(block.ms_ssim_real)}",
    )


def print_memorisation(audit: MemorisationAudit) -> None:
    """Exact and near copies of training images among the synthetic ones, in pixel and in feature space."""
    for space in ("pixel", "feature"):
        found = getattr(audit, space)
        console().print(
            f"memorisation ({space} space, {audit.n_fake} synthetic vs all {audit.n_train} training "
            f"images): {found.exact_copies} exact copies; {found.near_copies} near copies "
            f"({found.near_copy_fraction:.1%}, exact ones included) within {found.threshold:.4g}, "
            f"the {audit.quantile:g} quantile of {audit.n_test} test images' nearest-training distances"
        )
