"""`medaugbench leaderboard` and `report`: tables, statistics, plots and one HTML page from a results folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from benchmark.cli.display import console, print_table
from benchmark.errors import MedAugBenchError

ResultsFolder = Annotated[Path, typer.Argument(help="A results folder written by `medaugbench run`.")]
Baseline = Annotated[
    str | None,
    typer.Option("--baseline", help="Strategy the statistics compare against (default: the grid's, else none)."),
]
BoardOut = Annotated[
    Path | None, typer.Option("--out", help="Folder for tables and plots (default: RESULTS_DIR/leaderboard).")
]
ReportOut = Annotated[Path | None, typer.Option("--out", help="HTML file to write (default: RESULTS_DIR/report.html).")]


def leaderboard_command(results_dir: ResultsFolder, baseline: Baseline = None, out: BoardOut = None) -> None:
    """Rebuild the leaderboard tables, statistics and plots from the records in RESULTS_DIR."""
    if not results_dir.is_dir():
        raise MedAugBenchError(
            f"{results_dir} is not a folder; give the results folder of `medaugbench run` (default runs/<grid name>)"
        )
    publish(results_dir, baseline or grid_baseline(results_dir), out)


def report_command(results_dir: ResultsFolder, out: ReportOut = None, baseline: Baseline = None) -> None:
    """Write one self-contained HTML report (tables, statistics, plots, samples, failures) of RESULTS_DIR."""
    from benchmark.publish.report import write_report

    typer.echo(str(write_report(results_dir, out, baseline=baseline or grid_baseline(results_dir))))


PilotOut = Annotated[Path | None, typer.Option("--out", help="Folder to write (default: RESULTS_DIR/pilot).")]


def pilot_command(results_dir: ResultsFolder, out: PilotOut = None) -> None:
    """Choose budgets from a pilot's records (e.g. `medaugbench run cpu-pilot`): FID against generator steps, val AUC
    against classifier steps, and where each stopped improving."""
    from benchmark.publish.pilot import pilot_curves, write_pilot

    if not results_dir.is_dir():
        raise MedAugBenchError(f"{results_dir} is not a folder; give the results folder of a pilot run")
    generators, classifiers = pilot_curves(results_dir)
    paths = write_pilot(generators, classifiers, out or results_dir / "pilot")
    rows = [(c.dataset, c.strategy, str(c.choice.steps), c.choice.reason, c.choice.detail) for c in generators]
    rows += [(c.dataset, "classifier", str(c.choice.steps), c.choice.reason, c.choice.detail) for c in classifiers]
    print_table(("dataset", "model", "steps", "why", "detail"), rows, title="budgets chosen by the pilot")
    console().print(f"wrote {', '.join(str(p) for p in paths)}")


ClaimsFolders = Annotated[list[Path], typer.Argument(help="Results folders written by `medaugbench run`.")]
ClaimsOut = Annotated[Path, typer.Option("--out", help="Folder for claims.md and claims.csv.")]


def claims_command(results_dirs: ClaimsFolders, out: ClaimsOut = Path("results/claims")) -> None:
    """Set the seed papers' claims (the cGAN paper's Table 2, the balancing paper's +400 normals) beside what
    RESULTS_DIRS measured for the same strategies: Δ over `none`, 95% CI, Holm-corrected p, ranks."""
    from benchmark.publish.claims import write_claims

    for folder in results_dirs:
        if not folder.is_dir():
            raise MedAugBenchError(f"{folder} is not a folder; give results folders written by `medaugbench run`")
    paths = write_claims(results_dirs, out)
    console().print(f"wrote {', '.join(str(p) for p in paths)}")


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
        header, *rows = console_rows(board, dataset)
        print_table(header, rows, title=f"{dataset} (test set; mean ± std over seeds)")
    folder = board.paths[0].parent
    console().print(
        f"wrote {folder / 'leaderboard.md'} (Tables 2-4 layouts, ranks, failures), {len(board.paths) - 1} CSVs in "
        f"{folder} and {len(plots)} plots in {folder / 'plots'}; `medaugbench report {results_dir}` makes one HTML page"
    )
