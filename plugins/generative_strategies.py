"""Every registered generator as a strategy: train it (or reuse the saved one), synthesise per the policy, merge.

Conditional generators are trained once on all images with their label vectors; unconditional ones (or any
generator with `conditioning=False`, the seed paper's ablation) are trained one per class, or per label for
multi-label data. Whether a generator conditions is asked of the model itself: it is built for the task's spec and
says so (`model.conditional`, see benchmark/generate/model.py), whatever kind of factory registered it.

The generator budget is the strategy's TOTAL in the cell: per-class models share it (`GeneratorBudget.split`: in
proportion to their training images, with a minimum each), so `dcgan` spends what `cgan` does; the card records the
total and what each model was allotted and spent, and the code version. A seconds or FLOP budget
(`generator_seconds` / `generator_flops`, a compute-matched cell's generator share) pays for the synthesis first:
its cost (counted sampling FLOPs per image, or one timed sampling chunk) is set aside, the rest trains the models.

Trained generators are saved under the cache keyed by everything that determines their weights (generator,
parameters, budget and its split rule, seed, early-stopping settings and monitor, package version, and a digest of
the exact training images and labels), so a second run with the same config and seed reuses them; a generator
given by `generator_dir` must carry the same data digest.

Early stopping (`early_stop_every`) and quality tracking (`track_quality_every`) score samples with an extractor
trained on the cell's training subset only, against the cell's own training images of the same classes: nothing
outside that subset steers the training. The quality record reported after synthesis uses another extractor, one
per dataset and size (trained on the full training split), so its FIDs compare across the cells of a dataset.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path

import torch

from benchmark import (
    FeatureExtractor,
    GenerativeModel,
    ImageSpec,
    MedAugBenchError,
    Register,
    Split,
    Strategy,
    StrategyContext,
    TaskSpec,
    create,
    hookimpl,
)
from benchmark.data.files import cache_dir
from benchmark.evaluate.features import make_extractor
from benchmark.evaluate.quality import fid_kid, quality_report
from benchmark.generate import loop as gt
from benchmark.generate.model import can_condition, registered_generators
from benchmark.generate.synthesis import SynthesisPolicy, conditioning, group_members, label_rows
from benchmark.provenance import code_version
from benchmark.train import device as dev
from benchmark.train import flops
from benchmark.train.strategy import merge_splits

SAMPLE_CHUNK = 256
ALL = "all"
MONITOR_IMAGES = 256
PREVIEW_PER_CLASS = 8
PREVIEW_SEED = 1000  # the preview's generator seed is the cell's seed + this, apart from the synthesis draws
MONITOR_REFERENCES = {
    "train": "FID of samples against up to 256 of the cell's own training images of the model's classes (fakes "
    "conditioned on the same label rows), under an extractor trained on the cell's training subset only",
    "val": "FID of samples against every validation image of the model's classes (fakes conditioned on the same "
    "label rows), under an extractor trained on the cell's training subset only; recorded for a pilot, never used "
    "to stop training",
}


def package_version() -> str:
    """The installed medaugbench version: part of the cache key, since code changes can change trained weights."""
    return metadata.version("medaugbench")


@dataclass(frozen=True)
class Job:
    """One model to train: its real training images with labels, their conditioning rows (None: unconditional)."""

    split: Split
    cond: torch.Tensor | None
    cond_dim: int
    group: int | None = None  # the class (multi-label: the label) of a per-group model; None for one model of all


@dataclass
class GenerativeStrategy(Strategy):
    """Synthetic-data augmentation with a registered generator (see the module docstring)."""

    name = "generative"
    generator: str = "cgan"
    generator_steps: int | None = 2000
    generator_seconds: float | None = None
    generator_flops: float | None = None
    generator_batch_size: int = 64
    generator_params: dict = field(default_factory=dict)
    conditioning: bool = True
    policy: str = "balance"
    ratio: float = 1.0
    multiplier: float = 1.0
    counts: dict = field(default_factory=dict)
    augment_with: str = "none"
    generator_dir: str | None = None
    reuse: bool = True
    quality_extractor: str | None = "domain"
    quality_params: dict = field(default_factory=dict)
    quality_images: int = 1000
    early_stop_every: int | None = None
    early_stop_patience: int = 3
    track_quality_every: int | None = None
    track_quality_at: list[int] | None = None
    track_quality_on: str = "train"
    monitor_extractor: str | None = "domain"
    monitor_params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.generator_seconds is not None or self.generator_flops is not None) and self.generator_steps == 2000:
            self.generator_steps = None  # a seconds or FLOP budget replaces the default steps budget
        self._budget = gt.GeneratorBudget(
            steps=self.generator_steps, seconds=self.generator_seconds, flops=self.generator_flops
        )
        self._policy = SynthesisPolicy(
            kind=self.policy, ratio=self.ratio, multiplier=self.multiplier, counts=dict(self.counts)
        )
        self._augmenter = create("strategy", self.augment_with)
        self._report: dict = {}
        self._preview: Split | None = None
        if self.generator_batch_size < 1:
            raise MedAugBenchError("generator_batch_size must be at least 1")
        self._check_tracking()
        if self.monitored and self.monitor_extractor is None:
            raise MedAugBenchError(
                "early stopping and quality tracking score the generator with an extractor; set monitor_extractor"
            )
        self._extractor: FeatureExtractor | None = None

    @property
    def budget(self) -> gt.GeneratorBudget:
        """The strategy's total generator budget in a cell (per-class models share it)."""
        return self._budget

    def extractor(self, context: StrategyContext) -> FeatureExtractor:
        """The reported-quality extractor: one per dataset and size (trained on the full training split), created
        once per strategy."""
        if self._extractor is None:
            self._extractor = make_extractor(self.quality_extractor, context.dataset, **self.quality_params).to(
                context.device
            )
        return self._extractor

    def monitor_features(self, context: StrategyContext) -> FeatureExtractor:
        """The early-stopping/tracking extractor, made from the cell's view of the data: it learns from the cell's
        training subset only (no validation, test or other training images)."""
        cell_view = dataclasses.replace(context.dataset, full_train=context.dataset.train)
        return make_extractor(self.monitor_extractor, cell_view, **self.monitor_params).to(context.device)

    @property
    def monitor_every(self) -> int | None:
        """Steps between quality scores during training (None: not scored every so many steps)."""
        return self.early_stop_every or self.track_quality_every

    @property
    def monitored(self) -> bool:
        """Whether the generator is scored during training at all."""
        return bool(self.monitor_every or self.track_quality_at)

    def _check_tracking(self) -> None:
        """`track_quality_at` is in total generator steps; scoring against validation images only records (a pilot
        choosing budgets), it never stops training."""
        if self.track_quality_on not in MONITOR_REFERENCES:
            raise MedAugBenchError(
                f"track_quality_on must be one of {', '.join(MONITOR_REFERENCES)}, got {self.track_quality_on!r}"
            )
        if self.track_quality_on == "val" and self.early_stop_every:
            raise MedAugBenchError(
                "early stopping scores against the cell's training images only; track_quality_on='val' only records"
            )
        if self.track_quality_at and self._budget.steps is None:
            raise MedAugBenchError("track_quality_at is in generator steps: give the generator a steps budget")

    def scored_steps(self, model_steps: int | None) -> tuple[int, ...]:
        """`track_quality_at` (total steps) in one model's own steps: per-class models, which share the total, are
        scored at the same fractions of their own budgets."""
        if not self.track_quality_at or not model_steps:
            return ()
        share = model_steps / self._budget.steps
        return tuple(sorted({max(1, round(total * share)) for total in self.track_quality_at}))

    def monitor(
        self, context: StrategyContext, job: Job, features: FeatureExtractor, model_steps: int | None
    ) -> gt.QualityMonitor:
        """FID of samples against real images of the model's classes over training (`MONITOR_REFERENCES`): early
        stopping on a plateau (`early_stop_every`), or only recorded (`track_quality_every`/`track_quality_at`,
        seed paper's Figure 3)."""
        reference = self.monitor_reference(context, job)
        task = context.dataset.task
        cond = conditioning(reference.labels, task).to(context.device) if job.cond_dim else None

        def score(model: GenerativeModel) -> float:
            generator = torch.Generator(device=context.device).manual_seed(context.seed + 2)
            fake = gt.to_uint8(gt.sample(model, cond, len(reference), generator)).cpu()
            return fid_kid(reference.images, fake, features, kid_subsets=1)["fid"]

        patience = self.early_stop_patience if self.early_stop_every else None
        at = self.scored_steps(model_steps)
        return gt.QualityMonitor(score=score, every=self.monitor_every, patience=patience, at=at)

    def monitor_reference(self, context: StrategyContext, job: Job) -> Split:
        """Up to MONITOR_IMAGES of the model's own training images, or (`track_quality_on="val"`) the validation
        images of its classes, every one of them."""
        if self.track_quality_on == "val":
            val = context.dataset.val
            return val if job.group is None else val.subset(group_members(val.labels, context.dataset.task, job.group))
        draw = torch.Generator().manual_seed(context.seed + 3)
        index = torch.randperm(len(job.split), generator=draw)[:MONITOR_IMAGES].sort().values
        return job.split.subset(index)

    # -- training or reuse -------------------------------------------------------------------------------
    def per_group(self, spec: ImageSpec) -> bool:
        """Unconditional generators (built for the task's conditioning `spec`, the model says it is not
        conditional), and conditional ones with conditioning off, are trained one per group."""
        if not self.conditioning:
            return True
        return not can_condition(self.generator, spec, **self.generator_params)

    def jobs(self, real: Split, task: TaskSpec) -> dict[str, Job]:
        """The models to train: one on all images with their label vectors, or one per group with images (a group
        without training images gets none)."""
        if not self.per_group(ImageSpec(task.channels, real.images.shape[-1], task.num_outputs)):
            return {ALL: Job(real, conditioning(real.labels, task), task.num_outputs)}
        members = {group: group_members(real.labels, task, group) for group in range(task.num_outputs)}
        return {
            f"group_{group}": Job(real.subset(index), None, 0, group) for group, index in members.items() if len(index)
        }

    def key(self, real: Split, seed: int, image_size: int, plan: list[int] | None = None) -> str:
        """Cache key: a digest of everything that changes the trained weights (for a seconds or FLOP budget, also
        the synthesis `plan`, which it pays for first)."""
        early_stop = None
        if self.early_stop_every:
            early_stop = {
                "every": self.early_stop_every,
                "patience": self.early_stop_patience,
                "extractor": self.monitor_extractor,
                "params": self.monitor_params,
                "images": MONITOR_IMAGES,
            }
        budget = {
            kind: amount for kind, amount in asdict(self._budget).items() if kind != "flops" or amount is not None
        }  # keys of steps and seconds budgets as before
        identity = {
            "generator": self.generator,
            "params": self.generator_params,
            "budget": budget,
            "split": gt.GeneratorBudget.SPLIT_RULE,
            "batch_size": self.generator_batch_size,
            "conditioning": self.conditioning,
            "seed": seed,
            "image_size": image_size,
            "data": real.digest(),
            "early_stop": early_stop,
            "version": package_version(),
        }
        if self._budget.kind != "steps":
            identity["synthesis_plan"] = plan
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def fitted(self, context: StrategyContext) -> tuple[dict[str, GenerativeModel], dict]:
        """The trained models and their card: loaded from `generator_dir` or the cache, else trained and saved."""
        data, device = context.dataset, context.device
        if self.generator_dir is not None:
            models, card = gt.load(Path(self.generator_dir), device)
            check_trained_on(card, data.train, f"the generator in {self.generator_dir}")
            return models, card
        root = context.work_dir or cache_dir() / "generators"
        plan = self._policy.plan(data.train.class_counts(data.task), data.task)
        directory = root / f"{self.generator}-{self.key(data.train, context.seed, data.image_size, plan)}"
        if self.reuse and (directory / gt.CARD).is_file():
            models, card = gt.load(directory, device)
            card["reused_from"] = str(directory)
            return models, card
        models, card = self.train_models(context)
        gt.save(directory, models, card)
        card["saved_to"] = str(directory)
        return models, card

    def train_models(self, context: StrategyContext) -> tuple[dict[str, GenerativeModel], dict]:
        """Train every job under its part of the budget; the card records the split, the counted costs and what each
        model spent. Every budget problem is raised before anything trains."""
        data, task, device = context.dataset, context.dataset.task, context.device
        jobs = self.jobs(data.train, task)
        with flops.isolated_rng(device):  # each model is seeded; the RNG state after building them stays as it was
            models = {name: self.build(job, task, data.image_size, context.seed) for name, job in jobs.items()}
        costs = self.costs(models, jobs, device)
        plan = self._policy.plan(data.train.class_counts(task), task)
        budgets, reserved = self.training_budgets(jobs, models, costs, images_per_model(plan, models), device)
        features = self.monitor_features(context) if self.monitored else None  # trained first: not generator time
        histories = {}
        for name, job in jobs.items():
            monitor = self.monitor(context, job, features, budgets[name].steps) if features is not None else None
            history = gt.fit(
                models[name],
                job.split.images,
                job.cond,
                budgets[name],
                self.generator_batch_size,
                device,
                context.seed,
                progress=context.progress,
                desc=f"{self.generator} {name}",
                monitor=monitor,
            )
            if history.failure:
                raise gt.GeneratorFailure(f"generator {self.generator} ({name}) stopped: {history.failure}")
            histories[name] = history
        card = {
            "generator": self.generator,
            "generator_params": self.generator_params,
            "models": {name: asdict(model.spec) for name, model in models.items()},
            "budget": self.budget_record(jobs, budgets, histories, costs, reserved),
            "batch_size": self.generator_batch_size,
            "costs": costs,
            "seed": context.seed,
            "conditioning": ALL in jobs,
            "dataset": data.name,
            "labels": list(task.labels),
            "task": task.kind,
            "image_size": data.image_size,
            "data_digest": data.train.digest(),
            "histories": {name: asdict(h) for name, h in histories.items()},
            "monitor": self.monitor_record(features),
            "package_version": package_version(),
            "code": code_version(),
        }
        return models, card

    def build(self, job: Job, task: TaskSpec, image_size: int, seed: int) -> GenerativeModel:
        """A freshly initialised model for one job, seeded so its weights do not depend on what ran before."""
        torch.manual_seed(seed)
        spec = ImageSpec(channels=task.channels, image_size=image_size, cond_dim=job.cond_dim)
        return create("generator", self.generator, spec=spec, **self.generator_params)

    def costs(self, models: dict[str, GenerativeModel], jobs: dict[str, Job], device: torch.device) -> dict[str, dict]:
        """Per model, counted on copies: FLOPs of one training step at its batch (the sampler's: min(batch size,
        training images)) and of sampling one image."""
        costs = {}
        for name, model in models.items():
            batch = min(self.generator_batch_size, len(jobs[name].split))
            costs[name] = {
                "batch_size": batch,
                "step_flops": gt.step_flops(model, batch, device),
                "sample_flops_per_image": gt.sample_flops(model, device),
            }
        return costs

    def training_budgets(
        self,
        jobs: dict[str, Job],
        models: dict[str, GenerativeModel],
        costs: dict[str, dict],
        images: dict[str, int],
        device: torch.device,
    ) -> tuple[dict[str, gt.GeneratorBudget], float | None]:
        """Each model's part of the training budget, and what was set aside for synthesis. A seconds or FLOP budget
        first pays for synthesising `images` per model (FLOPs counted; seconds timed on one sampling chunk of an
        untrained copy), the rest is shared by SPLIT_RULE, and FLOP parts become whole steps."""
        budget, kind = self._budget, self._budget.kind
        sizes = {name: len(job.split) for name, job in jobs.items()}
        if kind == "steps":
            return budget.split(sizes), None
        if kind == "flops":
            reserved = float(sum(images[name] * costs[name]["sample_flops_per_image"] for name in models))
            one_step = float(sum(cost["step_flops"] for cost in costs.values()))
        else:
            reserved = sum(
                n * gt.sample_seconds(models[name], min(n, SAMPLE_CHUNK), device) / min(n, SAMPLE_CHUNK)
                for name, n in images.items()
                if n
            )
            one_step = 0.0
        left = budget.amount - reserved
        if left < one_step or left <= 0:
            raise MedAugBenchError(
                f"generator {self.generator}: its budget of {budget.amount:.4g} {kind} (the generator share of the "
                f"total) cannot pay for synthesising {sum(images.values())} images ({reserved:.4g} {kind}) plus one "
                f"training step of each of its {len(models)} model(s) ({one_step:.4g} {kind}); raise total_{kind} or "
                "generator_share, or synthesise fewer images"
            )
        parts = budget.of(kind, left).split(sizes)
        if kind == "flops":
            parts = {
                name: part.in_steps(costs[name]["step_flops"], f"generator {self.generator} ({name})")
                for name, part in parts.items()
            }
        return parts, reserved

    def budget_record(
        self,
        jobs: dict[str, Job],
        budgets: dict[str, gt.GeneratorBudget],
        histories: dict[str, gt.FitHistory],
        costs: dict[str, dict],
        reserved: float | None,
    ) -> dict:
        """The total budget, what synthesis was allotted of it, the split rule, and per model: training images,
        allotted part (in its kind: FLOP parts are whole steps), steps, images, FLOPs, seconds."""
        kind = self._budget.kind
        per_model = {
            name: {
                "train_images": len(jobs[name].split),
                "allotted": budgets[name].amount,
                "allotted_kind": budgets[name].kind,
                "steps": h.steps,
                "real_batches": h.real_batches,
                "images_seen": h.images_seen,
                "flops": h.steps * costs[name]["step_flops"],
                "seconds": h.seconds,
            }
            for name, h in histories.items()
        }
        spent = {
            key: sum(model[key] for model in per_model.values()) for key in ("steps", "images_seen", "flops", "seconds")
        }
        rule = gt.GeneratorBudget.SPLIT_RULE if len(jobs) > 1 else "one model: the whole budget"
        return {
            "kind": kind,
            "total": self._budget.amount,
            "reserved_for_synthesis": reserved,
            "split_rule": rule,
            "per_model": per_model,
            "spent": spent,
        }

    def monitor_record(self, features: FeatureExtractor | None) -> dict | None:
        """What scored the generator during training (None: nothing did)."""
        if features is None:
            return None
        return {
            "extractor": features.describe(),
            "reference": MONITOR_REFERENCES[self.track_quality_on],
            "every": self.monitor_every,
            "at_total_steps": self.track_quality_at,
            "patience": self.early_stop_patience if self.early_stop_every else None,
        }

    # -- synthesis -----------------------------------------------------------------------------------------
    def sample(
        self,
        models: dict[str, GenerativeModel],
        task: TaskSpec,
        real: Split,
        plan: list[int],
        device: torch.device,
        seed: int,
    ) -> Split:
        """Generate `plan[g]` images for each group g, as uint8, with their labels."""
        generator = torch.Generator(device=device).manual_seed(seed + 1)
        label_generator = torch.Generator().manual_seed(seed + 1)
        images, labels = [], []
        for group, n in enumerate(plan):
            if n == 0:
                continue
            rows = label_rows(real, task, group, n, label_generator)
            model = models.get(ALL) or models.get(f"group_{group}")
            if model is None:
                raise MedAugBenchError(f"no generator was trained for {task.labels[group]!r} (no training images)")
            cond = conditioning(rows, task).to(device) if ALL in models else None
            for start in range(0, n, SAMPLE_CHUNK):
                chunk = min(SAMPLE_CHUNK, n - start)
                part = gt.sample(model, cond[start : start + chunk] if cond is not None else None, chunk, generator)
                images.append(gt.to_uint8(part).cpu())
            labels.append(rows)
        if not images:
            return Split(real.images[:0], real.labels[:0])
        return Split(torch.cat(images), torch.cat(labels))

    def synthesize(self, context: StrategyContext) -> Split:
        data, task = context.dataset, context.dataset.task
        models, card = self.fitted(context)
        plan = self._policy.plan(data.train.class_counts(task), task)
        started = dev.clock(context.device)
        synthetic = self.sample(models, task, data.train, plan, context.device, context.seed)
        synthesis_seconds = dev.clock(context.device) - started
        reason = gt.collapse_reason(synthetic.images[:512]) if len(synthetic) else None
        if reason:
            raise gt.GeneratorFailure(f"generator {self.generator}: {reason}; its samples were not used")
        self._preview = self.sample(
            models, task, data.train, self.preview_plan(models, task), context.device, context.seed + PREVIEW_SEED
        )
        self._report = {
            "generator": card,
            "synthesis": {"policy": self.policy, "plan": plan, "generated": len(synthetic)},
            "compute": self.compute(models, card, context, plan, synthesis_seconds),
        }
        if self.quality_extractor is not None and len(synthetic) > 1:
            self._report["quality"] = quality_report(
                data.train,
                data.test,
                synthetic,
                task,
                self.extractor(context),
                max_images=self.quality_images,
                seed=context.seed,
                device=context.device,
            ).to_dict()
        return synthetic

    def preview_plan(self, models: dict[str, GenerativeModel], task: TaskSpec) -> list[int]:
        """PREVIEW_PER_CLASS images of every class a model was trained for."""
        return [PREVIEW_PER_CLASS if ALL in models or f"group_{g}" in models else 0 for g in range(task.num_outputs)]

    def preview(self) -> Split | None:
        """The last synthesis's preview: PREVIEW_PER_CLASS images of every class, from their own generator seed (not
        part of the training set, its budget or its compute)."""
        return self._preview

    def compute(
        self, models: dict[str, GenerativeModel], card: dict, context: StrategyContext, plan: list[int], seconds: float
    ) -> dict:
        """FLOPs and device-seconds of generator training (from the card: a reused generator costs what training it
        did) and of this synthesis, per model and summed; costs are counted now for a card older than them."""
        costs = card.get("costs") or self.costs(
            models, self.jobs(context.dataset.train, context.dataset.task), context.device
        )
        histories = card["histories"]
        images = images_per_model(plan, models)
        return {
            "generator_training": {
                "flops": sum(h["steps"] * costs[name]["step_flops"] for name, h in histories.items()),
                "seconds": sum(h["seconds"] for h in histories.values()),
                "steps": {name: h["steps"] for name, h in histories.items()},
                "step_flops": {name: cost["step_flops"] for name, cost in costs.items()},
                "batch_size": {name: cost["batch_size"] for name, cost in costs.items()},
            },
            "synthesis": {
                "flops": sum(n * costs[name]["sample_flops_per_image"] for name, n in images.items()),
                "seconds": seconds,
                "images": sum(images.values()),
                "flops_per_image": {name: cost["sample_flops_per_image"] for name, cost in costs.items()},
            },
        }

    def combine(self, real: Split, synthetic: Split | None) -> Split:
        if self._policy.replaces_real:
            return synthetic
        return merge_splits(real, synthetic, self.generator)

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        return self._augmenter.augment(images, targets, generator)

    def report(self) -> dict:
        return self._report


def images_per_model(plan: list[int], models: dict[str, GenerativeModel]) -> dict[str, int]:
    """Images each model synthesises for a plan (per group): the conditional model all of them, else each group's
    own model its group's."""
    if ALL in models:
        return {ALL: sum(plan)}
    return {name: plan[int(name.removeprefix("group_"))] for name in models}


def check_trained_on(card: dict, real: Split, what: str) -> None:
    """Refuse a saved generator whose card does not carry the digest of exactly these training images."""
    digest = real.digest()
    if card.get("data_digest") != digest:
        raise MedAugBenchError(
            f"{what} was trained on other images ({card.get('dataset')} at {card.get('image_size')} px, data digest "
            f"{card.get('data_digest')}) than this cell's training set (digest {digest}); train it on the same "
            "dataset, image size, train fraction, per-class cap and seed (`medaugbench synth`), or drop generator_dir"
        )


@hookimpl
def register_strategies(register: Register) -> None:
    for name, description in registered_generators().items():
        register(name, partial(GenerativeStrategy, generator=name), f"synthetic data from {name}: {description}")
