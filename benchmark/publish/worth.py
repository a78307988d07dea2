"""Worth in real images: how many real training images a strategy's result is worth on a real-data learning curve.

A learning curve is one strategy's runs (`none`, and `geometric` separately) at several train fractions of a dataset.
Its monotone interpolation: isotonic regression (pool adjacent violators, weighted by each point's runs) of the
point means against log(real training images), joined piecewise-linearly in log(n). A result's real-image
equivalent is the smallest n where that curve reaches the result's mean; a result beyond the curve's range is
censored (fewer than its smallest point, more than its largest), never extrapolated. The CI is a percentile
bootstrap over training runs, stratified: runs are resampled within each curve point and within the strategy, and
strata holding the same runs (generator seed/classifier seed, the leaderboard's pairing) draw the same runs, so the
correlation of runs sharing a training subset is kept; each stratum's resampled means get the unbiased variance.
Over fabricated curves with 12 independent runs per point (tests/test_worth.py) the 95% CI covers the true answer in
91-92% of cases: the percentile bootstrap of a dozen runs is a little narrow. Runs sharing a generator seed are
treated as exchangeable, so a large generator-seed variance makes the CI narrower than the truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from benchmark.data.files import write_text_atomic
from benchmark.data.labels import safe_label
from benchmark.grid.store import OK, CellRecord
from benchmark.publish.fmt import fmt_pm, fmt_text, markdown_table
from benchmark.publish.leaderboard import Leaderboard
from benchmark.publish.results import number

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CURVES = ("none", "geometric")  # the learning curves a result is placed on, each separately
METRICS = {"auc": ("Test AUC", 1, 3), "balanced_accuracy": ("Balanced accuracy (%)", 100, 1)}  # name, scale, digits
MIN_FRACTIONS = 3  # a learning curve needs runs at this many train fractions of a dataset
RESAMPLES = 2000
SEED = 0  # every row draws the same resamples: common random numbers across the table
CONFIDENCE = 0.95
BELOW, ABOVE = "below", "above"
FILES = ("worth.csv", "worth_curves.csv", "worth.md")
METHOD_NOTE = (
    "Real-image equivalent: the number of real training images the curve's strategy would need to match a row's mean "
    "test metric. The curve: the mean over runs at each train fraction, made monotone by isotonic regression "
    "(weighted by runs) and joined piecewise-linearly in log(real images); the equivalent is the smallest n where it "
    "reaches the row's mean. A mean beyond the curve is censored ('<' its smallest point, '>' its largest), not "
    "extrapolated. 95% CI: percentile bootstrap over training runs ({resamples} resamples), runs resampled within "
    "each curve point and within the row, paired on (generator seed, classifier seed) where they share runs, with "
    "the unbiased variance (91-92% coverage at 12 runs per point in simulation, a little under nominal). × real "
    "images: the equivalent over the real training images the row had"
)


@dataclass(frozen=True)
class Images:
    """A number of real training images on a curve, or the side of the curve's range it lies beyond (`side` "below"
    or "above", `n` None then)."""

    n: float | None
    side: str = ""

    @classmethod
    def from_log(cls, log_n: float) -> Images:
        """From log(n), where -inf / +inf mean below / above the curve's range."""
        if math.isinf(log_n):
            return cls(None, BELOW if log_n < 0 else ABOVE)
        return cls(math.exp(log_n))


@dataclass(frozen=True)
class Equivalent:
    """A result's mean, its real-image equivalent on a curve and the bootstrap percentile CI of that equivalent."""

    value: float
    estimate: Images
    low: Images
    high: Images


@dataclass(frozen=True)
class Curve:
    """A strategy's real-data learning curve of one metric: per point (ascending), its train fraction, its real
    training images and its runs (indexed by run, 'generator seed/classifier seed')."""

    strategy: str
    fractions: tuple[float, ...]
    n_real: tuple[float, ...]
    runs: tuple[pd.Series, ...]

    @property
    def log_n(self) -> np.ndarray:
        return np.log(np.asarray(self.n_real, dtype=float))

    @property
    def weights(self) -> np.ndarray:
        return np.array([len(r) for r in self.runs], dtype=float)

    def fitted(self) -> np.ndarray:
        """The monotone (isotonic) fit of the point means."""
        return isotonic(np.array([r.mean() for r in self.runs]), self.weights)


