"""The training loop on real PneumoniaMNIST: beats chance, is bit-for-bit repeatable, spends exactly its budget."""

from __future__ import annotations

import json
import time

import pytest
import torch

from benchmark.errors import MedAugBenchError
from benchmark.provenance import code_version
from benchmark.train.config import Budget, OptimConfig, TrainConfig
from benchmark.train.loop import MixedBatches, train
from benchmark.train.record import RunRecord
from tests.helpers import fake_chestmnist, require_medmnist

FAST = dict(batch_size=64, eval_every=40)


@pytest.fixture(scope="module")
def pneumonia_runs():
    """Two identical tiny runs (simple_cnn, geometric, 120 steps of 64 images ≈ 1.6 epochs) on the real data."""
    require_medmnist("pneumoniamnist")
    config = TrainConfig(dataset="pneumoniamnist", strategy="geometric", budget=Budget(steps=120), seed=0, **FAST)
    return config, train(config, progress=False), train(config, progress=False)


@pytest.mark.slow
def test_tiny_budget_beats_chance_on_real_test_split(pneumonia_runs):
    _, record, _ = pneumonia_runs
    assert record.metrics.test.auc > 0.8
    assert record.metrics.test.n == 624


@pytest.mark.slow
def test_same_config_and_seed_gives_identical_metrics(pneumonia_runs):
    _, first, second = pneumonia_runs
    assert first.metrics == second.metrics
    assert first.curves.train_loss == second.curves.train_loss


@pytest.mark.slow
def test_record_holds_metrics_budget_curves_and_config(pneumonia_runs, tmp_path):
    config, record, _ = pneumonia_runs
    path = record.write(tmp_path / "run.json")
    data = json.loads(path.read_text())
    for name in (
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "specificity",
        "f1",
        "auc",
        "ece",
        "f1_per_class",
    ):
        assert name in data["metrics"]["test"] and name in data["metrics"]["val"]
    assert data["budget"]["steps"] == 120 and data["budget"]["images_seen"] == 120 * 64
    assert set(data["budget"]["seconds"]) >= {"load", "synthesize", "train", "eval", "test", "total"}
    assert data["budget"]["peak_memory_bytes"] > 0
    assert data["curves"]["step"] == [40, 80, 120] and len(data["curves"]["val_auc"]) == 3
    assert data["config"]["optim"] == {
        "lr": 1e-3,
        "weight_decay": 0.0,
        "schedule": "cosine",
        "milestones": [0.5, 0.75],
        "gamma": 0.1,
        "warmup_steps": 0,
        "decay": 0.2,
    }
    assert data["config"]["seed"] == data["config"]["generator_seed"] == 0  # both seeds, resolved
    assert data["config"]["strategy"] == "geometric" and data["strategy"]["params"] == {
        "modality": "chest_xray",
        "flip_p": 0.0,
        "degrees": 10.0,
    }
    assert data["best"]["step"] in data["curves"]["step"]
    assert data["metrics"]["val"]["auc"] == max(a for a in data["curves"]["val_auc"])
    assert data["schema"] == RunRecord.SCHEMA and data["dataset"]["train_real"] == 4708
    assert data["code"] == code_version()  # the package version and git commit, first-class
    read = RunRecord.from_dict(data)
    assert (read.metrics, read.dataset, read.strategy, read.curves) == (
        record.metrics,
        record.dataset,
        record.strategy,
        record.curves,
    )


@pytest.mark.slow
def test_different_seed_changes_the_run(pneumonia_runs):
    config, record, _ = pneumonia_runs
    other = train(
        TrainConfig(**{**config.__dict__, "seed": 1, "budget": Budget(steps=20), "eval_every": 20}), progress=False
    )
    assert other.curves.train_loss[0] != record.curves.train_loss[0]


def test_steps_budget_stops_at_exactly_that_many_steps():
    require_medmnist("breastmnist")
    record = train(
        TrainConfig(dataset="breastmnist", budget=Budget(steps=7), batch_size=32, eval_every=5), progress=False
    )
    assert record.budget.steps == 7 and record.budget.images_seen == 7 * 32
    assert record.curves.step == [5, 7]


@pytest.mark.slow
def test_seconds_budget_stops_within_one_step_of_the_limit(monkeypatch):
    require_medmnist("breastmnist")
    import benchmark.train.loop as training

    durations = []
    real_next = MixedBatches.next

    def timed_next(self):
        durations.append(time.perf_counter())
        return real_next(self)

    monkeypatch.setattr(MixedBatches, "next", timed_next)
    record = training.train(
        TrainConfig(dataset="breastmnist", budget=Budget(steps=None, seconds=2.0), batch_size=32, eval_every=10**6),
        progress=False,
    )
    step_time = max(b - a for a, b in zip(durations, durations[1:]))
    assert record.budget.kind == "seconds" and record.budget.steps == len(durations) > 1
    assert 2.0 <= record.budget.seconds["train"] <= 2.0 + step_time + 0.05
    assert record.curves.step == [record.budget.steps]  # the final weights were evaluated


