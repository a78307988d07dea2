"""`medaugbench datasets list|prepare|show`: what datasets exist, fetching their files, and a look inside one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from benchmark import registry
from benchmark.cli.display import console, print_table
from benchmark.cli.options import (
    DataDir,
    ImageSize,
    PerClassCap,
    PluginOptions,
    Seed,
    Size,
    SkipBad,
    TrainFraction,
    dataset_with_options,
)
from benchmark.data.cards import load_card
from benchmark.errors import MedAugBenchError

if TYPE_CHECKING:
    from benchmark.data.dataset import DatasetInfo, LoadedDataset

app = typer.Typer(no_args_is_help=True, help="Datasets: list, download/verify, inspect.")

GridOut = Annotated[Path | None, typer.Option("--out", help="Write a PNG grid of real images per class here.")]
GridSplit = Annotated[str, typer.Option("--split", help="train, val or test.")]
GridPerClass = Annotated[int, typer.Option("--per-class", help="Images per class in the grid.")]


@app.command("list")
def datasets_list(data_dir: DataDir = None) -> None:
    """Show every dataset: task, channels, classes, split sizes, licence, local files and card."""
    from benchmark.data.dataset import SPLITS, DataOptions

    options = DataOptions(data_dir=data_dir)
    rows, notes = [], []
    for name in registry.entries("dataset"):
        info = registry.create("dataset", name).info(options)
        sizes = "/".join(str(info.split_sizes[s]) for s in SPLITS) if info.split_sizes else "-"
        classes = f"{len(info.task.labels)}" + (" labels" if info.task.multilabel else "")
        rows.append((name, info.task.kind, str(info.task.channels), classes, sizes, info.license, info.local))
        card = load_card(name)
        if card and card.caveats:
            notes.append(f"[bold]{name}[/bold]: {card.caveats[0]}")
    print_table(("name", "task", "ch", "classes", "train/val/test", "licence", "local files"), rows)
    if notes:
        console().print("Caveats (from dataset cards; `datasets show NAME` prints the full card):")
        for note in notes:
            console().print(f"  {note}")


@app.command("prepare")
def datasets_prepare(name: str, data_dir: DataDir = None, size: Size = 28, option: PluginOptions = None) -> None:
    """Download (with MD5 check) or verify a dataset's files; files in --data-dir are used in place."""
    from benchmark.data.dataset import DataOptions

    plugin, kwargs = dataset_with_options(name, option)
    paths = registry.create("dataset", plugin, **kwargs).prepare(DataOptions(data_dir=data_dir, size=size))
    for path in paths[:20]:
        console().print(f"ready: {path}")
    if len(paths) > 20:
        console().print(f"... and {len(paths) - 20} more files")


@app.command("show")
def datasets_show(
    name: str,
    out: GridOut = None,
    split: GridSplit = "train",
    per_class: GridPerClass = 8,
    data_dir: DataDir = None,
    size: Size = 28,
    image_size: ImageSize = None,
    train_fraction: TrainFraction = 1.0,
    per_class_cap: PerClassCap = None,
    skip_bad: SkipBad = False,
    seed: Seed = 0,
    option: PluginOptions = None,
) -> None:
    """Describe one dataset (task, counts per split, card) and optionally write a grid of its images."""
    from benchmark.data.dataset import DataOptions, finalize
    from benchmark.data.images import save_class_grid

    if per_class < 1:
        raise MedAugBenchError(f"--per-class must be at least 1, got {per_class}")
    plugin, kwargs = dataset_with_options(name, option)
    options = DataOptions(
        data_dir=data_dir,
        size=size,
        image_size=image_size,
        skip_bad=skip_bad,
        train_fraction=train_fraction,
        per_class_cap=per_class_cap,
        seed=seed,
    )
    source = registry.create("dataset", plugin, **kwargs)
    info = source.info(options)
    data = finalize(source.load(options), options)
    print_dataset(data, info)
    if out is not None:
        save_class_grid(data.split(split), data.task, out, per_class=per_class, seed=seed)
        console().print(f"wrote {out}")


def print_dataset(data: LoadedDataset, info: DatasetInfo) -> None:
    """A loaded dataset: its task and sizes, images per class and split, its card and any skipped files."""
    from benchmark.data.dataset import SPLITS

    task = data.task
    console().print(
        f"[bold]{data.name}[/bold]  task={task.kind}  channels={task.channels}  "
        f"image size={data.image_size} (files: {data.source_size})  licence={info.license}"
    )
    counts = {s: data.split(s).class_counts(task) for s in SPLITS}
    rows = [(f"{i}: {label}", *(str(counts[s][i]) for s in SPLITS)) for i, label in enumerate(task.labels)]
    rows.append(("total images", *(str(len(data.split(s))) for s in SPLITS)))
    print_table(("class" if not task.multilabel else "label", *SPLITS), rows)
    if task.kind == "binary":
        positive = f"{task.positive} ({task.labels[task.positive]})"
        console().print(f"Positive class: {positive}; sensitivity, precision and F1 are about it.", highlight=False)
    card = load_card(data.name)
    if card:
        console().print(f"Source: {card.source}\nPaper: {card.paper}")
        for caveat in card.caveats:
            console().print(f"  caveat: {caveat}")
    for skipped in data.provenance.get("skipped", []):
        console().print(f"  skipped unreadable file: {skipped['path']} ({skipped['reason']})")
