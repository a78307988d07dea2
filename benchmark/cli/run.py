"""`medaugbench run`: a benchmark grid through an executor (or its cell list with --dry-run), then its leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from benchmark import registry
from benchmark.cli.display import console, print_table
from benchmark.cli.options import DataDir, parse_options
from benchmark.cli.publish import publish
from benchmark.errors import MedAugBenchError
from benchmark.grid.config import preset_names

if TYPE_CHECKING:
    from benchmark.grid.cells import Cell
    from benchmark.grid.config import GridConfig
    from benchmark.grid.runner import GridRun

GridSpec = Annotated[
    str | None,
    typer.Argument(help=f"A grid config (.toml/.yaml) or a preset: {', '.join(preset_names())} (default quick)."),
]
ResultsDir = Annotated[Path | None, typer.Option("--results", "-o", help="Results folder (default: runs/<grid name>).")]
ExecutorName = Annotated[
    str, typer.Option("--executor", help="How cells run: local (see `medaugbench plugins list` for others).")
]
ExecutorOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--executor-option",
        "-X",
        help=(
            "Executor option KEY=VALUE, e.g. -X workers=2 (local) or -X address=auto (ray). "
            "`medaugbench plugins show executor NAME` lists an executor's options and its docstring explains them."
        ),
    ),
]
WorkersPerGpu = Annotated[
    int | None,
    typer.Option(
        "--workers-per-gpu",
        help="Cells sharing one GPU (-X workers_per_gpu=N): local runs N workers per GPU, ray gives each cell 1/N GPU.",
    ),
]
RetryFailed = Annotated[bool, typer.Option("--retry-failed", help="Run cells recorded as failed again.")]
AllowFailures = Annotated[
    bool,
    typer.Option("--allow-failures", help="Exit 0 even when cells failed (they are recorded; default: exit 1)."),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Check the grid and list its cells; train nothing.")]


def run_command(
    config: GridSpec = None,
    results: ResultsDir = None,
    executor: ExecutorName = "local",
    executor_option: ExecutorOptions = None,
    workers_per_gpu: WorkersPerGpu = None,
    retry_failed: RetryFailed = False,
    allow_failures: AllowFailures = False,
    dry_run: DryRun = False,
    data_dir: DataDir = None,
) -> None:
    """Run a benchmark grid (resumable: finished cells are skipped), then write and print its leaderboard; exit 1
    when a cell failed (unless --allow-failures)."""
    from benchmark.grid.config import resolve_grid
    from benchmark.grid.plan import plan

    grid = resolve_grid(config)
    results_dir = results or Path("runs") / grid.name
    if dry_run:  # checks names and parameters without building plugins: nothing here imports torch
        planned = plan(grid, results_dir, data_dir, retry_failed, build=False)
        print_plan(grid, planned.todo, planned.done)
        return
    from benchmark.grid.runner import run_grid

    options = parse_options(executor_option, "executor", "-X workers=2")
    if workers_per_gpu is not None:
        options["workers_per_gpu"] = workers_per_gpu
    cells_executor = registry.create("executor", executor, **options)
    run = run_grid(grid, results_dir, cells_executor, data_dir=data_dir, retry_failed=retry_failed)
    print_run(grid, run)
    publish(results_dir, grid.baseline, allow_missing_baseline=allow_failures)
    if run.failed and not allow_failures:
        raise MedAugBenchError(failure_summary(run))
    if run.failed:
        console().print("Failed cells are recorded with their error; fix the cause and rerun with --retry-failed.")


def failure_summary(run: GridRun) -> str:
    """One line naming the failed cells (the first three) and what to do."""
    labels = [outcome.label for outcome in run.failed]
    named = "; ".join(labels[:3]) + (f"; and {len(labels) - 3} more" if len(labels) > 3 else "")
    return (
        f"{len(labels)} of {len(run.outcomes)} cells run failed ({named}); their errors are recorded and listed "
        "above: fix the cause and rerun with --retry-failed (or pass --allow-failures to exit 0 with failed cells)"
    )


def print_plan(grid: GridConfig, todo: list[Cell], done: list[Cell]) -> None:
    """Every cell of the grid with its coordinates and whether it is still to run or already recorded."""
    rows = []
    for cell, status in [(cell, "to run") for cell in todo] + [(cell, "recorded") for cell in done]:
        c = cell.coords
        fraction, policy = f"{c['train_fraction']:g}", c["policy"] or "-"
        seeds = f"{c['generator_seed']} / {c['seed']}"
        rows.append((cell.cell_id, c["dataset"], c["strategy"], c["backbone"], seeds, fraction, policy, status))
    print_table(
        ("cell", "dataset", "strategy", "backbone", "seeds (generator / classifier)", "fraction", "policy", "status"),
        rows,
        title=f"grid {grid.name}: {len(todo) + len(done)} cells, budget: {grid.budget.describe()}",
    )


def print_run(grid: GridConfig, run: GridRun) -> None:
    """What the run did: cells run, failed and skipped, its time and budget, what the folder's cells spent (each
    generator counted once), and each failure's error."""
    from benchmark.grid.store import compute_total, load_records

    console().print(
        f"grid {grid.name}: {len(run.outcomes)} cells run ({len(run.failed)} failed), {run.skipped} already recorded, "
        f"{run.seconds / 60:.1f} min; budget: {grid.budget.describe()}"
    )
    spent = compute_total(load_records(run.results_dir))
    console().print(
        f"compute of every recorded cell: {spent.flops:.3g} FLOPs, {spent.seconds / 60:.1f} device-min; "
        f"{spent.generators} generator trainings counted once, reused by {spent.reused} more cells"
    )
    for outcome in run.failed:
        console().print(f"  failed: {outcome.label}: {outcome.error}")
