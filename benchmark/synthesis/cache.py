"""The trained-generator cache: a key digesting everything that determines the weights, loading a cached or named
generator (`generator_dir`), and refusing one trained on other images.

The key covers the generator, its parameters, the budget and its split rule, the models the plan trains, the seed,
checkpoint selection, early stopping and its monitor, the generator plugin's distribution, version and source digest
and the harness code's, and a digest of the exact training images and labels; a seconds or FLOP budget also covers
the plan's counts, which it pays for first. So a second run with the same config and seed reuses the weights, and an
edited plugin retrains."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch

from benchmark.data.dataset import Split
from benchmark.errors import MedAugBenchError, notice
from benchmark.generate import loop as gt
from benchmark.generate.checkpoints import DamagedCheckpoint
from benchmark.synthesis.config import SELECTION_RULE, SynthesisConfig
from benchmark.train.config import GeneratorBudget


def cache_key(
    config: SynthesisConfig,
    data_digest: str,
    seed: int,
    image_size: int,
    models: list[str],
    plan: list[int],
    code: dict,
) -> str:
    """A digest of everything that changes the trained weights (see the module docstring)."""
    budget = {kind: amount for kind, amount in asdict(config.budget).items() if kind != "flops" or amount is not None}
    identity = {
        "generator": config.model.generator,
        "params": config.model.params,
        "budget": budget,  # keys of steps and seconds budgets as before FLOP budgets
        "split": GeneratorBudget.SPLIT_RULE,
        "batch_size": config.model.batch_size,
        "conditioning": config.model.conditioning,
        "seed": seed,
        "image_size": image_size,
        "data": data_digest,
        "models": sorted(models),
        "selection": {"points": config.selection.points, "holdout": config.selection.holdout, "rule": SELECTION_RULE},
        "early_stop": config.monitor.cache_identity(),
        "code": code,
    }
    if config.budget.kind != "steps":
        identity["synthesis_plan"] = plan
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]


def check_trained_on(card: dict, real: Split, what: str) -> None:
    """Refuse a saved generator whose card does not carry the digest of exactly these training images."""
    digest = real.digest()
    if card.get("data_digest") != digest:
        raise MedAugBenchError(
            f"{what} was trained on other images ({card.get('dataset')} at {card.get('image_size')} px, data digest "
            f"{card.get('data_digest')}) than this cell's training set (digest {digest}); train it on the same "
            "dataset, image size, train fraction, per-class cap and seed (`medaugbench synth`), or drop generator_dir"
        )


def load_named(directory: Path, real: Split, device: torch.device) -> tuple[dict, dict]:
    """The generator saved in `directory` (`generator_dir`): a damaged or altered one, or one trained on other
    images, is an error naming the file."""
    models, card = gt.load_saved(directory, device)
    check_trained_on(card, real, f"the generator in {directory}")
    return models, card


def load_cached(directory: Path, device: torch.device) -> tuple[dict, dict] | None:
    """The cached generator in `directory`, flagged `reused_from`; None when there is none, or when it is damaged
    (said, so it is retrained)."""
    if not (directory / gt.CARD).is_file():
        return None
    try:
        models, card = gt.load_strategy_card(directory, device)
    except DamagedCheckpoint as error:
        notice(f"the cached generator is damaged: {error}; retraining it")
        return None
    card["reused_from"] = str(directory)
    return models, card


def save(directory: Path, models: dict, card: dict) -> None:
    """Save freshly trained models and their card in the cache, recording where (`saved_to`)."""
    gt.save(directory, models, card)
    card["saved_to"] = str(directory)
