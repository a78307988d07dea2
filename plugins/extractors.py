"""Feature extractors for the quality metrics: `inception` (the standard FID network) and `domain` (a network trained
on the dataset itself).

Why two: Inception FID on 28×28 grayscale medical images is widely considered dubious. Its features were learned on
ImageNet photographs, and every image is upsampled about 10× (28 → 299 px) and replicated to three channels before
it sees them, so its distances say little about what matters in an X-ray or an ultrasound. It is kept because it is
the number papers report. The `domain` network is trained by the harness, with a fixed recipe, on the images it is
given (by `make_extractor`: the dataset's full training split, whatever its source), selecting its checkpoint on a
held-out part of those images; its pooled features give an FID-style distance that is always available offline and
meaningful for the data, but its values are comparable only with other values from the same network (same
`weights_sha256`): not with published Inception FIDs, and not across datasets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import pickle
import re
from collections.abc import Iterator
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch_fidelity.feature_extractor_inceptionv3 import (
    URL_INCEPTION_V3,
    FeatureExtractorInceptionV3,
)

from benchmark import FeatureExtractor, LoadedDataset, MedAugBenchError, Split, TaskSpec, notice
from benchmark.data.files import cache_dir, fetch, file_digest
from benchmark.data.lowdata import strata
from benchmark.evaluate.features import read_shipped_weights
from benchmark.generate.checkpoints import CARD, DamagedCheckpoint, read_checkpoint, write_checkpoint
from benchmark.provenance import plugin_provenance
from benchmark.train import loop as training
from benchmark.train.config import Budget, TrainConfig
from plugins.backbones import SimpleCNN

INCEPTION_WEIGHTS_ENV = "MEDAUGBENCH_INCEPTION_WEIGHTS"
WEIGHTS_URL = URL_INCEPTION_V3
WEIGHTS_SHA256_PREFIX = "6726825d"
WEIGHTS_FILE = "model.safetensors"
"""torch.hub's convention: the file name ends with the first digits of the file's SHA-256."""
WEIGHTS_NAMES = (Path(URL_INCEPTION_V3).name, "pt_inception-2015-12-05-6726825d.pth")
"""torch-fidelity's name (what it caches under) and pytorch-fid's name for the same file (same SHA-256 prefix)."""
RESIZE = "299 bilinear (torch-fidelity, TF1.x-compatible)"


def _sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def _check_images(images: torch.Tensor, channels: tuple[int, ...], name: str) -> None:
    """Reject anything but uint8 (N, C, H, W) images with an accepted channel count."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in channels:
        raise MedAugBenchError(
            f"the {name} extractor takes uint8 images (N, C, H, W) with C in {channels}, "
            f"got {images.dtype} {tuple(images.shape)}"
        )


class _FrozenExtractor(FeatureExtractor):
    """A feature extractor that always stays in eval mode (BatchNorm uses its running statistics)."""

    def train(self, mode: bool = True) -> _FrozenExtractor:
        return super().train(False)


def hub_weights_path() -> Path:
    """Where torch-fidelity caches the weights: `torch.hub.get_dir()/checkpoints/<official file name>`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAMES[0]


def _download_weights(target: Path) -> Path:
    """Fetch the official file into `target`, kept only if its SHA-256 starts with the official prefix."""
    return fetch(
        WEIGHTS_URL,
        target,
        "sha256",
        WEIGHTS_SHA256_PREFIX,
        offline_hint=(
            "no Inception weights were found: copy that file "
            "(torch-fidelity's weights-inception-2015-12-05-6726825d.pth, "
            f"or pytorch-fid's pt_inception-2015-12-05-6726825d.pth) to {target}, or set {INCEPTION_WEIGHTS_ENV}=PATH, "
            "or pass weights=PATH"
        ),
        manual_hint="fetch the file yourself and pass weights=PATH",
    )


def find_inception_weights(weights: str | os.PathLike | None = None) -> Path:
    """The weights file: `weights`, else $MEDAUGBENCH_INCEPTION_WEIGHTS, else the torch hub cache, else a download."""
    for value, origin in (
        (weights, "weights="),
        (os.environ.get(INCEPTION_WEIGHTS_ENV) or None, INCEPTION_WEIGHTS_ENV),
    ):
        if value is not None:
            path = Path(value).expanduser()
            if not path.is_file():
                raise MedAugBenchError(
                    f"Inception weights file {path} (from {origin}) not found; "
                    f"point {origin} at the .pth or .safetensors file"
                )
            return path
    for name in WEIGHTS_NAMES:
        cached = hub_weights_path().with_name(name)
        if cached.is_file():
            return cached
    return _download_weights(hub_weights_path())


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors only: safetensors, or `torch.load(weights_only=True)`, which refuses arbitrary pickled objects."""
    try:
        if path.suffix == ".safetensors":
            return safetensors.torch.load_file(path, device="cpu")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError, safetensors.SafetensorError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise MedAugBenchError(
            f"cannot read Inception weights {path}: {reason}; the file is corrupt or not a state_dict"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MedAugBenchError(f"Inception weights {path} hold a {type(state).__name__}, not a state_dict of tensors")
    return state


class InceptionExtractor(_FrozenExtractor):
    """The FID Inception-v3 (TF 2015-12-05 weights) through torch-fidelity: 2048-d pool3 features, float32.

    Resizing is torch-fidelity's: each image goes to 299×299 with its TF1.x-compatible bilinear interpolation
    (no antialiasing), as in the reference TensorFlow FID, then (x - 128) / 128. Grayscale is replicated to RGB.
    Computed in float32 and returned as float32, like torch-fidelity; torchmetrics' FID/KID accumulate in float64.
    """

    num_features = 2048

    def __init__(self, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.weights = find_inception_weights(weights)
        state = _read_state_dict(self.weights)
        buffer = io.BytesIO()  # torch-fidelity unpickles what it is given: hand it our checked tensors, not the file
        torch.save(state, buffer)
        buffer.seek(0)
        try:
            self.net = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048"], feature_extractor_weights_path=buffer
            )
        except RuntimeError as error:
            raise MedAugBenchError(
                f"{self.weights} is not an FID Inception-v3 state_dict: {str(error).splitlines()[0]}"
            ) from None
        self.sha256 = _sha256(self.weights)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, (1, 3), "inception")
        return self.net(images.expand(-1, 3, -1, -1))[0]

    def describe(self) -> dict:
        return {
            "name": "inception",
            "weights": str(self.weights),
            "weights_sha256": self.sha256,
            "official_weights": self.sha256.startswith(WEIGHTS_SHA256_PREFIX),
            "resize": RESIZE,
            "features": "2048-d pool3",
            "dtype": "float32",
            "grayscale": "replicated to 3 channels",
        }