@pytest.mark.parametrize("strategy", ["none", "cutmix_mixup"])
def test_every_classic_strategy_runs_through_the_same_loop(strategy):
    require_medmnist("retinamnist")
    record = train(
        TrainConfig(dataset="retinamnist", strategy=strategy, budget=Budget(steps=6), batch_size=32, eval_every=3),
        progress=False,
    )
    assert record.dataset.task.channels == 3 and len(record.metrics.test.f1_per_class) == 5
    assert record.dataset.train_synthetic == 0


def test_multilabel_training_uses_multi_hot_targets(tmp_path, monkeypatch):
    fake_chestmnist(tmp_path, monkeypatch, sizes=(64, 32, 32), positive_rate=0.3)
    record = train(
        TrainConfig(dataset="chestmnist", strategy="cutmix_mixup", budget=Budget(steps=4), batch_size=16, eval_every=2),
        progress=False,
    )
    assert record.metrics.test.average_precision is not None
    assert len(record.metrics.test.f1_per_class) == 14


def test_optimizer_presets():
    assert OptimConfig().factor(0.0) == 1.0 and OptimConfig().factor(1.0) == pytest.approx(0.0)
    medmnist = TrainConfig(optimizer="medmnist").resolved_optim()
    assert [medmnist.factor(p) for p in (0.49, 0.5, 0.8)] == [1.0, pytest.approx(0.1), pytest.approx(0.01)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(budget=lambda: Budget(steps=None, seconds=None)),
            "exactly one budget: --steps N, --seconds S or --flops F",
        ),
        (dict(budget=lambda: Budget(steps=-5)), "--steps must be a positive number of optimizer steps"),
        (dict(batch_size=0), "--batch-size"),
        (dict(optimizer="sgd"), "unknown optimizer preset"),
    ],
)
def test_bad_training_config(kwargs, message):
    with pytest.raises(MedAugBenchError, match=message):
        TrainConfig(**{k: v() if callable(v) else v for k, v in kwargs.items()})


def test_train_cli_writes_record(cli, tmp_path):
    require_medmnist("breastmnist")
    out = tmp_path / "record.json"
    result = cli(
        "train",
        "--dataset",
        "breastmnist",
        "--strategy",
        "geometric",
        "-S",
        "degrees=10",
        "--steps",
        "4",
        "--batch-size",
        "16",
        "--eval-every",
        "2",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "balanced_accuracy" in result.output and "4 steps" in result.output
    record = json.loads(out.read_text())
    assert record["strategy"]["params"]["degrees"] == 10 and record["budget"]["steps"] == 4


def test_train_cli_unknown_strategy_is_one_line(cli):
    result = cli("train", "--strategy", "gann", "--steps", "1")
    assert result.exit_code == 1 and "unknown strategy 'gann'" in result.output and "Traceback" not in result.output


def test_mismatched_synthetic_samples_are_rejected():
    from benchmark.data.dataset import Split
    from benchmark.train.strategy import merge_splits as merge_synthetic

    real = Split(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.zeros(4, dtype=torch.long))
    wrong = Split(torch.zeros(2, 3, 28, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(MedAugBenchError, match="synthesised images"):
        merge_synthetic(real, wrong, "mygan")
    assert len(merge_synthetic(real, real, "x")) == 8


def test_compile_option_wraps_the_classifier_and_is_recorded(monkeypatch):
    """`compile=True` hands the classifier to torch.compile (spied on here: inductor takes minutes on this CPU)."""
    require_medmnist("breastmnist")
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model: compiled.append(model) or model)
    config = TrainConfig(dataset="breastmnist", budget=Budget(steps=2), batch_size=16, eval_every=2, compile=True)
    record = train(config, progress=False)
    assert len(compiled) == 1 and isinstance(compiled[0], torch.nn.Module)
    assert record.config["compile"] is True and record.budget.steps == 2
    assert record.environment["device_name"] and record.budget.peak_memory_bytes > 0


def test_selected_by_names_the_metric_that_chose_the_checkpoint():
    """With AUC undefined on validation (one class), checkpoints are ranked by balanced accuracy, and the record says
    so."""
    require_medmnist("breastmnist")
    from benchmark.data.dataset import DataOptions, load_dataset

    config = TrainConfig(dataset="breastmnist", budget=Budget(steps=4), batch_size=16, eval_every=2)
    record = train(config, progress=False)
    assert record.best["selected_by"] == "val auc"
    data = load_dataset("breastmnist", DataOptions())
    one_class = data.val.subset(torch.nonzero(data.val.labels == 1).flatten())
    data = type(data)(**{**data.__dict__, "val": one_class})
    record = train(config, progress=False, data=data)
    assert record.metrics.val.auc is None and record.best["selected_by"] == "val balanced_accuracy"
