"""Image files to uint8 tensors: DICOM (with its LUTs and photometry) and PNG/JPEG/BMP/TIFF, found recursively,
decoded, resized and brought to 1 or 3 channels. Shared by the `imagefolder` dataset plugin and image-set loading."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import torch
from PIL import Image, ImageOps
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
GRAY_MODES = frozenset({"1", "L", "LA", "La"})
HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
PROGRESS_MIN_FILES = 200
BAD_FILES_SHOWN = 10


@dataclass(frozen=True)
class BadFile:
    """A file that could not be read or decoded, with a short reason."""

    path: Path
    reason: str


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
    progress = tqdm(paths, desc="decoding images", unit="file", disable=len(paths) <= PROGRESS_MIN_FILES, leave=False)
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
        "Fix or remove them, or leave them out with --skip-bad (in a grid: skip_bad = true in the dataset's params)"
    )


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


def to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """Give a (C, H, W) uint8 image 1 or 3 channels: grayscale is replicated, RGB becomes luminance."""
    if image.shape[0] == channels:
        return image
    if channels == 3:
        return image.expand(3, -1, -1)
    return TF.rgb_to_grayscale(image)