def holdout_split(split: Split, task: TaskSpec, fraction: float, seed: int) -> tuple[Split, Split]:
    """(fit, held-out) parts of `split`: per stratum (class, or rarest positive label) max(1, round(fraction × n))
    images are held out when it has at least two, none otherwise; seeded, so the same images give the same parts."""
    generator = torch.Generator().manual_seed(seed)
    groups = strata(split.labels, task)
    held = []
    for value in torch.unique(groups):
        members = torch.nonzero(groups == value).flatten()
        if len(members) >= 2:
            keep = min(len(members) - 1, max(1, round(fraction * len(members))))
            held.append(members[torch.randperm(len(members), generator=generator)[:keep]])
    if not held:
        raise MedAugBenchError(
            f"the domain extractor needs a class with at least 2 images to hold out one; got {len(split)} images"
        )
    mask = torch.zeros(len(split), dtype=torch.bool)
    mask[torch.cat(held)] = True
    return split.subset(torch.nonzero(~mask).flatten()), split.subset(torch.nonzero(mask).flatten())


@contextlib.contextmanager
def reproducible_training() -> Iterator[None]:
    """One intra-op thread and deterministic algorithms while the block runs, the caller's settings restored after:
    with float32 on the CPU, the same data and seed then give the same weights bit for bit whatever thread count the
    caller uses (parallel reductions sum in an order that depends on the thread count)."""
    threads = torch.get_num_threads()
    deterministic, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def domain_code() -> dict:
    """The code that trains the domain network (this plugin, its backbone and the training loop): distribution,
    version and a digest of the source files, part of the cache key so that edited code trains a new network."""
    provenance = plugin_provenance(DomainExtractor, SimpleCNN, training.StepLoop)
    return {key: provenance[key] for key in ("distribution", "version", "code_digest")}


