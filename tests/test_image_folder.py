"""The `imagefolder` dataset plugin: DICOM and Pillow decoding, the three layouts, splits, bad files and errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from benchmark import registry
from benchmark.data.dataset import DataOptions, finalize
from benchmark.data.decode import BadFile, bad_files_message, dicom_to_uint8, read_image
from benchmark.errors import MedAugBenchError
from plugins.image_folder import ImageFolderSource

CT = Path(get_testdata_file("CT_small.dcm"))
MR = Path(get_testdata_file("MR_small.dcm"))
NO_PIXELS = Path(get_testdata_file("rtplan.dcm"))


def _copies(source: Path, folder: Path, count: int, suffix: str = ".dcm") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{source.stem}_{i}{suffix}" for i in range(count)]
    for path in paths:
        shutil.copy(source, path)
    return paths


def _png(path: Path, value: int, mode: str = "L", size: tuple[int, int] = (20, 16)) -> Path:
    """A small PNG: constant `value` in grayscale, or an RGB image whose channels differ."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "L":
        array = np.full(size[::-1], value, dtype=np.uint8)
    else:
        array = np.zeros((*size[::-1], 3), dtype=np.uint8)
        array[..., 0], array[..., 1], array[..., 2] = value, 255 - value, 7
    Image.fromarray(array, mode).save(path)
    return path


def _pngs(root: Path, per_class: dict[str, int]) -> None:
    """Grayscale PNGs, each a distinct constant value, so images can be told apart after resizing."""
    value = 0
    for name, count in per_class.items():
        for i in range(count):
            value += 5
            _png(root / name / f"{i}.png", value)


def _window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """The DICOM linear window (PS3.3 C.11.2.1.2.1), written out independently, scaled to 0..255."""
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    return (np.clip(values.astype(np.float64), low, high) - low) / (high - low) * 255


@pytest.fixture
def dicom_root(tmp_path: Path) -> Path:
    _copies(CT, tmp_path / "ct", 4)
    _copies(MR, tmp_path / "mr" / "series1", 4)  # nested folders count for their top-level class
    return tmp_path


def test_dicom_folder_loads_as_binary_uint8_at_requested_size(dicom_root: Path) -> None:
    loaded = ImageFolderSource(root=dicom_root).load(DataOptions(size=32, seed=0))

    assert loaded.task.kind == "binary"
    assert loaded.task.labels == ("ct", "mr")
    assert loaded.task.channels == 1
    assert (loaded.source_size, loaded.image_size) == (32, 32)
    # 4 per class: 1 test, 1 val, 2 train each
    assert [len(loaded.train), len(loaded.val), len(loaded.test)] == [4, 2, 2]
    for split in (loaded.train, loaded.val, loaded.test):
        assert split.images.dtype == torch.uint8
        assert tuple(split.images.shape[1:]) == (1, 32, 32)
        assert split.labels.dtype == torch.int64
    assert loaded.train.labels.sort().values.tolist() == [0, 0, 1, 1]
    assert loaded.val.labels.sort().values.tolist() == [0, 1]
    assert loaded.provenance["skipped"] == []
    # class 0 really is the CT image, decoded and resized
    ct_image = loaded.train.images[loaded.train.labels == 0][0, 0].float()
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(dicom_to_uint8(CT)).float()[None, None], size=(32, 32), mode="bilinear", antialias=True
    )[0, 0]
    assert (ct_image - expected).abs().max() <= 2


def test_dicom_rescale_and_window_are_applied(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT)
    assert (ds.RescaleSlope, ds.RescaleIntercept) == (1, -1024)
    ds.WindowCenter, ds.WindowWidth = 40, 400  # soft-tissue window in Hounsfield units
    windowed = tmp_path / "ct_window.dcm"
    ds.save_as(windowed)

    out = dicom_to_uint8(windowed)

    hounsfield = ds.pixel_array.astype(np.float64) * 1 - 1024
    assert out.dtype == np.uint8 and out.shape == (128, 128)
    assert (out.min(), out.max()) == (0, 255)
    np.testing.assert_allclose(out, _window(hounsfield, 40, 400), atol=1)
    # the same through pydicom's own LUT functions, then min-max
    via_pydicom = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float64)
    via_pydicom = (via_pydicom - via_pydicom.min()) / (via_pydicom.max() - via_pydicom.min()) * 255
    np.testing.assert_allclose(out, via_pydicom, atol=1)
    # ignoring the rescale would put the window on raw values and give a different image
    assert np.abs(out.astype(float) - _window(ds.pixel_array, 40, 400)).mean() > 50


