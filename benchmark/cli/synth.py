"""`medaugbench synth`: train (or reuse) a generator under a budget, save it, and draw a grid of its samples."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from benchmark import registry
from benchmark.cli.display import console
from benchmark.cli.options import (
    DataDir,
    DatasetName,
    DeviceName,
    GeneratorFlops,
    GeneratorSeconds,
    GeneratorSteps,
    ImageSize,
    PerClassCap,
    PluginOptions,
    Seed,
    Size,
    SkipBad,
    StrategyOptions,
    TrainFraction,
    dataset_with_options,
    strategy_params,
)
from benchmark.errors import MedAugBenchError

if TYPE_CHECKING:
    import torch

    from benchmark.data.dataset import LoadedDataset

GenerativeName = Annotated[str, typer.Option("--strategy", help="Generative strategy (a registered generator).")]
GeneratorOut = Annotated[
    Path, typer.Option("--out", help="Folder for the generator (safetensors + card.json), samples.png, losses.png.")
]
SamplesPerClass = Annotated[int, typer.Option("--per-class", help="Samples per class in samples.png.")]


def synth_command(
    dataset: DatasetName = "pneumoniamnist",
    strategy: GenerativeName = "cgan",
    generator_steps: GeneratorSteps = None,
    generator_seconds: GeneratorSeconds = None,
    generator_flops: GeneratorFlops = None,
    seed: Seed = 0,
    out: GeneratorOut = Path("runs/generator"),
    per_class: SamplesPerClass = 8,
    size: Size = 28,
    image_size: ImageSize = None,
    train_fraction: TrainFraction = 1.0,
    per_class_cap: PerClassCap = None,
    data_dir: DataDir = None,
    device: DeviceName = "auto",
    skip_bad: SkipBad = False,
    strategy_option: StrategyOptions = None,
    option: PluginOptions = None,
) -> None:
    """Train a generator under a budget (or reuse the cached one), save it, and draw samples per class."""
    from benchmark.data.dataset import DataOptions, load_dataset
    from benchmark.generate import loop as gt
    from benchmark.grid.cells import is_generative
    from benchmark.publish.loss_plots import plot_generator_losses
    from benchmark.train.device import pick_device
    from benchmark.train.loop import seed_everything
    from benchmark.train.strategy import StrategyContext

    if per_class < 1:
        raise MedAugBenchError(f"--per-class must be at least 1, got {per_class}")
    params = strategy_params(strategy, strategy_option, generator_steps, generator_seconds, generator_flops)
    if not is_generative(strategy):
        generators = ", ".join(registry.entries("generator"))
        raise MedAugBenchError(f"synth trains a generative strategy ({generators}), not {strategy!r}")
    plugin, dataset_params = dataset_with_options(dataset, option)
    options = DataOptions(
        data_dir=data_dir,
        size=size,
        image_size=image_size,
        train_fraction=train_fraction,
        per_class_cap=per_class_cap,
        seed=seed,
        skip_bad=skip_bad,
    )
    data = load_dataset(plugin, options, **dataset_params)
    seed_everything(seed)
    generative = registry.create("strategy", strategy, **params)
    torch_device = pick_device(device)
    models, card = generative.fitted(StrategyContext(dataset=data, device=torch_device, seed=seed))
    gt.save(out, models, card)
    save_samples(generative, models, data, per_class, torch_device, seed, out / "samples.png")
    plot_generator_losses(card["histories"], out / "losses.png", title=f"{strategy} on {data.name}")
    print_generator(strategy, data.name, card)
    console().print(f"wrote {out / gt.WEIGHTS}, {out / gt.CARD}, {out / 'samples.png'}, {out / 'losses.png'}")


def save_samples(
    generative: Any, models: Any, data: LoadedDataset, per_class: int, device: torch.device, seed: int, path: Path
) -> None:
    """`per_class` synthetic images of every class a model was trained for (per-class models: the classes the policy
    samples), one labelled row per class, as a PNG."""
    from benchmark.data.images import render_rows

    task = data.task
    plan = generative.preview_plan(models, task, per_class)
    samples = generative.sample(models, task, data.train, plan, device, seed)
    shown = [label for label, n in zip(task.labels, plan) if n]
    rows = [
        (f"{label} (synthetic)", samples.images[i * per_class : (i + 1) * per_class]) for i, label in enumerate(shown)
    ]
    render_rows(rows, per_class).save(path)


def print_generator(strategy: str, dataset: str, card: dict) -> None:
    """The steps each model of the generator trained, and whether it was trained now or reused from the cache."""
    steps = {name: h["steps"] for name, h in card["histories"].items()}
    console().print(
        f"generator {strategy} on {dataset}: steps per model {steps}; "
        f"{'reused ' + card['reused_from'] if 'reused_from' in card else 'trained'}"
    )
