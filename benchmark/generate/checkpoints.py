"""Checkpoints as folders: weights in one safetensors file (never pickled) and a JSON card that pins the weights'
SHA-256, written atomically; a damaged or altered checkpoint is refused as `DamagedCheckpoint`, naming the file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import safetensors
import torch
from safetensors.torch import load_file, save_file

from benchmark.data.files import SHARED_FILE, SHARED_FOLDER, file_digest
from benchmark.errors import MedAugBenchError

CARD = "card.json"
WEIGHTS_DIGEST = "weights_sha256"


class DamagedCheckpoint(MedAugBenchError):
    """A checkpoint file that cannot be read or does not match its card; the message names the file, the caller
    adds the fix (re-run `synth`, or retrain a cache entry)."""


def write_checkpoint(directory: Path, tensors: dict[str, torch.Tensor], card: dict, weights: str) -> Path:
    """Write weights and card into a temp folder beside `directory`, then rename it into place (replacing an older
    one), so a reader sees a whole checkpoint or none. The weights' SHA-256 is added to `card` (the caller's dict)."""
    directory = Path(directory)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MedAugBenchError(
            f"cannot create the folder {directory.parent} ({error.strerror}); point the path (or "
            "MEDAUGBENCH_CACHE_DIR, for the cache) at a folder you can write"
        ) from None
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    os.chmod(staging, SHARED_FOLDER)  # mkdtemp's 0700 would stay on the renamed checkpoint
    try:
        save_file({key: value.detach().cpu().contiguous() for key, value in tensors.items()}, staging / weights)
        card[WEIGHTS_DIGEST] = file_digest(staging / weights, "sha256")
        (staging / CARD).write_text(json.dumps(card, indent=2, sort_keys=True))
        for path in staging.iterdir():
            os.chmod(path, SHARED_FILE)  # safetensors writes 0600; records are 0644
        shutil.rmtree(directory, ignore_errors=True)
        os.rename(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def read_card(directory: Path) -> dict:
    """A checkpoint's card: a JSON object, or `DamagedCheckpoint` naming the file."""
    path = Path(directory) / CARD
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedCheckpoint(f"{path} is not a readable JSON card ({error})") from None
    if not isinstance(card, dict):
        raise DamagedCheckpoint(f"{path} is not a JSON object but a {type(card).__name__}")
    return card


def read_checkpoint(directory: Path, weights: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The weights (on CPU) and the card of a checkpoint folder. The weights must parse as safetensors (a pickle is
    refused, never loaded) and match the SHA-256 their card pins (cards written before it was pinned carry none);
    else `DamagedCheckpoint` naming the file."""
    card = read_card(directory)
    path = Path(directory) / weights
    try:
        tensors = load_file(path, device="cpu")
    except (OSError, safetensors.SafetensorError) as error:
        raise DamagedCheckpoint(f"{path} is not a readable safetensors file ({error})") from None
    pinned = card.get(WEIGHTS_DIGEST)
    if pinned is not None and file_digest(path, "sha256") != pinned:
        raise DamagedCheckpoint(f"{path} was altered after it was saved (its SHA-256 is not the one {CARD} pins)")
    return tensors, card
