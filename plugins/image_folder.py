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

import torch

from benchmark import (
    SPLITS,
    DataOptions,
    DatasetInfo,
    LoadedDataset,
    MedAugBenchError,
    Split,
    TaskSpec,
)
from benchmark.data.decode import (
    bad_files_message,
    decode_files,
    image_files,
    to_channels,
)
from plugins.builtin import IMAGEFOLDER as NAME
from plugins.builtin import IMAGEFOLDER_DESCRIPTION as DESCRIPTION

LICENSE = "user data"
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


def sorted_classes(names: set[str]) -> tuple[str, ...]:
    """Class names in index order: numerically when all are whole numbers (so '10' follows '9'), else alphabetically."""
    if all(name.isdecimal() for name in names):
        return tuple(sorted(names, key=int))
    return tuple(sorted(names))


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


def _csv_rows(csv_path: Path) -> list[list[str]]:
    """The non-blank rows of a UTF-8 CSV (a byte-order mark is allowed); another encoding is one error naming it."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            return [row for row in csvlib.reader(handle) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError as error:
        raise MedAugBenchError(
            f"CSV {csv_path} is not UTF-8 text (byte {error.object[error.start]:#04x} at offset {error.start}, e.g. "
            "a Latin-1 or Windows-1252 file); save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from None


def scan_csv(csv_path: Path, base: Path | None = None) -> Scan:
    """List the files of a CSV with columns path,label[,split]; relative paths resolve against `base` or the CSV's
    folder."""
    hint = "pass csv=FILE with a header row path,label (and optionally split)"
    if not csv_path.is_file():
        raise MedAugBenchError(f"CSV file {csv_path} does not exist; {hint}")
    base = base if base is not None else csv_path.parent
    rows = _csv_rows(csv_path)
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
        skip_bad: bool = False,
    ) -> None:
        if not isinstance(skip_bad, bool):
            raise MedAugBenchError(f"the imagefolder option skip_bad must be true or false, got {skip_bad!r}")
        self.skip_bad = skip_bad  # a grid's way to say --skip-bad: `skip_bad = true` in the dataset's params
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
        if bad and not (options.skip_bad or self.skip_bad):
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
