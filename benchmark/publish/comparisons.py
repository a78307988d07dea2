"""The leaderboard's paired inference: each row against the baseline and the family comparisons (run-level t-test
first, bootstrap over test images second, Holm per table), per-run DeLong and McNemar, the minimum detectable
difference, and IQM and probability of improvement across tasks."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from benchmark.grid.store import OK
from benchmark.publish import inference, stats
from benchmark.publish.fmt import fmt_text
from benchmark.publish.results import CONTROLS, RUN, Predictions, number, run_names
from benchmark.publish.tables import BOOTSTRAP_SEED, COMPARED_METRICS, TASK, task_name
from benchmark.train.metrics import predicted_labels

# Compared runs share these; the run's seeds pair them within.
PAIRING = ("dataset", "backbone", "train_fraction")
# The references of the family comparisons: the rebalancing control and the classic augmentation.
REBALANCING = "oversample"
CLASSIC_REFERENCE = "geometric"
NO_AUGMENTATION = "none"  # neither classic augmentation nor a control, whichever row is the baseline
ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 1000
ACROSS_RESAMPLES = 2000  # stratified bootstrap of PoI and IQM
# t_p: the primary, run-level test (t over generator-seed means); each kind its own Holm family per table.
P_KINDS = ("t_p", "bootstrap_p", "wilcoxon_p")
POI_COLUMNS = ("poi", "poi_geometric", "poi_oversample")  # over the baseline, and generative rows over their controls
# What names a compared row in the per-seed and the statistics tables.
ROW_KEYS = ("dataset", "model", "strategy", "backbone", "train_fraction", "policy")
SEED_COLUMNS = (
    *ROW_KEYS,
    "task",
    "seed",
    *RUN,
    "baseline_cell_id",
    "cell_id",
    "baseline_accuracy",
    "accuracy",
    "baseline_auc",
    "auc",
    "delong_diff",
    "delong_p",
    "delong_tests",
    "delong_better",
    "delong_worse",
    "mcnemar_b",
    "mcnemar_c",
    "mcnemar_p",
    "note",
)
# Per metric against the reference: Δ over runs with the run-level CI, the bootstrap's Δ and CI, raw and
# Holm-corrected p, the marker (from the Holm-corrected run-level p).
COMPARED = (
    "diff",
    "t_ci_low",
    "t_ci_high",
    "t_sd",
    "bootstrap_diff",
    "ci_low",
    "ci_high",
    *(f"{k}{h}" for k in P_KINDS for h in ("", "_holm")),
    "wilcoxon_n",
    "marker",
)
STATS_COLUMNS = (
    *ROW_KEYS,
    "family",
    "reference",
    "chosen",
    "baseline",
    "task",
    "n_paired",
    "n_generator_seeds",
    *(c for m in stats.BOOTSTRAP_METRICS for c in (f"baseline_{m}", m, *(f"{m}_{c}" for c in COMPARED))),
    "bootstrap_seeds",
    "bootstrap_images",
    "bootstrap_resamples",
    "note",
)
ONE_SEED_NOTE = "one seed: the bootstrap CI covers test images only, not training randomness"


def missing_baseline(long: pd.DataFrame, baseline: str) -> list[str]:
    """The (dataset, backbone, fraction) groups with successful runs but no successful `baseline` run, named."""
    ok = long[long["status"] == OK]
    return [
        f"{dataset} ({backbone}, fraction {fmt_text(fraction)})"
        for (dataset, backbone, fraction), group in ok.groupby(list(PAIRING), dropna=False, sort=True)
        if not (group["strategy"] == baseline).any()
    ]


def seed_tests(long: pd.DataFrame, predictions: Predictions, baseline: str = "none") -> pd.DataFrame:
    """One row per run a row shares with the baseline in its (dataset, backbone, fraction), paired on both seeds:
    both runs' accuracy and AUC, and DeLong's (AUC) and McNemar's (accuracy) tests on their saved test predictions,
    for that run alone."""
    rows = []
    for _, group in long[long["status"] == OK].groupby(list(PAIRING), dropna=False, sort=True):
        base = {_run_key(cell): cell for cell in group[group["strategy"] == baseline].to_dict("records")}
        for cell in group[group["strategy"] != baseline].to_dict("records"):
            pair = base.get(_run_key(cell))
            if pair is None:
                continue
            row = {key: cell[key] for key in (*ROW_KEYS, "task", "seed", *RUN)} | {
                "cell_id": cell["cell_id"],
                "accuracy": cell["accuracy"],
                "auc": cell["auc"],
            }
            row |= {
                "baseline_cell_id": pair["cell_id"],
                "baseline_accuracy": pair["accuracy"],
                "baseline_auc": pair["auc"],
            }
            rows.append(row | _image_tests(predictions, cell["task"], pair["cell_id"], cell["cell_id"]))
    return pd.DataFrame(rows, columns=list(SEED_COLUMNS))


def _run_key(cell: dict) -> tuple:
    """What pairs two runs within a pairing group: their (generator seed, classifier seed)."""
    return tuple(cell[key] for key in RUN)


def _image_tests(predictions: Predictions, kind: str, baseline_id: str, cell_id: str) -> dict:
    """DeLong's test of AUC and McNemar's of accuracy between the baseline's and a run's test predictions."""
    base, other = predictions.get(baseline_id), predictions.get(cell_id)
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
        "delong_diff": number(difference),
        "delong_p": number(units[0]["p_value"]) if kind == "binary" else math.nan,
        "delong_tests": len(tested),
        "delong_better": sum(u["p_value"] < ALPHA and u["difference"] > 0 for u in tested),
        "delong_worse": sum(u["p_value"] < ALPHA and u["difference"] < 0 for u in tested),
    }
    if kind == "multilabel":
        return row | {"note": "McNemar n/a for multilabel: exact-match accuracy is not meaningful"}
    test = stats.mcnemar_test(labels, predicted_labels(kind, a), predicted_labels(kind, b))
    return row | {"mcnemar_b": test["b"], "mcnemar_c": test["c"], "mcnemar_p": test["p_value"]}


@dataclass(frozen=True)
class Comparison:
    """One paired comparison within a (dataset, backbone, fraction) group: a row against a reference row, in a
    family's table; `chosen` says how a row chosen on validation was picked."""

    family: str
    reference: str
    model: str
    chosen: str = ""


