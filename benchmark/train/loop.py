"""The one training loop every strategy goes through: budgeted, seeded, evaluated on validation at fixed
intervals, with the best-validation-AUC checkpoint evaluated on test (the MedMNIST protocol).

Data stays on the device as uint8; batches are drawn by index and augmented batch-wise on the device.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.data.dataset import DataOptions, LoadedDataset, Split, load_dataset
from benchmark.data.sampling import BatchSampler
from benchmark.data.task import TaskSpec
from benchmark.errors import MedAugBenchError
from benchmark.registry import create
from benchmark.train import device as dev
from benchmark.train import flops
from benchmark.train.config import Budget, TrainConfig
from benchmark.train.metrics import PRIMARY_METRIC, classification_metrics
from benchmark.train.record import BudgetUsed, Curves, RunRecord
from benchmark.train.strategy import Strategy, StrategyContext

EVAL_BATCH = 512


def seed_everything(seed: int) -> None:
    """Fix every RNG the loop, the strategies and the libraries draw from."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def targets_for(labels: torch.Tensor, task: TaskSpec) -> torch.Tensor:
    """Float targets (N, K): one-hot for single-label tasks, the 0/1 vector for multi-label ones."""
    if task.multilabel:
        return labels.float()
    return F.one_hot(labels, task.num_outputs).float()


