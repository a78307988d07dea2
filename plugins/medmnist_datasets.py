"""Every MedMNIST 2D dataset as a dataset plugin, via the `medmnist` package's INFO (URLs, MD5s, tasks, licences)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from benchmark import SPLITS, DataOptions, DatasetInfo, LoadedDataset, MedAugBenchError, Split, TaskSpec
from benchmark.data.cards import positive_class
from benchmark.data.files import (
    SOURCE_SIZES,
    ensure_file,
    file_name,
    locate,
    medmnist_info,
    user_data_dir,
)


def split_from_arrays(images: np.ndarray, labels: np.ndarray, task: TaskSpec) -> Split:
    """MedMNIST arrays (N, H, W) or (N, H, W, 3) and (N, 1) or (N, L) labels → a `Split` in our layout."""
    import torch  # here, not at the top: listing datasets and a grid's dry run need no tensors

    tensor = torch.from_numpy(np.ascontiguousarray(images))
    tensor = tensor.unsqueeze(1) if tensor.ndim == 3 else tensor.permute(0, 3, 1, 2)
    if task.multilabel:
        target = torch.from_numpy(labels.astype(np.float32))
    else:
        target = torch.from_numpy(labels.reshape(-1).astype(np.int64))
    return Split(tensor.contiguous(), target)


class MedMNISTSource:
    """One MedMNIST 2D dataset (official files at 28, 64, 128 or 224 px)."""

    def __init__(self, flag: str) -> None:
        self.name = flag
        self.meta = medmnist_info()[flag]
        self.task = TaskSpec.from_medmnist(self.meta, positive_class(flag))

    def info(self, options: DataOptions) -> DatasetInfo:
        folder = user_data_dir(options.data_dir)
        present = [str(size) for size in SOURCE_SIZES if locate(self.name, size, folder) is not None]
        return DatasetInfo(
            name=self.name,
            task=self.task,
            split_sizes=dict(self.meta["n_samples"]),
            license=self.meta["license"],
            local=("px " + ", ".join(present)) if present else "no",
            description=self.meta["description"],
        )

    def prepare(self, options: DataOptions) -> list[Path]:
        return [ensure_file(self.name, options.size, options.data_dir, allow_download=True)]

    def load(self, options: DataOptions) -> LoadedDataset:
        path = ensure_file(self.name, options.size, options.data_dir, allow_download=options.download)
        try:
            with np.load(path) as archive:
                splits = {
                    s: split_from_arrays(archive[f"{s}_images"], archive[f"{s}_labels"], self.task) for s in SPLITS
                }
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as error:
            raise MedAugBenchError(
                f"{path} is not a readable MedMNIST file ({error}); "
                f"delete it and run `medaugbench datasets prepare {self.name}`"
            ) from None
        return LoadedDataset(
            name=self.name,
            task=self.task,
            source_size=options.size,
            image_size=options.size,
            provenance={"file": str(path), "official_name": file_name(self.name, options.size)},
            **splits,
        )
