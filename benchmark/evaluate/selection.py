"""The signal that picks a generator's checkpoint: class-matched FID between samples and real images held out from
the cell's own training subset, in a fixed, randomly initialised feature space.

Why these choices. The classifier keeps its best-validation checkpoint; a generator needs the same rule without
letting anything outside the cell choose it. So the held-out images come from the cell's training subset (a
stratified part drawn with the generator seed; the generator trains on the rest), never from validation or test
images. The feature space must not depend on other data either: the `domain` extractor learns from the dataset's
full training split, more than a cell may see, and one trained on the cell's subset would need its own training
budget and holdout. A randomly initialised CNN with a fixed seed is the same for every cell, learns from nothing, and
its FID still separates a good iterate from a checkerboard one (random-feature FID ranks sample quality on small
images: Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics", use random embeddings for exactly that).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from benchmark.data.dataset import Split
from benchmark.data.lowdata import strata
from benchmark.data.task import TaskSpec
from benchmark.evaluate.features import FeatureExtractor
from benchmark.evaluate.quality import extract_features, fid_kid_features
from benchmark.generate import loop as gt
from benchmark.generate.model import GenerativeModel
from benchmark.train import flops

FEATURE_SEED = 0  # one fixed network for every cell, dataset and run
FAKES = 256  # at least this many samples per score, each held-out label repeated equally often


class RandomFeatures(FeatureExtractor):
    """A fixed, randomly initialised CNN (seeded, never trained): three strided 3×3 convolutions with ReLU, global
    average pooling, 64-d. Any channel count and image size."""

    num_features = 64

    def __init__(self, channels: int, seed: int = FEATURE_SEED) -> None:
        super().__init__()
        widths = (channels, 16, 32, self.num_features)
        layers: list[nn.Module] = []
        for n_in, n_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(n_in, n_out, 3, stride=2, padding=1), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        generator = torch.Generator().manual_seed(seed)
        for conv in (module for module in self.net if isinstance(module, nn.Conv2d)):
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu", generator=generator)
            nn.init.zeros_(conv.bias)
        self.requires_grad_(False).eval()
        self.seed = seed

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(gt.to_model_range(images))

    def describe(self) -> dict:
        return {"name": "random_cnn", "seed": self.seed, "num_features": self.num_features, "trained_on": None}


def holdout_split(split: Split, task: TaskSpec, fraction: float, seed: int) -> tuple[Split, Split]:
    """(fit, held-out) parts of a cell's training subset: per stratum (class, or rarest positive label)
    round(fraction × n) images, at most n − 1, drawn with `seed`; a stratum too small for that keeps all of them."""
    generator = torch.Generator().manual_seed(seed)
    groups = strata(split.labels, task)
    held = torch.zeros(len(split), dtype=torch.bool)
    for value in torch.unique(groups):
        members = torch.nonzero(groups == value).flatten()
        count = min(len(members) - 1, round(fraction * len(members)))
        held[members[torch.randperm(len(members), generator=generator)[:count]]] = True
    return split.subset(torch.nonzero(~held).flatten()), split.subset(torch.nonzero(held).flatten())


@dataclass
class HoldoutScore:
    """`score(model)`: FID between held-out real images (`reference`) and samples conditioned on the same label rows
    (`cond`: their conditioning vectors, None for an unconditional model), each row repeated to reach FAKES, all
    drawn with the same noise at every checkpoint. Reference features are extracted once."""

    reference: Split
    cond: torch.Tensor | None
    features: FeatureExtractor
    seed: int
    device: torch.device
    repeats: int = field(init=False)
    reference_features: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.repeats = math.ceil(FAKES / len(self.reference))
        self.reference_features = extract_features(self.reference.images, self.features)

    @property
    def fakes(self) -> int:
        return self.repeats * len(self.reference)

    def __call__(self, model: GenerativeModel) -> float:
        """The FID of the model's samples now (inf when it is not finite)."""
        cond = self.cond.repeat_interleave(self.repeats, dim=0).to(self.device) if self.cond is not None else None
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        fake = gt.to_uint8(gt.sample(model, cond, self.fakes, generator))
        fid = fid_kid_features(self.reference_features, extract_features(fake, self.features), kid_subsets=1)["fid"]
        return fid if fid is not None else math.inf

    def flops(self, sample_flops_per_image: int) -> dict[str, int]:
        """Counted FLOPs of one score (sampling and featurising the fakes) and of featurising the reference once."""
        spec = self.reference.images.shape[1:]
        one = torch.zeros(1, *spec, dtype=torch.uint8, device=self.device)
        per_image = flops.count_flops(lambda: self.features(one))
        return {
            "selection_flops_per_score": self.fakes * (sample_flops_per_image + per_image),
            "selection_reference_flops": len(self.reference) * per_image,
        }
