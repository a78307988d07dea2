"""The `medaugbench` command line (typer). User errors print one line and exit 1, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from benchmark import registry
from benchmark.data.cards import load_card
from benchmark.data.dataset import DataOptions, dataset_source, finalize, load_dataset
from benchmark.errors import MedAugBenchError


class _Group(TyperGroup):
    """Turns `MedAugBenchError` into one 'Error: …' line on stderr and exit code 1."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except MedAugBenchError as error:
            typer.echo(f"Error: {error}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Does synthetic data help a medical image classifier more than classic augmentation, under the same compute?",
)
plugins_app = typer.Typer(no_args_is_help=True, help="Registered plugins.")
datasets_app = typer.Typer(no_args_is_help=True, help="Datasets: list, download/verify, inspect.")
app.add_typer(plugins_app, name="plugins")
app.add_typer(datasets_app, name="datasets")


def console() -> Console:
    """A console for the current stdout; piped output is not cut to 80 columns."""
    import sys

    return Console(width=None if sys.stdout.isatty() else 200)


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
    return dataset_source(name, parse_options(options, "dataset", "-O root=/data/xrays"))


@plugins_app.command("list")
def plugins_list() -> None:
    """Show every registered plugin by kind, with the distribution it came from."""
    table = Table("kind", "name", "from", "description")
    for entry in registry.all_entries():
        table.add_row(entry.kind, entry.name, entry.distribution, entry.description)
    console().print(table)


@datasets_app.command("list")
def datasets_list(data_dir: DataDir = None) -> None:
    """Show every dataset: task, channels, classes, split sizes, licence, local files and card."""
    options = DataOptions(data_dir=data_dir)
    table = Table("name", "task", "ch", "classes", "train/val/test", "licence", "local files")
    notes = []
    for name, entry in registry.entries("dataset").items():
        info = entry.factory().info(options)
        sizes = "/".join(str(info.split_sizes[s]) for s in ("train", "val", "test")) if info.split_sizes else "-"
        classes = f"{len(info.task.labels)}" + (" labels" if info.task.multilabel else "")
        table.add_row(name, info.task.kind, str(info.task.channels), classes, sizes, info.license, info.local)
        card = load_card(name)
        if card and card.caveats:
            notes.append(f"[bold]{name}[/bold]: {card.caveats[0]}")
    console().print(table)
    if notes:
        console().print("Caveats (from dataset cards; `datasets show NAME` prints the full card):")
        for note in notes:
            console().print(f"  {note}")


@datasets_app.command("prepare")
def datasets_prepare(name: str, data_dir: DataDir = None, size: Size = 28, option: PluginOptions = None) -> None:
    """Download (with MD5 check) or verify a dataset's files; files in --data-dir are used in place."""
    plugin, kwargs = dataset_with_options(name, option)
    paths = registry.create("dataset", plugin, **kwargs).prepare(DataOptions(data_dir=data_dir, size=size))
    for path in paths[:20]:
        console().print(f"ready: {path}")
    if len(paths) > 20:
        console().print(f"... and {len(paths) - 20} more files")


