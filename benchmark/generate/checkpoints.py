"""Checkpoints as folders: weights in one safetensors file (never pickled) and a JSON card, written atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

CARD = "card.json"


def write_checkpoint(directory: Path, tensors: dict[str, torch.Tensor], card: dict, weights: str) -> Path:
    """Write weights and card into a temp folder beside `directory`, then rename it into place (replacing an older
    one), so a reader sees a whole checkpoint or none."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        save_file({key: value.detach().cpu().contiguous() for key, value in tensors.items()}, staging / weights)
        (staging / CARD).write_text(json.dumps(card, indent=2, sort_keys=True))
        shutil.rmtree(directory, ignore_errors=True)
        os.rename(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def read_checkpoint(directory: Path, weights: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The weights (on CPU) and the card of a checkpoint folder; raises OSError/ValueError if either is damaged."""
    directory = Path(directory)
    card = json.loads((directory / CARD).read_text())
    return load_file(directory / weights, device="cpu"), card
