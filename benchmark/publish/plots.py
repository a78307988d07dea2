"""Leaderboard figures (matplotlib, headless PNG) from a results folder's cell records, per dataset: test metric per
strategy with 95% Student-t CIs over seeds, the class-matched FID (its real-vs-real floor beside it) against test AUC,
test AUC against total compute, per-class F1, validation curves and generator FID during training. The numbers are the
leaderboard's.

Seeds are pooled per leaderboard label (`results.record_labels`: the strategy, plus the backbone, train fraction or
policy wherever a strategy was run with several of them), so different set-ups never share a mean. Failed cells and None
values are left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from benchmark.data.files import atomic_output
from benchmark.data.labels import safe_label
from benchmark.grid.store import CellRecord
from benchmark.publish.fmt import RANK_MARK
from benchmark.publish.results import dig, long_table, matched_quality, record_labels
from benchmark.publish.stats import mean_std, t_interval
from benchmark.publish.tables import rank_table

BASELINE = "none"
DPI = 120
CD_FILE = "critical_difference_auc.png"


@dataclass(frozen=True)
class Summary:
    """One label's per-seed values of a quantity, their mean and 95% Student-t CI (None for one seed)."""

    strategy: str
    values: list[float]
    mean: float
    low: float | None
    high: float | None


def group_records(records: Iterable[CellRecord], dataset: str) -> dict[str, list[CellRecord]]:
    """The dataset's "ok" cells by leaderboard label, ordered by backbone and fraction with the `none` baseline
    first."""
    records = list(records)
    labels = record_labels(records)
    ok = [r for r in records if r.ok and r.result is not None and r.cell.get("dataset") == dataset]
    order = sorted(
        ok,
        key=lambda r: (
            str(r.cell.get("backbone")),
            str(r.cell.get("train_fraction")),
            r.cell["strategy"] != BASELINE,
            r.cell["strategy"],
            str(r.cell.get("policy")),
        ),
    )
    groups: dict[str, list[CellRecord]] = {}
    for r in order:
        groups.setdefault(labels[r.cell_id], []).append(r)
    return groups


def summarize(strategy: str, values: Iterable[float | None]) -> Summary | None:
    """Mean and t-interval of the non-None values, or None when there are none."""
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return None
    ci = t_interval(kept)
    return Summary(strategy, kept, float(mean_std(kept)["mean"]), ci["low"], ci["high"])


def step_band(traces: Iterable[tuple[Sequence[float], Sequence[float | None]]]) -> tuple[np.ndarray, ...] | None:
    """Steps, mean, min and max over traces (step list, value list) at each step, ignoring None; None if empty."""
    by_step: dict[float, list[float]] = defaultdict(list)
    for steps, values in traces:
        for step, value in zip(steps, values):
            if value is not None:
                by_step[step].append(float(value))
    if not by_step:
        return None
    steps = sorted(by_step)
    pooled = [by_step[s] for s in steps]
    return np.array(steps), *(np.array([f(v) for v in pooled]) for f in (np.mean, np.min, np.max))


def distinct_colours(count: int) -> list[tuple[float, float, float]]:
    """`count` plot colours, none repeated up to 20 (tab10 up to 10 rows, tab20 beyond): a colour shared by two
    rows would make them one in a legend."""
    palette = plt.get_cmap("tab10" if count <= 10 else "tab20").colors
    return [palette[i % len(palette)] for i in range(count)]


