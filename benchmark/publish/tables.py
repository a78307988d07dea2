"""The leaderboard's summary tables, built from the long table of runs: per dataset mean ± std with Student-t CIs and
each row's variance by source, generator quality, accuracy across datasets, and Friedman ranks over blocks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmark.grid.store import FAILED, OK
from benchmark.publish import inference, stats
from benchmark.publish.results import COMPUTE, METRICS, Predictions, number

# A leaderboard row within a dataset; fraction and policy split rows only where the grid varies them.
GROUP = ("strategy", "backbone", "train_fraction", "policy")
# A task of the across-task summaries: a block of the rank test and a stratum of the stratified bootstrap.
TASK = ("dataset", "train_fraction")
SYNTHETIC_ONLY = "synthetic_only"
BOOTSTRAP_SEED = 0  # every comparison draws the same resamples: common random numbers across a table
IMAGE_RESAMPLES = 200  # per run, for the test-image variance of its metric
COMPARED_METRICS = stats.BOOTSTRAP_METRICS  # accuracy and AUC
COMPONENTS = ("generator", "classifier", "runs", "images")


def wide_table(long: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One row per strategy × backbone (× fraction × policy) of a dataset: runs, failures, mean ± std and
    t-interval per metric, the variance of accuracy and AUC by source, class-matched FID/KID with their floors,
    seconds and compute; best AUC first, as a leaderboard."""
    rows = []
    for key, cells in long[long["dataset"] == dataset].groupby(list(GROUP), dropna=False, sort=True):
        ok = cells[cells["status"] == OK]
        row = {"model": cells["model"].iloc[0], **dict(zip(GROUP, key))}
        row |= {"n_seeds": len(ok), "n_failed": int((cells["status"] == FAILED).sum())}
        row |= {"n_generator_seeds": ok["generator_seed"].nunique(), "generative": bool(ok["generative"].any())}
        row["positive_class"] = "; ".join(sorted(ok["positive_class"].dropna().unique())) or None
        row["val_auc_mean"] = ok["val_auc"].mean()
        for metric in METRICS:
            row |= _spread(metric, ok[metric], with_ci=True)
        for metric in COMPARED_METRICS:
            row |= _components(metric, ok)
        row |= _spread("fid", ok["fid"]) | _spread("kid", ok["kid"])
        means = ("fid_floor", "fid_shift", "kid_floor", "kid_shift", "generator_seconds", "classifier_seconds")
        means = (*means, *COMPUTE)
        row |= {f"{name}_mean": ok[name].mean() for name in means}
        row["fid_rank_deficient"] = bool(ok["fid_rank_deficient"].eq(True).any())
        row |= _spread("fidelity", ok["fidelity"])
        row |= {f"{name}_mean": ok[name].mean() for name in ("fidelity_real", "fidelity_chance")}
        row["n_flagged"] = int(ok["flags"].fillna("").ne("").sum())
        rows.append(row)
    return pd.DataFrame(rows).sort_values(
        "auc_mean", ascending=False, na_position="last", kind="stable", ignore_index=True
    )


def _components(metric: str, ok: pd.DataFrame) -> dict[str, float]:
    """A row's variance of a test metric by source: generator seed, classifier seed, all runs, test images."""
    valid = ok.dropna(subset=[metric])
    parts = inference.variance_components(valid[metric], valid["generator_seed"])
    images = valid[f"{metric}_image_var"].mean() if f"{metric}_image_var" in valid else math.nan
    values = {"generator": parts.generator, "classifier": parts.classifier, "runs": parts.runs, "images": images}
    return {f"{metric}_var_{name}": number(values[name]) for name in COMPONENTS}


def _spread(name: str, values: pd.Series, with_ci: bool = False) -> dict[str, float]:
    """Mean and sample std over the seeds that have a value, and optionally their 95% Student-t CI (NaN for one
    seed: a single run has no interval)."""
    x = values.dropna().to_numpy(dtype=float)
    spread = stats.mean_std(x)
    out = {f"{name}_mean": number(spread["mean"]), f"{name}_std": number(spread["std"])}
    if with_ci:
        ci = stats.t_interval(x)
        out |= {f"{name}_ci_low": number(ci["low"]), f"{name}_ci_high": number(ci["high"])}
    return out


def image_variances(long: pd.DataFrame, predictions: Predictions) -> pd.DataFrame:
    """The long table with each run's test-image bootstrap variance of accuracy and AUC (NaN without predictions)."""
    columns = {f"{metric}_image_var": [] for metric in COMPARED_METRICS}
    for cell_id, kind in zip(long["cell_id"], long["task"]):
        saved = predictions.get(cell_id)
        for metric in COMPARED_METRICS:
            value = None
            if saved is not None and isinstance(kind, str):
                rng = np.random.default_rng(BOOTSTRAP_SEED)
                value = stats.image_bootstrap_variance(kind, metric, saved[0], saved[1], rng, IMAGE_RESAMPLES)
            columns[f"{metric}_image_var"].append(number(value))
    return long.assign(**columns)


