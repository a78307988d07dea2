"""`medaugbench train`: one classifier under one budget, its metrics printed and optionally its record written."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from benchmark.cli.display import console, metric, print_table
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
    Size,
    SkipBad,
    StrategyOptions,
    TrainFraction,
    dataset_with_options,
    parse_options,
    strategy_params,
)
from benchmark.train.config import OPTIM_PRESETS, Budget, OptimConfig, TrainConfig

if TYPE_CHECKING:
    from benchmark.train.record import RunRecord

StrategyName = Annotated[str, typer.Option("--strategy", help="Augmentation strategy plugin.")]
BackboneName = Annotated[str, typer.Option("--backbone", help="Classifier backbone plugin.")]
Steps = Annotated[
    int | None,
    typer.Option(
        "--steps", help=f"Classifier budget in optimizer steps (default {Budget().steps} when no budget is given)."
    ),
]
Seconds = Annotated[float | None, typer.Option("--seconds", help="Classifier budget in device-seconds of training.")]
Flops = Annotated[
    float | None, typer.Option("--flops", help="Classifier budget in FLOPs (counted per step, as whole steps).")
]
BatchSize = Annotated[int, typer.Option("--batch-size")]
EvalEvery = Annotated[int, typer.Option("--eval-every", help="Evaluate on validation every N steps.")]
Optimizer = Annotated[
    str, typer.Option("--optimizer", help="seed_paper (cosine), medmnist (×0.1 at 50/75%), wsd (warmup-stable-decay).")
]
LearningRate = Annotated[float | None, typer.Option("--lr", help="Override the preset's learning rate.")]
Pretrained = Annotated[
    str | None, typer.Option("--pretrained", help="'imagenet' (timm's weights) or a local weights file.")
]
Compile = Annotated[
    bool, typer.Option("--compile", help="torch.compile the classifier (pays off on GPUs for long budgets).")
]
BackboneOptions = Annotated[
    list[str] | None, typer.Option("--backbone-option", "-B", help="Backbone parameter KEY=VALUE.")
]
RecordOut = Annotated[Path | None, typer.Option("--out", help="Write the JSON record here.")]
ClassifierSeed = Annotated[
    int,
    typer.Option(
        "--seed",
        help="The classifier's seed (initial weights, batch order, augmentation draws); --generator-seed's default.",
    ),
]
GeneratorSeed = Annotated[
    int | None,
    typer.Option(
        "--generator-seed",
        help="Seed of the low-data subset, the generator's training and the synthesis (default: --seed).",
    ),
]

SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1", "auc", "ece")


# longer than ~50 lines only by its 28 options (one line each) and the TrainConfig fields they fill
def train_command(
    dataset: DatasetName = "pneumoniamnist",
    strategy: StrategyName = "none",
    backbone: BackboneName = "simple_cnn",
    steps: Steps = None,
    seconds: Seconds = None,
    flops: Flops = None,
    seed: ClassifierSeed = 0,
    generator_seed: GeneratorSeed = None,
    batch_size: BatchSize = 128,
    eval_every: EvalEvery = 100,
    optimizer: Optimizer = "seed_paper",
    lr: LearningRate = None,
    pretrained: Pretrained = None,
    size: Size = 28,
    image_size: ImageSize = None,
    train_fraction: TrainFraction = 1.0,
    per_class_cap: PerClassCap = None,
    data_dir: DataDir = None,
    device: DeviceName = "auto",
    compile_model: Compile = False,
    generator_steps: GeneratorSteps = None,
    generator_seconds: GeneratorSeconds = None,
    generator_flops: GeneratorFlops = None,
    strategy_option: StrategyOptions = None,
    backbone_option: BackboneOptions = None,
    option: PluginOptions = None,
    skip_bad: SkipBad = False,
    out: RecordOut = None,
) -> None:
    """Train one classifier under a fixed budget and evaluate the best-validation-AUC checkpoint on test."""
    from benchmark.train.loop import train

    plugin, dataset_params = dataset_with_options(dataset, option)
    if skip_bad and takes_skip_bad(plugin):  # a dataset option (as in a grid), so the config says files were left out
        dataset_params["skip_bad"] = True
    config = TrainConfig(
        dataset=plugin,
        strategy=strategy,
        backbone=backbone,
        seed=seed,
        generator_seed=generator_seed,
        budget=classifier_budget(steps, seconds, flops),
        batch_size=batch_size,
        eval_every=eval_every,
        optimizer=optimizer,
        optim=learning_rate_override(optimizer, lr),
        pretrained={None: False, "imagenet": True}.get(pretrained, pretrained),
        size=size,
        image_size=image_size,
        train_fraction=train_fraction,
        per_class_cap=per_class_cap,
        strategy_params=strategy_params(strategy, strategy_option, generator_steps, generator_seconds, generator_flops),
        backbone_params=parse_options(backbone_option, "backbone", "-B drop_rate=0.2"),
        dataset_params=dataset_params,
        device=device,
        compile=compile_model,
    )
    record = train(config, data_dir=data_dir)
    print_summary(record)
    write_record(record, out)


def takes_skip_bad(plugin: str) -> bool:
    """Whether a dataset plugin reads files that can be unreadable (it takes `skip_bad`, as `imagefolder` does);
    `--skip-bad` means nothing to the others, as in `datasets show`."""
    from benchmark.registry import accepted_parameters, get_entry

    return "skip_bad" in (accepted_parameters(get_entry("dataset", plugin).factory) or ())


def write_record(record: RunRecord, out: Path | None) -> None:
    """The run's JSON record at `out`, when asked for."""
    if out is not None:
        record.write(out)
        console().print(f"wrote {out}")


