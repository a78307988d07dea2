"""The one training loop every strategy goes through: budgeted, seeded, evaluated on validation at fixed
intervals, with the best-validation-AUC checkpoint evaluated on test (the MedMNIST protocol).

Data stays on the device as uint8; batches are drawn by index and augmented batch-wise on the device.
"""

from __future__ import annotations

import contextlib
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.data.dataset import DataOptions, DatasetSummary, LoadedDataset, Split, load_dataset
from benchmark.data.sampling import MixedBatches, stream_generator, stream_seed
from benchmark.data.task import TaskSpec
from benchmark.errors import MedAugBenchError
from benchmark.provenance import code_version
from benchmark.registry import create
from benchmark.train import device as dev
from benchmark.train import flops
from benchmark.train.branches import Branches
from benchmark.train.config import Budget, TrainConfig
from benchmark.train.metrics import (
    PRIMARY_METRIC,
    RunMetrics,
    SplitMetrics,
    classification_metrics,
    fit_prior_adjustment,
)
from benchmark.train.record import BudgetUsed, ComputeReport, Curves, RunRecord, StrategyReport, plugins_used
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


def loss_fn(
    logits: torch.Tensor, targets: torch.Tensor, task: TaskSpec, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy on probability targets (one-hot or mixed), or BCE per label; `weights` (Strategy.class_weights)
    weigh each class's term, or each label's positive term."""
    if task.multilabel:
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=weights)
    return F.cross_entropy(logits, targets, weight=weights)  # probability targets: mean over the batch


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
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """One optimizer step on a uint8 batch: the strategy's augmentation, forward, loss (with the strategy's class
    `weights`), backward, update; the loss."""
    images, targets = strategy.augment(images.float().div(255), targets, generator)
    images = normalize(images)
    if config.channels_last and device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    with autocast(config, device):
        logits = model(images)
    loss = loss_fn(logits.float(), targets, task, weights)
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
        model = backbone_for(config, data, device, pretrained=False)
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
                f"total {total.amount:.4g} {total.kind}, leaving nothing for the classifier; raise the total, or lower "
                "generator_share (or generator_steps)"
            )
        budget = budget.of(total.kind, left)
    return budget.in_steps(step_flops, "the classifier")


def compute_record(
    config: TrainConfig, phases: dict, step_flops: int, batch: int, steps: int, seconds: float
) -> ComputeReport:
    """The record's compute report: the budget, FLOPs and device-seconds of generator training, synthesis (the
    strategy's phases) and classifier training (a classic strategy's generator phases are zero), and their totals."""
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
    return ComputeReport.from_dict({"budget": budget, "phases": phases, "total": total, "counter": flops.COUNTER})


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
) -> SplitMetrics:
    """The metrics of the model's predictions on `split`, whose uint8 images are already on the device (its
    calibrated accuracy fitted on `split` itself: this is validation)."""
    labels, scores = split.labels.numpy(), predict(model, images, task, config, device)
    if not np.isfinite(scores).all():
        raise MedAugBenchError(
            f"the classifier diverged: its outputs on {len(scores)} validation images hold NaN or infinity at learning "
            f"rate {config.resolved_optim().lr:g}; lower the learning rate (--lr, or lr in the grid's [train] table)"
        )
    return classification_metrics(task, labels, scores, adjustment=fit_prior_adjustment(task, labels, scores))


FALLBACK_METRIC = "balanced_accuracy"


def selection_metric(metrics: SplitMetrics) -> str:
    """The validation metric that ranks checkpoints: AUC (the MedMNIST protocol), balanced accuracy when AUC is
    undefined (a validation split with one class)."""
    return PRIMARY_METRIC if metrics[PRIMARY_METRIC] is not None else FALLBACK_METRIC


def selection_score(metrics: SplitMetrics) -> float:
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
    preview: Split | None = None  # a few generated images of every class (Strategy.preview), for the sample grid


def train_model(
    config: TrainConfig, progress: bool = True, data: LoadedDataset | None = None, data_dir: Path | None = None
) -> Trained:
    """`train`, also returning the selected model (e.g. for a feature extractor) and the test predictions; at the
    config's torch thread count (`threads`), the caller's restored after."""
    with dev.torch_threads(config.threads):
        return _train_model(config, progress, data, data_dir)


def _train_model(config: TrainConfig, progress: bool, data: LoadedDataset | None, data_dir: Path | None) -> Trained:
    """`train_model` at the thread count already set. The stages: load the data, let the strategy make the training
    set (`prepare`), build the classifier, step it under its budget (`StepLoop`), test the best-validation weights,
    assemble the record."""
    seed_everything(config.data_seed)  # a safety net: what runs before the classifier depends on the generator seed
    device = dev.pick_device(config.device)
    dev.reset_peak_memory(device)
    started = dev.clock(device)
    data = data if data is not None else load_data(config, data_dir)
    prepared = prepare(config, data, device, progress, started)
    seed_everything(config.seed)  # a safety net for global draws (dropout): none depends on the strategy's draws
    model, optimizer = build_classifier(config, data, device)
    loop = StepLoop(config, data, prepared, model, optimizer, device, progress)
    seconds = prepared.seconds | loop.run()

    test_started = dev.clock(device)
    model.load_state_dict(loop.best.state)
    test_scores = predict(model, data.test.images.to(device), data.task, config, device)
    val_scores = predict(model, loop.val_images, data.task, config, device)  # calibration is fitted on val only
    adjustment = fit_prior_adjustment(data.task, data.val.labels.numpy(), val_scores)
    test_metrics = classification_metrics(data.task, data.test.labels.numpy(), test_scores, adjustment=adjustment)
    seconds["test"] = dev.clock(device) - test_started
    seconds["total"] = dev.clock(device) - started
    loop.used.seconds = seconds
    loop.used.peak_memory_bytes = dev.peak_memory_bytes(device)
    record = run_record(config, data, prepared, loop, test_metrics, device)
    preview = prepared.strategy.preview()
    return Trained(model, record, test_scores, data.test.labels.numpy(), data, prepared.synthetic, preview)


def load_data(config: TrainConfig, data_dir: Path | None) -> LoadedDataset:
    """The config's dataset at its size, with its low-data subset."""
    options = DataOptions(
        data_dir=data_dir,
        size=config.size,
        image_size=config.image_size,
        train_fraction=config.train_fraction,
        per_class_cap=config.per_class_cap,
        seed=config.data_seed,
    )
    return load_dataset(config.dataset, options, **config.dataset_params)