def baseline_comparisons(group: pd.DataFrame, baseline: str) -> list[Comparison]:
    """Every row of a group against the baseline strategy's row."""
    references = group.loc[group["strategy"] == baseline, "model"].unique()
    reference = references[0] if len(references) else baseline
    others = group.loc[group["strategy"] != baseline, "model"].unique()
    return [Comparison("baseline", reference, model) for model in sorted(others)]


def family_comparisons(group: pd.DataFrame) -> list[Comparison]:
    """The comparisons the question asks within a group: each generative row against `geometric`, the best classic
    row against the best generative one (both on mean validation AUC, never test), and each generative row
    against its rebalancing control `oversample`, where those rows ran. They do not depend on the baseline: a grid
    whose baseline is `geometric` asks the same question."""
    ok = group[group["status"] == OK]
    rows = ok.groupby("model", sort=True).agg(
        strategy=("strategy", "first"), generative=("generative", "any"), val_auc=("val_auc", "mean")
    )
    generative = rows[rows["generative"]]
    classic = rows[~rows["generative"] & ~rows["strategy"].isin([NO_AUGMENTATION, *CONTROLS])]
    geometric = list(classic.index[classic["strategy"] == CLASSIC_REFERENCE])[:1]
    found = [Comparison("classic", geometric[0], model) for model in generative.index] if geometric else []
    best = _best_pair(classic, generative)
    if best is not None:
        same = [c for c in found if (c.reference, c.model) == (best.reference, best.model)]
        found = [replace(c, chosen=best.chosen) if c in same else c for c in found] + ([] if same else [best])
    control = list(rows.index[rows["strategy"] == REBALANCING])[:1]
    if control:
        found += [Comparison("rebalancing", control[0], model) for model in generative.index]
    return found


