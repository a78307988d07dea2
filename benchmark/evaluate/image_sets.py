"""Sets of synthetic images to score: drawn from a saved generator, or read from an .npz or a folder of images
made by any tool."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from benchmark.data.apportion import proportional
from benchmark.data.dataset import LoadedDataset, Split, resample
from benchmark.data.decode import bad_files_message, decode_files, image_files, to_channels
from benchmark.errors import MedAugBenchError
from benchmark.generate import loop as gt
from benchmark.registry import create


def generated_split(directory: Path, data: LoadedDataset, n: int, device: torch.device, seed: int) -> Split:
    """`n` images from a generator saved by `synth`, classes in the real training proportions."""
    models, card = gt.load_saved(directory, device)
    if card["labels"] != list(data.task.labels) or card["image_size"] != data.image_size:
        raise MedAugBenchError(
            f"{directory} holds a generator for {card['dataset']} ({card['image_size']} px); "
            f"pass --dataset {card['dataset']} "
            f"and --image-size {card['image_size']}"
        )
    strategy = create("strategy", card["generator"], generator_dir=str(directory), quality_extractor=None)
    plan = proportional(data.train.class_counts(data.task), n)
    return strategy.sample(models, data.task, data.train, plan, device, seed)


def load_image_set(path: Path, data: LoadedDataset, skip_bad: bool = False) -> Split:
    """Images from an .npz (`images`, optional `labels`) or a folder (class sub-folders named like the dataset's
    classes, or a flat folder; unreadable files are an error, or left out with `skip_bad`); brought to the dataset's
    channels and size. Unlabelled images get label -1 (overall metrics only); multi-label sets take 0/1 rows of the
    dataset's labels, one per image."""
    path = Path(path)
    if path.suffix == ".npz":
        images, labels = _npz_images(path)
    elif path.is_dir():
        images, labels = _folder_images(path, data, skip_bad)
    else:
        raise MedAugBenchError(f"{path} is neither an .npz file nor a folder of images")
    images = (
        torch.stack([to_channels(image, data.task.channels) for image in images])
        if images.shape[1] != data.task.channels
        else images
    )
    labels = _checked_labels(labels, len(images), data, path)
    return resample(Split(images.contiguous(), labels), data.image_size)


def _npz_images(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(N, C, H, W) uint8 images and the labels (None: none) of an .npz."""
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
    return images, labels


def _folder_images(path: Path, data: LoadedDataset, skip_bad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoded images of a folder (class sub-folders or flat) and their class indices (-1 when flat)."""
    class_dirs = {d.name: d for d in path.iterdir() if d.is_dir() and d.name in data.task.labels}
    groups = [(data.task.labels.index(name), image_files(d)) for name, d in class_dirs.items()] or [
        (-1, image_files(path))
    ]
    files = [f for _, fs in groups for f in fs]
    if not files:
        raise MedAugBenchError(f"no images in {path}")
    decoded, bad = decode_files(files, data.image_size)
    if bad and not skip_bad:
        raise MedAugBenchError(bad_files_message(bad, len(files)))
    labels = [label for label, fs in groups for _ in fs]
    kept = [(image, label) for image, label in zip(decoded, labels) if image is not None]
    if not kept:
        raise MedAugBenchError(f"none of the {len(files)} image files in {path} could be read")
    images = torch.stack([to_channels(image, data.task.channels) for image, _ in kept])
    return images, torch.tensor([label for _, label in kept])


def _checked_labels(labels: torch.Tensor | None, n: int, data: LoadedDataset, path: Path) -> torch.Tensor:
    """Labels shaped for the task: one class index per image (-1 for all when none are given), or one 0/1 row of
    the dataset's labels per image for a multi-label task; a count or width that does not fit is one error."""
    task = data.task
    shape = (n, task.num_outputs) if task.multilabel else (n,)
    if labels is None:
        return torch.full(shape, -1).float() if task.multilabel else torch.full(shape, -1)
    if labels.numel() != int(np.prod(shape)) or len(labels) != n:
        wanted = f"{n} rows of {task.num_outputs} 0/1 labels" if task.multilabel else f"{n} class indices"
        raise MedAugBenchError(
            f"{path} has {n} images but labels of shape {tuple(labels.shape)}; give {wanted} (one per image), or "
            "drop the 'labels' array to score without classes"
        )
    return labels.reshape(shape).float() if task.multilabel else labels.reshape(shape).long()
