"""The feature-extractor interface used by every quality metric (FID, KID, precision/recall, memorisation)."""

from __future__ import annotations

import torch
from torch import nn

from benchmark.data.dataset import LoadedDataset
from benchmark.registry import accepted_parameters, create, declare_product, get_entry


class FeatureExtractor(nn.Module):
    """Maps uint8 images (N, C, H, W), any channel count the dataset has, to float feature vectors (N, D).

    `num_features` is D (torchmetrics' FID/KID read it instead of probing with a 299×299 dummy image);
    `describe()` names the network and its weights for the quality record.
    """

    num_features: int

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError


declare_product("extractor", FeatureExtractor)


def make_extractor(name: str, data: LoadedDataset, **params: object) -> FeatureExtractor:
    """Create a registered extractor for a loaded dataset. A factory that takes them receives `images` (the split it
    may learn from: the dataset's FULL training split, so one extractor serves every cell of a dataset and size),
    `task`, `dataset` (the name, for records), `image_size` and `size` (the source size), plus `params`, which win:
    pass `images=` to train it on less (the early-stopping monitor passes the cell's training subset). Nothing is
    reloaded by name, so it works for any dataset source and data folder."""
    accepted = accepted_parameters(get_entry("extractor", name).factory)
    context = {
        "images": data.full_train,
        "task": data.task,
        "dataset": data.name,
        "image_size": data.image_size,
        "size": data.source_size,
    }
    given = {k: v for k, v in context.items() if (accepted is None or k in accepted) and k not in params}
    return create("extractor", name, **given, **params)
