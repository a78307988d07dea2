"""A results folder in the runner's exact format without training anything: records whose metrics are computed by
the real `classification_metrics` from seeded random test scores, so leaderboard and plot tests run in seconds."""

from __future__ import annotations

import dataclasses
import zlib
from itertools import product
from pathlib import Path

import numpy as np
from scipy.stats import binom

from benchmark.data.task import TaskSpec
from benchmark.evaluate.fidelity import (
    DEFAULT_MAX_FID_RATIO,
    LEVEL,
    MIN_TEST_IMAGES,
    ClassFidelity,
    Classifier,
    FidelityReport,
    Overall,
    unrecognisable_reasons,
)
from benchmark.grid.store import FAILED, OK, CellRecord, load_predictions, write_record
from benchmark.train.metrics import classification_metrics
from benchmark.train.record import RunRecord

TASKS = {
    "pneumoniamnist": TaskSpec(kind="binary", labels=("normal", "pneumonia"), channels=1),
    "retinamnist": TaskSpec(kind="ordinal", labels=("0", "1", "2", "3", "4"), channels=3),
    "breastmnist": TaskSpec(kind="binary", labels=("malignant", "normal, benign"), channels=1),
}
GENERATIVE = {"vae", "dcgan", "ddpm", "cgan"}
FEATURE_DIM = 32  # of the fake extractor: pneumoniamnist's 20 synthetic images are rank-deficient, retinamnist's 50 not


def fake_scores(task: TaskSpec, labels: np.ndarray, skill: float, rng: np.random.Generator) -> np.ndarray:
    """Scores that favour the true class by `skill` (0: chance), as softmax probabilities."""
    logits = rng.normal(size=(len(labels), task.num_outputs))
    logits[np.arange(len(labels)), labels] += skill
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def make_fake_results(
    root: Path,
    datasets: tuple[str, ...] = ("pneumoniamnist", "retinamnist"),
    strategies: tuple[str, ...] = ("none", "geometric", "cgan"),
    seeds: tuple[int, ...] = (0, 1, 2),
    backbones: tuple[str, ...] = ("simple_cnn",),
    failed: tuple[tuple[str, str, int], ...] = (),
    n_test: int = 200,
    fractions: dict[str, float] | None = None,
    generator_seeds: tuple[int, ...] | None = None,
) -> list[CellRecord]:
    """Write one record (+ predictions) per dataset × strategy × backbone × run; `failed` lists (dataset, strategy,
    seed) cells written as failed instead; `fractions` gives a dataset its train fraction (default 1). Without
    `generator_seeds` a run is a seed and records are written as before seeds were split (no generator seed); with
    them, a run is a (generator seed, classifier seed ∈ `seeds`) pair and both are recorded. Test labels are fixed
    per dataset, so cells pair image by image."""
    written = []
    runs = [(None, seed) for seed in seeds] if generator_seeds is None else list(product(generator_seeds, seeds))
    for d_index, dataset in enumerate(datasets):
        task = TASKS[dataset]
        labels = np.random.default_rng(100 + d_index).integers(0, task.num_outputs, n_test)
        for s_index, strategy in enumerate(strategies):
            for backbone in backbones:
                for generator_seed, seed in runs:
                    run = [seed] if generator_seed is None else [generator_seed, seed]
                    rng = np.random.default_rng([d_index, s_index, zlib.crc32(backbone.encode()), *run])
                    cell = {
                        "dataset": dataset,
                        "strategy": strategy,
                        "base_strategy": strategy,
                        "backbone": backbone,
                        "seed": seed,
                        "train_fraction": (fractions or {}).get(dataset, 1.0),
                        "policy": "balance" if strategy in GENERATIVE else None,
                    }
                    fraction = cell["train_fraction"]
                    cell_id = f"{dataset[:4]}-{strategy}-{backbone}-{'-'.join(map(str, run))}"
                    cell_id += "" if fraction == 1 else f"-f{fraction:g}"
                    config = {"dataset": dataset, "strategy": strategy, "backbone": backbone, "seed": seed}
                    if generator_seed is not None:
                        cell["generator_seed"] = config["generator_seed"] = generator_seed
                    if (dataset, strategy, seed) in failed:
                        record = CellRecord(
                            cell_id,
                            FAILED,
                            cell,
                            config,
                            grid="fake",
                            error={
                                "type": "RuntimeError",
                                "message": f"{strategy} exploded",
                                "traceback": "Traceback ...",
                            },
                        )
                        write_record(root, record)
                        written.append(record)
                        continue
                    skill = 1.0 + 0.4 * s_index + rng.normal(0, 0.1)
                    scores = fake_scores(task, labels, skill, rng)
                    record = CellRecord(
                        cell_id,
                        OK,
                        cell,
                        config,
                        grid="fake",
                        result=fake_result(task, dataset, strategy, labels, scores, rng),
                        timing={"wall_seconds": 10.0},
                    )
                    write_record(root, record, labels, scores)
                    written.append(record)
    return written