def test_dicom_stored_window_saturates_bright_pixels() -> None:
    ds = pydicom.dcmread(MR)
    out = dicom_to_uint8(MR)
    naive = (ds.pixel_array - ds.pixel_array.min()) / np.ptp(ds.pixel_array) * 255

    assert (out.min(), out.max()) == (0, 255)
    window = _window(ds.pixel_array, float(ds.WindowCenter), float(ds.WindowWidth))
    np.testing.assert_allclose(out, (window - window.min()) / (window.max() - window.min()) * 255, atol=1)
    assert (out == 255).sum() > (naive >= 254.5).sum()  # pixels above the window are clipped to white


def test_dicom_monochrome1_is_inverted(tmp_path: Path) -> None:
    ds = pydicom.dcmread(MR)
    ds.PhotometricInterpretation = "MONOCHROME1"
    inverted = tmp_path / "mono1.dcm"
    ds.save_as(inverted)

    np.testing.assert_allclose(dicom_to_uint8(inverted).astype(int), 255 - dicom_to_uint8(MR).astype(int), atol=1)


def test_dicom_multiframe_rgb_takes_first_frame() -> None:
    path = get_testdata_file("SC_rgb_rle_2frame.dcm")
    out = dicom_to_uint8(path)

    assert out.shape == (100, 100, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, pydicom.dcmread(path).pixel_array[0])


def test_dicom_without_suffix_is_found_by_preamble(tmp_path: Path) -> None:
    _copies(CT, tmp_path / "a", 3, suffix="")
    _copies(MR, tmp_path / "b", 3, suffix="")
    (tmp_path / "a" / "notes.txt").write_text("not an image")  # neither an image suffix nor a DICOM preamble
    (tmp_path / "b" / ".DS_Store").write_bytes(b"\0" * 200)

    source = ImageFolderSource(root=tmp_path)
    names = sorted(path.name for path in source.prepare(DataOptions()))
    assert names == ["CT_small_0", "CT_small_1", "CT_small_2", "MR_small_0", "MR_small_1", "MR_small_2"]
    loaded = source.load(DataOptions(size=16))
    labels = torch.cat([loaded.train.labels, loaded.val.labels, loaded.test.labels])
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]


@pytest.fixture
def bad_root(tmp_path: Path) -> tuple[Path, list[Path]]:
    _copies(CT, tmp_path / "ct", 3)
    _copies(MR, tmp_path / "mr", 3)
    no_pixels = tmp_path / "ct" / "plan.dcm"
    shutil.copy(NO_PIXELS, no_pixels)
    fake_png = tmp_path / "mr" / "fake.png"
    fake_png.write_text("this is text, not a PNG")
    return tmp_path, [no_pixels, fake_png]


def test_unreadable_files_stop_the_load_and_are_named(bad_root: tuple[Path, list[Path]]) -> None:
    root, bad = bad_root
    with pytest.raises(AttributeError):
        _ = pydicom.dcmread(NO_PIXELS).pixel_array  # the premise: this DICOM has no pixel data

    with pytest.raises(MedAugBenchError) as caught:
        ImageFolderSource(root=root).load(DataOptions(size=16))

    message = str(caught.value)
    assert "2 of 8 files could not be read" in message
    assert all(str(path) in message for path in bad)
    assert "--skip-bad" in message
    assert "\n" not in message


def test_skip_bad_leaves_unreadable_files_out_and_records_them(bad_root: tuple[Path, list[Path]]) -> None:
    root, bad = bad_root
    loaded = ImageFolderSource(root=root).load(DataOptions(size=16, skip_bad=True))

    assert len(loaded.train) + len(loaded.val) + len(loaded.test) == 6
    skipped = loaded.provenance["skipped"]
    assert sorted(entry["path"] for entry in skipped) == sorted(str(path) for path in bad)
    assert all(entry["reason"] for entry in skipped)


def test_bad_files_message_lists_ten_then_counts_the_rest() -> None:
    bad = [BadFile(Path(f"/data/{i}.png"), "broken") for i in range(13)]
    message = bad_files_message(bad, 20)

    assert "/data/9.png" in message and "/data/10.png" not in message
    assert "... and 3 more" in message


