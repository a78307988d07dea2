"""Dataset plugin `imagefolder`: the user's own DICOM and ordinary images, labelled by sub-folder or by a CSV.

Layouts, checked in this order:
  * `csv=FILE`: a CSV with columns `path,label` and optionally `split` (train/val/test); relative paths are
    resolved against `root` when given, else against the CSV's folder.
  * `root/train`, `root/val`, `root/test`, each holding `<class>/**/<files>`: the splits as given.
  * `root/<class>/**/<files>`: one folder per class, split into train/val/test by `DataOptions.seed`.

Class names are sorted (numerically when all are whole numbers) and their position is the class index.
Images are decoded to uint8 and resized (bilinear, antialiased) to `DataOptions.size` squared; the aspect
ratio is not kept. Without a `root` or `csv`, `info()` describes the plugin with an empty placeholder task
(multiclass, no labels, 1 channel) and `load()` asks for `root=PATH`.
"""

from __future__ import annotations

import csv as csvlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import torch
from PIL import Image, ImageOps
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

from benchmark.dataset import SPLITS, DataOptions, DatasetInfo, LoadedDataset, Split
from benchmark.errors import MedAugBenchError
from benchmark.hookspecs import Register, hookimpl
from benchmark.task import TaskSpec

NAME = "imagefolder"
DESCRIPTION = "Your own DICOM/PNG/JPEG images: class = sub-folder name, or a CSV of path,label"
LICENSE = "user data"
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
GRAY_MODES = frozenset({"1", "L", "LA", "La"})
HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
PROGRESS_MIN_FILES = 200
BAD_FILES_SHOWN = 10
MIN_PER_CLASS = 3


@dataclass(frozen=True)
class Sample:
    """One image file, its class name, and its split when the layout gives one."""

    path: Path
    label: str
    split: str | None = None


@dataclass(frozen=True)
class Scan:
    """The files a layout lists, found without decoding any of them."""

    samples: list[Sample]
    classes: tuple[str, ...]
    where: Path
    layout: str

    @property
    def explicit_splits(self) -> bool:
        return self.samples[0].split is not None

    def split_sizes(self) -> dict[str, int] | None:
        """Files per split when the layout gives the splits, else None (they are drawn at load time)."""
        if not self.explicit_splits:
            return None
        return {name: sum(s.split == name for s in self.samples) for name in SPLITS}


@dataclass(frozen=True)
class BadFile:
    """A file that could not be read or decoded, with a short reason."""

    path: Path
    reason: str


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the `imagefolder` dataset source."""
    register(NAME, ImageFolderSource, DESCRIPTION)


def has_dicom_preamble(path: Path) -> bool:
    """True when the file carries the DICOM magic `DICM` at byte 128, so extension-less DICOM is found."""
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def is_dicom(path: Path) -> bool:
    """True for a .dcm/.dicom file or one with the DICOM preamble, so it is decoded with pydicom."""
    return path.suffix.lower() in DICOM_SUFFIXES or has_dicom_preamble(path)


def _minmax_uint8(values: np.ndarray) -> np.ndarray:
    """Scale to the full 0..255 range; a constant image becomes zeros."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)


def dicom_to_uint8(path: str | Path) -> np.ndarray:
    """Decode a DICOM file to uint8 (H, W) or (H, W, 3) as a radiologist would view it.

    Grayscale: first frame, modality LUT (rescale slope/intercept), VOI LUT or window, MONOCHROME1 inverted,
    then min-max scaled to 0..255. Colour (RGB/YBR, converted to RGB by pydicom; palette colour expanded):
    kept when 8-bit, else min-max scaled.
    """
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[0]
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, ds)
    if pixels.ndim == 3:
        return pixels if pixels.dtype == np.uint8 else _minmax_uint8(pixels)
    values = np.asarray(apply_voi_lut(apply_modality_lut(pixels, ds), ds), dtype=np.float64)
    if photometric == "MONOCHROME1":
        values = -values
    return _minmax_uint8(values)