def quality_table(wide: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The generator-quality rows of every dataset: class-matched FID/KID with their floors, and for cells trained on
    synthetic images only the classification accuracy score (their test AUC and accuracy on real images)."""
    columns = [
        "dataset",
        "model",
        *GROUP,
        "n_seeds",
        "fid_mean",
        "fid_std",
        "fid_floor_mean",
        "fid_shift_mean",
        "kid_mean",
        "kid_std",
        "kid_floor_mean",
        "kid_shift_mean",
        "fid_rank_deficient",
        "fidelity_mean",
        "fidelity_std",
        "fidelity_real_mean",
        "fidelity_chance_mean",
        "n_flagged",
        "cas_auc_mean",
        "cas_auc_std",
        "cas_accuracy_mean",
        "cas_accuracy_std",
    ]
    rows = []
    for dataset, frame in wide.items():
        for row in frame.to_dict("records"):
            cas = row["policy"] == SYNTHETIC_ONLY
            if pd.isna(row["fid_mean"]) and pd.isna(row["fidelity_mean"]) and not row["n_flagged"] and not cas:
                continue
            scores = {
                f"cas_{m}_{s}": row[f"{m}_{s}"] if cas else math.nan
                for m in ("auc", "accuracy")
                for s in ("mean", "std")
            }
            rows.append({"dataset": dataset, **{c: row[c] for c in columns[1:-4]}, **scores})
    return pd.DataFrame(rows, columns=columns)


def cross_dataset_table(wide: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each model's accuracy on every dataset side by side and their average (rows on every dataset only), with each
    dataset's train fraction (a grid may give datasets different ones). FID is not carried over: its feature space
    differs per dataset, so an average over datasets means nothing."""
    rows = []
    for model, cells in pd.concat([w.assign(dataset=d) for d, w in wide.items()]).groupby("model", sort=False):
        by_dataset = cells.set_index("dataset")
        row = {"model": model, **{key: _common(cells[key]) for key in GROUP}}
        for dataset in wide:
            row |= {
                f"{dataset}_{name}": by_dataset[name].get(dataset, math.nan)
                for name in ("accuracy_mean", "accuracy_std", "n_seeds", "train_fraction")
            }
        means = [row[f"{dataset}_accuracy_mean"] for dataset in wide]
        row["average_accuracy"] = float(np.mean(means)) if np.all(np.isfinite(means)) else math.nan
        rows.append(row)
    return pd.DataFrame(rows).sort_values(
        "average_accuracy", ascending=False, na_position="last", kind="stable", ignore_index=True
    )


def _common(values: pd.Series) -> object:
    """The value every dataset's row shares, else NaN (the per-dataset columns then say it)."""
    unique = values.unique()
    return unique[0] if len(unique) == 1 else math.nan


def rank_table(long: pd.DataFrame) -> pd.DataFrame:
    """Average rank of each row across blocks (dataset × fraction; 1 = best) on mean test AUC and accuracy, with
    Friedman's test and Nemenyi's critical difference where there are at least three blocks. Ranks are taken over the
    largest complete table of blocks and rows (`stats.largest_complete_table`); `left_out_blocks` names the rest."""
    ok = long[long["status"] == OK]
    results = {metric: _ranked(_block_means(ok, metric)) for metric in ("auc", "accuracy")}
    entries = list(dict.fromkeys(ok["entry"]))
    columns: dict[str, object] = {
        "model": entries,
        "n_blocks": results["auc"]["n_datasets"],
        "left_out_blocks": ", ".join(results["auc"]["dropped_blocks"]),
    }
    for metric, result in results.items():
        columns[f"{metric}_rank"] = [result["average_ranks"].get(entry, math.nan) for entry in entries]
        columns[f"{metric}_friedman_statistic"] = number(result["statistic"])
        columns[f"{metric}_friedman_p"] = number(result["p_value"])
        k, n_blocks = len(result["average_ranks"]), result["n_datasets"]
        cd = (
            inference.nemenyi_critical_difference(k, n_blocks)
            if n_blocks >= stats.FRIEDMAN_MIN_BLOCKS and k >= 2
            else None
        )
        columns[f"{metric}_cd"] = number(cd)
    frame = pd.DataFrame(columns)
    frame["note"] = [
        "" if pd.notna(r) else "not scored on every ranked block, so not ranked" for r in frame["auc_rank"]
    ]
    return frame.sort_values("auc_rank", na_position="last", kind="stable", ignore_index=True)


def _ranked(table: dict[str, dict[str, float]]) -> dict[str, object]:
    """`stats.friedman_ranks` over the blocks that have a score, or an empty result where none has."""
    table = {block: scores for block, scores in table.items() if scores}
    if not table:
        return {"average_ranks": {}, "statistic": None, "p_value": None, "n_datasets": 0, "dropped_blocks": []}
    return stats.friedman_ranks(table)


def _block_means(ok: pd.DataFrame, metric: str) -> dict[str, dict[str, float]]:
    """Per block (dataset × fraction), each row's mean of a metric over its runs."""
    return {
        task_name(key): frame.groupby("entry", sort=False)[metric].mean().dropna().to_dict()
        for key, frame in ok.groupby(list(TASK), sort=True)
    }


def task_name(key: tuple) -> str:
    """A block's name: the dataset, with its train fraction below 1."""
    dataset, fraction = key
    return dataset if fraction == 1 else f"{dataset}@{fraction:g}"
