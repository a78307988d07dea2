"""Leaderboards from a results folder: a long table of cells, per-dataset mean ± std with bootstrap CIs, paired tests
against a baseline strategy (over seeds, and per seed over test images), Friedman ranks across datasets; written as
full-precision CSVs and a Markdown file laid out like the seed paper's tables."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import stats
from benchmark.datafiles import atomic_output
from benchmark.errors import MedAugBenchError
from benchmark.results_store import (
    FAILED,
    OK,
    CellRecord,
    load_predictions,
    load_records,
    records_dir,
)

METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1", "auc")
TEST_METRICS = (*METRICS, "ece", "average_precision")
COORDINATES = ("dataset", "strategy", "base_strategy", "backbone", "seed", "train_fraction", "policy")
# A leaderboard row within a dataset; fraction and policy split rows only where the grid varies them.
GROUP = ("strategy", "backbone", "train_fraction", "policy")
# Runs compared with the baseline share these; seeds pair them within.
PAIRING = ("dataset", "backbone", "train_fraction")
SECONDS = {"generator_seconds": "synthesize", "classifier_seconds": "train", "total_seconds": "total"}
ALPHA = 0.05
THRESHOLD = 0.5  # benchmark.metrics' decision threshold on the positive-class probability
DELONG_UNITS = {"binary": "seeds", "multiclass": "seed×class tests", "ordinal": "seed×class tests", "multilabel": "seed×label tests"}
SEED_COLUMNS = (
    "dataset", "model", "strategy", "backbone", "train_fraction", "policy", "task", "seed", "baseline_cell_id", "cell_id",
    "baseline_accuracy", "accuracy", "baseline_auc", "auc", "delong_diff", "delong_p", "delong_tests", "delong_better",
    "delong_worse", "mcnemar_b", "mcnemar_c", "mcnemar_p", "note",
)
STATS_COLUMNS = (
    "dataset", "model", "strategy", "backbone", "train_fraction", "policy", "baseline", "task", "n_paired",
    "baseline_accuracy", "accuracy", "accuracy_diff", "accuracy_t_p", "accuracy_wilcoxon_p",
    "baseline_auc", "auc", "auc_diff", "auc_t_p", "auc_wilcoxon_p",
    "delong_unit", "delong_seeds", "delong_diff", "delong_tests", "delong_better", "delong_worse",
    "mcnemar_seeds", "mcnemar_b", "mcnemar_c", "mcnemar_better", "mcnemar_worse", "note",
)
# Suffix per coordinate some strategy ran with several values of: row names in tables, plots and the report.
SUFFIXES = {"backbone": "/{}", "train_fraction": "@{:g}", "policy": "[{}]"}
HEADERS = {"strategy": "Strategy", "backbone": "Backbone", "train_fraction": "Fraction", "policy": "Policy"}
SPREAD = "mean ± sample std (ddof=1) over the n seeds of each row; CI: 95% percentile bootstrap CI of the mean over seeds"


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
    markdown: str = ""
    paths: list[Path] = field(default_factory=list)

    @property
    def datasets(self) -> list[str]:
        """The datasets in the results folder, in table order."""
        return list(self.wide)


def long_table(records: list[CellRecord]) -> pd.DataFrame:
    """One row per cell, ok or failed: coordinates, test metrics, generator quality and seconds, to recompute anything."""
    has_ap = any("average_precision" in (dig(r.result, "metrics", "test") or {}) for r in records)
    metrics = TEST_METRICS if has_ap else TEST_METRICS[:-1]
    columns = ["cell_id", "status", *COORDINATES, "task", *metrics, "fid", "kid", "fid_floor", *SECONDS, "error"]
    frame = pd.DataFrame([_long_row(record, metrics) for record in records], columns=columns)
    frame.insert(3, "model", _model_labels(frame))
    return frame


def wide_table(long: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One row per strategy × backbone (× fraction × policy) of a dataset: seeds, failures, mean ± std and CI per
    metric, FID/KID, seconds; best AUC first, so the table reads as a leaderboard."""
    rows = []
    for key, cells in long[long["dataset"] == dataset].groupby(list(GROUP), dropna=False, sort=True):
        ok = cells[cells["status"] == OK]
        row = {"model": cells["model"].iloc[0], **dict(zip(GROUP, key))}
        row |= {"n_seeds": len(ok), "n_failed": int((cells["status"] == FAILED).sum())}
        for metric in METRICS:
            row |= _spread(metric, ok[metric], with_ci=True)
        row |= _spread("fid", ok["fid"]) | _spread("kid", ok["kid"])
        row |= {f"{name}_mean": ok[name].mean() for name in ("fid_floor", "generator_seconds", "classifier_seconds")}
        rows.append(row)
    return pd.DataFrame(rows).sort_values("auc_mean", ascending=False, na_position="last", kind="stable", ignore_index=True)