def pillow_to_uint8(path: str | Path) -> np.ndarray:
    """Decode a PNG/JPEG/BMP/TIFF to uint8 (H, W) or (H, W, 3); 16-bit and float images are min-max scaled."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in HIGH_DEPTH_MODES:
            return _minmax_uint8(np.asarray(image))
        return np.asarray(image.convert("L" if image.mode in GRAY_MODES else "RGB"))


def read_image(path: str | Path) -> np.ndarray:
    """Decode any supported file to uint8; a colour image whose three channels are equal comes back as (H, W)."""
    path = Path(path)
    array = dicom_to_uint8(path) if is_dicom(path) else pillow_to_uint8(path)
    if array.ndim == 3 and (array == array[..., :1]).all():
        return array[..., 0]
    return array


def _reason(error: Exception) -> str:
    if isinstance(error, FileNotFoundError):
        return "file not found"
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}"[:160]


def _decode(path: Path, size: int) -> torch.Tensor:
    """One file as a uint8 (C, size, size) tensor, C being 1 or 3 as stored."""
    tensor = torch.from_numpy(np.array(read_image(path)))  # a writable, contiguous copy
    tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    return TF.resize(tensor, [size, size], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)


def decode_files(paths: list[Path], size: int) -> tuple[list[torch.Tensor | None], list[BadFile]]:
    """Decode and resize every file; a failure leaves None in its place and is reported as a BadFile."""
    images: list[torch.Tensor | None] = []
    bad: list[BadFile] = []
    progress = tqdm(paths, desc=f"{NAME}: decoding", unit="file", disable=len(paths) <= PROGRESS_MIN_FILES, leave=False)
    for path in progress:
        try:
            images.append(_decode(path, size))
        except Exception as error:  # any reader failure makes the file bad, whatever the library raises
            images.append(None)
            bad.append(BadFile(path, _reason(error)))
    return images, bad


def bad_files_message(bad: list[BadFile], total: int) -> str:
    """One line naming the unreadable files (the first few) and how to proceed."""
    shown = "; ".join(f"{b.path} ({b.reason})" for b in bad[:BAD_FILES_SHOWN])
    more = f" ... and {len(bad) - BAD_FILES_SHOWN} more" if len(bad) > BAD_FILES_SHOWN else ""
    return (
        f"{len(bad)} of {total} files could not be read: {shown}{more}. "
        "Fix or remove them, or pass --skip-bad to leave them out"
    )


def sorted_classes(names: set[str]) -> tuple[str, ...]:
    """Class names in index order: numerically when all are whole numbers (so '10' follows '9'), else alphabetically."""
    if all(name.isdecimal() for name in names):
        return tuple(sorted(names, key=int))
    return tuple(sorted(names))


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def image_files(folder: Path) -> list[Path]:
    """Image files under a folder, recursively: known image suffixes, or DICOM by its preamble; hidden ones skipped."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and not _hidden(path, folder)
        and (path.suffix.lower() in IMAGE_SUFFIXES | DICOM_SUFFIXES or has_dicom_preamble(path))
    )


def _class_samples(folder: Path, split: str | None, shown: str) -> list[Sample]:
    """Samples of every class sub-folder of `folder`; `shown` is how the folder is named in errors."""
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise MedAugBenchError(
            f"no class sub-folders in {shown}; put the images in {shown}/<class name>/ "
            "or pass csv=FILE with columns path,label"
        )
    samples = []
    for class_dir in class_dirs:
        files = image_files(class_dir)
        if not files:
            raise MedAugBenchError(
                f"class folder {class_dir} holds no DICOM/PNG/JPEG/BMP/TIFF images; add images or remove the folder"
            )
        samples += [Sample(path, class_dir.name, split) for path in files]
    return samples


def _checked_scan(samples: list[Sample], where: Path, layout: str) -> Scan:
    classes = sorted_classes({s.label for s in samples})
    if len(classes) < 2:
        raise MedAugBenchError(
            f"{where} gives {len(classes)} class ({', '.join(classes)}); a classifier needs at least 2"
        )
    return Scan(samples, classes, where, layout)