def fake_result(
    task: TaskSpec, dataset: str, strategy: str, labels: np.ndarray, scores: np.ndarray, rng: np.random.Generator
) -> dict:
    """A `RunRecord.to_dict()` with real metrics for `scores` and plausible curves, budget and generator report."""
    test = dataclasses.asdict(classification_metrics(task, labels, scores))
    steps = [50, 100, 150, 200]
    report: dict = {}
    if strategy in GENERATIVE:
        fid = float(rng.uniform(20, 200))
        plan = [10] * task.num_outputs
        report = {
            "generator": {
                "generator": strategy,
                "histories": {
                    "all": {
                        "steps": 200,
                        "seconds": 30.0,
                        "log_step": [50, 100],
                        "losses": {"loss": [1.0, 0.8]},
                        "quality_step": [50, 100, 150, 200],
                        "quality": [fid * 3, fid * 2, fid * 1.2, fid],
                        "stopped_early": False,
                        "failure": None,
                    }
                },
            },
            "synthesis": {"policy": "balance", "plan": plan, "generated": sum(plan)},
            "quality": fake_quality(task, plan, fid, float(rng.uniform(3, 6))),
        }
    record = {
        "schema": RunRecord.SCHEMA,
        "config": {"dataset": dataset, "strategy": strategy},
        "dataset": {
            "name": dataset,
            "task": {"kind": task.kind, "labels": list(task.labels), "channels": task.channels},
            "source_size": 28,
            "image_size": 28,
            "train_real": 1000,
            "train_synthetic": sum(report["synthesis"]["plan"]) if report else 0,
            "val": len(labels),
            "test": len(labels),
        },
        "strategy": {"name": strategy, "params": {}, **report},
        "metrics": {"val": test, "test": test},
        "best": {"step": 200, "selected_by": "val auc"},
        "budget": {
            "kind": "steps",
            "limit": 200.0,
            "steps": 200,
            "images_seen": 25600,
            "seconds": {
                "load": 0.1,
                "synthesize": 30.0 if strategy in GENERATIVE else 0.0,
                "train": 20.0,
                "eval": 2.0,
                "test": 0.5,
                "total": 53.0,
            },
            "peak_memory_bytes": 1 << 30,
        },
        "curves": {
            "step": steps,
            "train_loss": [0.7, 0.5, 0.4, 0.35],
            "lr": [1e-3] * 4,
            "val_auc": [float(rng.uniform(0.6, 0.9)) for _ in steps],
            "val_accuracy": [float(rng.uniform(0.5, 0.9)) for _ in steps],
            "val_balanced_accuracy": [float(rng.uniform(0.5, 0.9)) for _ in steps],
        },
        "environment": {"device": "cpu", "device_name": "x86_64", "torch": "2.14.1"},
        "compute": fake_compute(strategy in GENERATIVE),
        "code": {"medaugbench": "0.1.0", "git_commit": "0" * 40, "git_dirty": False},
    }
    return RunRecord.from_dict(record).to_dict()  # checked against the record's layout


def fake_compute(generative: bool) -> dict:
    """A `compute` block (benchmark.train.loop.compute_record's layout): a generator and its synthesis for generative
    strategies, 200 classifier steps of 1 GFLOP each."""
    phases = {
        "generator_training": {"flops": 200 * 5e8 if generative else 0, "seconds": 26.0 if generative else 0.0},
        "synthesis": {
            "flops": 20 * 1e7 if generative else 0,
            "seconds": 2.0 if generative else 0.0,
            "images": 20 if generative else 0,
        },
        "classifier_training": {
            "flops": 200 * 1e9,
            "seconds": 20.0,
            "steps": 200,
            "step_flops": 1e9,
            "batch_size": 128,
        },
    }
    total = {key: sum(phase[key] for phase in phases.values()) for key in ("flops", "seconds")}
    return {
        "budget": {"classifier": {"kind": "steps", "amount": 200}, "total": None},
        "phases": phases,
        "total": total,
        "counter": "FlopCounterMode",
    }


def fake_quality(task: TaskSpec, plan: list[int], fid: float, floor: float) -> dict:
    """A schema-3 quality report (benchmark.evaluate.quality's layout): class-matched block with its in-distribution
    floor and train→test shift (twice the floor), per-class blocks, audit."""
    composition = {label: count for label, count in zip(task.labels, plan) if count}
    per_class = {label: _quality_block({label: count}, fid * 1.5, floor * 1.5) for label, count in composition.items()}
    empty = {
        "threshold": 1.0,
        "near_copies": 0,
        "near_copy_fraction": 0.0,
        "exact_copies": 0,
        "copies": [],
        "fake_to_train": {},
        "test_to_train": {},
        "closest_pairs": [],
    }
    return {
        "schema": 3,
        "extractor": {"name": "domain", "weights_sha256": "0" * 64},
        "seed": 0,
        "max_images": 2000,
        "per_class_grouping": "class",
        "reference": "fake",
        "floor_images": "validation",
        "ms_ssim_setup": {},
        "matched": _quality_block(composition, fid, floor),
        "per_class": per_class,
        "memorisation": {
            "n_fake": sum(plan),
            "n_train": 1000,
            "n_test": 200,
            "quantile": 0.01,
            "pixel": empty,
            "feature": empty,
        },
    }


