"""Leaderboards from a results folder: a long table of runs, per-dataset mean ± std with Student-t CIs over runs and
each row's variance by source, the class-matched FID/KID next to their in-distribution floors, each strategy against a
baseline and the family comparisons (classic vs generative, generative vs rebalancing) with the run-level paired
t-test as the primary inference (Holm-corrected per table, with the smallest difference it can detect) and a paired
bootstrap over test images as a secondary column (per-run DeLong and McNemar kept apart), probability of improvement
and IQM across tasks, Friedman ranks and the critical difference over blocks; written as full-precision CSVs and a
Markdown file laid out like the seed paper's tables. This module builds and writes them: the folder is read in
`results`, the tables are built in `tables` and `comparisons`, and leaderboard.md in `markdown`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.data.files import write_text_atomic
from benchmark.data.labels import safe_label
from benchmark.errors import MedAugBenchError
from benchmark.grid.store import OK, CellRecord, records_dir
from benchmark.publish.comparisons import across_table, comparison_table, missing_baseline, power_table, seed_tests
from benchmark.publish.fmt import MARKERS, fmt_ci, fmt_n, fmt_p, fmt_pm, fmt_quality
from benchmark.publish.markdown import render_markdown
from benchmark.publish.results import Unreadable, long_table, read_predictions, read_results
from benchmark.publish.tables import cross_dataset_table, image_variances, quality_table, rank_table, wide_table


@dataclass
class Leaderboard:
    """Every table of a results folder, the Markdown rendering them, and the files written."""

    results_dir: Path
    baseline: str
    long: pd.DataFrame
    wide: dict[str, pd.DataFrame]
    cross_dataset: pd.DataFrame
    stats: pd.DataFrame
    seed_tests: pd.DataFrame
    ranks: pd.DataFrame
    quality: pd.DataFrame = field(default_factory=pd.DataFrame)
    families: pd.DataFrame = field(default_factory=pd.DataFrame)
    power: pd.DataFrame = field(default_factory=pd.DataFrame)
    across: pd.DataFrame = field(default_factory=pd.DataFrame)
    markdown: str = ""
    paths: list[Path] = field(default_factory=list)
    records: list[CellRecord] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)

    @property
    def datasets(self) -> list[str]:
        """The datasets in the results folder, in table order."""
        return list(self.wide)


def build_leaderboard(results_dir: Path, baseline: str = "none", allow_missing_baseline: bool = False) -> Leaderboard:
    """Every table and the Markdown of a results folder, in memory. A folder where some table has runs but no
    successful `baseline` run is refused (every Δ would be empty) unless `allow_missing_baseline`."""
    records, unreadable = read_results(results_dir)
    if not records:
        lost = f"; none could be read: {_lost(unreadable)}" if unreadable else ""
        raise MedAugBenchError(
            f"no readable cell record in {records_dir(results_dir)}{lost}: run `medaugbench run` into {results_dir} "
            "first"
        )
    long = long_table(records)
    ok = long.loc[long["status"] == OK, "cell_id"]
    predictions, damaged = read_predictions(results_dir, ok.tolist())
    unreadable += damaged
    if not allow_missing_baseline:
        check_baseline(Path(results_dir), long, baseline, unreadable)
    long = image_variances(long, predictions)
    wide = {dataset: wide_table(long, dataset) for dataset in sorted(long["dataset"].unique())}
    compared = comparison_table(long, predictions, baseline)
    families = comparison_table(long, predictions, baseline, family=True)
    board = Leaderboard(
        Path(results_dir),
        baseline,
        long,
        wide,
        cross_dataset_table(wide),
        compared,
        seed_tests(long, predictions, baseline),
        rank_table(long),
        quality_table(wide),
        families=families,
        power=power_table(pd.concat([compared, families], ignore_index=True)),
        across=across_table(long, baseline),
        records=records,
        unreadable=unreadable,
    )
    board.markdown = render_markdown(board)
    return board


def check_baseline(results_dir: Path, long: pd.DataFrame, baseline: str, unreadable: list[Unreadable]) -> None:
    """Refuse, in one message, a leaderboard whose tables would compare against a baseline that has no run."""
    groups = missing_baseline(long, baseline)
    if not groups:
        return
    lost = f"; {len(unreadable)} unreadable: {_lost(unreadable)}" if unreadable else ""
    raise MedAugBenchError(
        f"baseline {baseline!r} has no successful run in {', '.join(groups)}{lost}, so every Δ against it would be "
        f"empty. Rerun its cells (`medaugbench run CONFIG --results {results_dir} --retry-failed`, after deleting "
        "any damaged record), pick another with --baseline, or publish without those Δ: "
        f"`medaugbench leaderboard {results_dir} --allow-missing-baseline`"
    )


def _lost(unreadable: list[Unreadable], shown: int = 3) -> str:
    """The first few unreadable files with their reasons, and how many more."""
    more = len(unreadable) - shown
    return "; ".join(str(u) for u in unreadable[:shown]) + (f"; and {more} more" if more > 0 else "")


def table_names(board: Leaderboard) -> dict[str, pd.DataFrame]:
    """Every CSV of a leaderboard by file stem: the long table, one per dataset named by its `safe_label` (never the
    dataset string, which may be a path), then the other tables."""
    rest = {
        "cross_dataset": board.cross_dataset,
        "stats": board.stats,
        "families": board.families,
        "power": board.power,
        "across_tasks": board.across,
        "stats_per_seed": board.seed_tests,
        "ranks": board.ranks,
        "quality": board.quality,
    }
    reserved = {"long", *rest}
    return {
        "long": board.long,
        **{safe_label(dataset, reserved): frame for dataset, frame in board.wide.items()},
        **rest,
    }


def write_leaderboard(
    results_dir: Path, out_dir: Path | None = None, baseline: str = "none", allow_missing_baseline: bool = False
) -> Leaderboard:
    """Build the leaderboard and write its CSVs (full precision) and leaderboard.md atomically into `out_dir`, which
    every file lies inside."""
    out = check_out_folder(Path(out_dir) if out_dir is not None else Path(results_dir) / "leaderboard")
    board = build_leaderboard(results_dir, baseline, allow_missing_baseline)
    from benchmark.publish.worth import worth_of  # built on this module's tables, so imported here

    worth = worth_of(board)  # worth in real images, where `none` ran at several train fractions of a dataset
    if worth is not None:
        board.markdown += "\n" + worth.markdown
        board.paths += worth.write(out, board.records)
    from benchmark.publish.robustness import robustness_of  # likewise

    robust = robustness_of(board)  # MedMNIST-C robustness, where cells scored it
    if robust is not None:
        board.markdown += "\n" + robust.markdown
        board.paths += robust.write(out)
    for name, frame in table_names(board).items():
        board.paths.append(write_text_atomic(out / f"{name}.csv", frame.to_csv(index=False)))
    board.paths.append(write_text_atomic(out / "leaderboard.md", board.markdown))
    return board


def check_out_folder(out: Path) -> Path:
    """The leaderboard's output folder, refused in one message when the path exists and is not a folder."""
    if out.exists() and not out.is_dir():
        raise MedAugBenchError(
            f"--out {out} is a file; the leaderboard writes a folder of tables and plots: give a folder (new or "
            "existing), e.g. RESULTS_DIR/leaderboard; for one HTML file use `medaugbench report RESULTS_DIR --out FILE`"
        )
    return out