def test_png_channels_are_detected_and_can_be_forced(tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / "gray" / f"{i}.png", 40 * i, size=(30, 20))
        _png(tmp_path / "colour" / f"{i}.png", 40, mode="RGB", size=(12, 12))
        _png(tmp_path / "gray_as_rgb" / f"{i}.png", 60)
    Image.fromarray(np.full((10, 10, 3), 90, np.uint8), "RGB").save(tmp_path / "gray_as_rgb" / "rgb.png")

    auto = ImageFolderSource(root=tmp_path).load(DataOptions(size=24))
    assert auto.task.kind == "multiclass" and auto.task.labels == ("colour", "gray", "gray_as_rgb")
    assert auto.task.channels == 3 and auto.train.images.shape[1:] == (3, 24, 24)
    gray = auto.train.images[auto.train.labels == 1]
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])

    forced = ImageFolderSource(root=tmp_path, channels=1).load(DataOptions(size=24))
    assert forced.task.channels == 1 and forced.train.images.shape[1:] == (1, 24, 24)
    luminance = round(0.299 * 40 + 0.587 * (255 - 40) + 0.114 * 7)  # ITU-R 601 weights, as Pillow's "L"
    colour = forced.train.images[forced.train.labels == 0].int()
    assert len(colour) > 0 and (colour - luminance).abs().max() <= 1

    # an RGB file with equal channels is grayscale; a folder of only such files gives one channel
    assert read_image(tmp_path / "gray_as_rgb" / "rgb.png").shape == (10, 10)
    shutil.rmtree(tmp_path / "colour")
    assert ImageFolderSource(root=tmp_path).load(DataOptions(size=8)).task.channels == 1


def test_csv_layout_with_split_column(tmp_path: Path) -> None:
    images = tmp_path / "images"
    rows = ["path,label,split"]
    for i, (label, split) in enumerate(
        [
            ("pneumonia", "train"),
            ("normal", "train"),
            ("normal", "TRAIN"),
            ("pneumonia", "val"),
            ("normal", "test"),
            ("pneumonia", "test"),
        ]
    ):
        _png(images / f"{i}.png", 10 * i)
        rows.append(f"images/{i}.png,{label},{split}")
    elsewhere = _png(tmp_path / "abs" / "x.png", 99)
    rows.append(f"{elsewhere},normal,val")
    table = tmp_path / "labels.csv"
    table.write_text("\n".join(rows) + "\n")

    source = ImageFolderSource(csv=table)
    info = source.info(DataOptions())
    assert info.split_sizes == {"train": 3, "val": 2, "test": 2}
    assert info.task.labels == ("normal", "pneumonia") and info.task.kind == "binary"

    loaded = source.load(DataOptions(size=8))
    assert loaded.train.labels.tolist() == [1, 0, 0]
    assert loaded.val.labels.tolist() == [1, 0]
    assert loaded.test.labels.tolist() == [0, 1]
    assert int(loaded.val.images[1, 0, 4, 4]) == 99
    assert loaded.provenance["layout"] == "csv" and loaded.provenance["split_seed"] is None


def test_csv_numeric_labels_sort_as_numbers(tmp_path: Path) -> None:
    rows = ["path,label"]
    for label in ("2", "10", "9"):
        for i in range(3):
            _png(tmp_path / f"{label}_{i}.png", i)
            rows.append(f"{label}_{i}.png,{label}")
    (tmp_path / "t.csv").write_text("\n".join(rows))

    assert ImageFolderSource(csv=tmp_path / "t.csv").info(DataOptions()).task.labels == ("2", "9", "10")


def test_split_folders_layout(tmp_path: Path) -> None:
    for split, count in (("train", 4), ("val", 2), ("test", 3)):
        for name in ("benign", "malignant"):
            for i in range(count):
                _png(tmp_path / split / name / f"{i}.png", i)

    source = ImageFolderSource(root=tmp_path)
    assert source.info(DataOptions()).split_sizes == {"train": 8, "val": 4, "test": 6}
    loaded = source.load(DataOptions(size=8, seed=3))
    assert [len(loaded.train), len(loaded.val), len(loaded.test)] == [8, 4, 6]
    assert loaded.task.labels == ("benign", "malignant")
    assert loaded.test.class_counts(loaded.task) == [3, 3]