def write_plots(records: list[CellRecord], out_dir: Path, metric: str = "auc") -> list[Path]:
    """Write every leaderboard figure of every dataset with data into out_dir (figures without data are skipped),
    named '<label>_<figure>.png' after the dataset's `safe_label` (never the dataset string, which may be a path)."""
    written = []
    for dataset in sorted({r.cell["dataset"] for r in records if r.ok and r.result is not None}):
        groups = group_records(records, dataset)
        colours = dict(zip(groups, distinct_colours(len(groups)), strict=True))
        summaries = {m: metric_summaries(groups, m) for m in dict.fromkeys((metric, "accuracy", "auc"))}
        figures = {
            f"{m}_ci": _ci_figure(dataset, m, summaries[m], colours) for m in dict.fromkeys((metric, "accuracy"))
        }
        fid = fid_summaries(groups)
        figures["fid_vs_auc"] = _fid_figure(dataset, fid, _rank_deficient(groups), summaries["auc"], colours)
        figures["auc_vs_compute"] = _compute_figure(dataset, _compute_summaries(groups), summaries["auc"], colours)
        figures["per_class_f1"] = _f1_figure(dataset, groups)
        figures["val_curves"] = _val_figure(dataset, groups, colours)
        figures["generator_quality"] = _quality_figure(dataset, groups, colours)
        written += [
            save_figure(fig, Path(out_dir) / f"{safe_label(dataset)}_{kind}.png")
            for kind, fig in figures.items()
            if fig is not None
        ]
    cd = critical_difference_figure(rank_table(long_table(records)), "auc") if records else None
    if cd is not None:
        written.append(save_figure(cd, Path(out_dir) / CD_FILE))
    return sorted(written)


def critical_difference_figure(ranks: pd.DataFrame, metric: str) -> Figure | None:
    """Demšar's critical-difference diagram: average ranks on an axis (1 = best, left), the Nemenyi critical
    difference as a bar, and a thick line under every group of rows whose ranks differ by less than it; None with
    fewer than three blocks (no test, so no diagram)."""
    ranked = ranks.dropna(subset=[f"{metric}_rank"]).sort_values(f"{metric}_rank")
    cd = ranked[f"{metric}_cd"].iloc[0] if len(ranked) else float("nan")
    if len(ranked) < 2 or not np.isfinite(cd):
        return None
    names, values = ranked["model"].tolist(), ranked[f"{metric}_rank"].to_numpy(dtype=float)
    cliques = _cliques(values, cd)
    top = -0.3 - 0.15 * len(cliques)  # the rank lines start below the clique bars
    fig, ax = plt.subplots(figsize=(7, 1.4 + 0.3 * len(names) + 0.15 * len(cliques)))
    ax.set_xlim(0.5, len(names) + 0.5)  # rank 1 (best) on the left
    ax.set_ylim(top - 0.3 * len(names), 1.2)
    ax.set_yticks([])
    for spine in ("left", "right", "bottom"):
        ax.spines[spine].set_visible(False)
    ax.xaxis.set_ticks_position("top")
    for i, (name, value) in enumerate(zip(names, values)):
        y = top - 0.3 * i
        ax.plot([value, value], [0, y], color="0.3", lw=0.8)
        ax.text(value, y, f" {name} ({value:.2f})", va="center", fontsize=8)
    for k, (low, high) in enumerate(cliques):
        y = -0.2 - 0.15 * k
        ax.plot([values[low] - 0.03, values[high] + 0.03], [y, y], color="k", lw=3)
    ax.plot([1, 1 + cd], [0.8, 0.8], color="C3", lw=2)
    ax.text(1 + cd / 2, 0.95, f"CD = {cd:.2f}", ha="center", fontsize=8, color="C3")
    n_blocks = int(ranks["n_blocks"].iloc[0])
    ax.set_title(f"Average rank on test {metric.upper()} over {n_blocks} blocks (Nemenyi, α = 0.05)", fontsize=9)
    return fig


def _cliques(ranks: np.ndarray, cd: float) -> list[tuple[int, int]]:
    """Maximal runs (first, last index) of sorted average ranks spanning less than the critical difference."""
    spans = [(i, max(j for j in range(i, len(ranks)) if ranks[j] - ranks[i] < cd)) for i in range(len(ranks))]
    maximal = [(i, j) for i, j in spans if j > i and not any(a <= i and j <= b and (a, b) != (i, j) for a, b in spans)]
    return maximal