@datasets_app.command("show")
def datasets_show(
    name: str,
    out: Annotated[Path | None, typer.Option("--out", help="Write a PNG grid of real images per class here.")] = None,
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "train",
    per_class: Annotated[int, typer.Option("--per-class", help="Images per class in the grid.")] = 8,
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
    task = data.task
    console().print(
        f"[bold]{data.name}[/bold]  task={task.kind}  channels={task.channels}  "
        f"image size={data.image_size} (files: {data.source_size})  licence={info.license}"
    )
    table = Table("class" if not task.multilabel else "label", "train", "val", "test")
    counts = {s: data.split(s).class_counts(task) for s in ("train", "val", "test")}
    for i, label in enumerate(task.labels):
        table.add_row(f"{i}: {label}", *(str(counts[s][i]) for s in ("train", "val", "test")))
    table.add_row("total images", *(str(len(data.split(s))) for s in ("train", "val", "test")))
    console().print(table)
    card = load_card(data.name)
    if card:
        console().print(f"Source: {card.source}\nPaper: {card.paper}")
        for caveat in card.caveats:
            console().print(f"  caveat: {caveat}")
    for skipped in data.provenance.get("skipped", []):
        console().print(f"  skipped unreadable file: {skipped['path']} ({skipped['reason']})")
    if out is not None:
        save_class_grid(data.split(split), task, out, per_class=per_class, seed=seed)
        console().print(f"wrote {out}")


@app.command("train")
def train_command(
    dataset: DatasetName = "pneumoniamnist",
    strategy: Annotated[str, typer.Option("--strategy", help="Augmentation strategy plugin.")] = "none",
    backbone: Annotated[str, typer.Option("--backbone", help="Classifier backbone plugin.")] = "simple_cnn",
    steps: Annotated[int | None, typer.Option("--steps", help="Classifier budget in optimizer steps.")] = None,
    seconds: Annotated[
        float | None, typer.Option("--seconds", help="Classifier budget in device-seconds of training.")
    ] = None,
    flops: Annotated[
        float | None, typer.Option("--flops", help="Classifier budget in FLOPs (counted per step, as whole steps).")
    ] = None,
    seed: Seed = 0,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 128,
    eval_every: Annotated[int, typer.Option("--eval-every", help="Evaluate on validation every N steps.")] = 100,
    optimizer: Annotated[
        str,
        typer.Option("--optimizer", help="seed_paper (Adam 1e-3, cosine) or medmnist (Adam 1e-3, ×0.1 at 50%/75%)."),
    ] = "seed_paper",
    lr: Annotated[float | None, typer.Option("--lr", help="Override the preset's learning rate.")] = None,
    pretrained: Annotated[
        str | None, typer.Option("--pretrained", help="'imagenet' (timm's weights) or a local weights file.")
    ] = None,
    size: Size = 28,
    image_size: ImageSize = None,
    train_fraction: TrainFraction = 1.0,
    per_class_cap: PerClassCap = None,
    data_dir: DataDir = None,
    device: DeviceName = "auto",
    compile_model: Annotated[
        bool, typer.Option("--compile", help="torch.compile the classifier (pays off on GPUs for long budgets).")
    ] = False,
    generator_steps: GeneratorSteps = None,
    generator_seconds: GeneratorSeconds = None,
    generator_flops: GeneratorFlops = None,
    strategy_option: StrategyOptions = None,
    backbone_option: Annotated[
        list[str] | None, typer.Option("--backbone-option", "-B", help="Backbone parameter KEY=VALUE.")
    ] = None,
    option: PluginOptions = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSON record here.")] = None,
) -> None:
    """Train one classifier under a fixed budget and evaluate the best-validation-AUC checkpoint on test."""
    import dataclasses

    from benchmark.train.config import OPTIM_PRESETS, Budget, TrainConfig
    from benchmark.train.loop import train

    plugin, dataset_params = dataset_with_options(dataset, option)
    preset = OPTIM_PRESETS.get(optimizer)
    config = TrainConfig(
        dataset=plugin,
        strategy=strategy,
        backbone=backbone,
        seed=seed,
        budget=Budget(
            steps=500 if steps is None and seconds is None and flops is None else steps, seconds=seconds, flops=flops
        ),
        batch_size=batch_size,
        eval_every=eval_every,
        optimizer=optimizer,
        optim=dataclasses.replace(preset, lr=lr) if preset is not None and lr is not None else None,
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
    if out is not None:
        record.write(out)
        console().print(f"wrote {out}")


def strategy_params(
    strategy: str,
    options: list[str] | None,
    generator_steps: int | None,
    generator_seconds: float | None,
    generator_flops: float | None = None,
) -> dict:
    """-S KEY=VALUE parameters plus the generator budget, which only generative strategies accept."""
    params = parse_options(options, "strategy", "-S degrees=10")
    budget = {
        "generator_steps": generator_steps,
        "generator_seconds": generator_seconds,
        "generator_flops": generator_flops,
    }
    given = {k: v for k, v in budget.items() if v is not None}
    if given and strategy not in registry.entries("generator"):
        raise MedAugBenchError(
            f"--generator-steps/--generator-seconds/--generator-flops apply to generative strategies "
            f"({', '.join(registry.entries('generator'))}), not to {strategy!r}"
        )
    return {**params, **given}


@app.command("synth")
def synth_command(
    dataset: DatasetName = "pneumoniamnist",
    strategy: Annotated[str, typer.Option("--strategy", help="Generative strategy (a registered generator).")] = "cgan",
    generator_steps: GeneratorSteps = None,
    generator_seconds: GeneratorSeconds = None,
    generator_flops: GeneratorFlops = None,
    seed: Seed = 0,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the generator (safetensors + card.json), samples.png, losses.png.")
    ] = Path("runs/generator"),
    per_class: Annotated[int, typer.Option("--per-class", help="Samples per class in samples.png.")] = 8,
    size: Size = 28,
    image_size: ImageSize = None,
    train_fraction: TrainFraction = 1.0,
    per_class_cap: PerClassCap = None,
    data_dir: DataDir = None,
    device: DeviceName = "auto",
    strategy_option: StrategyOptions = None,
    option: PluginOptions = None,
) -> None:
    """Train a generator under a budget (or reuse the cached one), save it, and draw samples per class."""
    from benchmark.data.images import render_rows
    from benchmark.generate import loop as gt
    from benchmark.publish.loss_plots import plot_generator_losses
    from benchmark.train.device import pick_device
    from benchmark.train.loop import seed_everything
    from benchmark.train.strategy import StrategyContext

    if per_class < 1:
        raise MedAugBenchError(f"--per-class must be at least 1, got {per_class}")
    params = strategy_params(strategy, strategy_option, generator_steps, generator_seconds, generator_flops)
    plugin, dataset_params = dataset_with_options(dataset, option)
    options = DataOptions(
        data_dir=data_dir,
        size=size,
        image_size=image_size,
        train_fraction=train_fraction,
        per_class_cap=per_class_cap,
        seed=seed,
    )
    data = load_dataset(plugin, options, **dataset_params)
    seed_everything(seed)
    generative = registry.create("strategy", strategy, **params)
    torch_device = pick_device(device)
    models, card = generative.fitted(StrategyContext(dataset=data, device=torch_device, seed=seed))
    gt.save(out, models, card)
    task = data.task
    samples = generative.sample(models, task, data.train, [per_class] * task.num_outputs, torch_device, seed)
    rows, start = [], 0
    for label in task.labels:
        rows.append((f"{label} (synthetic)", samples.images[start : start + per_class]))
        start += per_class
    render_rows(rows, per_class).save(out / "samples.png")
    plot_generator_losses(card["histories"], out / "losses.png", title=f"{strategy} on {data.name}")
    steps = {name: h["steps"] for name, h in card["histories"].items()}
    console().print(
        f"generator {strategy} on {data.name}: steps per model {steps}; "
        f"{'reused ' + card['reused_from'] if 'reused_from' in card else 'trained'}"
    )
    console().print(f"wrote {out / gt.WEIGHTS}, {out / gt.CARD}, {out / 'samples.png'}, {out / 'losses.png'}")


@app.command("quality")
def quality_command(
    dataset: DatasetName = "pneumoniamnist",
    generator: Annotated[Path | None, typer.Option("--generator", help="A generator folder saved by `synth`.")] = None,
    images: Annotated[
        Path | None,
        typer.Option(
            "--images",
            help="Synthetic images from any tool: an .npz (images[, labels]) or a folder (class sub-folders, or flat).",
        ),
    ] = None,
    extractor: Annotated[
        str,
        typer.Option("--extractor", help="Feature extractor: domain (offline, trained on the dataset) or inception."),
    ] = "domain",
    extractor_option: Annotated[
        list[str] | None,
        typer.Option(
            "--extractor-option",
            "-E",
            help="Extractor parameter KEY=VALUE, e.g. -E weights=/path/inception.pth or -E steps=300.",
        ),
    ] = None,
    n: Annotated[
        int,
        typer.Option(
            "--n",
            help=(
                "Synthetic images to draw from --generator (real training class proportions); "
                "also the report's max_images."
            ),
        ),
    ] = 2000,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the JSON quality record here (and the closest-pairs PNG beside it)."),
    ] = None,
    seed: Seed = 0,
    size: Size = 28,
    image_size: ImageSize = None,
    data_dir: DataDir = None,
    device: DeviceName = "auto",
    option: PluginOptions = None,
) -> None:
    """FID, KID, precision/recall/density/coverage against real training images of the same class composition and n
    (next to the real-test-vs-train floor), MS-SSIM diversity, nearest-real SSIM/PSNR, and a memorisation audit of
    synthetic images against every training image."""
    from benchmark.evaluate.features import make_extractor
    from benchmark.evaluate.image_sets import generated_split, load_image_set
    from benchmark.evaluate.quality import quality_report, save_closest_pairs_png
    from benchmark.train.device import pick_device

    if (generator is None) == (images is None):
        raise MedAugBenchError(
            "give exactly one source of synthetic images: --generator FOLDER or --images NPZ_OR_FOLDER"
        )
    plugin, dataset_params = dataset_with_options(dataset, option)
    options = DataOptions(data_dir=data_dir, size=size, image_size=image_size, seed=seed)
    data = load_dataset(plugin, options, **dataset_params)
    torch_device = pick_device(device)
    if generator is not None:
        fake = generated_split(generator, data, n, torch_device, seed)
    else:
        fake = load_image_set(images, data)
    features = make_extractor(extractor, data, **parse_options(extractor_option, "extractor", "-E steps=300")).to(
        torch_device
    )
    report = quality_report(
        data.train, data.test, fake, data.task, features, max_images=n, seed=seed, device=torch_device
    )
    print_quality(report)
    if out is not None:
        from benchmark.data.files import write_json_atomic

        write_json_atomic(out, report)
        closest = report["memorisation"]["pixel"]["closest_pairs"]
        pairs = save_closest_pairs_png(fake.images, data.train.images, closest, out.with_suffix(".pairs.png"))
        console().print(f"wrote {out} and {pairs}")


