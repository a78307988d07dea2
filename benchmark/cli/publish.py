"""`medaugbench leaderboard` and `report`: tables, statistics, plots and one HTML page from a results folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from benchmark.cli.display import console, print_table
from benchmark.errors import MedAugBenchError

if TYPE_CHECKING:
    from benchmark.grid.store import CellRecord

T = TypeVar("T")
ResultsFolder = Annotated[Path, typer.Argument(help="A results folder written by `medaugbench run`.")]
Baseline = Annotated[
    str | None,
    typer.Option("--baseline", help="Strategy the statistics compare against (default: the grid's, else none)."),
]
BoardOut = Annotated[
    Path | None, typer.Option("--out", help="Folder for tables and plots (default: RESULTS_DIR/leaderboard).")
]
ReportOut = Annotated[Path | None, typer.Option("--out", help="HTML file to write (default: RESULTS_DIR/report.html).")]
AllowMissingBaseline = Annotated[
    bool,
    typer.Option(
        "--allow-missing-baseline",
        help="Publish even where the baseline has no successful run (its Δ columns stay empty); refused by default.",
    ),
]


def leaderboard_command(
    results_dir: ResultsFolder,
    baseline: Baseline = None,
    out: BoardOut = None,
    allow_missing_baseline: AllowMissingBaseline = False,
) -> None:
    """Rebuild the leaderboard tables, statistics and plots from the records in RESULTS_DIR; records it cannot read
    are named, and a table without a baseline run is refused unless --allow-missing-baseline."""
    if not results_dir.is_dir():
        raise MedAugBenchError(
            f"{results_dir} is not a folder; give the results folder of `medaugbench run` (default runs/<grid name>)"
        )
    publish(results_dir, baseline or grid_baseline(results_dir), out, allow_missing_baseline)


def report_command(
    results_dir: ResultsFolder,
    out: ReportOut = None,
    baseline: Baseline = None,
    allow_missing_baseline: AllowMissingBaseline = False,
) -> None:
    """Write one self-contained HTML report (tables, statistics, plots, samples, failures) of RESULTS_DIR."""
    from benchmark.publish.report import write_report

    path = writing(
        lambda: write_report(results_dir, out, baseline or grid_baseline(results_dir), allow_missing_baseline),
        out or results_dir,
    )
    typer.echo(str(path))


PilotOut = Annotated[Path | None, typer.Option("--out", help="Folder to write (default: RESULTS_DIR/pilot).")]


def pilot_command(results_dir: ResultsFolder, out: PilotOut = None) -> None:
    """Choose budgets from a pilot's records (e.g. `medaugbench run cpu-pilot`): FID against generator steps, every
    strategy's val AUC at each candidate classifier budget, and where each stopped improving."""
    from benchmark.publish.pilot import pilot_curves, write_pilot

    if not results_dir.is_dir():
        raise MedAugBenchError(f"{results_dir} is not a folder; give the results folder of a pilot run")
    pilot = pilot_curves(results_dir)
    paths = write_pilot(pilot, out or results_dir / "pilot")
    rows = [(c.dataset, c.strategy, str(c.choice.steps), c.choice.reason, c.choice.detail) for c in pilot.generators]
    if pilot.classifier is not None:
        budgets = pilot.classifier.budgets.items()
        rows += [(d, f"classifier ({b.strategy})", str(b.steps), b.reason, b.detail) for d, b in budgets]
        run = pilot.classifier.run
        rows.append(("run", f"classifier ({run.strategy})", str(run.steps), run.reason, run.detail))
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


CurveFolders = Annotated[
    list[Path], typer.Argument(help="Results folders of one grid at different budgets (e.g. compute totals).")
]
CurveOut = Annotated[Path, typer.Option("--out", help="Folder for compute_curve.csv/.md and the plots.")]


def compute_curve_command(results_dirs: CurveFolders, out: CurveOut = Path("results/compute-curve")) -> None:
    """Test AUC (and balanced accuracy) against the total FLOPs each strategy's cells spent, one point per results
    folder: a compute curve from grids that differ only in their budget."""
    from benchmark.publish.compute_curve import write_compute_curve

    for folder in results_dirs:
        if not folder.is_dir():
            raise MedAugBenchError(f"{folder} is not a folder; give results folders written by `medaugbench run`")
    paths = writing(lambda: write_compute_curve(results_dirs, out), out)
    console().print(f"wrote {', '.join(str(p) for p in paths)}")


