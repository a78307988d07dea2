"""The quality step, run after synthesis and timed apart from it (evaluation, never generator compute): the quality
report of the synthetic images under a per-dataset extractor (its FIDs compare across a dataset's cells), and class
fidelity: how often a classifier trained only on the cell's real training images (the generator's fit part, checked
on its held-out part) assigns each synthetic image to its intended class. A set whose fidelity or quality says it is
not recognisably of its classes is flagged (a notice and `flags` in the record) or, with
`on_unrecognisable="refuse"`, refused: the cell fails."""

from __future__ import annotations

import torch

from benchmark.data.dataset import LoadedDataset, Split
from benchmark.errors import notice
from benchmark.evaluate.features import FeatureExtractor
from benchmark.evaluate.fidelity import class_fidelity, unrecognisable_reasons
from benchmark.evaluate.quality import quality_report, real_images
from benchmark.generate.loop import GeneratorFailure
from benchmark.synthesis.config import QualityParams


def quality_of(
    params: QualityParams,
    data: LoadedDataset,
    synthetic: Split,
    extractor: FeatureExtractor,
    seed: int,
    device: torch.device,
) -> dict:
    """The quality report of the synthetic images against the cell's real sets, as a dict."""
    return quality_report(
        real_images(data), synthetic, data.task, extractor, max_images=params.images, seed=seed, device=device
    ).to_dict()


def fidelity_of(
    params: QualityParams,
    fit: Split,
    held: Split,
    synthetic: Split,
    data: LoadedDataset,
    quality: dict | None,
    seed: int,
    device: torch.device,
) -> dict:
    """Class fidelity of the synthetic images (a classifier trained on `fit`, the generator's training part of the
    cell's subset, checked on `held`) and the reasons, if any, the set is not recognisably of its classes."""
    fidelity = class_fidelity(fit, held, synthetic, data.task, seed, device)
    return {"fidelity": fidelity.to_dict(), "flags": unrecognisable_reasons(fidelity, quality, params.max_fid_ratio)}


def act_on_flags(params: QualityParams, generator: str, flags: list[str]) -> None:
    """Refuse the synthetic set (`GeneratorFailure`) when `on_unrecognisable` is "refuse", else say each flag once."""
    if not flags:
        return
    if params.on_unrecognisable == "refuse":
        raise GeneratorFailure(
            f"generator {generator}: its samples are not recognisably of their classes ({'; '.join(flags)}); they "
            "were not used (on_unrecognisable='refuse'; set it to 'flag' to train on them anyway)"
        )
    for reason in flags:
        notice(f"generator {generator}: {reason}; its samples are used (on_unrecognisable='refuse' refuses them)")