def _train_values(root: Path, seed: int) -> list[int]:
    loaded = ImageFolderSource(root=root).load(DataOptions(size=8, seed=seed))
    return sorted(int(v) for v in loaded.train.images[:, 0, 4, 4])


def test_split_is_deterministic_per_seed_and_stratified(tmp_path: Path) -> None:
    _pngs(tmp_path, {"a": 10, "b": 10, "c": 6})

    assert _train_values(tmp_path, 0) == _train_values(tmp_path, 0)
    assert _train_values(tmp_path, 0) != _train_values(tmp_path, 1)
    loaded = ImageFolderSource(root=tmp_path).load(DataOptions(size=8, seed=1))
    task = loaded.task
    assert loaded.test.class_counts(task) == [2, 2, 1]
    assert loaded.val.class_counts(task) == [1, 1, 1]
    assert loaded.train.class_counts(task) == [7, 7, 4]


def test_finalize_applies_shared_options(tmp_path: Path) -> None:
    _pngs(tmp_path, {"a": 10, "b": 10})
    options = DataOptions(size=16, image_size=8, per_class_cap=2)
    loaded = finalize(ImageFolderSource(root=tmp_path).load(options), options)

    assert loaded.source_size == 16 and loaded.image_size == 8
    assert loaded.train.images.shape == (4, 1, 8, 8)


def test_info_is_cheap_and_works_without_root(tmp_path: Path) -> None:
    placeholder = ImageFolderSource().info(DataOptions())
    assert placeholder.name == "imagefolder" and placeholder.local == "pass root=PATH"
    assert placeholder.task.labels == ()

    _pngs(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "b" / "2.png").write_text("corrupt, but info does not decode")
    info = ImageFolderSource(root=tmp_path).info(DataOptions())
    assert info.local == f"6 files in {tmp_path}"
    assert info.split_sizes is None and info.license == "user data"


@pytest.mark.parametrize(
    ("make", "kwargs", "expected"),
    [
        (lambda root: None, {}, "root=PATH"),
        (lambda root: None, {"root": "missing"}, "does not exist"),
        (lambda root: _png(root / "loose.png", 1), {"root": "."}, "no class sub-folders"),
        (lambda root: (_pngs(root, {"a": 3}), (root / "empty").mkdir()), {"root": "."}, "empty"),
        (lambda root: _pngs(root, {"a": 3, "b": 2}), {"root": "."}, "class 'b' has 2 usable image(s)"),
        (lambda root: _pngs(root, {"only": 3}), {"root": "."}, "at least 2"),
        (lambda root: (_pngs(root, {"a": 3, "b": 3}), (root / "train").mkdir()), {"root": "."}, "val"),
        (lambda root: None, {"csv": "nope.csv"}, "does not exist"),
        (
            lambda root: (root / "t.csv").write_text("file,class\nx.png,a\n"),
            {"csv": "t.csv"},
            "lacks column(s) path, label",
        ),
        (
            lambda root: (root / "t.csv").write_text("path,label,split\nx.png,a,training\n"),
            {"csv": "t.csv"},
            "'training'",
        ),
        (lambda root: (root / "t.csv").write_text("path,label\nx.png,\n"), {"csv": "t.csv"}, "line 2"),
    ],
)
def test_user_errors_are_one_actionable_line(tmp_path: Path, make, kwargs: dict, expected: str) -> None:
    make(tmp_path)
    kwargs = {key: tmp_path / value for key, value in kwargs.items()}
    with pytest.raises(MedAugBenchError) as caught:
        ImageFolderSource(**kwargs).load(DataOptions(size=8))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    _pngs(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "covid").mkdir()
    with pytest.raises(MedAugBenchError, match="covid"):
        ImageFolderSource(root=tmp_path).prepare(DataOptions())


def test_invalid_options_are_refused() -> None:
    with pytest.raises(MedAugBenchError, match="channels"):
        ImageFolderSource(root=".", channels=2)
    with pytest.raises(MedAugBenchError, match="sum below 1"):
        ImageFolderSource(root=".", val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(MedAugBenchError, match="must be numbers"):
        ImageFolderSource(root=".", val_fraction="ten percent")
    assert ImageFolderSource(root=".", channels="3", test_fraction="0.25").channels == 3  # strings from `-O KEY=VALUE`


def test_plugin_registers_imagefolder() -> None:
    entry = registry.get_entry("dataset", "imagefolder")
    assert registry.resolved(entry.factory) is ImageFolderSource and "DICOM" in entry.description
