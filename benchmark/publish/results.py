"""A results folder read for the leaderboard: its cell records, each checked (a damaged file is named with its reason,
never dropped), their saved test predictions, and the long table of one flat row per run that every table builds on."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.task import TaskSpec
from benchmark.errors import MedAugBenchError
from benchmark.grid.store import (
    FAILED,
    OK,
    SCHEMA_PREFIX,
    CellRecord,
    load_predictions,
    predictions_path,
    read_record,
    records_dir,
)
from benchmark.train.record import ComputeReport, QualityBlock, RunRecord

METRICS = (
    "accuracy",
    "accuracy_calibrated",
    "balanced_accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
    "auc",
)
TEST_METRICS = (*METRICS, "ece", "average_precision")
COORDINATES = ("dataset", "strategy", "base_strategy", "backbone", "seed", "train_fraction", "policy")
# A run: the generator seed fixes the training subset, the generator and its synthesis; the classifier seed the
# classifier's initialisation, batch order and augmentation draws. Records without a generator seed used one seed.
RUN = ("generator_seed", "classifier_seed")
# Rebalancing controls: neither classic augmentation nor synthetic data.
CONTROLS = ("oversample", "class_weighted")
SECONDS = {"generator_seconds": "synthesize", "classifier_seconds": "train", "total_seconds": "total"}
# What each cell spent (RunRecord.compute): long-table column -> path in that block; FLOPs counted, device-seconds.
PHASES = ("generator_training", "synthesis", "classifier_training")
COMPUTE = {
    **{f"{phase}_{unit}": (phase, unit) for unit in ("flops", "seconds") for phase in PHASES},
    "total_flops": (None, "flops"),
    "compute_seconds": (None, "seconds"),
}  # (phase, None: the total; unit), read by attribute from the run's ComputeReport
# Class-matched generator quality (the strategy's QualityReport.matched block): long-table columns.
QUALITY = ("fid", "fid_floor", "fid_shift", "kid", "kid_floor", "kid_shift")
# Class fidelity (the strategy's `fidelity` fact, benchmark.evaluate.fidelity.FidelityReport.to_dict()): long-table
# column -> key in its `overall` block; `flags` is the strategy's list of reasons its synthetic set was flagged.
FIDELITY = {"fidelity": "fidelity", "fidelity_real": "recall", "fidelity_chance": "chance"}
# Suffix per coordinate some strategy ran with several values of: row names in tables, plots and the report.
SUFFIXES = {"backbone": "/{}", "train_fraction": "@{:g}", "policy": "[{}]"}
Predictions = dict[str, tuple[np.ndarray, np.ndarray] | None]
# Damage a cell record or its predictions can show: left out of every table, and named.
DAMAGE = (TypeError, KeyError, ValueError, AttributeError, IndexError)


@dataclass(frozen=True)
class Unreadable:
    """A file of the results folder the leaderboard could not use, and why: it is named wherever tables are
    published, never silently dropped."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def read_results(results_dir: Path) -> tuple[list[CellRecord], list[Unreadable]]:
    """Every usable cell record of a results folder, in stable cell order, and every record file that is not one
    (truncated or damaged JSON, a wrong shape, a cell id that does not match its file name), with the reason."""
    folder = records_dir(results_dir)
    records, unreadable = [], []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(_usable_record(path))
        except MedAugBenchError as error:
            unreadable.append(Unreadable(path, re.sub(rf"^record {re.escape(str(path))}:? ", "", str(error))))
    return sorted(records, key=lambda r: json.dumps(r.cell, sort_keys=True, default=str)), unreadable


def _usable_record(path: Path) -> CellRecord:
    """The cell record in `path`, checked to be one the tables can read; otherwise one message saying why not."""
    try:
        record = read_record(path)
    except DAMAGE as error:
        raise MedAugBenchError(f"not a cell record of this layout ({type(error).__name__}: {error})") from None
    if record is None:
        raise MedAugBenchError(_why_unreadable(path))
    if record.cell_id != path.stem:
        raise MedAugBenchError(f"its cell id {record.cell_id!r} is not its file name {path.stem!r}")
    cell = record.cell if isinstance(record.cell, dict) else {}
    if not all(isinstance(cell.get(key), str) for key in ("dataset", "strategy")) or record.status not in (OK, FAILED):
        raise MedAugBenchError("it lacks a dataset, strategy or status of this layout")
    if record.ok and record.result is None:
        raise MedAugBenchError("its status is 'ok' but it holds no result")
    try:
        _long_row(record, TEST_METRICS)
    except DAMAGE as error:
        raise MedAugBenchError(f"its result has a wrong shape ({type(error).__name__}: {error})") from None
    return record