class DomainExtractor(_FrozenExtractor):
    """SimpleCNN trained on the images it is given (fixed recipe, cached by their digest, the recipe and the code);
    256-d pooled penultimate features. The checkpoint is selected on a held-out part of those same images, so nothing
    else is seen: the reported-quality extractor gets a dataset's full training split, the early-stopping monitor a
    cell's. Training runs on the CPU in float32 inside `reproducible_training`, so the weights are reproducible.
    `weights=FILE` loads weights shipped by a results folder (checked against their card's SHA-256) instead."""

    num_features = 256

    def __init__(
        self,
        images: Split,
        task: TaskSpec,
        dataset: str = "images",
        steps: int = 300,
        seed: int = 0,
        holdout: float = 0.2,
        progress: bool = False,
        weights: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 < holdout < 1.0:
            raise MedAugBenchError(f"the domain extractor's holdout fraction must lie in (0, 1), got {holdout}")
        image_size = images.images.shape[-1]
        self.config = TrainConfig(
            dataset=dataset,
            strategy="geometric",
            backbone="simple_cnn",
            budget=Budget(steps=steps),
            batch_size=128,
            eval_every=100,
            seed=seed,
            size=image_size,
            image_size=image_size,
            device="cpu",
            amp=False,
        )
        self.recipe = {**json.loads(json.dumps(self.config.to_dict())), "holdout": holdout}
        self.trained_on = {"images": len(images), "data_digest": images.digest()}
        if weights is not None:
            self.weights = Path(weights).expanduser()
            state, shipped = read_shipped_weights(self.weights)
            self.card, self.net = shipped["card"], self._network(state, shipped["card"])
            self.code = self.card.get("code")
        else:
            self.code = domain_code()
            self.weights = self._cache_folder(dataset, image_size) / WEIGHTS_FILE
            self.card, self.net = self._cached(images, task, holdout, progress)
        self.sha256 = _sha256(self.weights)

    @property
    def image_size(self) -> int:
        return self.card["recipe"]["image_size"]

    def _cache_folder(self, dataset: str, image_size: int) -> Path:
        """The cache folder, keyed by the training images' digest, the recipe and the code that trains."""
        identity = json.dumps(
            {"data": self.trained_on["data_digest"], "recipe": self.recipe, "code": self.code}, sort_keys=True
        )
        key = hashlib.sha256(identity.encode()).hexdigest()[:16]
        folder = re.sub(r"[^A-Za-z0-9_.-]", "_", dataset)[:40]
        return cache_dir() / "extractors" / f"domain-{folder}-{image_size}px-{key}"

    def _train_and_save(self, images: Split, task: TaskSpec, holdout: float, progress: bool) -> None:
        """Train with the recipe through the project's training loop (reproducibly), selecting on the held-out part;
        write weights and card to a temp dir, then rename."""
        fit, held = holdout_split(images, task, holdout, self.config.seed)
        size = self.config.image_size
        data = LoadedDataset(
            self.config.dataset, task, train=fit, val=held, test=held, source_size=size, image_size=size
        )
        with reproducible_training():
            trained = training.train_model(self.config, progress, data=data)
        model, record = trained.model.cpu(), trained.record
        card = {
            "recipe": self.recipe,
            "code": self.code,
            "in_chans": model.features[0].in_channels,
            "num_classes": model.head.out_features,
            "trained_on": {**self.trained_on, "fit": len(fit), "held_out": len(held)},
            "holdout_metrics": dataclasses.asdict(record.metrics.val),
            "selected_by": f"held-out {training.selection_metric(record.metrics.val)}",
            "best_step": record.best["step"],
            "reproducibility": "CPU, float32, 1 thread, torch.use_deterministic_algorithms(True), seeded",
            "environment": record.environment,
        }
        cache = self.weights.parent
        try:
            write_checkpoint(cache, model.state_dict(), card, WEIGHTS_FILE)
        except OSError as error:
            if not (cache / CARD).is_file():  # not merely a concurrent run that saved it first
                raise MedAugBenchError(
                    f"cannot save the domain extractor to {cache} ({error}); delete that folder and retry"
                ) from None

    def _cached(self, images: Split, task: TaskSpec, holdout: float, progress: bool) -> tuple[dict, SimpleCNN]:
        """The cached card and network, trained first when missing; a damaged or stale entry is retrained, saying so."""
        if (self.weights.parent / CARD).is_file():
            try:
                return self._load()
            except DamagedCheckpoint as error:
                notice(f"the domain extractor cache is damaged: {error}; retraining it")
        self._train_and_save(images, task, holdout, progress)
        return self._load()

    def _load(self) -> tuple[dict, SimpleCNN]:
        """The cached card and network; a damaged or stale cache entry raises `DamagedCheckpoint` naming it."""
        cache = self.weights.parent
        try:
            state, card = read_checkpoint(cache, WEIGHTS_FILE)
            net = self._network(state, card)
            stale = card["recipe"] != self.recipe or card["trained_on"]["data_digest"] != self.trained_on["data_digest"]
        except (ValueError, KeyError, TypeError, RuntimeError) as error:
            raise DamagedCheckpoint(f"{cache / CARD} does not describe its weights ({error!r})") from None
        if stale:
            raise DamagedCheckpoint(f"{cache} was trained with a different recipe or images")
        return card, net

    @staticmethod
    def _network(state: dict[str, torch.Tensor], card: dict) -> SimpleCNN:
        """The frozen network a card describes, with `state` loaded."""
        net = SimpleCNN(card["in_chans"], card["num_classes"], card["recipe"]["image_size"])
        net.load_state_dict(state)
        return net.requires_grad_(False).eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, (self.card["in_chans"],), "domain")
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise MedAugBenchError(
                f"the domain extractor was trained on {self.image_size} px images, got {tuple(images.shape[-2:])}; "
                f"create it from images of that size"
            )
        x = training.normalize(images.float().div(255))
        return torch.flatten(self.net.pool(self.net.features(x)), 1)

    def describe(self) -> dict:
        card = self.card
        return {
            "name": "domain",
            "dataset": card["recipe"]["dataset"],
            "trained_on": card["trained_on"],
            "recipe": card["recipe"],
            "code": self.code,
            "weights": str(self.weights),
            "weights_sha256": self.sha256,
            "holdout_auc": card["holdout_metrics"]["auc"],
            "selected_by": card["selected_by"],
            "best_step": card["best_step"],
        }
