"""Robustness under MedMNIST-C corruptions (Di Salvo et al. 2024, PyPI `medmnistc`): the dataset's own corruption
list at its 5 severities, applied to the test split as the package's `DatasetManager` applies them (same order, same
seeding, so the same bytes), cached, and a trained classifier's balanced error, AUC, ECE and per-class recall on
every corrupted set.

The package draws from Python's and numpy's global RNGs; `package_rng` seeds them as the package's `seed_everything`
does for one generation and restores the caller's states after, so nothing else sees or disturbs those draws. Its
severities are calibrated on 224-pixel images and are applied here at the size the classifier trains on. Two
repairs to medmnistc 0.1.0, both in `motion_blur_any_size`: its motion blur calls numpy's removed binary `fromstring`
and takes a greyscale result for colour at any size but 224 pixels.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import importlib.metadata
import io
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from PIL import Image

from benchmark.data.dataset import LoadedDataset, Split
from benchmark.data.files import atomic_output, cache_dir
from benchmark.errors import MedAugBenchError
from benchmark.train.config import TrainConfig
from benchmark.train.loop import Trained, predict
from benchmark.train.metrics import classification_metrics
from benchmark.train.record import CorruptionScore, RobustnessReport, RunRecord

PACKAGE = "medmnistc"
SEVERITIES = 5
RECIPE = 1  # bump when the way corrupted sets are made changes: it is part of the cache key
INSTALL = (
    "install the robustness extra and the package without its outdated pins (pip install -e '.[robustness]' && "
    "pip install --no-deps medmnistc==0.1.0; scripts/dev.sh install does both) and ImageMagick's MagickWand library "
    "(Debian/Ubuntu: apt-get install libmagickwand-dev; macOS: brew install imagemagick)"
)


def load_registry() -> ModuleType:
    """medmnistc's corruption registry; a missing package or MagickWand library is one message naming the install."""
    try:
        import medmnistc.corruptions.registry as registry
    except (ImportError, OSError) as exc:  # Wand raises ImportError when MagickWand is missing
        message = f"MedMNIST-C corruptions need the medmnistc package and Wand ({exc}); {INSTALL}"
        raise MedAugBenchError(message) from exc
    return registry


def package_version() -> str:
    return importlib.metadata.version(PACKAGE)


def corruptions(dataset: str) -> dict:
    """The dataset's MedMNIST-C corruptions by name, in the package's order, as copies (the package's are shared),
    the motion blur repaired (`motion_blur_any_size`)."""
    registry = load_registry()
    if dataset not in registry.CORRUPTIONS_DS:
        raise MedAugBenchError(
            f"MedMNIST-C defines no corruptions for {dataset!r} (it covers "
            f"{', '.join(sorted(registry.CORRUPTIONS_DS))}); turn robustness off for this dataset, and give the "
            "medmnistc strategy one of those lists (-S corruptions_of=FLAG)"
        )
    return {name: repaired(corruptor) for name, corruptor in registry.CORRUPTIONS_DS[dataset].items()}


def is_rgb(dataset: str) -> bool:
    """Whether the package keeps the dataset's corrupted images in colour (else it converts them to greyscale)."""
    return load_registry().DATASET_RGB[dataset]


def repaired(corruptor: object) -> object:
    """A copy of `corruptor`; a motion blur becomes a `motion_blur_any_size()` with the same severities."""
    from medmnistc.corruptions.filter import MotionBlur

    if isinstance(corruptor, MotionBlur):
        return motion_blur_any_size()(corruptor.severity_params)
    return copy.copy(corruptor)


@functools.cache
def motion_blur_any_size() -> type:
    """medmnistc's `MotionBlur` repaired, as a subclass made when first needed (the package is optional)."""
    from medmnistc.corruptions.filter import MotionBlur

    class MotionBlurAnySize(MotionBlur):
        """The package's motion blur, draw for draw and with its ImageMagick call, decoding the result with
        `np.frombuffer` (its `np.fromstring` fails on numpy 2) and telling greyscale from colour by the array's
        rank (it tests for a 224-pixel shape)."""

        def apply(self, img: Image.Image, severity: int = -1, augmentation: bool = False) -> np.ndarray:
            radius, sigma = self.severity_params[severity] if not augmentation else _drawn_motion(self)
            return _motion_blur(img, radius, sigma, angle=np.random.uniform(-45, 45))

    return MotionBlurAnySize