def classifier_budget(steps: int | None, seconds: float | None, flops: float | None) -> Budget:
    """The classifier budget given, or Budget's default when none is (two given are refused by Budget)."""
    if steps is None and seconds is None and flops is None:
        return Budget()
    return Budget(steps=steps, seconds=seconds, flops=flops)


def learning_rate_override(optimizer: str, lr: float | None) -> OptimConfig | None:
    """The optimizer preset with `--lr` in place of its learning rate; None keeps the preset (or lets TrainConfig
    name an unknown one)."""
    preset = OPTIM_PRESETS.get(optimizer)
    return dataclasses.replace(preset, lr=lr) if preset is not None and lr is not None else None


def print_summary(record: RunRecord) -> None:
    """Metrics table (val of the selected checkpoint, and test) plus the budget actually used."""
    extra = ("average_precision",) if record.dataset.task.multilabel else ()
    val, test = record.metrics.val, record.metrics.test
    print_table(
        ("metric", "val", "test"),
        [(name, metric(getattr(val, name)), metric(getattr(test, name))) for name in SUMMARY_METRICS + extra],
        title=f"{record.dataset.name} · {record.strategy.name} · "
        f"{record.config['backbone']} · seed {record.config['seed']} (generator seed "
        f"{record.config.get('generator_seed', record.config['seed'])})",
    )
    used = record.budget
    console().print(
        f"budget: {used.steps} steps, {used.images_seen} images seen, train {used.seconds['train']:.1f} s, "
        f"total {used.seconds['total']:.1f} s, peak memory {used.peak_memory_bytes / 2**20:.0f} MiB; "
        f"best checkpoint at step {record.best['step']}; training set {record.dataset.train_real} real + "
        f"{record.dataset.train_synthetic} synthetic"
    )
    if "note" in record.best:
        console().print(f"warning: {record.best['note']}")
    phases = record.compute["phases"]
    spent = [
        f"{name.replace('_', ' ')} {phase['flops']:.3g} FLOPs / {phase['seconds']:.1f} s"
        for name, phase in phases.items()
    ]
    console().print(f"compute: {', '.join(spent)}; total {record.compute['total']['flops']:.3g} FLOPs")