def scan_folder(root: Path) -> Scan:
    """List the files of a class-folder layout, with or without train/val/test folders."""
    if not root.is_dir():
        problem = "is not a folder" if root.exists() else "does not exist"
        raise MedAugBenchError(f"image folder {root} {problem}; pass root=PATH to a folder of class sub-folders")
    present = [name for name in SPLITS if (root / name).is_dir()]
    if not present:
        return _checked_scan(_class_samples(root, None, str(root)), root, "class folders")
    if len(present) < len(SPLITS):
        missing = ", ".join(f"{root / name}" for name in SPLITS if name not in present)
        raise MedAugBenchError(
            f"{root} has {', '.join(present)} folder(s) but not {missing}; "
            "for given splits create all of train/, val/, test/"
        )
    samples = [s for name in SPLITS for s in _class_samples(root / name, name, str(root / name))]
    return _checked_scan(samples, root, "split folders")


def scan_csv(csv_path: Path, base: Path | None = None) -> Scan:
    """List the files of a CSV with columns path,label[,split]; relative paths resolve against `base` or the CSV's
    folder."""
    hint = "pass csv=FILE with a header row path,label (and optionally split)"
    if not csv_path.is_file():
        raise MedAugBenchError(f"CSV file {csv_path} does not exist; {hint}")
    base = base if base is not None else csv_path.parent
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csvlib.reader(handle) if any(cell.strip() for cell in row)]
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    missing = [column for column in ("path", "label") if column not in header]
    if missing:
        raise MedAugBenchError(
            f"CSV {csv_path} lacks column(s) {', '.join(missing)} (found: {', '.join(header) or 'nothing'}); {hint}"
        )
    column = {name: header.index(name) for name in ("path", "label", "split") if name in header}
    samples = []
    for line, row in enumerate(rows[1:], start=2):
        values = {name: row[index].strip() if index < len(row) else "" for name, index in column.items()}
        if not values["path"] or not values["label"]:
            raise MedAugBenchError(f"CSV {csv_path} line {line}: empty path or label; every row needs both")
        split = values.get("split")
        if split is not None and split.lower() not in SPLITS:
            raise MedAugBenchError(
                f"CSV {csv_path} line {line}: unknown split {split!r}; use one of {', '.join(SPLITS)}"
            )
        path = Path(values["path"]).expanduser()
        samples.append(Sample(path if path.is_absolute() else base / path, values["label"], split and split.lower()))
    if not samples:
        raise MedAugBenchError(f"CSV {csv_path} has a header but no rows; add one row per image")
    return _checked_scan(samples, csv_path, "csv")


def stratified_split(
    labels: list[int], classes: tuple[str, ...], seed: int, val_fraction: float, test_fraction: float
) -> list[str]:
    """The split of each sample, drawn per class so that each class has at least one image in each split.

    The same labels, fractions and seed always give the same assignment.
    """
    counts = torch.bincount(torch.as_tensor(labels, dtype=torch.long), minlength=len(classes))
    for name, count in zip(classes, counts.tolist()):
        if count < MIN_PER_CLASS:
            raise MedAugBenchError(
                f"class {name!r} has {count} usable image(s); each class needs at least {MIN_PER_CLASS} "
                "(one each for train, val and test): add images or remove the class"
            )
    generator = torch.Generator().manual_seed(seed)
    label_tensor = torch.as_tensor(labels, dtype=torch.long)
    assigned = ["train"] * len(labels)
    for index, count in enumerate(counts.tolist()):
        members = torch.nonzero(label_tensor == index).flatten()
        members = members[torch.randperm(count, generator=generator)].tolist()
        n_test = min(max(1, round(count * test_fraction)), count - 2)
        n_val = min(max(1, round(count * val_fraction)), count - 1 - n_test)
        for member in members[:n_test]:
            assigned[member] = "test"
        for member in members[n_test : n_test + n_val]:
            assigned[member] = "val"
    return assigned


def to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """Give a (C, H, W) uint8 image 1 or 3 channels: grayscale is replicated, RGB becomes luminance."""
    if image.shape[0] == channels:
        return image
    if channels == 3:
        return image.expand(3, -1, -1)
    return TF.rgb_to_grayscale(image)


def task_for(classes: tuple[str, ...], channels: int) -> TaskSpec:
    """Binary for two classes, else multiclass."""
    return TaskSpec(kind="binary" if len(classes) == 2 else "multiclass", labels=classes, channels=channels)