def console_rows(board: Leaderboard, dataset: str) -> list[tuple[str, ...]]:
    """A dataset's headline columns as strings for the CLI's table, the header first."""
    compared = board.stats[board.stats["dataset"] == dataset].set_index("model")
    rows = [
        ("Model", "Backbone", "n", "Accuracy (%)", "AUC [95% CI]", "FID (floor)", f"Δ AUC vs {board.baseline} (Holm p)")
    ]
    for row in board.wide[dataset].to_dict("records"):
        if row["strategy"] == board.baseline:
            delta = "baseline"
        elif row["model"] in compared.index and pd.notna(compared.at[row["model"], "auc_diff"]):
            other = compared.loc[row["model"]]
            delta = f"{other['auc_diff']:+.3f} (p={fmt_p(other['auc_t_p_holm'])}){MARKERS[other['auc_marker']]}"
        else:
            delta = "–"
        auc = fmt_pm(row["auc_mean"], row["auc_std"], 1, 3) + (
            "" if pd.isna(row["auc_ci_low"]) else f" {fmt_ci(row['auc_ci_low'], row['auc_ci_high'], 1, 3)}"
        )
        rows.append(
            (
                row["model"],
                row["backbone"],
                fmt_n(row),
                fmt_pm(row["accuracy_mean"], row["accuracy_std"], 100, 1),
                auc,
                fmt_quality(row, "fid", 1),
                delta,
            )
        )
    return rows