def _best_pair(classic: pd.DataFrame, generative: pd.DataFrame) -> Comparison | None:
    """The best classic row against the best generative row, each chosen on its mean validation AUC."""
    classic, generative = classic["val_auc"].dropna(), generative["val_auc"].dropna()
    if classic.empty or generative.empty:
        return None
    c, g = classic.idxmax(), generative.idxmax()
    chosen = f"best on validation AUC: {g} ({generative[g]:.3f}) vs {c} ({classic[c]:.3f})"
    return Comparison("classic", c, g, chosen)


def comparison_table(long: pd.DataFrame, predictions: Predictions, baseline: str, family: bool = False) -> pd.DataFrame:
    """Each comparison of every (dataset, backbone, fraction) group, against the baseline (`family` False) or the
    family comparisons: Δ of accuracy and AUC with the run-level Student-t CI and p (primary), Wilcoxon over
    generator-seed means and the paired bootstrap over test images (secondary), every p Holm-corrected within its
    dataset × family table, and the better/worse marker from the corrected run-level p."""
    rows = []
    for _, group in long.groupby(list(PAIRING), dropna=False, sort=True):
        comparisons = family_comparisons(group) if family else baseline_comparisons(group, baseline)
        rows += [_compare(group, comparison, predictions) for comparison in comparisons]
    return _holm_correct(pd.DataFrame(rows, columns=list(STATS_COLUMNS)))


def _compare(group: pd.DataFrame, comparison: Comparison, predictions: Predictions) -> dict:
    """One comparison's row: its runs paired with the reference's on both seeds, summarised."""
    cells = group[group["model"] == comparison.model]
    first, task = cells.iloc[0], next(iter(cells["task"].dropna()), None)
    ok = group[group["status"] == OK]
    reference = ok[ok["model"] == comparison.reference]
    row = {key: first[key] for key in ROW_KEYS} | {
        "family": comparison.family,
        "reference": comparison.reference,
        "chosen": comparison.chosen,
        "baseline": reference["strategy"].iloc[0] if len(reference) else comparison.reference,
        "task": task,
    }
    if reference.empty:
        return row | {"note": f"no successful '{comparison.reference}' run in this group to compare with"}
    return row | _summarise_pairs(_pair_runs(reference, cells[cells["status"] == OK]), cells, task, predictions)