def cross_dataset_table(wide: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each model's accuracy on every dataset side by side, their average (rows on every dataset only) and mean FID."""
    rows = []
    for model, cells in pd.concat([w.assign(dataset=d) for d, w in wide.items()]).groupby("model", sort=False):
        by_dataset = cells.set_index("dataset")
        row = {"model": model, **{key: cells[key].iloc[0] for key in GROUP}}
        for dataset in wide:
            row |= {f"{dataset}_{name}": by_dataset[name].get(dataset, math.nan) for name in ("accuracy_mean", "accuracy_std", "n_seeds")}
        means = [row[f"{dataset}_accuracy_mean"] for dataset in wide]
        row["average_accuracy"] = float(np.mean(means)) if np.all(np.isfinite(means)) else math.nan
        row["fid_mean"] = cells["fid_mean"].mean()
        rows.append(row)
    return pd.DataFrame(rows).sort_values("average_accuracy", ascending=False, na_position="last", kind="stable", ignore_index=True)


def seed_tests(long: pd.DataFrame, results_dir: Path, baseline: str = "none") -> pd.DataFrame:
    """One row per seed a run shares with the baseline in its (dataset, backbone, fraction): both runs' accuracy and
    AUC, and DeLong's (AUC) and McNemar's (accuracy) tests on their saved test predictions."""
    rows = []
    for _, group in long[long["status"] == OK].groupby(list(PAIRING), dropna=False, sort=True):
        base = {cell["seed"]: cell for cell in group[group["strategy"] == baseline].to_dict("records")}
        for cell in group[group["strategy"] != baseline].to_dict("records"):
            pair = base.get(cell["seed"])
            if pair is None:
                continue
            row = {key: cell[key] for key in SEED_COLUMNS[:8]} | {"cell_id": cell["cell_id"], "accuracy": cell["accuracy"], "auc": cell["auc"]}
            row |= {"baseline_cell_id": pair["cell_id"], "baseline_accuracy": pair["accuracy"], "baseline_auc": pair["auc"]}
            rows.append(row | _image_tests(results_dir, cell["task"], pair["cell_id"], cell["cell_id"]))
    return pd.DataFrame(rows, columns=list(SEED_COLUMNS))


def stats_table(long: pd.DataFrame, tests: pd.DataFrame, baseline: str = "none") -> pd.DataFrame:
    """Per run type against the baseline in its (dataset, backbone, fraction): paired differences over seeds (t-test,
    Wilcoxon) of accuracy and AUC, and how many DeLong / McNemar tests find it significantly better or worse."""
    rows = []
    for _, group in long.groupby(list(PAIRING), dropna=False, sort=True):
        has_baseline = bool(((group["strategy"] == baseline) & (group["status"] == OK)).any())
        for model, cells in group[group["strategy"] != baseline].groupby("model", sort=True):
            first, task = cells.iloc[0], next(iter(cells["task"].dropna()), None)
            row = {key: first[key] for key in STATS_COLUMNS[:6]} | {"baseline": baseline, "task": task}
            if has_baseline:
                pairs = tests[(tests["dataset"] == first["dataset"]) & (tests["model"] == model)]
                row |= _summarise_pairs(pairs, cells, task, baseline)
            else:
                row["note"] = f"no successful '{baseline}' run in this group to compare with"
            rows.append(row)
    return pd.DataFrame(rows, columns=list(STATS_COLUMNS))


def rank_table(wide: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Average rank of each model across datasets (1 = best) on mean test AUC and accuracy, with Friedman's test."""
    models = list(dict.fromkeys(model for frame in wide.values() for model in frame["model"]))
    columns: dict[str, object] = {"model": models}
    for metric in ("auc", "accuracy"):
        table = {d: {m: v for m, v in zip(w["model"], w[f"{metric}_mean"]) if pd.notna(v)} for d, w in wide.items()}
        table = {dataset: scores for dataset, scores in table.items() if scores}
        result = stats.friedman_ranks(table) if table else {"average_ranks": {}, "statistic": None, "p_value": None}
        columns[f"{metric}_rank"] = [result["average_ranks"].get(model, math.nan) for model in models]
        columns[f"{metric}_friedman_statistic"] = _number(result["statistic"])
        columns[f"{metric}_friedman_p"] = _number(result["p_value"])
    frame = pd.DataFrame(columns | {"n_datasets": len(wide)})
    one = "one dataset: ranks are that dataset's, and Friedman's test needs ≥ 2 datasets" if len(wide) < 2 else ""
    frame["note"] = [one or ("" if pd.notna(r) else "not scored on every dataset, so not ranked") for r in frame["auc_rank"]]
    return frame.sort_values("auc_rank", na_position="last", kind="stable", ignore_index=True)


def build_leaderboard(results_dir: Path, baseline: str = "none") -> Leaderboard:
    """Every table and the Markdown of a results folder, in memory."""
    records = load_records(results_dir)
    if not records:
        raise MedAugBenchError(
            f"no cell records in {records_dir(results_dir)}: run `medaugbench run` into {results_dir} first"
        )
    long = long_table(records)
    wide = {dataset: wide_table(long, dataset) for dataset in sorted(long["dataset"].unique())}
    tests = seed_tests(long, results_dir, baseline)
    board = Leaderboard(Path(results_dir), baseline, long, wide, cross_dataset_table(wide),
                        stats_table(long, tests, baseline), tests, rank_table(wide))
    board.markdown = render_markdown(board)
    return board


def write_leaderboard(results_dir: Path, out_dir: Path | None = None, baseline: str = "none") -> Leaderboard:
    """Build the leaderboard and write its CSVs (full precision) and leaderboard.md atomically into `out_dir`."""
    board = build_leaderboard(results_dir, baseline)
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "leaderboard"
    tables = {"long": board.long, **board.wide, "cross_dataset": board.cross_dataset, "stats": board.stats,
              "stats_per_seed": board.seed_tests, "ranks": board.ranks}
    for name, frame in tables.items():
        board.paths.append(_write_text_atomic(out / f"{name}.csv", frame.to_csv(index=False)))
    board.paths.append(_write_text_atomic(out / "leaderboard.md", board.markdown))
    return board


def console_rows(board: Leaderboard, dataset: str) -> list[tuple[str, ...]]:
    """A dataset's headline columns as strings for the CLI's table, the header first."""
    compared = board.stats[board.stats["dataset"] == dataset].set_index("model")
    rows = [("Model", "Backbone", "n", "Accuracy (%)", "AUC [95% CI]", "FID", f"Δ AUC vs {board.baseline} (p)")]
    for row in board.wide[dataset].to_dict("records"):
        if row["strategy"] == board.baseline:
            delta = "baseline"
        elif row["model"] in compared.index and pd.notna(compared.at[row["model"], "auc_diff"]):
            delta = f"{compared.at[row['model'], 'auc_diff']:+.3f} (p={fmt_p(compared.at[row['model'], 'auc_t_p'])})"
        else:
            delta = "–"
        auc = fmt_pm(row["auc_mean"], row["auc_std"], 1, 3) + ("" if pd.isna(row["auc_ci_low"]) else f" {fmt_ci(row['auc_ci_low'], row['auc_ci_high'], 1, 3)}")
        rows.append((row["model"], row["backbone"], fmt_n(row), fmt_pm(row["accuracy_mean"], row["accuracy_std"], 100, 1),
                     auc, fmt_pm(row["fid_mean"], row["fid_std"], 1, 1), delta))
    return rows


def render_markdown(board: Leaderboard) -> str:
    """leaderboard.md: per dataset the Table 2 and Table 4 layouts, then Table 3 across datasets, ranks, failures."""
    failed = board.long[board.long["status"] == FAILED]
    lines = ["# Leaderboard", "",
             (f"Results folder `{board.results_dir}`: {len(board.long)} cells ({len(board.long) - len(failed)} ok, "
             f"{len(failed)} failed); baseline strategy `{board.baseline}`."), ""]
    for dataset, frame in board.wide.items():
        lines += _dataset_section(board, dataset, frame)
    lines += _cross_section(board) + _rank_section(board.ranks)
    if len(failed):
        lines += ["## Failed cells", ""]
        lines += _table(["Dataset", "Strategy", "Backbone", "Seed", "Error"],
                        failed[["dataset", "strategy", "backbone", "seed", "error"]].to_numpy().tolist())
    return "\n".join(lines)


def _dataset_section(board: Leaderboard, dataset: str, frame: pd.DataFrame) -> list[str]:
    """Table 2 (test metrics) and Table 4 (against the baseline) layouts for one dataset."""
    cells = board.long[board.long["dataset"] == dataset]
    kind, floor = next(iter(cells["task"].dropna()), "?"), cells["fid_floor"].mean()
    shown = fmt_shown(frame)
    lines = [f"## {dataset} ({kind})", "", "### Test metrics (Table 2 layout)", "",
             f"_{SPREAD}. Percentages ×100. FID: generated vs real training images"
             + (f"; the real test set scores {floor:.1f} against the training set" if pd.notna(floor) else "") + "._", ""]
    headers = [*(HEADERS[c] for c in shown), "n", "Accuracy (%)", "Acc. 95% CI", "Precision (%)", "Recall (%)",
               "Specificity (%)", "F1 (%)", "AUC", "AUC 95% CI", "FID"]
    rows = [[*(fmt_text(r[c]) for c in shown), fmt_n(r), fmt_pm(r["accuracy_mean"], r["accuracy_std"], 100, 1),
             fmt_ci(r["accuracy_ci_low"], r["accuracy_ci_high"], 100, 1),
             *(fmt_pm(r[f"{m}_mean"], r[f"{m}_std"], 100, 1) for m in ("precision", "recall", "specificity", "f1")),
             fmt_pm(r["auc_mean"], r["auc_std"], 1, 3), fmt_ci(r["auc_ci_low"], r["auc_ci_high"], 1, 3),
             fmt_pm(r["fid_mean"], r["fid_std"], 1, 1)] for r in frame.to_dict("records")]
    lines += _table(headers, rows)
    compared = board.stats[board.stats["dataset"] == dataset]
    lines += ["### Against the baseline (Table 4 layout)", "",
              (f"_Δ: strategy − `{board.baseline}` over the seeds both ran (paired by seed number; accuracy in percentage "
              "points); p: paired t-test / Wilcoxon signed-rank over those seeds. DeLong (AUC) and McNemar (accuracy) "
              "test each seed on the same test images: tests with p < 0.05 where the strategy is better ↑ / worse ↓._"),
              ""]
    if compared.empty:
        return lines + ["No other strategy to compare.", ""]
    shown = fmt_shown(compared)
    headers = [*(HEADERS[c] for c in shown), "Pairs", f"{board.baseline} acc. (%)", "Accuracy (%)", "Δ acc. (pp)",
               "p (t / W)", "Δ AUC", "p (t / W)", "DeLong p<0.05", "McNemar p<0.05", "Note"]
    rows = [[*(fmt_text(r[c]) for c in shown), fmt_text(r["n_paired"]), fmt_pm(r["baseline_accuracy"], math.nan, 100, 1),
             fmt_pm(r["accuracy"], math.nan, 100, 1), fmt_delta(r["accuracy_diff"], 100, 1),
             f"{fmt_p(r['accuracy_t_p'])} / {fmt_p(r['accuracy_wilcoxon_p'])}", fmt_delta(r["auc_diff"], 1, 3),
             f"{fmt_p(r['auc_t_p'])} / {fmt_p(r['auc_wilcoxon_p'])}",
             fmt_significant(r["delong_better"], r["delong_worse"], r["delong_tests"], r["delong_unit"]),
             "n/a" if r["task"] == "multilabel" else fmt_significant(r["mcnemar_better"], r["mcnemar_worse"], r["mcnemar_seeds"], "seeds"),
             fmt_text(r["note"])] for r in compared.to_dict("records")]
    return lines + _table(headers, rows)


def _cross_section(board: Leaderboard) -> list[str]:
    """Table 3 layout: accuracy per dataset side by side, their average and mean FID."""
    frame, datasets = board.cross_dataset, list(board.wide)
    shown = fmt_shown(frame)
    lines = ["## Across datasets (Table 3 layout)", "",
             ("_Accuracy (%): mean ± sample std (ddof=1) over each dataset's seeds. Average: mean over datasets of the "
             "per-dataset means, only for rows run on every dataset. FID: mean over datasets._"), ""]
    headers = [*(HEADERS[c] for c in shown), *(f"{d} acc. (%)" for d in datasets), "Average", "FID"]
    rows = [[*(fmt_text(r[c]) for c in shown), *(fmt_pm(r[f"{d}_accuracy_mean"], r[f"{d}_accuracy_std"], 100, 1) for d in datasets),
             fmt_pm(r["average_accuracy"], math.nan, 100, 1), fmt_pm(r["fid_mean"], math.nan, 1, 1)] for r in frame.to_dict("records")]
    return lines + _table(headers, rows)


def _rank_section(ranks: pd.DataFrame) -> list[str]:
    """Average ranks on AUC and accuracy with each Friedman test, or why there is none."""
    lines = ["## Average ranks across datasets (Friedman)", "", "_Rank 1 = best mean test score on a dataset, ties averaged._", ""]
    lines += [f"- {note}" for note in friedman_notes(ranks)]
    rows = [[r["model"], fmt_pm(r["auc_rank"], math.nan, 1, 2), fmt_pm(r["accuracy_rank"], math.nan, 1, 2), r["note"]]
            for r in ranks.to_dict("records")]
    return [*lines, "", *_table(["Model", "Avg. rank (AUC)", "Avg. rank (accuracy)", "Note"], rows)]


def friedman_notes(ranks: pd.DataFrame) -> list[str]:
    """One sentence per ranked metric: Friedman's statistic and p, or why there is no test."""
    notes = []
    for metric, name in (("auc", "AUC"), ("accuracy", "accuracy")):
        statistic, p = ranks[f"{metric}_friedman_statistic"].iloc[0], ranks[f"{metric}_friedman_p"].iloc[0]
        if ranks["n_datasets"].iloc[0] < 2:
            notes.append(f"{name}: one dataset only, so ranks are that dataset's; Friedman's test needs ≥ 2 datasets.")
        elif pd.isna(p):
            notes.append(f"{name}: no Friedman test (needs ≥ 3 models ranked on every dataset, not all tied).")
        else:
            notes.append(f"{name}: Friedman χ² = {statistic:.2f}, p = {fmt_p(p)} over {ranks['n_datasets'].iloc[0]} datasets.")
    return notes


def _long_row(record: CellRecord, metrics: tuple[str, ...]) -> dict:
    """A cell's row of the long table; NaN where the record has no value."""
    result, cell = record.result, record.cell
    quality = dig(result, "strategy", "quality", "overall")
    row = {"cell_id": record.cell_id, "status": record.status, **{key: cell.get(key) for key in COORDINATES}}
    row["task"] = dig(result, "dataset", "task", "kind")
    row |= {metric: _number(dig(result, "metrics", "test", metric)) for metric in metrics}
    row["fid"] = _number(dig(quality, "fake_vs_train", "fid"))
    row["kid"] = _number(dig(quality, "fake_vs_train", "kid_mean"))
    row["fid_floor"] = _number(dig(quality, "test_vs_train", "fid"))
    row |= {name: _number(dig(result, "budget", "seconds", key)) for name, key in SECONDS.items()}
    row["error"] = dig(record.error, "message") if record.status == FAILED else None
    return row


def record_labels(records: list[CellRecord]) -> dict[str, str]:
    """Each cell's row name in the leaderboard (see `_model_labels`), by cell id, so plots name rows the same way."""
    frame = pd.DataFrame([{"cell_id": r.cell_id, **{k: r.cell.get(k) for k in COORDINATES}} for r in records],
                         columns=["cell_id", *COORDINATES])
    return dict(zip(frame["cell_id"], _model_labels(frame)))


def _model_labels(frame: pd.DataFrame) -> pd.Series:
    """Strategy, plus backbone, train fraction and policy wherever a strategy ran with several: a row's name everywhere."""
    label = frame["strategy"].astype(str)
    for column, suffix in SUFFIXES.items():
        if len(frame) and frame.groupby("strategy")[column].nunique(dropna=False).max() > 1:
            label = label + frame[column].map(lambda value, suffix=suffix: suffix.format(value) if pd.notna(value) else "")
    return label


def _spread(name: str, values: pd.Series, with_ci: bool = False) -> dict[str, float]:
    """Mean and sample std over the seeds that have a value, and optionally their 95% bootstrap CI (NaN for one
    seed: a single run has no interval)."""
    x = values.dropna().to_numpy(dtype=float)
    spread = stats.mean_std(x)
    out = {f"{name}_mean": _number(spread["mean"]), f"{name}_std": _number(spread["std"])}
    if with_ci:
        ci = stats.bootstrap_ci(x) if x.size >= 2 else {"low": None, "high": None}
        out |= {f"{name}_ci_low": _number(ci["low"]), f"{name}_ci_high": _number(ci["high"])}
    return out


def _image_tests(results_dir: Path, kind: str, baseline_id: str, cell_id: str) -> dict:
    """DeLong's test of AUC and McNemar's of accuracy between the baseline's and a run's test predictions."""
    base, other = load_predictions(results_dir, baseline_id), load_predictions(results_dir, cell_id)
    if base is None or other is None:
        return {"note": "test predictions missing"}
    (labels, a), (other_labels, b) = base, other
    if not np.array_equal(labels, other_labels):
        return {"note": "test labels differ from the baseline's"}
    a, b = a.astype(float), b.astype(float)
    if kind == "binary":
        units = [stats.delong_test(labels, a[:, 1], b[:, 1])]
        difference = units[0]["difference"]
    elif kind == "multilabel":
        units = [stats.delong_test(labels[:, j], a[:, j], b[:, j]) for j in range(labels.shape[1])]
        defined = [u["difference"] for u in units if u["difference"] is not None]
        difference = float(np.mean(defined)) if defined else None
    else:
        result = stats.delong_test_multiclass(labels, a, b)
        units, difference = result["per_class"], result["mean_difference"]
    tested = [u for u in units if u["p_value"] is not None]
    row = {
        "delong_diff": _number(difference),
        "delong_p": _number(units[0]["p_value"]) if kind == "binary" else math.nan,
        "delong_tests": len(tested),
        "delong_better": sum(u["p_value"] < ALPHA and u["difference"] > 0 for u in tested),
        "delong_worse": sum(u["p_value"] < ALPHA and u["difference"] < 0 for u in tested),
    }
    if kind == "multilabel":
        return row | {"note": "McNemar n/a for multilabel: exact-match accuracy is not meaningful"}
    test = stats.mcnemar_test(labels, _predict(kind, a), _predict(kind, b))
    return row | {"mcnemar_b": test["b"], "mcnemar_c": test["c"], "mcnemar_p": test["p_value"]}


def _predict(kind: str, scores: np.ndarray) -> np.ndarray:
    """Predicted classes as benchmark.metrics makes them: positive probability > 0.5 if binary, else argmax."""
    return (scores[:, 1] > THRESHOLD).astype(int) if kind == "binary" else scores.argmax(axis=1)


def _summarise_pairs(pairs: pd.DataFrame, cells: pd.DataFrame, task: str | None, baseline: str) -> dict:
    """The stats-table columns of one run type from its per-seed pairs with the baseline; empty where nothing pairs."""
    row: dict[str, object] = {"n_paired": len(pairs), "delong_unit": DELONG_UNITS.get(task or "")}
    for metric in ("accuracy", "auc"):
        valid = pairs[[f"baseline_{metric}", metric]].dropna()
        if len(valid):
            diff = stats.paired_difference(valid[f"baseline_{metric}"], valid[metric])
            row |= {f"baseline_{metric}": valid[f"baseline_{metric}"].mean(), metric: valid[metric].mean(),
                    f"{metric}_diff": diff["mean_difference"], f"{metric}_t_p": _number(diff["t_p_value"]),
                    f"{metric}_wilcoxon_p": _number(diff["wilcoxon_p_value"])}
    delong = pairs.dropna(subset=["delong_diff"])
    if len(delong):
        row |= {"delong_seeds": len(delong), "delong_diff": delong["delong_diff"].mean()}
        row |= {name: int(delong[name].sum()) for name in ("delong_tests", "delong_better", "delong_worse")}
    mcnemar = pairs.dropna(subset=["mcnemar_p"])
    if len(mcnemar):
        significant = mcnemar["mcnemar_p"] < ALPHA
        row |= {"mcnemar_seeds": len(mcnemar), "mcnemar_b": int(mcnemar["mcnemar_b"].sum()),
                "mcnemar_c": int(mcnemar["mcnemar_c"].sum()),
                "mcnemar_better": int((significant & (mcnemar["mcnemar_c"] > mcnemar["mcnemar_b"])).sum()),
                "mcnemar_worse": int((significant & (mcnemar["mcnemar_b"] > mcnemar["mcnemar_c"])).sum())}
    notes = [f"{note} (seeds {_ints(seeds)})" for note, seeds in pairs.groupby("note")["seed"]]
    unpaired = set(cells.loc[cells["status"] == OK, "seed"]) - set(pairs["seed"])
    if unpaired:
        notes.append(f"seeds without a '{baseline}' run: {_ints(unpaired)}")
    row["note"] = "; ".join(notes)
    return row


def _write_text_atomic(path: Path, text: str) -> Path:
    with atomic_output(path, encoding="utf-8", newline="") as handle:
        handle.write(text)
    return path


def dig(data: object, *keys: str) -> object:
    """data[k1][k2]…, or None where a level is missing, so partial records still tabulate."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _number(value: object) -> float:
    """A float, NaN for None, so undefined values are empty cells rather than object columns."""
    return math.nan if value is None else float(value)


def _ints(values: object) -> list[int]:
    """Sorted plain ints, for readable notes."""
    return sorted(int(v) for v in values)


def fmt_shown(frame: pd.DataFrame) -> list[str]:
    """Coordinate columns a Markdown table shows: strategy and backbone, fraction and policy where they vary."""
    return ["strategy", "backbone", *(c for c in ("train_fraction", "policy") if frame[c].nunique(dropna=False) > 1)]


def _table(headers: list[str], rows: list[list[object]]) -> list[str]:
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


def fmt_significant(better: float, worse: float, tests: float, unit: object) -> str:
    """'b↑ w↓ of n unit' for significant tests in each direction, or '–' when nothing was tested."""
    return "–" if pd.isna(tests) else f"{better:.0f}↑ {worse:.0f}↓ of {tests:.0f} {unit}"