@dataclass
class Prepared:
    """The training set the strategy made and what it cost: its synthetic images (None: none), the FLOPs of one
    classifier step at the batch that set allows, the classifier's budget, the strategy's compute phases and the
    seconds of loading and synthesis."""

    strategy: Strategy
    synthetic: Split | None
    train: Split
    batch: int
    step_flops: int
    budget: Budget
    phases: dict
    seconds: dict[str, float]


def prepare(config: TrainConfig, data: LoadedDataset, device: torch.device, progress: bool, started: float) -> Prepared:
    """Create the strategy, let it synthesise and combine the training set, and size the classifier's budget (in a
    compute-matched cell: what the strategy's generator left of the total). A FLOP budget too small for one step
    fails before the strategy trains anything."""
    strategy: Strategy = create("strategy", config.strategy, **config.strategy_params)
    strategy.prepare_for(data)
    batch = min(config.batch_size, len(data.train))
    step_flops = classifier_step_flops(config, data, strategy, data.train.subset(torch.arange(batch)), device)
    config.budget.in_steps(step_flops, "the classifier")

    synth_started = dev.clock(device)
    context = StrategyContext(dataset=data, device=device, seed=config.data_seed, progress=progress)
    synthetic = strategy.synthesize(context)
    assess_started = dev.clock(device)
    strategy.assess(context, synthetic)  # evaluation: timed apart, never generator compute
    train_split = strategy.combine(data.train, synthetic)
    seconds = {
        "load": synth_started - started,
        "synthesize": assess_started - synth_started,
        "quality": dev.clock(device) - assess_started,
    }
    phases = strategy.report().get("compute", {})
    if min(config.batch_size, len(train_split)) != batch:  # synthetic images changed the batch: count it again
        batch = min(config.batch_size, len(train_split))
        step_flops = classifier_step_flops(config, data, strategy, train_split.subset(torch.arange(batch)), device)
    spent = {kind: sum(p[kind] for p in phases.values()) for kind in ("flops", "seconds")}
    budget = classifier_budget(config, spent, step_flops)
    return Prepared(strategy, synthetic, train_split, batch, step_flops, budget, phases, seconds)