def _why_unreadable(path: Path) -> str:
    """Why `read_record` returned nothing for a file: unreadable, not JSON, or not a cell record."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    except ValueError:
        return "not valid JSON (truncated or damaged)"
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith(SCHEMA_PREFIX):
        return f"not a cell record (no {SCHEMA_PREFIX}… schema)"
    return "not a readable cell record"


def read_predictions(results_dir: Path, cell_ids: list[str]) -> tuple[Predictions, list[Unreadable]]:
    """The saved test predictions of these cells (None where absent), and every predictions file that exists but
    cannot be read (a truncated .npz), named."""
    predictions: Predictions = {cell_id: load_predictions(results_dir, cell_id) for cell_id in cell_ids}
    paths = [predictions_path(results_dir, cell_id) for cell_id, saved in predictions.items() if saved is None]
    reason = "test predictions not readable (truncated or damaged .npz)"
    return predictions, [Unreadable(path, reason) for path in paths if path.exists()]


def long_table(records: list[CellRecord]) -> pd.DataFrame:
    """One row per cell, ok or failed: coordinates, test metrics, class-matched generator quality and seconds."""
    has_ap = any(r.result is not None and r.result.dataset.task.multilabel for r in records)
    metrics = TEST_METRICS if has_ap else TEST_METRICS[:-1]
    columns = [
        "cell_id",
        "status",
        *COORDINATES,
        *RUN,
        "task",
        "positive_class",
        "generative",
        "val_auc",
        *metrics,
        *QUALITY,
        "fid_rank_deficient",
        *FIDELITY,
        "flags",
        *SECONDS,
        *COMPUTE,
        "error",
    ]
    frame = pd.DataFrame([_long_row(record, metrics) for record in records], columns=columns)
    frame.insert(3, "model", _model_labels(frame))
    frame.insert(4, "entry", _model_labels(frame, across_tasks=True))
    return frame


def _long_row(record: CellRecord, metrics: tuple[str, ...]) -> dict:
    """A cell's row of the long table; NaN where the record has no value (a failed cell has only its error)."""
    run = record.result
    matched = matched_quality(run)
    test = run.metrics.test if run is not None else None
    row = {"cell_id": record.cell_id, "status": record.status, **{key: record.cell.get(key) for key in COORDINATES}}
    row |= dict(zip(RUN, run_seeds(record)))
    row["task"] = run.dataset.task.kind if run is not None else None
    row["positive_class"] = positive_label(run.dataset.task) if run is not None else None
    row["generative"] = _generative(record)
    row["val_auc"] = number(run.metrics.val.get("auc") if run is not None else None)
    row |= {metric: number(test.get(metric) if test is not None else None) for metric in metrics}
    row |= {name: number(value) for name, value in _quality_values(matched).items()}
    row["fid_rank_deficient"] = None if matched is None else bool(matched.rank_deficient)
    row |= _fidelity_values(run)
    seconds = run.budget.seconds if run is not None else {}
    row |= {name: number(seconds.get(key)) for name, key in SECONDS.items()}
    compute = run.compute if run is not None else None
    row |= {name: _compute_value(compute, phase, unit) for name, (phase, unit) in COMPUTE.items()}
    row["error"] = (record.error or {}).get("message") if record.status == FAILED else None
    return row


def positive_label(task: TaskSpec) -> str | None:
    """The class whose recall a binary run reports as "recall" (sensitivity), as its record's task states it, e.g.
    "'malignant' (label 0)"; records written before dataset cards named a positive class took label 1. None for
    other tasks, whose recall is a macro mean."""
    return f"'{task.labels[task.positive]}' (label {task.positive})" if task.kind == "binary" else None


def _compute_value(compute: ComputeReport | None, phase: str | None, unit: str) -> float:
    """A phase's (phase None: the total's) FLOPs or seconds from a run's compute report; NaN where it has none."""
    part = None if compute is None else compute.total if phase is None else compute.phases.get(phase)
    return number(getattr(part, unit) if part is not None else None)


