"""The robustness table and plot of a results folder whose cells scored MedMNIST-C corruptions (`robustness = true`):
per strategy, the balanced error on the clean and on the corrupted test sets, per corruption, the mean corruption
error relative to the baseline (`none`), the expected calibration error and the per-class recall. Folders without
robustness blocks get nothing.

Relative mCE (Hendrycks & Dietterich 2019, with the baseline in AlexNet's place): for each corruption, the strategy's
balanced error summed over the 5 severities over the baseline's sum, averaged over the corruptions; every error a
mean over the row's runs. Below 1: more robust than the baseline.

Whether a row is more robust than the baseline is tested as the leaderboard tests accuracy: its runs paired with the
baseline's on (generator seed, classifier seed), the difference in mean corrupted balanced error, Student-t over the
generator-seed means, Holm-corrected across the rows of a dataset × backbone × fraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.data.files import write_text_atomic
from benchmark.data.labels import safe_label
from benchmark.grid.store import CellRecord
from benchmark.publish import inference, stats
from benchmark.publish.comparisons import ALPHA
from benchmark.publish.fmt import fmt_text, markdown_table
from benchmark.publish.leaderboard import Leaderboard
from benchmark.publish.results import RUN, run_seeds

GROUP = ("dataset", "backbone", "train_fraction")
ROW = (*GROUP, "strategy")
MARKERS = {"more robust": "↑", "less robust": "↓", "": ""}
FILES = ("robustness.csv", "robustness_scores.csv", "robustness.md")
NOTE = (
    "Balanced error (1 - balanced accuracy, %) of each strategy's selected checkpoint on its clean test split and on "
    "MedMNIST-C corruptions of it ({package}; every corruption of the dataset at severities 1-5, made once from seed "
    "{seed} and cached), mean over runs. Corrupted: mean over corruptions and severities. Relative mCE: per "
    "corruption, the error summed over severities over {baseline}'s sum, averaged over corruptions (below 1: more "
    "robust than {baseline}). Δ corrupted: the row's mean corrupted balanced error minus {baseline}'s over the runs "
    "both made, paired on (generator seed, classifier seed), with the 95% Student-t CI over generator-seed means "
    "(uncorrected) and its p Holm-corrected across the dataset's rows; ↑ more robust / ↓ less robust: that Holm p "
    "< 0.05, no marker: not shown. ECE: expected calibration error (15 bins), clean and mean corrupted. Per-class "
    "recall on the corrupted sets: robustness.csv; every run, corruption and severity: robustness_scores.csv."
)


def scores_table(records: list[CellRecord]) -> pd.DataFrame:
    """One row per run, corruption and severity (severity 0: the clean test split) for every ok cell with a
    robustness block: its coordinates, balanced error, ECE and per-class recall (`recall_0`, … by class index)."""
    rows = [row for record in records if _scored(record) for row in _rows(record)]
    classes = max((len(r.result.robustness.scores[0].recall_per_class) for r in records if _scored(r)), default=0)
    recalls = [f"recall_{index}" for index in range(classes)]
    columns = [*ROW, *RUN, "cell_id", "corruption", "severity", "balanced_error", "ece", *recalls]
    return pd.DataFrame(rows, columns=columns)


def _scored(record: CellRecord) -> bool:
    """Whether the cell finished and scored MedMNIST-C corruptions."""
    return record.ok and record.result.robustness is not None and bool(record.result.robustness.scores)


def _rows(record: CellRecord) -> list[dict]:
    """A run's clean row and one row per corrupted set."""
    coords = (
        {key: record.cell.get(key) for key in ROW} | dict(zip(RUN, run_seeds(record))) | {"cell_id": record.cell_id}
    )
    test = record.result.metrics.test
    clean = coords | {"corruption": "clean", "severity": 0, "balanced_error": 1.0 - test.balanced_accuracy}
    corrupted = [
        coords
        | {"corruption": s.corruption, "severity": s.severity, "balanced_error": s.balanced_error, "ece": s.ece}
        | _recalls(s.recall_per_class)
        for s in record.result.robustness.scores
    ]
    return [clean | {"ece": test.ece} | _recalls(test.recall_per_class), *corrupted]


def _recalls(per_class: list[float]) -> dict[str, float]:
    """Per-class recall as columns recall_0, recall_1, … (class indices of the dataset's task)."""
    return {f"recall_{index}": value for index, value in enumerate(per_class)}


