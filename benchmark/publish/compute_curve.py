"""Compute curves: a strategy's test metric against the compute its cells spent, one point per results folder.

Each folder is one grid at one budget (a compute total such as 2x, 8x and 32x a classic cell's FLOPs, or the
classifier-matched run); a point is one leaderboard row of one folder: the mean total FLOPs its cells counted
(generator training + synthesis + classifier training, `RunRecord.compute`) and the mean test metric over its runs
with a 95% t-interval over generator-seed means (each the mean of that seed's classifier runs: runs sharing a
generator seed share its training subset and synthetic set, so they are not independent) where a row has several
generator seeds, else over its runs. The folders' grids may differ only in their budgets for the points to be
comparable; the table names each point's folder, budget and runs so a reader can check, and the plot joins a row's
points only where they average the same runs (a mean of three seeds joined to one seed's run would draw a trend
that is only the change of runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from benchmark.data.files import write_text_atomic
from benchmark.data.labels import safe_label
from benchmark.errors import MedAugBenchError
from benchmark.grid.store import OK, read_grid_file
from benchmark.publish import inference, stats
from benchmark.publish.fmt import fmt_text, markdown_table
from benchmark.publish.results import long_table, read_results, run_names

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METRICS = {"auc": "Test AUC", "balanced_accuracy": "Balanced accuracy"}
COLUMNS = (
    "dataset",
    "backbone",
    "train_fraction",
    "entry",
    "folder",
    "budget",
    "runs",
    "generator_seeds",
    "run_seeds",
    "total_flops",
    "metric",
    "mean",
    "ci_low",
    "ci_high",
)
FILES = ("compute_curve.csv", "compute_curve.md")


def compute_curve(folders: Sequence[Path]) -> pd.DataFrame:
    """One row per folder × leaderboard row × metric (COLUMNS), ordered by dataset, row and FLOPs."""
    rows = [row for folder in folders for row in _folder_rows(Path(folder))]
    if not rows:
        raise MedAugBenchError(
            f"no successful cell with counted FLOPs in {', '.join(str(f) for f in folders)}: give results folders "
            "written by `medaugbench run`"
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["dataset", "backbone", "train_fraction", "entry", "metric", "total_flops"]).reset_index(
        drop=True
    )


def _folder_rows(folder: Path) -> list[dict]:
    """The points of one results folder: each of its rows' mean FLOPs and metric with their CI."""
    records, _ = read_results(folder)
    if not records:
        return []
    long = long_table(records)
    ok = long[(long["status"] == OK) & long["total_flops"].notna()]
    budget = _budget_text(folder)
    rows = []
    for (dataset, backbone, fraction, entry), frame in ok.groupby(
        ["dataset", "backbone", "train_fraction", "entry"], sort=True
    ):
        for metric in METRICS:
            values = frame[metric].dropna()
            if values.empty:
                continue
            seeds = frame.loc[values.index, "generator_seed"]
            units = inference.seed_means(values, seeds) if seeds.nunique() > 1 else values.to_numpy()
            interval = stats.t_interval(units)
            rows.append(
                {
                    "dataset": dataset,
                    "backbone": backbone,
                    "train_fraction": fraction,
                    "entry": entry,
                    "folder": str(folder),
                    "budget": budget,
                    "runs": len(values),
                    "generator_seeds": int(seeds.nunique()),
                    "run_seeds": " ".join(run_names(frame.loc[values.index])),
                    "total_flops": float(frame.loc[values.index, "total_flops"].mean()),
                    "metric": metric,
                    "mean": float(values.mean()),
                    "ci_low": interval["low"],
                    "ci_high": interval["high"],
                }
            )
    return rows


def curve_segments(points: pd.DataFrame) -> list[pd.DataFrame]:
    """A row's points in FLOPs order, split where the runs they average change: the plot joins points within a
    segment only."""
    points = points.sort_values("total_flops")
    starts = points["run_seeds"].ne(points["run_seeds"].shift()).cumsum()
    return [segment for _, segment in points.groupby(starts, sort=True)]


