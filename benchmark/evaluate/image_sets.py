"""Sets of synthetic images to score: drawn from a saved generator, or read from an .npz or a folder of images
made by any tool."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from benchmark.data.apportion import proportional
from benchmark.data.dataset import LoadedDataset, Split, resample
from benchmark.data.decode import decode_files, image_files, to_channels
from benchmark.errors import MedAugBenchError
from benchmark.generate import loop as gt
from benchmark.registry import create


def generated_split(directory: Path, data: LoadedDataset, n: int, device: torch.device, seed: int) -> Split:
    """`n` images from a generator saved by `synth`, classes in the real training proportions."""
    models, card = gt.load(directory, device)
    if card["labels"] != list(data.task.labels) or card["image_size"] != data.image_size:
        raise MedAugBenchError(
            f"{directory} holds a generator for {card['dataset']} ({card['image_size']} px); "
            f"pass --dataset {card['dataset']} "
            f"and --image-size {card['image_size']}"
        )
    strategy = create("strategy", card["generator"], generator_dir=str(directory), quality_extractor=None)
    plan = proportional(data.train.class_counts(data.task), n)
    return strategy.sample(models, data.task, data.train, plan, device, seed)


def load_image_set(path: Path, data: LoadedDataset) -> Split:
    """Images from an .npz (`images`, optional `labels`) or a folder (class sub-folders named like the dataset's
    classes, or a flat folder); brought to the dataset's channels and size. Unlabelled images get label -1
    (overall metrics only); multi-label sets take 0/1 rows of the dataset's labels."""
    path = Path(path)
    if path.suffix == ".npz":
        try:
            with np.load(path) as archive:
                images = torch.from_numpy(np.ascontiguousarray(archive["images"]))
                labels = torch.from_numpy(archive["labels"]) if "labels" in archive else None
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
            raise MedAugBenchError(f"{path} is not an .npz with an 'images' array ({error})") from None
        if images.dtype != torch.uint8 or images.ndim not in (3, 4):
            raise MedAugBenchError(f"{path}: 'images' must be uint8 (N, H, W), (N, H, W, C) or (N, C, H, W)")
        if images.ndim == 3:
            images = images.unsqueeze(1)
        elif images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
            images = images.permute(0, 3, 1, 2)
    elif path.is_dir():
        class_dirs = {d.name: d for d in path.iterdir() if d.is_dir() and d.name in data.task.labels}
        groups = [(data.task.labels.index(name), image_files(d)) for name, d in class_dirs.items()] or [
            (-1, image_files(path))
        ]
        files = [f for _, fs in groups for f in fs]
        if not files:
            raise MedAugBenchError(f"no images in {path}")
        decoded, bad = decode_files(files, data.image_size)
        if bad:
            raise MedAugBenchError(
                f"{len(bad)} files in {path} could not be read, e.g. {bad[0].path} ({bad[0].reason})"
            )
        images = torch.stack([to_channels(image, data.task.channels) for image in decoded])
        labels = torch.tensor([label for label, fs in groups for _ in fs])
    else:
        raise MedAugBenchError(f"{path} is neither an .npz file nor a folder of images")
    images = (
        torch.stack([to_channels(image, data.task.channels) for image in images])
        if images.shape[1] != data.task.channels
        else images
    )
    shape = (len(images), data.task.num_outputs) if data.task.multilabel else (len(images),)
    if labels is None:
        labels = torch.full(shape, -1)
    labels = labels.reshape(shape).float() if data.task.multilabel else labels.reshape(shape).long()
    return resample(Split(images.contiguous(), labels), data.image_size)