def _generative(record: CellRecord) -> bool:
    """Whether a run trained on synthetic images: its record holds some, and it is not a rebalancing control (which
    adds repeated real images the record may count alongside)."""
    run = record.result
    if run is None or record.cell.get("base_strategy", record.cell.get("strategy")) in CONTROLS:
        return False
    return bool(run.dataset.train_synthetic or "synthesis" in run.strategy.facts)


def run_seeds(record: CellRecord) -> tuple[int | None, int | None]:
    """A cell's (generator seed, classifier seed): the classifier seed is the cell's seed; a record without a
    generator seed (written before seeds were split) used that one seed for both."""
    seed = record.cell.get("seed", record.config.get("seed"))
    generator = record.cell.get("generator_seed", record.config.get("generator_seed"))
    return (seed if generator is None else generator), seed


def matched_quality(run: RunRecord | None) -> QualityBlock | None:
    """The class-matched block of a run's quality report, or None for a run that scored no synthetic images."""
    quality = run.strategy.quality if run is not None else None
    return quality.matched if quality is not None else None


def _quality_values(matched: QualityBlock | None) -> dict[str, float | None]:
    """The QUALITY columns of a class-matched block: FID and KID of the synthetic images and of the floor."""
    if matched is None:
        return dict.fromkeys(QUALITY)
    fake, floor, shift = matched.fake_vs_real, matched.floor, getattr(matched, "shift", None)
    return {
        "fid": fake.fid,
        "fid_floor": _score(floor, "fid"),
        "fid_shift": _score(shift, "fid"),
        "kid": fake.kid_mean,
        "kid_floor": _score(floor, "kid_mean"),
        "kid_shift": _score(shift, "kid_mean"),
    }


def _fidelity_values(run: RunRecord | None) -> dict:
    """The FIDELITY columns of a run's class-fidelity fact (NaN without one: an older or a classic run) and its flags,
    joined by ' / ' (None: the record has no `flags` fact; '': checked, nothing found)."""
    facts = run.strategy.facts if run is not None else {}
    values = {name: number(dig(facts, "fidelity", "overall", key)) for name, key in FIDELITY.items()}
    flags = facts.get("flags")
    return values | {"flags": None if flags is None else " / ".join(flags)}


def _score(block: object, name: str) -> float | None:
    """One score of an optional quality block (None without the block: a record that did not measure it)."""
    return None if block is None else getattr(block, name)


def record_labels(records: list[CellRecord]) -> dict[str, str]:
    """Each cell's row name in the leaderboard (see `_model_labels`), by cell id, so plots name rows the same way."""
    frame = pd.DataFrame(
        [{"cell_id": r.cell_id, **{k: r.cell.get(k) for k in COORDINATES}} for r in records],
        columns=["cell_id", *COORDINATES],
    )
    return dict(zip(frame["cell_id"], _model_labels(frame)))


def _model_labels(frame: pd.DataFrame, across_tasks: bool = False) -> pd.Series:
    """Strategy, plus backbone, train fraction and policy wherever a strategy ran with several on one dataset: a
    row's name everywhere, the same on every dataset (a grid giving each dataset its own fraction keeps plain
    strategy names, so rows pair across datasets). `across_tasks` leaves the fraction out: the name of a row
    across tasks (dataset × fraction), where the fraction is part of the task."""
    label = frame["strategy"].astype(str)
    for column, suffix in SUFFIXES.items():
        if across_tasks and column == "train_fraction":
            continue
        if len(frame) and frame.groupby(["dataset", "strategy"])[column].nunique(dropna=False).max() > 1:
            label = label + frame[column].map(
                lambda value, suffix=suffix: suffix.format(value) if pd.notna(value) else ""
            )
    return label


def dig(data: object, *keys: str) -> object:
    """data[k1][k2]…, or None where a level is missing: for the record's untyped blocks (compute, strategy facts),
    which differ between strategies and versions."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def number(value: object) -> float:
    """A float, NaN for None, so undefined values are empty cells rather than object columns."""
    return math.nan if value is None else float(value)


def run_names(frame: pd.DataFrame) -> list[str]:
    """The runs of a frame of cells as 'generator seed/classifier seed', in seed order: how tables name a run."""
    pairs = sorted({(int(g), int(c)) for g, c in frame[list(RUN)].itertuples(index=False)})
    return [f"{g}/{c}" for g, c in pairs]