def _budget_text(folder: Path) -> str:
    """The folder's grid budget as 'key value' pairs (grid.json), or '' where the folder has none."""
    grid = read_grid_file(folder).get("grid")
    budget = grid.get("budget") if isinstance(grid, dict) else None
    if not isinstance(budget, dict):
        return ""
    return ", ".join(
        f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
        for key, value in budget.items()
        if value is not None
    )


def compute_curve_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, one section per dataset × metric, FLOPs in scientific notation."""
    lines = [
        "# Compute curves",
        "",
        "Each point: one strategy's row in one results folder (one budget). FLOPs: the mean total its cells counted "
        "(generator training + synthesis + classifier training). Metric: mean over runs, 95% t-interval over "
        "generator-seed means (over runs where a row has one generator seed). Runs: generator seed/classifier "
        "seed of the runs a point averages; the plot joins a strategy's points only where those are the same, and "
        "draws a point of one run hollow (no interval).",
    ]
    for (dataset, backbone, fraction, metric), frame in table.groupby(
        ["dataset", "backbone", "train_fraction", "metric"], sort=True
    ):
        lines += ["", f"## {dataset} · {backbone} · {fraction:.0%} of the training split · {METRICS[metric]}", ""]
        body = [
            [
                fmt_text(row.entry),
                f"{row.total_flops:.3g}",
                f"{row.mean:.4f}",
                "–" if pd.isna(row.ci_low) else f"[{row.ci_low:.4f}, {row.ci_high:.4f}]",
                str(row.runs),
                str(row.generator_seeds),
                row.run_seeds,
                row.budget or "–",
                fmt_text(row.folder),
            ]
            for row in frame.itertuples()
        ]
        headers = [
            "strategy",
            "total FLOPs",
            "mean",
            "95% CI",
            "runs",
            "generator seeds",
            "runs (g/c)",
            "budget",
            "folder",
        ]
        lines += markdown_table(headers, body)
    return "\n".join(lines)


def write_compute_curve(folders: Sequence[Path], out: Path) -> list[Path]:
    """compute_curve.csv, compute_curve.md and one plot per dataset × metric in `out`; returns the paths."""
    table = compute_curve(folders)
    out.mkdir(parents=True, exist_ok=True)
    csv, md = (out / name for name in FILES)
    write_text_atomic(csv, table.to_csv(index=False))
    write_text_atomic(md, compute_curve_markdown(table))
    paths = [csv, md]
    for (dataset, backbone, fraction, metric), frame in table.groupby(
        ["dataset", "backbone", "train_fraction", "metric"], sort=True
    ):
        path = out / f"compute_curve_{safe_label(dataset)}_{safe_label(backbone)}_{fraction:g}_{metric}.png"
        figure = _figure(frame, f"{dataset} · {backbone} · {fraction:.0%} of the training split", METRICS[metric])
        figure.savefig(path, dpi=120, bbox_inches="tight")
        _close(figure)
        paths.append(path)
    return paths


def _figure(frame: pd.DataFrame, title: str, ylabel: str) -> Figure:
    """The metric against total FLOPs (log scale): per strategy one colour, lines joining its points of the same
    runs (`curve_segments`), CI bars, a one-run point hollow."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from benchmark.publish.plots import distinct_colours

    figure, ax = plt.subplots(figsize=(7, 4.5))
    entries = frame.groupby("entry", sort=True)
    for (entry, points), colour in zip(entries, distinct_colours(entries.ngroups), strict=True):
        for number, segment in enumerate(curve_segments(points)):
            low = (segment["mean"] - segment["ci_low"]).fillna(0).clip(lower=0)
            high = (segment["ci_high"] - segment["mean"]).fillna(0).clip(lower=0)
            ax.errorbar(
                segment["total_flops"],
                segment["mean"],
                yerr=np.vstack([low, high]),
                marker="o",
                capsize=3,
                color=colour,
                markerfacecolor="none" if (segment["runs"] == 1).all() else colour,
                label=entry if number == 0 else None,
            )
    ax.set_xscale("log")
    ax.set_xlabel("total FLOPs per cell (generator training + synthesis + classifier training)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, title="lines join points of the same runs; hollow: one run", title_fontsize=7)
    return figure


def _close(figure: Figure) -> None:
    from matplotlib import pyplot as plt

    plt.close(figure)
