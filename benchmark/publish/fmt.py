"""Table cells as text: numbers, intervals, p-values and marks, and the Markdown table; shared by leaderboard.md, the
HTML report, the console table and the other Markdown the publish commands write."""

from __future__ import annotations

import math

import pandas as pd

from benchmark.publish import stats

FLAG_MARK = "⚑"
RANK_MARK = "†"
MARKERS = {"better": " ↑", "worse": " ↓", "": ""}


def fmt_shown(frame: pd.DataFrame) -> list[str]:
    """Coordinate columns a Markdown table shows: strategy and backbone, fraction and policy where they vary."""
    return ["strategy", "backbone", *(c for c in ("train_fraction", "policy") if frame[c].nunique(dropna=False) > 1)]


def markdown_table(headers: list[str], rows: list[list[object]]) -> list[str]:
    """A Markdown table, cells escaped so messages cannot break it, and a blank line after."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt_text(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return [*lines, ""]


def fmt_text(value: object) -> str:
    """A table cell: '–' for missing, compact numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:g}" if isinstance(value, float) else str(value)


def fmt_pm(mean: float, std: float, scale: float, digits: int) -> str:
    """'mean ± std' scaled and rounded for display; the mean alone without a std, '–' without a mean."""
    if pd.isna(mean):
        return "–"
    return f"{mean * scale:.{digits}f}" + ("" if pd.isna(std) else f" ± {std * scale:.{digits}f}")


def fmt_flops(value: float) -> str:
    """A FLOP count with 3 significant digits ('1.93e+12'), or '–'."""
    return "–" if pd.isna(value) else f"{value:.3g}"


def fmt_ci(low: float, high: float, scale: float, digits: int) -> str:
    """'[low, high]' scaled and rounded, or '–'."""
    return "–" if pd.isna(low) else f"[{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def fmt_delta(value: float, scale: float, digits: int) -> str:
    """A signed difference, or '–'."""
    return "–" if pd.isna(value) else f"{value * scale:+.{digits}f}"


def fmt_p(value: float) -> str:
    """A p-value with 3 significant digits, or '–' where undefined."""
    return "–" if pd.isna(value) else f"{value:.3g}"


def fmt_n(row: dict) -> str:
    """Seeds that ran, with failures beside them."""
    return f"{row['n_seeds']}" + (f" (+{row['n_failed']} failed)" if row["n_failed"] else "")


def fmt_quality(row: dict, name: str, digits: int) -> str:
    """A wide-table FID or KID cell: 'mean ± std (floor f; train→test shift s)' (the shift where recorded), marked †
    when the FID's covariance is rank-deficient."""
    if pd.isna(row[f"{name}_mean"]):
        return "–"
    references = {"floor": row[f"{name}_floor_mean"], "train→test shift": row.get(f"{name}_shift_mean", math.nan)}
    shown = [f"{label} {value:.{digits}f}" for label, value in references.items() if pd.notna(value)]
    text = fmt_pm(row[f"{name}_mean"], row[f"{name}_std"], 1, digits)
    text += f" ({'; '.join(shown)})" if shown else ""
    return text + (RANK_MARK if name == "fid" and row["fid_rank_deficient"] else "")


def fmt_fidelity(row: dict) -> str:
    """A wide-table fidelity cell in %: 'mean ± std (real r; chance c)', then '⚑ n' for n flagged runs; '–' for a
    row without fidelity reports or flags (an older record)."""
    flagged = f"{FLAG_MARK} {row['n_flagged']}" if row.get("n_flagged") else ""
    if pd.isna(row["fidelity_mean"]):
        return flagged or "–"
    references = {"real": row["fidelity_real_mean"], "chance": row["fidelity_chance_mean"]}
    shown = "; ".join(f"{label} {100 * value:.1f}" for label, value in references.items() if pd.notna(value))
    text = fmt_pm(row["fidelity_mean"], row["fidelity_std"], 100, 1) + (f" ({shown})" if shown else "")
    return f"{text} {flagged}".strip()


def fmt_compared(row: dict, metric: str, scale: float, digits: int) -> str:
    """'Δ [CI]' of a metric against the reference with the run-level (uncorrected) CI, ↑ / ↓ where the
    Holm-corrected run-level p says so."""
    text = fmt_delta(row[f"{metric}_diff"], scale, digits)
    if pd.notna(row[f"{metric}_t_ci_low"]):
        text += f" {fmt_ci(row[f'{metric}_t_ci_low'], row[f'{metric}_t_ci_high'], scale, digits)}"
    return text + MARKERS[row[f"{metric}_marker"]]


def fmt_bootstrap(row: dict, metric: str, scale: float, digits: int) -> str:
    """The secondary paired bootstrap: 'Δ [CI] (Holm p)', CI uncorrected; '–' where it did not run."""
    if pd.isna(row[f"{metric}_bootstrap_diff"]):
        return "–"
    delta = fmt_delta(row[f"{metric}_bootstrap_diff"], scale, digits)
    ci = fmt_ci(row[f"{metric}_ci_low"], row[f"{metric}_ci_high"], scale, digits)
    return f"{delta} {ci} (p {fmt_p(row[f'{metric}_bootstrap_p_holm'])})"


def fmt_holm(row: dict, metric: str) -> str:
    """Holm-corrected 't / Wilcoxon' p of a metric over generator-seed means; Wilcoxon reads 'n too small' where it
    cannot reach 0.05."""
    n = row[f"{metric}_wilcoxon_n"]
    wilcoxon = "n too small" if pd.notna(n) and n < stats.WILCOXON_MIN_N else fmt_p(row[f"{metric}_wilcoxon_p_holm"])
    return f"{fmt_p(row[f'{metric}_t_p_holm'])} / {wilcoxon}"


def fmt_run(row: dict) -> str:
    """A run as 'generator seed/classifier seed'."""
    return f"{row['generator_seed']:.0f}/{row['classifier_seed']:.0f}"


def fmt_delong(row: dict) -> str:
    """One seed's DeLong result: its p (binary), or how many of its per-class / per-label tests have p < 0.05."""
    if row["task"] == "binary" or pd.isna(row["delong_tests"]):
        return fmt_p(row["delong_p"])
    unit = "labels" if row["task"] == "multilabel" else "classes"
    return f"p<0.05: {row['delong_better']:.0f}↑ {row['delong_worse']:.0f}↓ of {row['delong_tests']:.0f} {unit}"


def fmt_mcnemar(row: dict) -> str:
    """One seed's McNemar discordant counts 'b / c' (b: only the baseline right), or 'n/a' / '–'."""
    if row["task"] == "multilabel":
        return "n/a"
    return "–" if pd.isna(row["mcnemar_b"]) else f"{row['mcnemar_b']:.0f} / {row['mcnemar_c']:.0f}"


def fmt_sd(variance: float, scale: float, digits: int) -> str:
    """The standard deviation of a variance component, scaled, or '–'."""
    return "–" if pd.isna(variance) else f"{math.sqrt(variance) * scale:.{digits}f}"


def fmt_poi(row: dict, name: str) -> str:
    """'p [low, high]' of one probability of improvement, or '–'."""
    if pd.isna(row[name]):
        return "–"
    return f"{row[name]:.2f} {fmt_ci(row[f'{name}_ci_low'], row[f'{name}_ci_high'], 1, 2)}"