def robustness_table(scores: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per row (dataset, backbone, fraction, strategy): runs, clean and corrupted balanced error and ECE, relative
    mCE against `baseline` (NaN where the group has no baseline run), the balanced error per corruption and the
    mean per-class recall on the corrupted sets."""
    measures = ["balanced_error", "ece", *(c for c in scores.columns if c.startswith("recall_"))]
    means = scores.groupby([*ROW, "corruption", "severity"], dropna=False)[measures].mean()
    means = means.reset_index()
    rows = [_summary(key, group, means, baseline) for key, group in scores.groupby(list(ROW), dropna=False, sort=True)]
    tests = corrupted_tests(scores, baseline)
    return pd.DataFrame(rows).merge(tests, on=list(ROW), how="left").fillna({"corrupted_marker": ""})


def corrupted_tests(scores: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per row other than `baseline`: the run-level paired test of its mean corrupted balanced error against the
    baseline's (Δ, 95% CI, p), Holm-corrected within each dataset × backbone × fraction, and its marker."""
    corrupted = scores[scores["severity"] > 0]
    per_run = corrupted.groupby([*ROW, *RUN], dropna=False)["balanced_error"].mean().reset_index()
    rows = []
    for key, group in per_run.groupby(list(GROUP), dropna=False, sort=True):
        reference = _select(group, dict(zip(GROUP, key)) | {"strategy": baseline})
        tested = [_paired_test(own, reference) for name, own in group.groupby("strategy") if name != baseline]
        adjusted = stats.holm([row["corrupted_p"] for row in tested])
        rows += [
            row | {"corrupted_p_holm": p} | {"corrupted_marker": _marker(row, p)} for row, p in zip(tested, adjusted)
        ]
    columns = [*ROW, "n_paired", "corrupted_diff", "corrupted_ci_low", "corrupted_ci_high", "corrupted_p"]
    return pd.DataFrame(rows, columns=[*columns, "corrupted_p_holm", "corrupted_marker"])


def _summary(key: tuple, runs: pd.DataFrame, means: pd.DataFrame, baseline: str) -> dict:
    """One row of `robustness_table`."""
    row = dict(zip(ROW, key))
    own = _select(means, row)
    clean, corrupted = own[own["severity"] == 0], own[own["severity"] > 0]
    reference = _select(means, row | {"strategy": baseline})
    per_corruption = corrupted.groupby("corruption", sort=False)["balanced_error"].mean()
    return row | {
        "runs": runs["cell_id"].nunique(),
        "clean_balanced_error": float(clean["balanced_error"].mean()),
        "corrupted_balanced_error": float(corrupted["balanced_error"].mean()),
        "relative_mce": relative_mce(corrupted, reference[reference["severity"] > 0]),
        "clean_ece": float(clean["ece"].mean()),
        "corrupted_ece": float(corrupted["ece"].mean()),
        **{f"error_{name}": float(value) for name, value in per_corruption.items()},
        **{f"corrupted_{c}": float(corrupted[c].mean()) for c in own.columns if c.startswith("recall_")},
    }


def _paired_test(own: pd.DataFrame, reference: pd.DataFrame) -> dict:
    """One row's runs matched with the reference's on both seeds, and the Student-t over generator-seed means of
    their differences in corrupted balanced error."""
    pairs = own.merge(reference[[*RUN, "balanced_error"]], on=list(RUN), suffixes=("", "_reference"))
    test = inference.run_test(pairs["balanced_error"] - pairs["balanced_error_reference"], pairs["generator_seed"])
    return {key: own[key].iloc[0] for key in ROW} | {
        "n_paired": len(pairs),
        "corrupted_diff": test.difference,
        "corrupted_ci_low": test.ci_low,
        "corrupted_ci_high": test.ci_high,
        "corrupted_p": test.p_value,
    }


def _marker(row: dict, holm_p: float | None) -> str:
    """'more robust' (lower corrupted error) or 'less robust' where the Holm-corrected p is below ALPHA, else ''."""
    if holm_p is None or holm_p >= ALPHA:
        return ""
    return "more robust" if row["corrupted_diff"] < 0 else "less robust"


def _select(frame: pd.DataFrame, coords: dict) -> pd.DataFrame:
    """The rows of `frame` at these coordinates (NaN matches NaN)."""
    mask = pd.Series(True, index=frame.index)
    for key, value in coords.items():
        mask &= frame[key].isna() if pd.isna(value) else frame[key] == value
    return frame[mask]


def relative_mce(own: pd.DataFrame, reference: pd.DataFrame) -> float:
    """Mean over corruptions of Σ_severity error / the reference's Σ_severity error (NaN without a reference or
    where its error is 0)."""
    if reference.empty:
        return float("nan")
    mine = own.groupby("corruption")["balanced_error"].sum()
    theirs = reference.groupby("corruption")["balanced_error"].sum()
    ratios = (mine / theirs.where(theirs > 0)).dropna()
    return float(ratios.mean()) if len(ratios) else float("nan")


@dataclass
class Robustness:
    """A results folder's robustness tables, their Markdown section, what they were made from and the note saying how
    (the HTML report shows it too)."""

    table: pd.DataFrame
    scores: pd.DataFrame
    markdown: str
    note: str

    def write(self, out: Path) -> list[Path]:
        """The CSVs, the Markdown and one plot per dataset into `out`; the paths written."""
        table_csv, scores_csv, markdown = (out / name for name in FILES)
        paths = [
            write_text_atomic(table_csv, self.table.to_csv(index=False)),
            write_text_atomic(scores_csv, self.scores.to_csv(index=False)),
            write_text_atomic(markdown, self.markdown),
        ]
        for dataset in sorted(self.scores["dataset"].unique()):
            paths.append(save_severity_plot(self.scores, dataset, out / f"robustness_{safe_label(dataset)}.png"))
        return paths


def robustness_of(board: Leaderboard) -> Robustness | None:
    """The robustness tables of a leaderboard's records; None when no record has a robustness block."""
    scores = scores_table(board.records)
    if scores.empty:
        return None
    table = robustness_table(scores, board.baseline)
    first = next(r.result.robustness for r in board.records if _scored(r))
    note = NOTE.format(package=first.package, seed=first.seed, baseline=board.baseline)
    return Robustness(table, scores, render(table, note), note)


def render(table: pd.DataFrame, note: str) -> str:
    """The Markdown section: per dataset, the summary and the per-corruption errors."""
    lines = ["## Robustness under MedMNIST-C corruptions", "", note, ""]
    for dataset, frame in table.groupby("dataset", sort=True):
        lines += [f"### {dataset}", ""]
        lines += markdown_table(
            [
                "strategy",
                "backbone",
                "fraction",
                "runs",
                "clean %",
                "corrupted %",
                "Δ corrupted (pp) [95% CI (uncorrected)]",
                "Holm p",
                "rel. mCE",
                "ECE",
                "ECE corrupted",
            ],
            [_summary_cells(row) for row in frame.to_dict("records")],
        )
        corruptions = [c for c in frame.columns if c.startswith("error_") and frame[c].notna().any()]
        lines += markdown_table(
            ["strategy", "backbone", "fraction", *(c.removeprefix("error_") + " %" for c in corruptions)],
            [[*_summary_cells(row)[:3], *(_percent(row[c]) for c in corruptions)] for row in frame.to_dict("records")],
        )
    return "\n".join(lines)


def _summary_cells(row: dict) -> list[object]:
    return [
        row["strategy"],
        row["backbone"],
        fmt_text(row["train_fraction"]),
        row["runs"],
        _percent(row["clean_balanced_error"]),
        _percent(row["corrupted_balanced_error"]),
        corrupted_difference_text(row),
        _fixed(row.get("corrupted_p_holm"), 3),
        _fixed(row["relative_mce"], 3),
        _fixed(row["clean_ece"], 3),
        _fixed(row["corrupted_ece"], 3),
    ]


def corrupted_difference_text(row: dict) -> str:
    """'-2.1 [-3.0, -1.2] ↑' in percentage points, '–' for the baseline or a row without a defined test."""
    diff = row.get("corrupted_diff")
    if pd.isna(diff):
        return "–"
    interval = (
        ""
        if pd.isna(row["corrupted_ci_low"])
        else f" [{100 * row['corrupted_ci_low']:+.1f}, {100 * row['corrupted_ci_high']:+.1f}]"
    )
    marker = MARKERS[row["corrupted_marker"]]
    return f"{100 * diff:+.1f}{interval}" + (f" {marker}" if marker else "")


def _percent(value: float) -> str:
    return _fixed(100 * value, 1)


def _fixed(value: float | None, digits: int) -> str:
    return "–" if pd.isna(value) else f"{value:.{digits}f}"


def save_severity_plot(scores: pd.DataFrame, dataset: str, path: Path) -> Path:
    """Mean balanced error against severity (0: clean) per strategy of one dataset, one panel per backbone and
    fraction, averaged over corruptions and runs."""
    from benchmark.publish.plots import plt, save_figure  # matplotlib only where a plot is drawn

    frame = scores[scores["dataset"] == dataset]
    panels = list(frame.groupby(["backbone", "train_fraction"], dropna=False, sort=True))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, ((backbone, fraction), panel) in zip(axes[0], panels):
        curves = panel.groupby(["strategy", "severity"])["balanced_error"].mean().unstack("severity")
        for strategy, curve in curves.iterrows():
            ax.plot(curve.index, 100 * curve.to_numpy(), marker="o", label=strategy)
        title = f"{dataset} · {backbone} · fraction {fraction:g}"
        ax.set(xlabel="severity (0: clean)", ylabel="balanced error (%)", title=title)
        ax.legend(fontsize="small")
    return save_figure(fig, path)