class ImageFolderSource:
    """The user's own images as a dataset source; see the module docstring for the layouts."""

    name = NAME

    def __init__(
        self,
        root: str | Path | None = None,
        csv: str | Path | None = None,
        channels: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
    ) -> None:
        self.root = Path(root).expanduser() if root is not None else None
        self.csv = Path(csv).expanduser() if csv is not None else None
        try:  # options may arrive as strings from the command line (-O channels=3)
            self.channels = int(channels) if channels is not None else None
            self.val_fraction = float(val_fraction)
            self.test_fraction = float(test_fraction)
        except ValueError as error:
            raise MedAugBenchError(
                f"imagefolder options channels, val_fraction, test_fraction must be numbers: {error}"
            ) from None
        if self.channels not in (None, 1, 3):
            raise MedAugBenchError(f"channels must be 1 or 3, got {channels}")
        if not (0 < self.val_fraction and 0 < self.test_fraction and self.val_fraction + self.test_fraction < 1):
            raise MedAugBenchError(
                "val_fraction and test_fraction must be above 0 and sum below 1, "
                f"got {self.val_fraction} and {self.test_fraction}"
            )

    def scan(self) -> Scan:
        """List the files and classes of the configured layout, without decoding."""
        if self.csv is not None:
            return scan_csv(self.csv, self.root)
        if self.root is None:
            raise MedAugBenchError(
                "the imagefolder dataset needs your data: pass root=PATH (a folder of class sub-folders) "
                "or csv=FILE (path,label)"
            )
        return scan_folder(self.root)

    def info(self, options: DataOptions) -> DatasetInfo:
        """Classes and file counts from a scan; channels are the `channels` option or 1, as colour is only seen
        on load."""
        if self.root is None and self.csv is None:
            return DatasetInfo(
                NAME, TaskSpec("multiclass", (), self.channels or 1), None, LICENSE, "pass root=PATH", DESCRIPTION
            )
        scan = self.scan()
        local = f"{len(scan.samples)} files in {scan.where}"
        return DatasetInfo(
            NAME, task_for(scan.classes, self.channels or 1), scan.split_sizes(), LICENSE, local, DESCRIPTION
        )

    def prepare(self, options: DataOptions) -> list[Path]:
        """Check the layout and return the files `load` would decode; nothing is downloaded."""
        return [sample.path for sample in self.scan().samples]

    def load(self, options: DataOptions) -> LoadedDataset:
        """Decode every file at options.size, drop or refuse unreadable ones, and build the three splits."""
        scan = self.scan()
        images, bad = decode_files([s.path for s in scan.samples], options.size)
        if bad and not options.skip_bad:
            raise MedAugBenchError(bad_files_message(bad, len(scan.samples)))
        kept = [(sample, image) for sample, image in zip(scan.samples, images) if image is not None]
        channels = self.channels or (3 if any(image.shape[0] == 3 for _, image in kept) else 1)
        index = {name: i for i, name in enumerate(scan.classes)}
        labels = [index[sample.label] for sample, _ in kept]
        if scan.explicit_splits:
            assigned = [sample.split for sample, _ in kept]
        else:
            assigned = stratified_split(labels, scan.classes, options.seed, self.val_fraction, self.test_fraction)
        splits = {}
        for name in SPLITS:
            members = [i for i, split in enumerate(assigned) if split == name]
            if not members:
                raise MedAugBenchError(f"the {name} split of {scan.where} has no readable images; give it at least one")
            splits[name] = Split(
                torch.stack([to_channels(kept[i][1], channels) for i in members]).contiguous(),
                torch.tensor([labels[i] for i in members], dtype=torch.long),
            )
        provenance = {
            "source": str(scan.where),
            "layout": scan.layout,
            "files": len(kept),
            "split_seed": None if scan.explicit_splits else options.seed,
            "skipped": [{"path": str(b.path), "reason": b.reason} for b in bad],
        }
        return LoadedDataset(
            name=NAME,
            task=task_for(scan.classes, channels),
            source_size=options.size,
            image_size=options.size,
            provenance=provenance,
            **splits,
        )