@dataclass
class Worth:
    """The worth tables of a results folder: one row per result × curve × metric, the curves' points, and their
    Markdown."""

    table: pd.DataFrame
    curves: pd.DataFrame
    markdown: str

    def write(self, out: Path, records: list[CellRecord] | None = None) -> list[Path]:
        """worth.csv, worth_curves.csv and worth.md into `out`, and the plots (from `records`) into `out`/plots."""
        texts = (self.table.to_csv(index=False), self.curves.to_csv(index=False), self.markdown)
        paths = [write_text_atomic(Path(out) / name, text) for name, text in zip(FILES, texts)]
        return paths + (write_worth_plots(self, Path(out) / "plots") if records is not None else [])


def isotonic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted least-squares non-decreasing fit of `values` (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, weight, points]
    for value, weight in zip(values, weights):
        blocks.append([float(value), float(weight), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m2, w2, c2), (m1, w1, c1) = blocks.pop(), blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.repeat([b[0] for b in blocks], [int(b[2]) for b in blocks])


def isotonic_rows(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`isotonic` of each row of a (resamples, points) array; rows already non-decreasing are kept as they are."""
    fitted = values.astype(float, copy=True)
    for row in np.flatnonzero((np.diff(values, axis=1) < 0).any(axis=1)):
        fitted[row] = isotonic(values[row], weights)
    return fitted


def invert(log_n: np.ndarray, fitted: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row of `fitted` (resamples, points; non-decreasing), the smallest log n where the curve, piecewise-linear
    in log n, reaches that row's value: -inf below the curve's first point, +inf above its last (censored)."""
    first = (fitted < values[:, None]).sum(axis=1)  # the first point at or above the value
    upper = np.minimum(first, fitted.shape[1] - 1)
    lower = np.maximum(upper - 1, 0)
    rows = np.arange(len(values))
    y0, y1 = fitted[rows, lower], fitted[rows, upper]
    step = np.where(y1 > y0, y1 - y0, 1.0)
    share = np.clip((values - y0) / step, 0.0, 1.0)
    inside = log_n[lower] + np.where(first > 0, share, 0.0) * (log_n[upper] - log_n[lower])
    return np.where(values < fitted[:, 0], -np.inf, np.where(values > fitted[:, -1], np.inf, inside))


def resampled_means(strata: Sequence[pd.Series], rng: np.random.Generator, resamples: int) -> np.ndarray:
    """(strata, resamples) bootstrap means, runs resampled with replacement within each stratum; strata holding the
    same runs draw the same runs (paired on run). Each stratum's resampled means are spread about its mean by
    √(n/(n−1)), so their variance is s²/n with the unbiased s² (the plain bootstrap's is (n−1)/n of it: too narrow
    for the dozen runs of a row)."""
    draws: dict[tuple, np.ndarray] = {}
    means = np.empty((len(strata), resamples))
    for i, stratum in enumerate(strata):
        stratum = stratum.sort_index()
        key, values, n = tuple(stratum.index), stratum.to_numpy(dtype=float), len(stratum)
        if key not in draws:
            draws[key] = rng.integers(0, n, (resamples, n))
        spread = math.sqrt(n / (n - 1)) if n > 1 else 1.0
        means[i] = values.mean() + (values[draws[key]].mean(axis=1) - values.mean()) * spread
    return means


def real_image_equivalent(
    curve: Curve,
    runs: pd.Series,
    rng: np.random.Generator,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Equivalent:
    """The real images `curve` needs to match the mean of `runs` (one metric, indexed by run), with the stratified
    run-level bootstrap's percentile CI."""
    value = float(runs.mean())
    estimate = invert(curve.log_n, curve.fitted()[None, :], np.array([value]))[0]
    means = resampled_means([*curve.runs, runs], rng, resamples)
    logs = invert(curve.log_n, isotonic_rows(means[:-1].T, curve.weights), means[-1])
    low, high = np.quantile(logs, [(1 - confidence) / 2, (1 + confidence) / 2], method="inverted_cdf")
    return Equivalent(value, Images.from_log(estimate), Images.from_log(low), Images.from_log(high))


def worth_of(board: Leaderboard, resamples: int = RESAMPLES) -> Worth | None:
    """The worth tables of a leaderboard, or None where `none` ran at fewer than MIN_FRACTIONS train fractions on
    every dataset (a folder without a learning curve gets no worth table)."""
    cells = _ok_cells(board)
    groups = [group for _, group in cells.groupby(["dataset", "backbone"], sort=True)]
    if not any(_curve(group, CURVES[0], "auc") is not None for group in groups):
        return None
    table = pd.concat([_group_table(group, resamples) for group in groups], ignore_index=True)
    curves = pd.concat([_curve_table(group) for group in groups], ignore_index=True)
    return Worth(table, curves, worth_markdown(table, curves, resamples))


def _ok_cells(board: Leaderboard) -> pd.DataFrame:
    """The leaderboard's successful cells with their real training images (RunRecord.dataset.train_real) and run."""
    real = {r.cell_id: r.result.dataset.train_real for r in board.records if r.result is not None}
    ok = board.long[board.long["status"] == OK].copy()
    ok["train_real"] = ok["cell_id"].map(real).astype(float)
    ok["run"] = [f"{g:.0f}/{c:.0f}" for g, c in zip(ok["generator_seed"], ok["classifier_seed"])]
    return ok


def _curve(cells: pd.DataFrame, strategy: str, metric: str) -> Curve | None:
    """`strategy`'s learning curve of `metric` in one dataset × backbone's cells: its runs per train fraction with
    the median real training images there; None below MIN_FRACTIONS fractions."""
    own = cells[(cells["strategy"] == strategy) & cells[metric].notna()]
    points = [(fraction, frame) for fraction, frame in own.groupby("train_fraction", sort=True)]
    if len(points) < MIN_FRACTIONS:
        return None
    return Curve(
        strategy,
        tuple(float(f) for f, _ in points),
        tuple(float(frame["train_real"].median()) for _, frame in points),
        tuple(frame.set_index("run")[metric] for _, frame in points),
    )


def _group_table(cells: pd.DataFrame, resamples: int) -> pd.DataFrame:
    """Every result of one dataset × backbone on each of its curves, per metric."""
    rows = []
    for strategy, metric, curve in _curves(cells):
        others = cells[(cells["strategy"] != strategy) & cells[metric].notna()]
        for (entry, fraction), frame in others.groupby(["entry", "train_fraction"], sort=True):
            rng = np.random.default_rng(SEED)
            result = real_image_equivalent(curve, frame.set_index("run")[metric], rng, resamples)
            had = _real_images(cells, curve, fraction, frame)
            rows.append(_row(frame.iloc[0], curve, metric, entry, len(frame), had, result))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _curves(cells: pd.DataFrame):
    """(curve strategy, metric, curve) for every curve of one dataset × backbone that has one."""
    for strategy in CURVES:
        for metric in METRICS:
            curve = _curve(cells, strategy, metric)
            if curve is not None:
                yield strategy, metric, curve


TABLE_COLUMNS = [
    "dataset",
    "backbone",
    "curve",
    "strategy",
    "train_fraction",
    "metric",
    "value",
    "n_runs",
    "real_images",
    "equivalent",
    "equivalent_side",
    "ci_low",
    "ci_low_side",
    "ci_high",
    "ci_high_side",
    "multiple",
    "multiple_ci_low",
    "multiple_ci_high",
    "curve_min_images",
    "curve_max_images",
]


def _real_images(cells: pd.DataFrame, curve: Curve, fraction: float, frame: pd.DataFrame) -> float:
    """The real training images a result at `fraction` had: the curve's at that fraction, else the median of its
    `none` runs there, else of its own runs (a rebalancing control counts its repeats, so it comes last)."""
    if fraction in curve.fractions:
        return curve.n_real[curve.fractions.index(fraction)]
    none = cells[(cells["strategy"] == CURVES[0]) & (cells["train_fraction"] == fraction)]
    return float((none if len(none) else frame)["train_real"].median())


def _row(first: pd.Series, curve: Curve, metric: str, entry: str, n_runs: int, had: float, result: Equivalent) -> dict:
    """One row of the worth table."""
    bounds = {"equivalent": result.estimate, "ci_low": result.low, "ci_high": result.high}
    row = {
        "dataset": first["dataset"],
        "backbone": first["backbone"],
        "curve": curve.strategy,
        "strategy": entry,
        "train_fraction": first["train_fraction"],
        "metric": metric,
        "value": result.value,
        "n_runs": n_runs,
        "real_images": had,
    }
    for name, images in bounds.items():
        row |= {name: number(images.n), f"{name}_side": images.side}
    multiples = {"multiple": "equivalent", "multiple_ci_low": "ci_low", "multiple_ci_high": "ci_high"}
    row |= {name: row[source] / had for name, source in multiples.items()}
    return row | {"curve_min_images": curve.n_real[0], "curve_max_images": curve.n_real[-1]}


def _curve_table(cells: pd.DataFrame) -> pd.DataFrame:
    """The points of one dataset × backbone's curves: per metric, fraction, real images, runs, mean, std, fit."""
    rows = []
    for strategy, metric, curve in _curves(cells):
        for i, fitted in enumerate(curve.fitted()):
            runs = curve.runs[i]
            rows.append(
                {
                    "dataset": cells["dataset"].iloc[0],
                    "backbone": cells["backbone"].iloc[0],
                    "curve": strategy,
                    "metric": metric,
                    "train_fraction": curve.fractions[i],
                    "real_images": curve.n_real[i],
                    "n_runs": len(runs),
                    "mean": runs.mean(),
                    "std": runs.std(ddof=1) if len(runs) > 1 else math.nan,
                    "fitted": fitted,
                }
            )
    columns = ["dataset", "backbone", "curve", "metric", "train_fraction", "real_images", "n_runs", "mean", "std"]
    return pd.DataFrame(rows, columns=[*columns, "fitted"])


def worth_markdown(table: pd.DataFrame, curves: pd.DataFrame, resamples: int = RESAMPLES) -> str:
    """worth.md (and the leaderboard's section): per dataset × backbone and curve, the curve's points, then every
    result's real-image equivalent, test AUC first."""
    lines = ["## Worth in real images", "", f"_{METHOD_NOTE.format(resamples=resamples)}._", ""]
    for (dataset, backbone, strategy), points in curves.groupby(["dataset", "backbone", "curve"], sort=False):
        lines += [f"### {dataset} ({backbone}): the `{strategy}` learning curve", ""]
        lines += _points_lines(points)
        rows = table[(table["dataset"] == dataset) & (table["backbone"] == backbone) & (table["curve"] == strategy)]
        lines += _equivalent_lines(rows, strategy)
    return "\n".join(lines)


def _points_lines(points: pd.DataFrame) -> list[str]:
    """A curve's points: fraction, real images, runs, and per metric mean ± std with the monotone fit."""
    by_metric = {metric: frame.set_index("train_fraction") for metric, frame in points.groupby("metric", sort=False)}
    first = next(iter(by_metric.values()))
    headers = ["Fraction", "Real images", "Runs"]
    headers += [f"{METRICS[m][0]}: {part}" for m in by_metric for part in ("mean ± std", "monotone fit")]
    rows = []
    for fraction, point in first.iterrows():
        row = [f"{fraction:g}", f"{point['real_images']:.0f}", fmt_text(point["n_runs"])]
        for metric, frame in by_metric.items():
            _, scale, digits = METRICS[metric]
            at = frame.loc[fraction]
            row += [fmt_pm(at["mean"], at["std"], scale, digits), fmt_pm(at["fitted"], math.nan, scale, digits)]
        rows.append(row)
    return markdown_table(headers, rows)


def _equivalent_lines(rows: pd.DataFrame, strategy: str) -> list[str]:
    """Every result's real-image equivalent on one curve, test AUC first."""
    if rows.empty:
        return [f"No other row ran on this dataset to place on the `{strategy}` curve.", ""]
    lines = [f"#### Real-image equivalents on the `{strategy}` curve", ""]
    return lines + markdown_table(equivalent_headers(strategy), [equivalent_cells(r) for r in in_order(rows)])


def equivalent_headers(strategy: str) -> list[str]:
    """The headers of `equivalent_cells` on the `strategy` curve (worth.md and the HTML report)."""
    needs = f"Real images `{strategy}` needs [95% CI]"
    return ["Strategy", "Fraction", "Real images", "Runs", "Metric", "Mean", needs, "× real images [95% CI]"]


def in_order(rows: pd.DataFrame) -> list[dict]:
    """A curve's results as records, test AUC first, then by train fraction and strategy."""
    order = {metric: i for i, metric in enumerate(METRICS)}
    ordered = rows.assign(_order=rows["metric"].map(order)).sort_values(["_order", "train_fraction", "strategy"])
    return ordered.drop(columns="_order").to_dict("records")


def equivalent_cells(row: dict) -> list[str]:
    """One result's cells: its coordinates, mean, equivalent with CI, and the multiple of its real images."""
    name, scale, digits = METRICS[row["metric"]]
    images = {key: _images_text(row, key, 1, "{:.0f}") for key in ("equivalent", "ci_low", "ci_high")}
    multiple = {key: _images_text(row, key, 1 / row["real_images"], "{:.2g}×") for key in images}
    return [
        row["strategy"],
        f"{row['train_fraction']:g}",
        f"{row['real_images']:.0f}",
        fmt_text(row["n_runs"]),
        name,
        fmt_pm(row["value"], math.nan, scale, digits),
        f"{images['equivalent']} [{images['ci_low']}, {images['ci_high']}]",
        f"{multiple['equivalent']} [{multiple['ci_low']}, {multiple['ci_high']}]",
    ]


def _images_text(row: dict, key: str, factor: float, form: str) -> str:
    """A number of images (times `factor`) in `form`, or '< smallest' / '> largest' point of the curve when
    censored."""
    side = row[f"{key}_side"]
    if side == BELOW:
        return "< " + form.format(row["curve_min_images"] * factor)
    if side == ABOVE:
        return "> " + form.format(row["curve_max_images"] * factor)
    return form.format(row[key] * factor)


def write_worth_plots(worth: Worth, out: Path) -> list[Path]:
    """One figure per dataset × backbone × curve × metric: the curve's points, its monotone fit, and every result
    placed on it at its real-image equivalent (CI as a horizontal bar, censored ones as arrows at the edge)."""
    from benchmark.publish.plots import save_figure  # matplotlib only when plotting

    paths = []
    keys = ["dataset", "backbone", "curve", "metric"]
    several = worth.curves.groupby("dataset")["backbone"].nunique()
    for (dataset, backbone, strategy, metric), points in worth.curves.groupby(keys, sort=False):
        rows = worth.table
        rows = rows[(rows[keys] == [dataset, backbone, strategy, metric]).all(axis=1)]
        label = safe_label(dataset) + (f"_{safe_label(backbone)}" if several[dataset] > 1 else "")
        figure = _worth_figure(f"{dataset} ({backbone})", strategy, metric, points, rows)
        paths.append(save_figure(figure, out / f"{label}_worth_{strategy}_{metric}.png"))
    return paths


def _worth_figure(title: str, strategy: str, metric: str, points: pd.DataFrame, rows: pd.DataFrame) -> Figure:
    """The learning curve with each result at its real-image equivalent."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    from benchmark.publish.plots import distinct_colours

    name, scale, _ = METRICS[metric]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.set_xscale("log")
    ax.errorbar(points["real_images"], points["mean"] * scale, yerr=points["std"] * scale, fmt="o", color="k")
    ax.plot(points["real_images"], points["fitted"] * scale, color="k", lw=1.5, label=f"`{strategy}` (monotone fit)")
    edges = (points["real_images"].min(), points["real_images"].max())
    for row, colour in zip(rows.to_dict("records"), distinct_colours(len(rows)), strict=True):
        _place(ax, row, edges, scale, colour)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}" if f"{value:g}"[0] in "25" else ""))
    ax.set_xlabel("real training images (log scale)")
    ax.set_ylabel(name)
    ax.set_title(
        f"{title}: worth in real images on the `{strategy}` curve\n◆ at its real-image equivalent (bar: 95% CI; "
        "arrow: beyond the curve), ○ at the real images it had",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _place(ax: Axes, row: dict, edges: tuple[float, float], scale: float, colour: str) -> None:
    """One result on the curve: at its equivalent with its CI, or an arrow at the edge where censored; a hollow
    marker at the real images it had."""
    y = row["value"] * scale
    label = f"{row['strategy']} @{row['train_fraction']:g}"
    ends = [row[k] if not row[f"{k}_side"] else edges[row[f"{k}_side"] == ABOVE] for k in ("ci_low", "ci_high")]
    ax.plot(ends, [y, y], color=colour, lw=1)
    if row["equivalent_side"]:
        marker = ">" if row["equivalent_side"] == ABOVE else "<"
        ax.plot(edges[row["equivalent_side"] == ABOVE], y, marker=marker, color=colour, ms=8, ls="", label=label)
    else:
        ax.plot(row["equivalent"], y, "D", color=colour, label=label)
    ax.plot(row["real_images"], y, "o", mfc="none", color=colour)
