"""The feature-extractor interface used by every quality metric (FID, KID, precision/recall, memorisation), and
the shipping of an extractor's weights with the results they scored, so that anyone can recompute them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import safetensors
import torch
from safetensors.torch import load_file
from torch import nn

from benchmark.data.dataset import LoadedDataset
from benchmark.data.files import atomic_output, file_digest, write_json_atomic
from benchmark.data.labels import safe_label
from benchmark.errors import MedAugBenchError
from benchmark.generate.checkpoints import CARD
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


def shipped_card_path(weights: Path) -> Path:
    """The JSON shipped beside an extractor's weights file: the weights' SHA-256, `describe()` and its card."""
    return Path(weights).with_suffix(".json")


def shippable_card(described: dict) -> dict | None:
    """The card of the weights an extractor's `describe()` names: a checkpoint folder's card (`CARD` beside the
    weights), or the card of weights loaded from a shipped file; None for weights without one (e.g. Inception's
    public file, which is not shipped: its SHA-256 in the record names it)."""
    weights = Path(described.get("weights") or "")
    if not described.get("weights_sha256") or not weights.is_file():
        return None
    if (weights.parent / CARD).is_file():
        return json.loads((weights.parent / CARD).read_text())
    shipped = shipped_card_path(weights)
    return json.loads(shipped.read_text())["card"] if shipped.is_file() else None


def ship_weights(described: dict, folder: Path) -> Path:
    """Copy the weights an extractor's `describe()` names into `folder` as
    `<dataset>-<name>-<sha256[:12]>.safetensors`, with the JSON of `shipped_card_path` beside them; returns the
    weights' path there. Weights already shipped there with that SHA-256 stay; others must still be where the record
    says, with the SHA-256 it states."""
    digest = str(described.get("weights_sha256"))
    dataset, name = (safe_label(str(described.get(key, "images"))) for key in ("dataset", "name"))
    target = Path(folder) / f"{dataset}-{name}-{digest[:12]}.safetensors"  # labels: a record cannot name a path
    if target.is_file() and shipped_card_path(target).is_file() and file_digest(target, "sha256") == digest:
        return target
    source, card = Path(described.get("weights") or ""), shippable_card(described)
    if card is None or file_digest(source, "sha256") != digest:
        raise MedAugBenchError(
            f"the {described.get('name')} extractor with SHA-256 {digest[:12]}… is not at {source} (with its card) "
            "any more: rerun the cell or `medaugbench quality` on this machine to rebuild it, then publish again"
        )
    with open(source, "rb") as weights, atomic_output(target, "wb") as copy:  # never half a file at `target`
        shutil.copyfileobj(weights, copy)
    write_json_atomic(shipped_card_path(target), {"weights_sha256": digest, "extractor": described, "card": card})
    return target


def read_shipped_weights(weights: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors of shipped weights and their JSON (see `ship_weights`), after checking the file's SHA-256."""
    card_path = shipped_card_path(weights)
    if not Path(weights).is_file() or not card_path.is_file():
        raise MedAugBenchError(
            f"extractor weights {weights} need the file and its {card_path.name} beside it (as a results folder ships "
            "them under extractors/)"
        )
    shipped = json.loads(card_path.read_text())
    digest = file_digest(weights, "sha256")
    if digest != shipped.get("weights_sha256"):
        raise MedAugBenchError(
            f"{weights} has SHA-256 {digest}, but {card_path.name} says {shipped.get('weights_sha256')}: the file is "
            "damaged or not the one shipped; copy both files again"
        )
    try:
        return load_file(weights, device="cpu"), shipped
    except (OSError, safetensors.SafetensorError) as error:
        raise MedAugBenchError(f"cannot read extractor weights {weights}: {error}") from None
