"""PNG grids of images, one labelled row per class (or per label, for multi-label data)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from benchmark.data.dataset import Split, class_mask
from benchmark.data.task import TaskSpec

LABEL_WIDTH = 150
PAD = 2


def class_rows(split: Split, task: TaskSpec, per_class: int, seed: int = 0) -> list[tuple[str, torch.Tensor]]:
    """Up to `per_class` random images for each class; multi-label data gets a row per label plus 'no label'."""
    generator = torch.Generator().manual_seed(seed)
    masks = [class_mask(split.labels, task, i) for i in range(task.num_outputs)]
    names = list(task.labels)
    if task.multilabel:
        masks.append(~(split.labels > 0.5).any(dim=1))
        names.append("(no label)")
    rows = []
    for name, mask in zip(names, masks):
        members = torch.nonzero(mask).flatten()
        pick = members[torch.randperm(len(members), generator=generator)[:per_class]]
        rows.append((f"{name} (n={len(members)})", split.images[pick]))
    return rows


def render_rows(rows: list[tuple[str, torch.Tensor]], columns: int, cell: int = 64) -> Image.Image:
    """Draw labelled rows of uint8 (N, C, H, W) images, each upscaled to `cell` pixels with nearest neighbour."""
    width = LABEL_WIDTH + columns * (cell + PAD)
    canvas = Image.new("RGB", (width, len(rows) * (cell + PAD) + PAD), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for r, (label, images) in enumerate(rows):
        top = PAD + r * (cell + PAD)
        draw.text((4, top + cell // 2 - 6), label, fill="black", font=font)
        for c, image in enumerate(images[:columns]):
            array = image.permute(1, 2, 0).numpy()
            tile = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).convert("RGB")
            canvas.paste(tile.resize((cell, cell), Image.NEAREST), (LABEL_WIDTH + c * (cell + PAD), top))
    return canvas


def save_class_grid(split: Split, task: TaskSpec, out: Path, per_class: int = 8, seed: int = 0) -> Path:
    """Write a per-class grid of real images to `out` (PNG)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    render_rows(class_rows(split, task, per_class, seed), per_class).save(out, format="PNG")
    return out