def backbone_for(config: TrainConfig, data: LoadedDataset, device: torch.device, pretrained: bool) -> torch.nn.Module:
    """The config's backbone built for the dataset's channels, outputs and image size, on the device."""
    return create(
        "backbone",
        config.backbone,
        in_chans=data.task.channels,
        num_classes=data.task.num_outputs,
        image_size=data.image_size,
        pretrained=pretrained,
        **config.backbone_params,
    ).to(device)


def build_classifier(
    config: TrainConfig, data: LoadedDataset, device: torch.device
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The config's backbone for the task, on the device, and its Adam optimizer (compiled when asked); its initial
    weights come from the seed's `init` stream alone, so every strategy starts from the same ones."""
    with flops.isolated_rng(device):
        torch.manual_seed(stream_seed(config.seed, "init"))
        model = backbone_for(config, data, device, pretrained=config.pretrained)
    if config.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optim_config = config.resolved_optim()
    optimizer = torch.optim.Adam(model.parameters(), lr=optim_config.lr, weight_decay=optim_config.weight_decay)
    if config.compile:
        model = torch.compile(model)  # worth its compile time on GPUs for long budgets; state_dict keys stay loadable
    return model, optimizer


def leading_real(real: Split, train: Split) -> int:
    """How many of the training set's first images are the real training images (all of them, as `merge_splits`
    puts them first; none when a strategy trains without them or reorders them)."""
    n = len(real)
    same = len(train) >= n and torch.equal(train.images[:n], real.images) and torch.equal(train.labels[:n], real.labels)
    return n if same else 0


@dataclass
class Best:
    """The best validation result so far: its selection score, its metrics, the step and a copy of the weights."""

    score: float = -float("inf")
    metrics: SplitMetrics | None = None
    step: int = 0
    state: dict | None = None


class StepLoop:
    """The classifier's steps under its budget: the learning-rate schedule, one strategy-augmented step per batch,
    and every `eval_every` steps (and where the budget ends) an evaluation on validation that keeps the best weights.
    Evaluation time is not charged to a seconds budget."""

    def __init__(
        self,
        config: TrainConfig,
        data: LoadedDataset,
        prepared: Prepared,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        progress: bool,
    ) -> None:
        self.config, self.task, self.val, self.strategy = config, data.task, data.val, prepared.strategy
        self.model, self.optimizer, self.device, self.budget = model, optimizer, device, prepared.budget
        self.optim = config.resolved_optim()
        train = prepared.train
        self.train = DeviceData(train.images.to(device), targets_for(train.labels, data.task).to(device))
        weights = self.strategy.class_weights(train.labels, data.task)
        self.weights = weights.to(device) if weights is not None else None
        self.val_images = data.val.images.to(device)
        self.generator = stream_generator(config.seed, "augment", device)  # the strategy's augmentation draws
        n_real = leading_real(data.train, train)
        self.batches = MixedBatches(n_real, len(train) - n_real, config.batch_size, config.seed, device)
        self.used = BudgetUsed(kind=self.budget.kind, limit=float(self.budget.amount))
        self.curves, self.best = Curves(), Best()
        self.loss_sum, self.loss_count, self.lr = torch.zeros((), device=device), 0, self.optim.lr
        self.eval_seconds, self.started = 0.0, 0.0
        self.bar = self.budget.progress_bar(f"train {config.strategy}/{config.backbone}", progress)
        self.branches = Branches(self.optim, config.pilot_budgets, self.budget)  # a pilot's other budgets

    def run(self) -> dict[str, float]:
        """Step until the budget is spent; the seconds spent training (evaluation excluded) and evaluating."""
        self.started = dev.clock(self.device)
        self.model.train()
        with contextlib.closing(self.bar):  # closed on an error too, so its message starts on a line of its own
            while True:
                elapsed = self.spent() if self.budget.seconds is not None else 0.0  # no device sync per step otherwise
                fraction = self.budget.spent(self.used.steps, elapsed)
                if fraction >= 1:
                    break
                self.step(fraction, elapsed)
            train_seconds = self.spent()
            if not self.curves.step or self.curves.step[-1] != self.used.steps:
                self.validate()  # the budget ended between evaluations: the final weights are candidates too
        return {"train": train_seconds, "eval": self.eval_seconds}

    def spent(self) -> float:
        """Training seconds so far, evaluation excluded."""
        return dev.clock(self.device) - self.started - self.eval_seconds

    def step(self, fraction: float, elapsed: float) -> None:
        """One optimizer step at the schedule's learning rate for `fraction` of the budget; evaluate when due."""
        self.branches.before_step(self)
        self.lr = self.optim.lr * self.optim.factor(fraction, self.used.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        index = self.batches.next()
        images, targets = self.train.images[index], self.train.targets[index]
        args = (self.generator, self.task, self.config, self.device, self.weights)
        self.loss_sum += classifier_step(self.model, self.optimizer, self.strategy, images, targets, *args)
        self.loss_count += 1
        self.used.steps += 1
        self.used.images_seen += len(index)
        self.budget.show(self.bar, self.used.steps, elapsed)
        if self.used.steps % self.config.eval_every == 0:
            self.validate()

    def check_loss(self) -> None:
        """Stop the run with one message when the training loss since the last evaluation is NaN or infinite."""
        loss = float(self.loss_sum) / max(self.loss_count, 1)
        if not math.isfinite(loss):
            raise MedAugBenchError(
                f"the classifier diverged: its training loss is {loss} by step {self.used.steps} (learning rate "
                f"{self.lr:g}); lower the learning rate (--lr, or lr in the grid's [train] table)"
            )

    def validate(self) -> None:
        """Evaluate on validation, extend the curves, keep the weights if they are the best so far."""
        eval_started = dev.clock(self.device)
        self.check_loss()
        metrics = evaluate(self.model, self.val, self.val_images, self.task, self.config, self.device)
        curves = self.curves
        curves.step.append(self.used.steps)
        curves.train_loss.append(float(self.loss_sum) / max(self.loss_count, 1))
        curves.lr.append(self.lr)
        curves.val_auc.append(metrics.auc)
        curves.val_accuracy.append(metrics.accuracy)
        curves.val_balanced_accuracy.append(metrics.balanced_accuracy)
        self.loss_sum.zero_()
        self.loss_count = 0
        if selection_score(metrics) > self.best.score:
            state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.best = Best(selection_score(metrics), metrics, self.used.steps, state)
        self.eval_seconds += dev.clock(self.device) - eval_started
        self.bar.set_postfix(loss=f"{curves.train_loss[-1]:.3f}", val_auc=_fmt(metrics.auc))


def run_record(
    config: TrainConfig,
    data: LoadedDataset,
    prepared: Prepared,
    loop: StepLoop,
    test_metrics: SplitMetrics,
    device: torch.device,
) -> RunRecord:
    """The run's record: config, data, strategy report, metrics of the selected checkpoint, budget, curves,
    environment, compute and code version."""
    n_synthetic = len(prepared.synthetic) if prepared.synthetic is not None else 0
    strategy = prepared.strategy
    return RunRecord(
        config=config.to_dict(),
        dataset=DatasetSummary.of(data, len(prepared.train) - n_synthetic, n_synthetic),
        strategy=StrategyReport.of(config.strategy, strategy.params(), strategy.report()),
        metrics=RunMetrics(val=loop.best.metrics, test=test_metrics),
        best={"step": loop.best.step, "selected_by": f"val {selection_metric(loop.best.metrics)}", **chance_note(loop)},
        budget=loop.used,
        curves=loop.curves,
        budget_branches=loop.branches.with_run(loop),
        plugins=plugins_used(
            [("dataset", config.dataset), ("strategy", config.strategy), ("backbone", config.backbone)]
            + strategy.plugins_used()
        ),
        environment=dev.describe(device),
        compute=compute_record(
            config, prepared.phases, prepared.step_flops, prepared.batch, loop.used.steps, loop.used.seconds["train"]
        ),
        code=code_version(),
    )


def chance_note(loop: StepLoop) -> dict[str, str]:
    """`{"note": …}` for the record when validation AUC never rose above chance (0.5) at any evaluation: the
    classifier learned nothing (e.g. a learning rate so high its outputs saturated); else nothing."""
    aucs = [auc for auc in loop.curves.val_auc if auc is not None]
    if not aucs or max(aucs) > 0.5:
        return {}
    return {
        "note": f"validation AUC never rose above chance (at most {max(aucs):.3f} over {len(aucs)} evaluations): "
        f"the classifier learned nothing; check the learning rate ({loop.optim.lr:g}) and the data"
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