def _drawn_motion(corruptor: object) -> tuple[float, float]:
    """Radius and sigma drawn as the package draws them for augmentation (uniform between the mildest and the
    strongest severity)."""
    (radius_low, sigma_low), (radius_high, sigma_high) = corruptor.severity_params[0], corruptor.severity_params[-1]
    return np.random.uniform(low=radius_low, high=radius_high), np.random.uniform(low=sigma_low, high=sigma_high)


def _motion_blur(img: Image.Image, radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick's motion blur of `img` through Wand, as (H, W, 3) uint8."""
    import cv2
    from medmnistc.corruptions.filter import MotionImage

    with io.BytesIO() as png:
        img.save(png, format="PNG")
        blurred = MotionImage(blob=png.getvalue())
    blurred.motion_blur(radius=radius, sigma=sigma, angle=angle)
    decoded = cv2.imdecode(np.frombuffer(blurred.make_blob(), np.uint8), cv2.IMREAD_UNCHANGED)
    rgb = decoded[..., [2, 1, 0]] if decoded.ndim == 3 else np.stack([decoded] * 3, axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


@contextlib.contextmanager
def package_rng(seed: int) -> Iterator[np.random.Generator]:
    """Python's and numpy's global RNGs seeded as medmnistc's `seed_everything(seed)` seeds them, and its numpy
    Generator (impulse noise's), for one block; the caller's global states are restored after."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield np.random.default_rng(seed)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


@contextlib.contextmanager
def magick_threads() -> Iterator[None]:
    """ImageMagick's OpenMP threads (the motion blur's; by default one per core) capped at torch's intra-op thread
    count, a cell's `threads`, for one block: the package uses no more cores than the cell's own torch work."""
    from wand.resource import limits

    before = limits["thread"]
    limits["thread"] = torch.get_num_threads()
    try:
        yield
    finally:
        limits["thread"] = before


def corrupt_image(corruptor: object, image: np.ndarray, severity: int, rgb: bool) -> np.ndarray:
    """One (H, W) or (H, W, 3) uint8 image corrupted at `severity` (0-based) as the package's DatasetManager does it:
    as RGB, back to greyscale for a greyscale dataset."""
    corrupted = corruptor.apply(Image.fromarray(image).convert("RGB"), severity)
    if not rgb:
        corrupted = Image.fromarray(corrupted).convert("L")
    return np.asarray(corrupted, dtype=np.uint8)


def each_corruption(dataset: str, images: np.ndarray, seed: int, keep: Callable[[str, np.ndarray], None]) -> None:
    """Every corruption of `dataset` at every severity of `images` ((N, H, W) or (N, H, W, 3) uint8), in the
    package's order from one seeding, handed to `keep` as (name, (SEVERITIES, N, ...) uint8) when made: the bytes the
    package's DatasetManager makes. `keep` must not draw from the global RNGs (they are the package's meanwhile)."""
    rgb = is_rgb(dataset)
    with package_rng(seed) as rng, magick_threads():
        for name, corruptor in corruptions(dataset).items():
            if name == "impulse_noise":
                corruptor.rng = rng  # as DatasetManager does: skimage's noise draws from the seeded Generator
            keep(name, corrupt_all(corruptor, images, rgb))


def corrupt_all(corruptor: object, images: np.ndarray, rgb: bool) -> np.ndarray:
    """Every image at every severity, image by image within a severity (the package's order): (SEVERITIES, N,
    ...)."""
    return np.stack(
        [np.stack([corrupt_image(corruptor, image, s, rgb) for image in images]) for s in range(SEVERITIES)]
    )


def corrupt_images(dataset: str, images: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """`each_corruption`'s sets in memory: {corruption: (SEVERITIES, N, ...) uint8}."""
    sets: dict[str, np.ndarray] = {}
    each_corruption(dataset, images, seed, sets.__setitem__)
    return sets


def to_package_layout(images: torch.Tensor) -> np.ndarray:
    """Harness images (N, C, H, W) uint8 as the package takes them: (N, H, W) greyscale or (N, H, W, 3) colour."""
    array = images.numpy()
    return array[:, 0] if array.shape[1] == 1 else array.transpose(0, 2, 3, 1)