def metric_summaries(groups: dict[str, list[CellRecord]], metric: str) -> dict[str, Summary]:
    """Per label of `group_records`, the test `metric` over seeds: the numbers the CI figures plot."""
    return _summaries(groups, lambda r: r.result.metrics.test[metric])


def fid_summaries(groups: dict[str, list[CellRecord]]) -> dict[str, dict[str, Summary]]:
    """Per label of `group_records`, the leaderboard's class-matched FID ("fake_vs_real") and its real-vs-real floor
    ("floor") over seeds, for the labels that measured them: the numbers the FID figure plots."""

    def fid(r: CellRecord, floor: bool) -> float | None:
        matched = matched_quality(r.result)
        scores = None if matched is None else (matched.floor if floor else matched.fake_vs_real)
        return None if scores is None else scores.fid  # schema-2 records have no in-distribution floor

    return {
        "fake_vs_real": _summaries(groups, lambda r: fid(r, floor=False)),
        "floor": _summaries(groups, lambda r: fid(r, floor=True)),
    }


def _compute_summaries(groups: dict[str, list[CellRecord]]) -> dict[str, Summary]:
    """The leaderboard's total compute per cell: the counted FLOPs of every phase (compute.total.flops)."""
    return _summaries(groups, lambda r: r.result.compute.total.flops if r.result.compute.total is not None else None)


def _rank_deficient(groups: dict[str, list[CellRecord]]) -> set[str]:
    """Labels with a seed whose class-matched FID came from a rank-deficient covariance (the leaderboard's †)."""

    def deficient(r: CellRecord) -> bool:
        matched = matched_quality(r.result)
        return matched is not None and matched.rank_deficient

    return {label for label, group in groups.items() if any(map(deficient, group))}


def _summaries(groups: dict[str, list[CellRecord]], value: Callable[[CellRecord], float | None]) -> dict[str, Summary]:
    """Summary per label of `value` over its cells, leaving out labels without any value."""
    out = {label: summarize(group[0].cell["strategy"], map(value, group)) for label, group in groups.items()}
    return {label: s for label, s in out.items() if s is not None}


def _ci_figure(dataset: str, metric: str, summaries: dict[str, Summary], colours: dict[str, str]) -> Figure | None:
    """Mean test metric per label with its 95% t-interval, each seed as a dot, the baseline mean dashed."""
    if not summaries:
        return None
    fig, ax = plt.subplots(figsize=(max(5.5, 1.5 + 0.9 * len(summaries)), 4.2))
    for x, (label, s) in enumerate(summaries.items()):
        ax.errorbar(x, s.mean, yerr=_err(s), fmt="o", ms=7, capsize=5, color=colours[label])
        jitter = np.linspace(-0.15, 0.15, len(s.values)) if len(s.values) > 1 else np.zeros(1)
        ax.scatter(x + 0.25 + jitter / 2, s.values, s=14, alpha=0.6, color=colours[label], zorder=3)
    if _baselines(ax, summaries, colours):
        ax.legend(fontsize=8)
    _label_ticks(ax, list(summaries))
    ax.set_ylabel(f"test {metric}")
    n = _n_seeds(len(s.values) for s in summaries.values())
    ax.set_title(
        f"{dataset}: test {metric} ({n})\nmean and 95% t-interval (none for one seed), dots: single seeds", fontsize=10
    )
    return fig