def grid_baseline(results_dir: Path) -> str:
    """The baseline named by the grid that wrote the folder (grid.json), else `none`."""
    from benchmark.grid.store import read_grid_file

    grid = read_grid_file(results_dir).get("grid")
    return grid.get("baseline", "none") if isinstance(grid, dict) else "none"


def publish(results_dir: Path, baseline: str, out: Path | None = None, allow_missing_baseline: bool = False) -> None:
    """Write leaderboard tables and plots for a results folder, name every record it could not read, and print the
    headline table per dataset."""
    from benchmark.publish.leaderboard import console_rows, write_leaderboard
    from benchmark.publish.plots import write_plots

    folder = out or results_dir / "leaderboard"
    board = writing(lambda: write_leaderboard(results_dir, folder, baseline, allow_missing_baseline), folder)
    plots = writing(lambda: write_plots(board.records, folder / "plots"), folder / "plots")
    for line in board.unreadable:
        typer.echo(f"Warning: left out, could not read {line}", err=True)
    for dataset in board.datasets:
        header, *rows = console_rows(board, dataset)
        print_table(header, rows, title=f"{dataset} (test set; mean ± std over seeds)")
    csvs = sum(path.suffix == ".csv" for path in board.paths)  # beside leaderboard.md, worth.md and worth plots
    console().print(
        f"wrote {folder / 'leaderboard.md'} (Tables 2-4 layouts, ranks, failures), {csvs} CSVs in "
        f"{folder} and {len(plots)} plots in {folder / 'plots'}; "
        f"`{report_hint(results_dir, baseline, out, allow_missing_baseline)}` makes one HTML page of the same tables"
    )
    ship_extractors(results_dir, board.records)


def report_hint(results_dir: Path, baseline: str, out: Path | None, allow_missing_baseline: bool) -> str:
    """The `report` command that shows the leaderboard just written: same folder and baseline, its page beside the
    tables when they went to --out."""
    words = ["medaugbench report", str(results_dir)]
    words += [] if baseline == grid_baseline(results_dir) else ["--baseline", baseline]
    words += [] if out is None else ["--out", str(out / "report.html")]
    return " ".join(words + (["--allow-missing-baseline"] if allow_missing_baseline else []))


def writing(write: Callable[[], T], where: Path) -> T:
    """Run a publishing write, turning a file-system refusal (read-only folder, disk full, a file where a folder
    should be) into one message; the atomic writers leave no half-written file behind."""
    try:
        return write()
    except OSError as error:
        raise MedAugBenchError(
            f"cannot write {error.filename or where}: {error.strerror or error}; make {where} writable, free space "
            "or give --out another place, then run the command again"
        ) from None


def ship_extractors(results_dir: Path, records: list[CellRecord] | None = None) -> list[Path]:
    """Copy the weights of every feature extractor the folder's quality records (or `records`, those the leaderboard
    could read) name into RESULTS_DIR/extractors (safetensors + JSON with SHA-256 and card), so `medaugbench quality
    --extractor-weights FILE` recomputes the published FIDs anywhere. Inception's public weights are named by their
    SHA-256 only, and weights no longer on this machine are listed, not shipped."""
    from benchmark.evaluate.features import ship_weights
    from benchmark.grid.store import load_records

    used = {}
    for record in load_records(results_dir) if records is None else records:
        quality = record.result.strategy.quality if record.result is not None else None
        if quality is not None and quality.extractor.get("weights_sha256"):
            used.setdefault(quality.extractor["weights_sha256"], quality.extractor)
    shipped, missing = [], []
    for digest, described in used.items():
        if described["name"] == "inception":  # public weights, named by their SHA-256
            continue
        try:
            shipped.append(ship_weights(described, results_dir / "extractors"))
        except MedAugBenchError:
            missing.append(f"{described['name']} {digest[:12]}…")
    if shipped:
        console().print(f"shipped {len(shipped)} extractor weights to {results_dir / 'extractors'}")
    if missing:
        console().print(
            f"not shipped (weights no longer on this machine; rerun those cells here): {', '.join(missing)}"
        )
    return shipped
