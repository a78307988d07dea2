"""The `medmnistc` strategy: MedMNIST-C's own augmentation (Di Salvo et al. 2024; `medmnistc.augmentation.
AugMedMNISTC`) as training-time augmentation: per image, one of the dataset's domain-specific corruptions or the
identity, uniformly, at an intensity drawn uniformly between its mildest and strongest severity.

The package draws from Python's and numpy's global RNGs; each batch seeds them from one draw of the run's torch
generator and restores them after (`benchmark.evaluate.robustness.package_rng`), so the augmentation is fixed by the
classifier's seed and disturbs no other draw. It runs per image on the CPU (PIL, OpenCV, ImageMagick, whose threads
are capped at torch's): its work is not counted in the step's FLOPs (the counter sees torch operations only), and a
step takes longer than a batch-wise classic strategy's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from benchmark import LoadedDataset, MedAugBenchError, Strategy
from benchmark.evaluate.robustness import corruptions, is_rgb, load_registry, magick_threads, package_rng

AUTO = "auto"
SEED_RANGE = 2**32


@dataclass
class MedMNISTCAugment(Strategy):
    """MedMNIST-C augmentation with the corruption list of `corruptions_of`: a MedMNIST dataset flag, or "auto" for
    the dataset the strategy is prepared for."""

    name = "medmnistc"
    corruptions_of: str = AUTO
    _augmenter: object | None = field(default=None, init=False, repr=False, compare=False)
    _rgb: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        registry = load_registry()  # a missing package or Wand fails here, when the grid is validated
        if self.corruptions_of != AUTO and self.corruptions_of not in registry.CORRUPTIONS_DS:
            raise MedAugBenchError(
                f"medmnistc needs corruptions_of 'auto' or one of {', '.join(sorted(registry.CORRUPTIONS_DS))}, got "
                f"{self.corruptions_of!r}"
            )

    def prepare_for(self, dataset: LoadedDataset) -> None:
        from medmnistc.augmentation import AugMedMNISTC

        flag = dataset.name if self.corruptions_of == AUTO else self.corruptions_of
        self._augmenter = AugMedMNISTC(corruptions(flag))
        self._rgb = is_rgb(flag)

    def augment(
        self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each image through the package's augmentation, from a seed drawn from `generator`."""
        if self._augmenter is None:
            raise MedAugBenchError("the medmnistc strategy augments only after prepare_for(dataset) chose its list")
        seed = int(torch.randint(SEED_RANGE, (1,), generator=generator, device=generator.device))
        pixels = images.mul(255).round().to(torch.uint8).cpu()
        with package_rng(seed), magick_threads():
            augmented = torch.stack([self._augment_one(image) for image in pixels])
        channels = images.shape[1]
        augmented = augmented.expand(-1, channels, -1, -1) if augmented.shape[1] != channels else augmented
        return augmented.to(images.device, images.dtype).div(255), targets

    def _augment_one(self, image: torch.Tensor) -> torch.Tensor:
        """One (C, H, W) uint8 image through the augmentation as RGB, back to (C', H, W) uint8: greyscale (C' = 1)
        for a greyscale image or a greyscale dataset's list (as the package converts its corrupted images)."""
        array = image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()
        out = Image.fromarray(np.asarray(self._augmenter(Image.fromarray(array).convert("RGB")), dtype=np.uint8))
        out = np.asarray(out if self._rgb and image.shape[0] == 3 else out.convert("L"))
        tensor = torch.from_numpy(out.copy())
        return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)

    def params(self) -> dict:
        return {"corruptions_of": self.corruptions_of}