def _fid_figure(
    dataset: str,
    fid: dict[str, dict[str, Summary]],
    deficient: set[str],
    auc: dict[str, Summary],
    colours: dict[str, str],
) -> Figure | None:
    """Class-matched FID against test AUC per generative label (95% t-intervals both ways), its real-vs-real floor as
    a cross at the same AUC; labels marked † where the FID is rank-deficient, as in the leaderboard."""
    labels = [label for label in fid["fake_vs_real"] if label in auc]
    if not labels:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label in labels:
        f, a = fid["fake_vs_real"][label], auc[label]
        name = label + (RANK_MARK if label in deficient else "")
        ax.errorbar(
            f.mean,
            a.mean,
            xerr=_err(f, lowest=0.0),
            yerr=_err(a),
            fmt="o",
            ms=7,
            capsize=4,
            color=colours[label],
            label=name,
        )
        if label in fid["floor"]:
            ax.plot(fid["floor"][label].mean, a.mean, "x", ms=8, color=colours[label])
    _baselines(ax, auc, colours)
    _legend_outside(ax)
    ax.set_xlabel("class-matched FID, synthetic vs. real (lower is better; interval cut at 0); ×: real-vs-real floor")
    ax.set_ylabel("test auc")
    n = _n_seeds(len(fid["fake_vs_real"][k].values) for k in labels)
    note = f"; {RANK_MARK} rank-deficient FID" if deficient & set(labels) else ""
    ax.set_title(f"{dataset}: FID vs. test AUC ({n})\nmean and 95% t-interval over seeds{note}", fontsize=10)
    return fig


def _legend_outside(ax) -> None:  # noqa: ANN001
    """The legend right of the axes, so it never hides a point or a curve."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _compute_figure(
    dataset: str, compute: dict[str, Summary], auc: dict[str, Summary], colours: dict[str, str]
) -> Figure | None:
    """Test AUC against total compute per label (log x: FLOPs of generator training + synthesis + classifier
    training), 95% t-intervals of both over seeds, the baseline's mean AUC dashed: which strategy buys what."""
    labels = [label for label in auc if label in compute and compute[label].mean > 0]
    if not labels:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label in labels:
        c, a = compute[label], auc[label]
        ax.errorbar(
            c.mean, a.mean, xerr=_err(c), yerr=_err(a), fmt="o", ms=7, capsize=4, color=colours[label], label=label
        )
    _baselines(ax, {label: auc[label] for label in labels}, colours)
    ax.set_xscale("log")
    _legend_outside(ax)
    ax.set_xlabel("total compute per cell (FLOPs, counted; log scale)")
    ax.set_ylabel("test auc")
    n = _n_seeds(len(auc[label].values) for label in labels)
    ax.set_title(f"{dataset}: test AUC vs. compute ({n})\nmean and 95% t-interval over seeds", fontsize=10)
    return fig


def _f1_figure(dataset: str, groups: dict[str, list[CellRecord]]) -> Figure | None:
    """Heatmap label × class of the mean test F1 over seeds, annotated, as the seed paper's per-class figure."""
    rows, counts = {}, []
    for label, group in groups.items():
        per_seed = [f1 for r in group if (f1 := r.result.metrics.test.f1_per_class)]
        if per_seed:
            rows[label] = np.mean(np.array(per_seed, dtype=float), axis=0)
            counts.append(len(per_seed))
    if not rows:
        return None
    matrix = np.array(list(rows.values()))
    names = next(iter(groups.values()))[0].result.dataset.task.labels
    names = [str(n) for n in names] if len(names) == matrix.shape[1] else [str(i) for i in range(matrix.shape[1])]
    fig, ax = plt.subplots(figsize=(max(5.0, 2.5 + 0.8 * len(names)), max(3.0, 1.5 + 0.5 * len(rows))))
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8, color="white" if value < 0.6 else "black")
    _label_ticks(ax, names)
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_xlabel("class")
    fig.colorbar(image, ax=ax, label="test F1")
    ax.set_title(f"{dataset}: per-class test F1 ({_n_seeds(counts)})\nmean over seeds", fontsize=10)
    return fig