def to_harness_layout(images: np.ndarray, channels: int) -> torch.Tensor:
    """Stored corrupted sets, (S, N, H, W) greyscale or (S, N, H, W, 3) colour, as (S, N, C, H, W) uint8 with the
    dataset's channel count (a greyscale dataset loaded as RGB gets its grey value in every channel)."""
    tensor = torch.from_numpy(images)
    tensor = tensor.unsqueeze(2) if tensor.ndim == 4 else tensor.movedim(-1, 2)
    return tensor.expand(-1, -1, channels, -1, -1).contiguous() if tensor.shape[2] != channels else tensor.contiguous()


@dataclass(frozen=True)
class CorruptedSets:
    """A test split's cached corrupted copies, one file per corruption, read one corruption at a time (at 224 px a
    dataset's sets can take gigabytes): iterating gives (name, (SEVERITIES, N, C, H, W) uint8)."""

    folder: Path
    names: tuple[str, ...]
    channels: int

    @property
    def key(self) -> str:
        return self.folder.name

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name in self.names:
            yield name, to_harness_layout(np.load(self.folder / f"{name}.npy"), self.channels)


def cache_key(dataset: str, test: Split, seed: int) -> str:
    """The corrupted sets' name: dataset, image size, package version, recipe, seed and a digest of the images."""
    digest = hashlib.sha256(test.images.numpy().tobytes()).hexdigest()[:16]
    size = test.images.shape[-1]
    return f"{dataset}_{size}px_{PACKAGE}-{package_version()}_r{RECIPE}_seed{seed}_{digest}"


def cache_folder(key: str) -> Path:
    return cache_dir() / "medmnistc" / key


def corrupted_test_sets(data: LoadedDataset, seed: int = 0) -> CorruptedSets:
    """The corrupted copies of `data`'s test split, from the cache, or made from `seed` and cached (each file
    written atomically as its corruption is made; any missing file makes them all again, the same bytes)."""
    folder = cache_folder(cache_key(data.name, data.test, seed))
    sets = CorruptedSets(folder, tuple(corruptions(data.name)), data.task.channels)
    if not all((folder / f"{name}.npy").is_file() for name in sets.names):
        images = to_package_layout(data.test.images)
        each_corruption(data.name, images, seed, lambda name, sets: _save(folder / f"{name}.npy", sets))
    return sets


def _save(path: Path, array: np.ndarray) -> None:
    """`array` as the .npy file `path`, atomically."""
    with atomic_output(path, "wb") as handle:
        np.save(handle, array)


def with_robustness(trained: Trained, config: TrainConfig) -> RunRecord:
    """The run's record, with its `robustness` block when `config.robustness` asks for one."""
    if not config.robustness:
        return trained.record
    device = next(trained.model.parameters()).device
    report = robustness_report(trained.model, trained.data, config, device)
    return dataclasses.replace(trained.record, robustness=report)


def robustness_report(
    model: torch.nn.Module, data: LoadedDataset, config: TrainConfig, device: torch.device, seed: int = 0
) -> RobustnessReport:
    """The selected classifier scored on every corrupted test set: balanced error (1 - balanced accuracy, with the
    test metrics' decisions), AUC, ECE and per-class recall per corruption and severity. Its seconds are evaluation
    time, never training compute."""
    started = time.perf_counter()
    sets = corrupted_test_sets(data, seed)
    scores = [
        corruption_score(model, images, name, severity, data, config, device)
        for name, severities in sets
        for severity, images in enumerate(severities, start=1)
    ]
    return RobustnessReport(
        package=f"{PACKAGE} {package_version()}",
        cache_key=sets.key,
        seed=seed,
        images=len(data.test),
        scores=scores,
        seconds=time.perf_counter() - started,
    )


def corruption_score(
    model: torch.nn.Module,
    images: torch.Tensor,
    corruption: str,
    severity: int,
    data: LoadedDataset,
    config: TrainConfig,
    device: torch.device,
) -> CorruptionScore:
    """The classifier's metrics on one corrupted copy of the test split (`severity` 1-based)."""
    probabilities = predict(model, images.to(device), data.task, config, device)
    metrics = classification_metrics(data.task, data.test.labels.numpy(), probabilities)
    return CorruptionScore.of(corruption, severity, metrics)