GridSpec = Annotated[
    str | None,
    typer.Argument(help="A grid config (.toml/.yaml) or a preset: quick (default), standard, paper, ablation."),
]
ResultsDir = Annotated[Path | None, typer.Option("--results", "-o", help="Results folder (default: runs/<grid name>).")]


@app.command("run")
def run_command(
    config: GridSpec = None,
    results: ResultsDir = None,
    executor: Annotated[
        str, typer.Option("--executor", help="How cells run: local (see `plugins list` for others).")
    ] = "local",
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="local: parallel worker processes (default: one per visible GPU, else 1)."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="ray: join this cluster ('auto': the running one); default: start a local one."),
    ] = None,
    cpus_per_cell: Annotated[
        int | None, typer.Option("--cpus-per-cell", help="ray without GPUs: CPUs each cell gets (default 1).")
    ] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run cells recorded as failed again.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the grid and list its cells; train nothing.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Run a benchmark grid (resumable: finished cells are skipped), then write and print its leaderboard."""
    from benchmark.grid.config import resolve_grid
    from benchmark.grid.runner import plan, run_grid

    grid = resolve_grid(config)
    results_dir = results or Path("runs") / grid.name
    if dry_run:
        todo, done = plan(grid, results_dir, data_dir, retry_failed)
        table = Table(
            "cell",
            "dataset",
            "strategy",
            "backbone",
            "seed",
            "fraction",
            "policy",
            "status",
            title=f"grid {grid.name}: {len(todo) + len(done)} cells, budget: {grid.budget.describe()}",
        )
        for cell, status in [(cell, "to run") for cell in todo] + [(cell, "recorded") for cell in done]:
            c = cell.coords
            table.add_row(
                cell.cell_id,
                c["dataset"],
                c["strategy"],
                c["backbone"],
                str(c["seed"]),
                f"{c['train_fraction']:g}",
                c["policy"] or "-",
                status,
            )
        console().print(table)
        return
    given = (("workers", workers), ("address", address), ("cpus_per_cell", cpus_per_cell))
    options = {key: value for key, value in given if value is not None}
    accepted = {"local": {"workers"}, "ray": {"address", "cpus_per_cell"}}.get(executor, set(options))
    if set(options) - accepted:
        flags = ", ".join("--" + k.replace("_", "-") for k in sorted(set(options) - accepted))
        raise MedAugBenchError(f"{flags} does not apply to --executor {executor}")
    run = run_grid(
        grid,
        results_dir,
        registry.create("executor", executor, **options),
        data_dir=data_dir,
        retry_failed=retry_failed,
    )
    console().print(
        f"grid {grid.name}: {len(run.outcomes)} cells run ({len(run.failed)} failed), {run.skipped} already recorded, "
        f"{run.seconds / 60:.1f} min; budget: {grid.budget.describe()}"
    )
    for outcome in run.failed:
        console().print(f"  failed: {outcome.label}: {outcome.error}")
    publish(results_dir, grid.baseline)
    if run.failed:
        console().print("Failed cells are recorded with their error; fix the cause and rerun with --retry-failed.")


@app.command("leaderboard")
def leaderboard_command(
    results_dir: Annotated[Path, typer.Argument(help="A results folder written by `medaugbench run`.")],
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Strategy the statistics compare against (default: the grid's, else none)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for tables and plots (default: RESULTS_DIR/leaderboard).")
    ] = None,
) -> None:
    """Rebuild the leaderboard tables, statistics and plots from the records in RESULTS_DIR."""
    if not results_dir.is_dir():
        raise MedAugBenchError(
            f"{results_dir} is not a folder; give the results folder of `medaugbench run` (default runs/<grid name>)"
        )
    publish(results_dir, baseline or grid_baseline(results_dir), out)


@app.command("report")
def report_command(
    results_dir: Annotated[Path, typer.Argument(help="A results folder written by `medaugbench run`.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write (default: RESULTS_DIR/report.html).")
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Strategy the statistics compare against (default: the grid's, else none)."),
    ] = None,
) -> None:
    """Write one self-contained HTML report (tables, statistics, plots, samples, failures) of RESULTS_DIR."""
    from benchmark.publish.report import write_report

    typer.echo(str(write_report(results_dir, out, baseline=baseline or grid_baseline(results_dir))))


def grid_baseline(results_dir: Path) -> str:
    """The baseline named by the grid that wrote the folder (grid.json), else `none`."""
    from benchmark.grid.store import read_grid_file

    grid = read_grid_file(results_dir).get("grid")
    return grid.get("baseline", "none") if isinstance(grid, dict) else "none"


def publish(results_dir: Path, baseline: str, out: Path | None = None) -> None:
    """Write leaderboard tables and plots for a results folder and print the headline table per dataset."""
    from benchmark.grid.store import load_records
    from benchmark.publish.leaderboard import console_rows, write_leaderboard
    from benchmark.publish.plots import write_plots

    board = write_leaderboard(results_dir, out, baseline=baseline)
    plots = write_plots(load_records(results_dir), (out or results_dir / "leaderboard") / "plots")
    for dataset in board.datasets:
        rows = console_rows(board, dataset)
        table = Table(*rows[0], title=f"{dataset} (test set; mean ± std over seeds)")
        for row in rows[1:]:
            table.add_row(*row)
        console().print(table)
    folder = board.paths[0].parent
    console().print(
        f"wrote {folder / 'leaderboard.md'} (Tables 2-4 layouts, ranks, failures), {len(board.paths) - 1} CSVs in "
        f"{folder} and {len(plots)} plots in {folder / 'plots'}; `medaugbench report {results_dir}` makes one HTML page"
    )


QUALITY_COLUMNS = {
    "fid": "FID",
    "kid_mean": "KID",
    "precision": "precision",
    "recall": "recall",
    "density": "density",
    "coverage": "coverage",
}


def print_quality(report: dict) -> None:
    """The class-matched block and the per-class blocks, each metric next to its floor, then the memorisation audit."""
    extractor = f"{report['extractor']['name']}, {report['matched']['feature_dim']} features"
    table = Table(
        "group",
        "n",
        *(f"{header} (floor)" for header in QUALITY_COLUMNS.values()),
        "MS-SSIM syn / real",
        title=f"synthetic vs real training images of the same class composition and n ({extractor})",
    )
    per_class = ((f"class {label}", block) for label, block in report["per_class"].items())
    for name, block in [("matched", report["matched"]), *per_class]:
        fake, floor = block["fake_vs_real"], block["floor"]
        table.add_row(
            name,
            f"{block['n']}{' *' if block['rank_deficient'] else ''}",
            *(f"{_cell(fake[key])} ({_cell(floor[key])})" for key in QUALITY_COLUMNS),
            f"{_cell(block['ms_ssim_fake'])} / {_cell(block['ms_ssim_real'])}",
        )
    console().print(table)
    console().print(
        "floor: real test images drawn with the same composition and n, scored against the same training "
        "images (what a perfect generator would reach). * n - 1 < feature count: singular covariance, the "
        "FID is unreliable."
    )
    audit = report["memorisation"]
    for space in ("pixel", "feature"):
        found = audit[space]
        console().print(
            f"memorisation ({space} space, {audit['n_fake']} synthetic vs all {audit['n_train']} training "
            f"images): {found['exact_copies']} exact copies; {found['near_copies']} near copies "
            f"({found['near_copy_fraction']:.1%}, exact ones included) within {found['threshold']:.4g}, "
            f"the {audit['quantile']:g} quantile of {audit['n_test']} test images' nearest-training distances"
        )


SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1", "auc", "ece")


def print_summary(record) -> None:  # type: ignore[no-untyped-def]
    """Metrics table (val of the selected checkpoint, and test) plus the budget actually used."""
    table = Table(
        "metric",
        "val",
        "test",
        title=f"{record.dataset['name']} · {record.strategy['name']} · "
        f"{record.config['backbone']} · seed {record.config['seed']}",
    )
    extra = ("average_precision",) if record.dataset["task"]["kind"] == "multilabel" else ()
    for name in SUMMARY_METRICS + extra:
        table.add_row(name, *(_cell(record.metrics[s].get(name)) for s in ("val", "test")))
    console().print(table)
    used = record.budget
    console().print(
        f"budget: {used.steps} steps, {used.images_seen} images seen, train {used.seconds['train']:.1f} s, "
        f"total {used.seconds['total']:.1f} s, peak memory {used.peak_memory_bytes / 2**20:.0f} MiB; "
        f"best checkpoint at step {record.best['step']}; training set {record.dataset['train_real']} real + "
        f"{record.dataset['train_synthetic']} synthetic"
    )
    phases = record.compute["phases"]
    spent = [
        f"{name.replace('_', ' ')} {phase['flops']:.3g} FLOPs / {phase['seconds']:.1f} s"
        for name, phase in phases.items()
    ]
    console().print(f"compute: {', '.join(spent)}; total {record.compute['total']['flops']:.3g} FLOPs")


def _cell(value: object) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