def _pair_runs(reference: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """The runs both rows made, matched on (generator seed, classifier seed): the other's cell id and metrics and
    the reference's as `baseline_*`."""
    keep = [*RUN, "cell_id", *COMPARED_METRICS]
    renamed = reference[keep].rename(columns={c: f"baseline_{c}" for c in keep if c not in RUN})
    return other[keep].merge(renamed, on=list(RUN), how="inner")


def _summarise_pairs(pairs: pd.DataFrame, cells: pd.DataFrame, task: str | None, predictions: Predictions) -> dict:
    """The comparison columns of one row from its runs paired with the reference's: per metric the run-level test
    (Student-t over generator-seed means), Wilcoxon over those means and the secondary paired bootstrap."""
    row: dict[str, object] = {"n_paired": len(pairs), "n_generator_seeds": pairs["generator_seed"].nunique()}
    for metric in COMPARED_METRICS:
        valid = pairs.dropna(subset=[f"baseline_{metric}", metric])
        if len(valid):
            row |= _run_columns(metric, valid)
    bootstrap, notes = _bootstrap_columns(pairs, task, predictions)
    unpaired = set(run_names(cells[cells["status"] == OK])) - set(run_names(pairs))
    if unpaired:
        notes.append(f"runs without a reference run: {sorted(unpaired)}")
    return row | bootstrap | {"note": "; ".join(notes)}


def _run_columns(metric: str, pairs: pd.DataFrame) -> dict:
    """One metric's run-level columns: means, Δ with its Student-t CI over generator-seed means, t and Wilcoxon p."""
    seeds = pairs["generator_seed"]
    reference, other = (inference.seed_means(pairs[c], seeds) for c in (f"baseline_{metric}", metric))
    test = inference.run_test(pairs[metric] - pairs[f"baseline_{metric}"], seeds)
    ranks = stats.paired_difference(reference, other)
    return {
        f"baseline_{metric}": pairs[f"baseline_{metric}"].mean(),
        metric: pairs[metric].mean(),
        f"{metric}_diff": number(test.difference),
        f"{metric}_t_ci_low": number(test.ci_low),
        f"{metric}_t_ci_high": number(test.ci_high),
        f"{metric}_t_sd": number(test.sd),
        f"{metric}_t_p": number(test.p_value),
        f"{metric}_wilcoxon_p": number(ranks["wilcoxon_p_value"]),
        f"{metric}_wilcoxon_n": ranks["wilcoxon_n"],
    }


def _bootstrap_columns(pairs: pd.DataFrame, task: str | None, predictions: Predictions) -> tuple[dict, list[str]]:
    """The paired bootstrap over test images and runs of the pairs whose predictions are saved on the same test
    images, as comparison columns, and notes where runs lack predictions or it could not run."""
    missing = pairs[
        [
            predictions.get(a) is None or predictions.get(b) is None
            for a, b in zip(pairs["baseline_cell_id"], pairs["cell_id"])
        ]
    ]
    notes = [f"test predictions missing (runs {sorted(run_names(missing))})"] if len(missing) else []
    runs = [(predictions.get(a), predictions.get(b)) for a, b in zip(pairs["baseline_cell_id"], pairs["cell_id"])]
    runs = [(a, b) for a, b in runs if a is not None and b is not None and np.array_equal(a[0], b[0])]
    if not runs or task is None:
        return {}, notes
    labels = runs[0][0][0]
    if not all(np.array_equal(a[0], labels) for a, _ in runs):
        return {}, [*notes, "test labels differ between runs: no bootstrap over test images"]
    result = stats.paired_bootstrap(
        task,
        labels,
        [a[1] for a, _ in runs],
        [b[1] for _, b in runs],
        np.random.default_rng(BOOTSTRAP_SEED),
        BOOTSTRAP_RESAMPLES,
    )
    row = {
        "bootstrap_seeds": result["n_seeds"],
        "bootstrap_images": result["n_images"],
        "bootstrap_resamples": result["n_resamples"],
    }
    for metric in COMPARED_METRICS:
        summary = result[metric]
        row |= {
            f"{metric}_bootstrap_diff": number(summary["difference"]),
            f"{metric}_ci_low": number(summary["ci_low"]),
            f"{metric}_ci_high": number(summary["ci_high"]),
            f"{metric}_bootstrap_p": number(summary["p_value"]),
        }
    return row, notes + ([ONE_SEED_NOTE] if result["n_seeds"] == 1 else [])


def _holm_correct(frame: pd.DataFrame) -> pd.DataFrame:
    """Holm-correct each kind of p across one table (a dataset's comparisons of one family, every row × metric),
    then mark each metric better / worse where the corrected run-level p is below ALPHA."""
    frame = frame.copy()
    for index in frame.groupby(["dataset", "family"], sort=False).groups.values():
        for kind in P_KINDS:
            columns = [f"{metric}_{kind}" for metric in COMPARED_METRICS]
            raw = frame.loc[index, columns].to_numpy(dtype=float)
            adjusted = [number(p) for p in stats.holm(raw.ravel().tolist())]
            frame.loc[index, [f"{c}_holm" for c in columns]] = np.reshape(adjusted, raw.shape)
    for metric in COMPARED_METRICS:
        significant = frame[f"{metric}_t_p_holm"] < ALPHA
        direction = frame[f"{metric}_diff"]
        frame[f"{metric}_marker"] = np.select(
            [significant & (direction > 0), significant & (direction < 0)], ["better", "worse"], ""
        )
    return frame


def power_table(compared: pd.DataFrame) -> pd.DataFrame:
    """Per dataset × family table and metric: the smallest difference it detects with 80% power after its Holm
    correction (Bonferroni over its m tests), from the pooled std of its rows' generator-seed mean differences."""
    rows = []
    for (dataset, family), table in compared.groupby(["dataset", "family"], sort=False):
        m = int(table[[f"{metric}_t_p" for metric in COMPARED_METRICS]].notna().to_numpy().sum())
        for metric in COMPARED_METRICS:
            sds = table[f"{metric}_t_sd"].dropna()
            pooled = float(np.sqrt(np.mean(sds**2))) if len(sds) else None
            g = int(table.loc[sds.index, "n_generator_seeds"].min()) if len(sds) else 0
            mde = inference.minimum_detectable_difference(pooled, g, max(m, 1), ALPHA)
            rows.append(
                {
                    "dataset": dataset,
                    "family": family,
                    "metric": metric,
                    "m": m,
                    "n_generator_seeds": g,
                    "pooled_sd": number(pooled),
                    "mde": number(mde),
                }
            )
    return pd.DataFrame(rows, columns=["dataset", "family", "metric", "m", "n_generator_seeds", "pooled_sd", "mde"])


def across_table(long: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Over the largest complete table of tasks (dataset × fraction) and rows (`stats.largest_complete_table`): IQM of
    test AUC over each row's runs, the probability of improvement over the baseline and, for generative rows, over
    `geometric` and `oversample` (where they ran), each with a stratified-bootstrap 95% CI (runs resampled within
    tasks)."""
    ok = long[(long["status"] == OK) & long["auc"].notna()]
    by_task = {task_name(key): frame for key, frame in ok.groupby(list(TASK), sort=True)}
    kept, common = stats.largest_complete_table({name: set(frame["entry"]) for name, frame in by_task.items()})
    tasks = [by_task[name] for name in kept]
    entries = [e for e in dict.fromkeys(ok["entry"]) if e in common]
    runs = {e: [t.loc[t["entry"] == e, "auc"].to_numpy(dtype=float) for t in tasks] for e in entries}
    left_out = ", ".join(name for name in by_task if name not in kept)
    rows = []
    for entry in entries:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        low, high = inference.stratified_bootstrap_ci(inference.iqm, [runs[entry]], rng, ACROSS_RESAMPLES)
        row = {"entry": entry, "n_tasks": len(tasks), "n_runs": sum(len(r) for r in runs[entry])}
        row["left_out_tasks"] = left_out
        row |= {"iqm_auc": inference.iqm(runs[entry]), "iqm_ci_low": low, "iqm_ci_high": high}
        cells = ok[ok["entry"] == entry]
        for name, reference in _poi_references(ok, entries, baseline, bool(cells["generative"].any())).items():
            if reference != entry:
                row |= _poi_columns(name, runs[entry], runs[reference], rng)
        rows.append(row)
    columns = ["entry", "n_tasks", "n_runs", "left_out_tasks", "iqm_auc", "iqm_ci_low", "iqm_ci_high"]
    columns += [f"{name}{part}" for name in POI_COLUMNS for part in ("", "_ci_low", "_ci_high")]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("iqm_auc", ascending=False, kind="stable", ignore_index=True)


def _poi_references(ok: pd.DataFrame, entries: list[str], baseline: str, generative: bool) -> dict[str, str]:
    """The rows a row's probability of improvement is taken against, by column name: the baseline for every row,
    `geometric` and `oversample` for generative rows (those that ran on every task)."""
    strategies = {"poi": baseline} | (
        {"poi_geometric": CLASSIC_REFERENCE, "poi_oversample": REBALANCING} if generative else {}
    )
    found = {}
    for name, strategy in strategies.items():
        matches = [e for e in entries if (ok.loc[ok["entry"] == e, "strategy"] == strategy).all()]
        if matches:
            found[name] = matches[0]
    return found


def _poi_columns(name: str, x: list[np.ndarray], y: list[np.ndarray], rng: np.random.Generator) -> dict[str, float]:
    """P(a run of x beats a run of y), averaged over tasks, with its stratified-bootstrap CI."""
    low, high = inference.stratified_bootstrap_ci(inference.probability_of_improvement, [x, y], rng, ACROSS_RESAMPLES)
    return {name: inference.probability_of_improvement(x, y), f"{name}_ci_low": low, f"{name}_ci_high": high}
