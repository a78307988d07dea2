"""Dataset types and the one loading path every dataset plugin goes through (resampling, low-data subsets)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from benchmark.data.task import TaskSpec
from benchmark.data.versioned import Versioned
from benchmark.errors import MedAugBenchError
from benchmark.registry import create, declare_product, entries

if TYPE_CHECKING:
    import torch

SPLITS = ("train", "val", "test")


def class_mask(labels: torch.Tensor, task: TaskSpec, group: int) -> torch.Tensor:
    """Which samples belong to a group: class `group`, or for a multi-label task the positives of label `group`."""
    return labels[:, group] > 0.5 if task.multilabel else labels == group


@dataclass
class Split:
    """One split held as tensors: uint8 images (N, C, H, W) and labels.

    Labels are int64 class indices of shape (N,) for single-label tasks and float32 0/1 of shape (N, L)
    for multi-label tasks.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        import torch  # here, not at the top: a grid's dry run and `datasets list` use this module without tensors

        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.images[index], self.labels[index])

    def digest(self) -> str:
        """Digest of the exact images and labels (shapes included): what a model trained on this split saw."""
        digest = hashlib.sha256()
        for tensor in (self.images, self.labels):
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def class_counts(self, task: TaskSpec) -> list[int]:
        """Images per class, or positives per label for a multi-label task."""
        if task.multilabel:
            return [int(c) for c in self.labels.sum(dim=0).round().long()]
        import torch

        return [int(c) for c in torch.bincount(self.labels, minlength=task.num_outputs)]


@dataclass
class LoadedDataset:
    """A dataset ready for training: task description and the three splits at one image size.

    `train` is what a cell trains on (after any low-data subset); `full_train` is the whole training split before
    that subset (the same split when there is none), for what must be shared by every cell of a dataset, such as
    the extractor that reports quality. Nothing that trains a cell's models may use `full_train`.
    """

    name: str
    task: TaskSpec
    train: Split
    val: Split
    test: Split
    source_size: int
    image_size: int
    provenance: dict = field(default_factory=dict)
    full_train: Split | None = None

    def __post_init__(self) -> None:
        if self.full_train is None:
            self.full_train = self.train

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise MedAugBenchError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return getattr(self, name)


@dataclass
class DatasetSummary(Versioned):
    """The data a run used, as its record states it: the dataset and task, the image sizes (as stored, as trained
    on), the real and synthetic training images, the val and test split sizes and where the files came from."""

    SCHEMA: ClassVar[int] = 1
    NAME: ClassVar[str] = "dataset summary"

    name: str
    task: TaskSpec
    source_size: int
    image_size: int
    train_real: int
    train_synthetic: int
    val: int
    test: int
    provenance: dict = field(default_factory=dict)

    @classmethod
    def of(cls, data: LoadedDataset, train_real: int, train_synthetic: int) -> DatasetSummary:
        """The summary of `data` trained on `train_real` real and `train_synthetic` synthetic images."""
        return cls(
            name=data.name,
            task=data.task,
            source_size=data.source_size,
            image_size=data.image_size,
            train_real=train_real,
            train_synthetic=train_synthetic,
            val=len(data.val),
            test=len(data.test),
            provenance=data.provenance,
        )


@dataclass(frozen=True)
class DataOptions:
    """How to find and shape a dataset. Shared by every dataset plugin."""

    data_dir: Path | None = None
    size: int = 28
    image_size: int | None = None
    download: bool = False
    skip_bad: bool = False
    train_fraction: float = 1.0
    per_class_cap: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.train_fraction <= 1.0:
            raise MedAugBenchError(f"train fraction must be in (0, 1], got {self.train_fraction}")
        if self.per_class_cap is not None and self.per_class_cap < 1:
            raise MedAugBenchError(f"per-class cap must be at least 1, got {self.per_class_cap}")
        if self.image_size is not None and self.image_size < 8:
            raise MedAugBenchError(f"image size must be at least 8 pixels, got {self.image_size}")


@dataclass
class DatasetInfo:
    """What `datasets list` shows: facts that need no image loading."""

    name: str
    task: TaskSpec
    split_sizes: dict[str, int] | None
    license: str
    local: str
    description: str = ""


@runtime_checkable
class DatasetSource(Protocol):
    """What a dataset plugin's factory returns."""

    name: str

    def info(self, options: DataOptions) -> DatasetInfo: ...

    def load(self, options: DataOptions) -> LoadedDataset:
        """Return the splits at the source size; resampling and subsetting are applied by `load_dataset`."""
        ...

    def prepare(self, options: DataOptions) -> list[Path]:
        """Make the files available locally (download or verify) and return their paths."""
        ...


declare_product("dataset", DatasetSource)


def resample(split: Split, size: int) -> Split:
    """Resize images to size×size (bilinear, antialiased). This resamples; it adds no detail."""
    if split.images.shape[-1] == size and split.images.shape[-2] == size:
        return split
    from torchvision.transforms.v2 import functional as TF

    images = TF.resize(split.images, [size, size], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return Split(images.contiguous(), split.labels)


def finalize(loaded: LoadedDataset, options: DataOptions) -> LoadedDataset:
    """Apply the options every dataset shares: low-data subset of train (the whole split kept as `full_train`), then
    optional resampling."""
    from benchmark.data.lowdata import subsample_indices

    splits = {"full_train": loaded.train, "train": loaded.train, "val": loaded.val, "test": loaded.test}
    if options.train_fraction < 1.0 or options.per_class_cap is not None:
        index = subsample_indices(
            loaded.train.labels, loaded.task, options.train_fraction, options.per_class_cap, options.seed
        )
        splits["train"] = loaded.train.subset(index)
    size = loaded.image_size
    if options.image_size is not None:
        size = options.image_size
        unique = {id(v): v for v in splits.values()}  # without a subset, full_train is train: resample it once
        resampled = {key: resample(v, size) for key, v in unique.items()}
        splits = {k: resampled[id(v)] for k, v in splits.items()}
    return replace(loaded, image_size=size, **splits)


def dataset_source(name: str, params: dict) -> tuple[str, dict]:
    """A registered dataset name, or a folder/CSV of the user's own images (→ the `imagefolder` plugin), with its
    plugin parameters (given ones win over the path)."""

    path = Path(name).expanduser()
    if name not in entries("dataset") and (path.is_dir() or path.suffix.lower() == ".csv"):
        return "imagefolder", {("csv" if path.suffix.lower() == ".csv" else "root"): str(path), **params}
    return name, dict(params)


def load_dataset(name: str, options: DataOptions | None = None, **plugin_options: object) -> LoadedDataset:
    """Create the named dataset plugin, load it and apply the shared options."""

    options = options or DataOptions()
    source = create("dataset", name, **plugin_options)
    return finalize(source.load(options), options)