def _val_figure(dataset: str, groups: dict[str, list[CellRecord]], colours: dict[str, str]) -> Figure | None:
    """Validation AUC (accuracy where AUC is undefined throughout) against classifier step, mean and min–max band."""
    curves = {label: [r.result.curves for r in group] for label, group in groups.items()}
    has_auc = any(v is not None for cs in curves.values() for c in cs for v in c.val_auc)
    key = "val_auc" if has_auc else "val_accuracy"
    traces = {label: [(c.step, getattr(c, key)) for c in cs] for label, cs in curves.items()}
    return _band_figure(
        traces,
        colours,
        "classifier step",
        key.replace("_", " "),
        f"{dataset}: {key.replace('_', ' ')} during classifier training",
        "seeds",
    )


def _quality_figure(dataset: str, groups: dict[str, list[CellRecord]], colours: dict[str, str]) -> Figure | None:
    """Generator FID against generator step per generative label, pooled over seeds and per-class models."""
    traces = {
        label: [
            (h.get("quality_step") or [], h.get("quality") or [])
            for r in group
            for h in (dig(r.result.strategy.facts, "generator", "histories") or {}).values()
        ]
        for label, group in groups.items()
    }
    return _band_figure(
        traces,
        colours,
        "generator step",
        "FID (lower is better)",
        f"{dataset}: generator FID during generator training",
        "seeds × models",
    )


def _band_figure(
    traces: dict[str, list[tuple]], colours: dict[str, str], xlabel: str, ylabel: str, title: str, unit: str
) -> Figure | None:
    """One line per label (mean over its traces at each step) with a shaded min–max band; None without any data."""
    bands = {
        label: (band, sum(any(v is not None for v in values) for _, values in ts))
        for label, ts in traces.items()
        if (band := step_band(ts)) is not None
    }
    if not bands:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for label, ((steps, mean, low, high), n) in bands.items():
        ax.plot(steps, mean, marker=".", color=colours[label], label=f"{label} (n={n})")
        ax.fill_between(steps, low, high, color=colours[label], alpha=0.2, lw=0)
    _legend_outside(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}\nmean and min–max band over {unit} (n per label)", fontsize=10)
    return fig


def _err(s: Summary, lowest: float | None = None) -> list[list[float]] | None:
    """Asymmetric error bar from the mean to the CI ends, never negative (matplotlib rejects that), the lower end
    cut at `lowest` where the quantity cannot go below it (a FID); None without a CI."""
    if s.low is None or s.high is None:
        return None
    low = s.low if lowest is None else max(s.low, lowest)
    return [[max(s.mean - low, 0.0)], [max(s.high - s.mean, 0.0)]]


def _baselines(ax: Axes, summaries: dict[str, Summary], colours: dict[str, str]) -> bool:
    """Dashed horizontal line at the mean of each `none` label, the bar every augmentation has to clear; any drawn?"""
    baselines = {label: s for label, s in summaries.items() if s.strategy == BASELINE}
    for label, s in baselines.items():
        ax.axhline(s.mean, ls="--", lw=1, color=colours[label], label=f"{label} mean")
    return bool(baselines)


def _label_ticks(ax: Axes, labels: list[str]) -> None:
    """x tick labels, rotated when long so they do not overlap."""
    long = max(map(len, labels)) > 10
    ax.set_xticks(range(len(labels)), labels, rotation=30 if long else 0, ha="right" if long else "center")


def _n_seeds(counts: Iterable[int]) -> str:
    """ "n=3 seeds", or "n=2–3 seeds" when labels lost seeds to failures or None values."""
    ns = list(counts)
    low, high = min(ns), max(ns)
    return f"n={low} seed{'s' * (high > 1)}" if low == high else f"n={low}–{high} seeds"


def save_figure(fig: Figure, path: Path, dpi: int = DPI, metadata: dict | None = None) -> Path:
    """Save as PNG via a temp file in the same folder and a rename, so a killed run never leaves half a PNG; the
    figure is closed."""
    try:
        fig.tight_layout()
        with atomic_output(path, "wb") as handle:
            fig.savefig(handle, format="png", dpi=dpi, metadata=metadata)
    finally:
        plt.close(fig)
    return path