def _quality_block(composition: dict[str, int], fid: float, floor: float) -> dict:
    """One BLOCK of the quality report: synthetic vs real reference, the in-distribution floor and the train→test
    shift (twice the floor) at the same n."""
    n = sum(composition.values())

    def scores(value: float) -> dict:
        return {
            "fid": value,
            "kid_mean": value / 1000,
            "kid_std": value / 10000,
            "kid_subset_size": n,
            "precision": 0.5,
            "recall": 0.5,
            "density": 0.9,
            "coverage": 0.6,
            "n_real": n,
            "n_fake": n,
        }

    return {
        "n": n,
        "composition": composition,
        "feature_dim": FEATURE_DIM,
        "rank_deficient": n - 1 < FEATURE_DIM,
        "fake_vs_real": scores(fid),
        "floor": scores(floor),
        "shift": scores(2 * floor),
        "ms_ssim_fake": 0.3,
        "ms_ssim_real": 0.25,
        "nearest_real": None,
    }


LEARNING_FRACTIONS = (0.05, 0.1, 0.2, 0.4, 1.0)
FULL_TRAIN = 4708  # PneumoniaMNIST's training split


def make_learning_curve_results(
    root: Path,
    curve: tuple[str, ...] = ("none", "geometric"),
    others: tuple[str, ...] = ("cgan",),
    fractions: tuple[float, ...] = LEARNING_FRACTIONS,
    at: float = 0.1,
    seeds: tuple[int, ...] = (0, 1, 2),
    generator_seeds: tuple[int, ...] | None = (0, 1),
) -> list[CellRecord]:
    """PneumoniaMNIST records for learning curves: the `curve` strategies at every train fraction and `others` at
    `at`, each run's real training images round(fraction × FULL_TRAIN) and its test scores regenerated with a skill
    rising in log(real images) (strategies later in the lists a little higher), so the curves climb."""
    written = []
    for fraction in fractions:
        strategies = curve + (others if fraction == at else ())
        fractions_of = {"pneumoniamnist": fraction}
        for record in make_fake_results(
            root, ("pneumoniamnist",), strategies, seeds, fractions=fractions_of, generator_seeds=generator_seeds
        ):
            written.append(_on_curve(root, record, round(fraction * FULL_TRAIN), (*curve, *others)))
    return written


def _on_curve(root: Path, record: CellRecord, n_real: int, strategies: tuple[str, ...]) -> CellRecord:
    """The record rewritten with `n_real` real training images and test scores whose skill rises with log(n_real)."""
    task, strategy = TASKS["pneumoniamnist"], record.cell["strategy"]
    labels, _ = load_predictions(root, record.cell_id)
    rng = np.random.default_rng([zlib.crc32(record.cell_id.encode())])
    skill = 0.3 * np.log(n_real / 100) + 0.1 * strategies.index(strategy) + rng.normal(0, 0.05)
    scores = fake_scores(task, labels, skill, rng)
    result = fake_result(task, "pneumoniamnist", strategy, labels, scores, rng)
    result["dataset"]["train_real"] = n_real
    rewritten = dataclasses.replace(record, result=result)
    write_record(root, rewritten, labels, scores)
    return rewritten


def add_fidelity(root: Path, records: list[CellRecord], flagged: tuple[str, ...] = ()) -> list[CellRecord]:
    """The ok generative records rewritten with a class-fidelity report (`benchmark.evaluate.fidelity`'s layout) and
    their `flags`: a recognisable set (fidelity 0.8 beside real recall 0.85) with no flag, or, for the strategies in
    `flagged`, a set at chance with its reasons."""
    rewritten = []
    for record in records:
        strategy = record.cell["strategy"]
        if record.status == OK and strategy in GENERATIVE:
            task = record.result.dataset.task
            report = fake_fidelity(task, 0.02 if strategy in flagged else 0.8)
            reasons = unrecognisable_reasons(report, None, DEFAULT_MAX_FID_RATIO)
            record.result.strategy.facts |= {"fidelity": report.to_dict(), "flags": reasons}
            write_record(root, record)
        rewritten.append(record)
    return rewritten


def fake_fidelity(task: TaskSpec, fidelity: float, n: int = 100) -> FidelityReport:
    """A fidelity report of `n` synthetic images per class, `fidelity` of them assigned to it, beside a real recall
    of 0.85 and a chance rate of 0.05 (p-values from the same one-sided binomial test `class_fidelity` uses)."""
    chance = 0.05
    hits = round(fidelity * n)
    per_class = {
        label: ClassFidelity(n, hits / n, 40, 0.85, 80, chance, float(binom.sf(hits - 1, n, chance)))
        for label in task.labels
    }
    classifier = Classifier("simple_cnn", 100, 64, 1e-3, 0, 400)
    overall = Overall(n * len(per_class), hits / n, 0.85, chance)
    return FidelityReport(per_class, overall, classifier, "fake", LEVEL, MIN_TEST_IMAGES)
