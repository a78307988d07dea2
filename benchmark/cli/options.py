"""Option types shared by several commands, and the KEY=VALUE parser behind -O, -S, -B, -E and -X."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from benchmark import registry
from benchmark.errors import MedAugBenchError

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Folder of official MedMNIST .npz files (else $MEDAUGBENCH_DATA_DIR)."),
]
Size = Annotated[int, typer.Option("--size", help="Source image size of the files: 28, or MedMNIST+ 64/128/224.")]
ImageSize = Annotated[
    int | None, typer.Option("--image-size", help="Resample every split to this size on load (adds no detail).")
]
PluginOptions = Annotated[
    list[str] | None,
    typer.Option("--option", "-O", help="Dataset plugin option KEY=VALUE, e.g. -O root=/my/dicoms."),
]
SkipBad = Annotated[
    bool, typer.Option("--skip-bad", help="Skip unreadable image files (they are reported) instead of stopping.")
]
TrainFraction = Annotated[
    float, typer.Option("--train-fraction", help="Stratified fraction of the training split to keep, in (0, 1].")
]
PerClassCap = Annotated[
    int | None, typer.Option("--per-class-cap", help="Keep at most this many training images per class.")
]
Seed = Annotated[int, typer.Option("--seed", help="Seed for every random draw.")]
DatasetName = Annotated[str, typer.Option("--dataset", help="Dataset plugin name, or a folder/CSV of your own images.")]
DeviceName = Annotated[str, typer.Option("--device", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:1 …")]
StrategyOptions = Annotated[
    list[str] | None,
    typer.Option("--strategy-option", "-S", help="Strategy parameter KEY=VALUE (a.b=V nests), e.g. -S degrees=10."),
]
GeneratorSteps = Annotated[
    int | None,
    typer.Option("--generator-steps", help="Generator budget in steps (the total; per-class models share it)."),
]
GeneratorSeconds = Annotated[
    float | None,
    typer.Option(
        "--generator-seconds", help="Generator budget in device-seconds (the total; per-class models share it)."
    ),
]
GeneratorFlops = Annotated[
    float | None,
    typer.Option(
        "--generator-flops",
        help="Generator budget in counted FLOPs, synthesis included (the total; per-class models share it).",
    ),
]


def _parse_value(text: str) -> object:
    """A command-line value as Python: true/false, none/null, an int, a float, else the text itself."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lower() in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_options(items: list[str] | None, what: str, example: str) -> dict[str, object]:
    """KEY=VALUE pairs → keyword arguments (numbers and true/false converted; a.b=1 nests as {'a': {'b': 1}})."""
    kwargs: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise MedAugBenchError(f"{what} option {item!r} is not KEY=VALUE (example: {example})")
        *parents, leaf = key.strip().split(".")
        target = kwargs
        for parent in parents:
            target = target.setdefault(parent, {})  # type: ignore[assignment]
        target[leaf] = _parse_value(value.strip())
    return kwargs


def dataset_with_options(name: str, options: list[str] | None) -> tuple[str, dict[str, object]]:
    """The dataset plugin for `--dataset` (a name, or a folder/CSV path) and its -O KEY=VALUE options."""
    from benchmark.data.dataset import dataset_source

    return dataset_source(name, parse_options(options, "dataset", "-O root=/data/xrays"))


def strategy_params(
    strategy: str,
    options: list[str] | None,
    generator_steps: int | None,
    generator_seconds: float | None,
    generator_flops: float | None = None,
) -> dict:
    """-S KEY=VALUE parameters plus the generator budget, which only generative strategies accept; checked by
    creating the strategy, so a wrong name or parameter is one message before any data is loaded."""
    from benchmark.grid.cells import is_generative

    params = parse_options(options, "strategy", "-S degrees=10")
    budget = {
        "generator_steps": generator_steps,
        "generator_seconds": generator_seconds,
        "generator_flops": generator_flops,
    }
    given = {k: v for k, v in budget.items() if v is not None}
    if given and not is_generative(strategy):
        raise MedAugBenchError(
            f"--generator-steps/--generator-seconds/--generator-flops apply to generative strategies "
            f"({', '.join(registry.entries('generator'))}), not to {strategy!r}"
        )
    params = {**params, **given}
    registry.create("strategy", strategy, **params)
    return params