def normalize(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [-1, 1], the same for every channel count (MedMNIST's `Normalize(mean=.5, std=.5)`)."""
    return images.sub(0.5).div(0.5)


def loss_fn(logits: torch.Tensor, targets: torch.Tensor, task: TaskSpec) -> torch.Tensor:
    if task.multilabel:
        return F.binary_cross_entropy_with_logits(logits, targets)
    return F.cross_entropy(logits, targets)  # probability targets: works for one-hot and mixed targets


@dataclass
class DeviceData:
    """The training set on the device: uint8 images and float targets."""

    images: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return len(self.images)


def autocast(config: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when AMP is on; nothing on CPU."""
    enabled = config.amp and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def classifier_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    strategy: Strategy,
    images: torch.Tensor,
    targets: torch.Tensor,
    generator: torch.Generator,
    task: TaskSpec,
    config: TrainConfig,
    device: torch.device,
) -> torch.Tensor:
    """One optimizer step on a uint8 batch: the strategy's augmentation, forward, loss, backward, update; the loss."""
    images, targets = strategy.augment(images.float().div(255), targets, generator)
    images = normalize(images)
    if config.channels_last and device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    with autocast(config, device):
        logits = model(images)
    loss = loss_fn(logits.float(), targets, task)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def classifier_step_flops(
    config: TrainConfig, data: LoadedDataset, strategy: Strategy, batch: Split, device: torch.device
) -> int:
    """FLOPs of one classifier step on `batch` (`classifier_step`, backward included), counted on a throwaway model
    of the same architecture (no pretrained weights loaded) with a throwaway generator and every RNG state
    restored: the run's own model, optimizer and draws are untouched."""
    task = data.task
    with flops.isolated_rng(device):
        model = create(
            "backbone",
            config.backbone,
            in_chans=task.channels,
            num_classes=task.num_outputs,
            image_size=data.image_size,
            pretrained=False,
            **config.backbone_params,
        ).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.resolved_optim().lr)
        images, targets = batch.images.to(device), targets_for(batch.labels, task).to(device)
        generator = torch.Generator(device=device).manual_seed(0)
        return flops.count_flops(
            lambda: classifier_step(model, optimizer, strategy, images, targets, generator, task, config, device)
        )


def classifier_budget(config: TrainConfig, spent: dict[str, float], step_flops: int) -> Budget:
    """The budget the classifier trains under, in steps or seconds: its own, or in a compute-matched cell what the
    strategy's generator training and synthesis (`spent`, by kind) left of the total; FLOPs become whole steps."""
    budget = config.budget
    total = config.total_budget
    if total is not None:
        left = total.amount - spent.get(total.kind, 0.0)
        if left <= 0:
            raise MedAugBenchError(
                f"the strategy's generator training and synthesis spent {spent.get(total.kind, 0.0):.4g} of the cell's "
                f"total {total.amount:.4g} {total.kind}, leaving nothing for the classifier; lower generator_share"
            )
        budget = budget.of(total.kind, left)
    return budget.in_steps(step_flops, "the classifier")


def compute_record(config: TrainConfig, phases: dict, step_flops: int, batch: int, steps: int, seconds: float) -> dict:
    """The record's compute block: the budget, FLOPs and device-seconds of generator training, synthesis and
    classifier training (a classic strategy's generator phases are zero), and their totals."""
    phases = {
        "generator_training": {"flops": 0, "seconds": 0.0},
        "synthesis": {"flops": 0, "seconds": 0.0, "images": 0},
        **phases,
        "classifier_training": {
            "flops": steps * step_flops,
            "seconds": seconds,
            "steps": steps,
            "step_flops": step_flops,
            "batch_size": batch,
        },
    }
    total = {key: sum(phase[key] for phase in phases.values()) for key in ("flops", "seconds")}
    budget = {"classifier": {"kind": config.budget.kind, "amount": config.budget.amount}, "total": None}
    if config.total_budget is not None:
        budget["total"] = {"kind": config.total_budget.kind, "amount": config.total_budget.amount}
    return {"budget": budget, "phases": phases, "total": total, "counter": flops.COUNTER}


@torch.no_grad()
def predict(
    model: torch.nn.Module, images: torch.Tensor, task: TaskSpec, config: TrainConfig, device: torch.device
) -> np.ndarray:
    """Class probabilities (softmax) or label probabilities (sigmoid) for uint8 images already on the device."""
    model.eval()
    outputs = []
    for start in range(0, len(images), EVAL_BATCH):
        batch = normalize(images[start : start + EVAL_BATCH].float().div(255))
        if config.channels_last and device.type == "cuda":
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast(config, device):
            logits = model(batch).float()
        outputs.append(torch.sigmoid(logits) if task.multilabel else torch.softmax(logits, dim=1))
    model.train()
    return torch.cat(outputs).cpu().double().numpy()


def evaluate(
    model: torch.nn.Module,
    split: Split,
    images: torch.Tensor,
    task: TaskSpec,
    config: TrainConfig,
    device: torch.device,
) -> dict:
    return classification_metrics(task, split.labels.numpy(), predict(model, images, task, config, device))


FALLBACK_METRIC = "balanced_accuracy"


def selection_metric(metrics: dict) -> str:
    """The validation metric that ranks checkpoints: AUC (the MedMNIST protocol), balanced accuracy when AUC is
    undefined (a validation split with one class)."""
    return PRIMARY_METRIC if metrics[PRIMARY_METRIC] is not None else FALLBACK_METRIC


def selection_score(metrics: dict) -> float:
    """The value of `selection_metric` on these validation metrics."""
    return metrics[selection_metric(metrics)]


def train(
    config: TrainConfig, progress: bool = True, data: LoadedDataset | None = None, data_dir: Path | None = None
) -> RunRecord:
    """Train one classifier under `config.budget` and return its record (metrics on val and test).

    `data_dir` (else $MEDAUGBENCH_DATA_DIR) says where the files are; it is not part of the config, so records
    from different machines compare equal.
    """
    return train_model(config, progress, data, data_dir).record


@dataclass
class Trained:
    """A finished run: the selected (best-validation) model, its record, its test-set scores and labels (kept for
    paired tests between strategies on the same test images), the data and the strategy's synthetic images."""

    model: torch.nn.Module
    record: RunRecord
    test_scores: np.ndarray
    test_labels: np.ndarray
    data: LoadedDataset
    synthetic: Split | None


def train_model(
    config: TrainConfig, progress: bool = True, data: LoadedDataset | None = None, data_dir: Path | None = None
) -> Trained:
    """`train`, also returning the selected model (e.g. for a feature extractor) and the test predictions."""
    seed_everything(config.seed)
    device = dev.pick_device(config.device)
    dev.reset_peak_memory(device)
    started = dev.clock(device)
    if data is None:
        options = DataOptions(
            data_dir=data_dir,
            size=config.size,
            image_size=config.image_size,
            train_fraction=config.train_fraction,
            per_class_cap=config.per_class_cap,
            seed=config.seed,
        )
        data = load_dataset(config.dataset, options, **config.dataset_params)
    task = data.task
    strategy: Strategy = create("strategy", config.strategy, **config.strategy_params)
    batch = min(config.batch_size, len(data.train))
    step_flops = classifier_step_flops(config, data, strategy, data.train.subset(torch.arange(batch)), device)
    config.budget.in_steps(step_flops, "the classifier")  # a FLOP budget too small for one step fails before training

    synth_started = dev.clock(device)
    synthetic = strategy.synthesize(StrategyContext(dataset=data, device=device, seed=config.seed, progress=progress))
    train_split = strategy.combine(data.train, synthetic)
    n_synthetic = len(synthetic) if synthetic is not None else 0
    seconds = {"load": synth_started - started, "synthesize": dev.clock(device) - synth_started}
    phases = strategy.report().get("compute", {})
    if min(config.batch_size, len(train_split)) != batch:  # synthetic images changed the batch: count it again
        batch = min(config.batch_size, len(train_split))
        step_flops = classifier_step_flops(config, data, strategy, train_split.subset(torch.arange(batch)), device)
    budget = classifier_budget(
        config, {kind: sum(p[kind] for p in phases.values()) for kind in ("flops", "seconds")}, step_flops
    )

    seed_everything(config.seed)  # the classifier's draws do not depend on how much the strategy drew
    model = create(
        "backbone",
        config.backbone,
        in_chans=task.channels,
        num_classes=task.num_outputs,
        image_size=data.image_size,
        pretrained=config.pretrained,
        **config.backbone_params,
    ).to(device)
    if config.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optim_config = config.resolved_optim()
    optimizer = torch.optim.Adam(model.parameters(), lr=optim_config.lr, weight_decay=optim_config.weight_decay)
    if config.compile:
        model = torch.compile(model)  # worth its compile time on GPUs for long budgets; state_dict keys stay loadable

    train_data = DeviceData(train_split.images.to(device), targets_for(train_split.labels, task).to(device))
    val_images, test_images = data.val.images.to(device), data.test.images.to(device)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    sampler = BatchSampler(len(train_data), config.batch_size, generator)

    used = BudgetUsed(kind=budget.kind, limit=float(budget.amount))
    curves = Curves()
    best: dict = {"score": -float("inf"), "state": None, "metrics": {}, "step": 0}
    loss_sum = torch.zeros((), device=device)
    loss_count, lr = 0, optim_config.lr
    eval_seconds = 0.0
    train_started = dev.clock(device)
    bar = budget.progress_bar(f"train {config.strategy}/{config.backbone}", progress)

    def spent() -> float:
        return dev.clock(device) - train_started - eval_seconds

    def validate() -> None:
        """Evaluate on validation, extend the curves, keep the weights if they are the best so far."""
        nonlocal eval_seconds, loss_count
        eval_started = dev.clock(device)
        metrics = evaluate(model, data.val, val_images, task, config, device)
        curves.step.append(used.steps)
        curves.train_loss.append(float(loss_sum) / max(loss_count, 1))
        curves.lr.append(lr)
        curves.val_auc.append(metrics["auc"])
        curves.val_accuracy.append(metrics["accuracy"])
        curves.val_balanced_accuracy.append(metrics["balanced_accuracy"])
        loss_sum.zero_()
        loss_count = 0
        if selection_score(metrics) > best["score"]:
            best.update(
                score=selection_score(metrics),
                metrics=metrics,
                step=used.steps,
                state={k: v.detach().clone() for k, v in model.state_dict().items()},
            )
        eval_seconds += dev.clock(device) - eval_started
        bar.set_postfix(loss=f"{curves.train_loss[-1]:.3f}", val_auc=_fmt(metrics["auc"]))

    model.train()
    while True:
        elapsed = spent() if budget.seconds is not None else 0.0  # no device sync per step for a steps budget
        fraction = budget.spent(used.steps, elapsed)
        if fraction >= 1:
            break
        lr = optim_config.lr * optim_config.factor(fraction)
        for group in optimizer.param_groups:
            group["lr"] = lr

        index = sampler.next()
        loss = classifier_step(
            model,
            optimizer,
            strategy,
            train_data.images[index],
            train_data.targets[index],
            generator,
            task,
            config,
            device,
        )
        loss_sum += loss
        loss_count += 1
        used.steps += 1
        used.images_seen += len(index)
        budget.show(bar, used.steps, elapsed)
        if used.steps % config.eval_every == 0:
            validate()
    seconds["train"] = spent()
    if not curves.step or curves.step[-1] != used.steps:
        validate()  # the budget ended between evaluations: the final weights are candidates too
    bar.close()
    seconds["eval"] = eval_seconds

    test_started = dev.clock(device)
    model.load_state_dict(best["state"])
    test_scores = predict(model, test_images, task, config, device)
    test_metrics = classification_metrics(task, data.test.labels.numpy(), test_scores)
    seconds["test"] = dev.clock(device) - test_started
    seconds["total"] = dev.clock(device) - started
    used.seconds = seconds
    used.peak_memory_bytes = dev.peak_memory_bytes(device)

    record = RunRecord(
        config=config.to_dict(),
        dataset={
            "name": data.name,
            "task": {"kind": task.kind, "labels": list(task.labels), "channels": task.channels},
            "source_size": data.source_size,
            "image_size": data.image_size,
            "train_real": len(train_split) - n_synthetic,
            "train_synthetic": n_synthetic,
            "val": len(data.val),
            "test": len(data.test),
            "provenance": data.provenance,
        },
        strategy={
            "name": config.strategy,
            "params": strategy.params(),
            **{key: value for key, value in strategy.report().items() if key != "compute"},
        },
        metrics={"val": best["metrics"], "test": test_metrics},
        best={"step": best["step"], "selected_by": f"val {selection_metric(best['metrics'])}"},
        budget=used,
        curves=curves,
        environment=dev.describe(device),
        compute=compute_record(config, phases, step_flops, batch, used.steps, seconds["train"]),
    )
    return Trained(model, record, test_scores, data.test.labels.numpy(), data, synthetic)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
