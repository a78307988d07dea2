"""Every registered generator as a strategy: train it (or reuse the saved one), synthesise per the policy, merge.

The synthesis plan (images per class, `plan_counts`) is computed once and decides what trains: conditional
generators are trained once on all images with their label vectors (when the plan asks for any image); unconditional
ones (or any generator with `conditioning=False`, the seed paper's ablation) are trained one per class, or per label
for multi-label data, for the classes the plan samples only. Whether a generator conditions is asked of the model
itself: it is built for the task's spec and says so (`model.conditional`, see benchmark/generate/model.py), whatever
kind of factory registered it.

The generator budget is the strategy's TOTAL in the cell: the per-class models trained share it
(`GeneratorBudget.split`: in proportion to their training images, with a minimum each), so `dcgan` spends what
`cgan` does, all of it on models whose images are used; the card records the total and what each model was allotted
and spent, and the code version. A seconds or FLOP budget (`generator_seconds` / `generator_flops`, a compute-matched
cell's generator share) pays for the synthesis and the checkpoint selection first: their cost (counted FLOPs, or one
timed sampling chunk; selection time is counted as it is spent) is set aside, the rest trains the models.

Each model is used at its best checkpoint (`select_points`, `select_holdout`): a stratified part of the cell's
training subset, drawn with the generator seed, is held out from the generator's training, and class-matched FID
against it in a fixed random feature space (`benchmark/evaluate/selection.py`) picks the weights kept; the curve and
the chosen step are in the card. Its FLOPs and seconds are the strategy's generator compute.

Trained generators are saved under the cache keyed by everything that determines their weights (generator,
parameters, budget and its split rule, the models the plan trains, seed, checkpoint selection, early-stopping
settings and monitor, the generator plugin's distribution, version and source digest and the harness code's, and a
digest of the exact training images and labels), so a second run with the same config and seed reuses them, and an
edited plugin retrains; a generator given by `generator_dir` must carry the same data digest, and its weights the
SHA-256 its card pins.

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
from pathlib import Path

import torch

from benchmark import (
    FeatureExtractor,
    GenerativeModel,
    ImageSpec,
    LoadedDataset,
    MedAugBenchError,
    Register,
    Split,
    Strategy,
    StrategyContext,
    TaskSpec,
    create,
    hookimpl,
    notice,
)
from benchmark.data.files import cache_dir
from benchmark.evaluate.features import make_extractor
from benchmark.evaluate.quality import fid_kid, quality_report, real_images
from benchmark.evaluate.selection import HoldoutScore, RandomFeatures, holdout_split
from benchmark.generate import loop as gt
from benchmark.generate.checkpoints import DamagedCheckpoint
from benchmark.generate.model import can_condition, generator_provenance, registered_generators
from benchmark.generate.synthesis import SynthesisPolicy, conditioning, group_members, label_rows, plan_counts
from benchmark.provenance import code_version, plugin_provenance
from benchmark.train import device as dev
from benchmark.train import flops
from benchmark.train.strategy import merge_splits

SAMPLE_CHUNK = 256
ALL = "all"
MONITOR_IMAGES = 256
PREVIEW_PER_CLASS = 8
PREVIEW_SEED = 1000  # the preview's generator seed is the cell's seed + this, apart from the synthesis draws
SELECTION_RULE = (
    "FID in a fixed random-CNN feature space between samples and the images of the model's classes held out from the "
    "cell's training subset (samples conditioned on the same label rows), at `points` evenly spaced fractions of the "
    "model's budget, the last at its end; the weights with the lowest FID are used"
)
HOLDOUT_SEED = 4  # the selection holdout is drawn with the generator seed + this
SELECTION_SEED = 5  # the selection samples' noise: the generator seed + this, the same at every checkpoint
MONITOR_REFERENCES = {
    "train": "FID of samples against up to 256 of the cell's own training images of the model's classes (fakes "
    "conditioned on the same label rows), under an extractor trained on the cell's training subset only",
    "val": "FID of samples against every validation image of the model's classes (fakes conditioned on the same "
    "label rows), under an extractor trained on the cell's training subset only; recorded for a pilot, never used "
    "to stop training",
}


@dataclass(frozen=True)
class Job:
    """One model to train: its real training images with labels, their conditioning rows (None: unconditional), and
    the images of its classes held out from them to select its checkpoint (None: no selection)."""

    split: Split
    cond: torch.Tensor | None
    cond_dim: int
    group: int | None = None  # the class (multi-label: the label) of a per-group model; None for one model of all
    held: Split | None = None


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
    select_points: int = 8
    select_holdout: float = 0.2

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
        if self.select_points < 0 or not 0.0 < self.select_holdout < 1.0:
            raise MedAugBenchError(
                "select_points must be 0 (use the last iterate) or more, and select_holdout a fraction in (0, 1); "
                f"got {self.select_points} and {self.select_holdout}"
            )
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

    def plan(self, data: LoadedDataset) -> list[int]:
        """The synthesis plan for the cell's training subset (`plan_counts`): images per group."""
        return plan_counts(data.train.labels, data.task, self._policy)

    def holdout(self, real: Split, task: TaskSpec, seed: int) -> tuple[Split, Split | None]:
        """(what the generators train on, what selects their checkpoints): a stratified `select_holdout` part of the
        cell's training subset is held out, drawn with the generator seed; without selection, (all of it, None)."""
        if not self.select_points:
            return real, None
        return holdout_split(real, task, self.select_holdout, seed + HOLDOUT_SEED)

    def jobs(self, real: Split, task: TaskSpec, plan: list[int], seed: int) -> dict[str, Job]:
        """The models the plan uses: one on all images with their label vectors if it asks for any image, or one per
        group it samples that has training images; each with the held-out images of its classes."""
        fit, held = self.holdout(real, task, seed)
        if not self.per_group(ImageSpec(task.channels, real.images.shape[-1], task.num_outputs)):
            return {ALL: Job(fit, conditioning(fit.labels, task), task.num_outputs, None, held)} if any(plan) else {}
        jobs = {}
        for group, planned in enumerate(plan):
            members = group_members(fit.labels, task, group)
            if planned and len(members):
                own = held.subset(group_members(held.labels, task, group)) if held is not None else None
                jobs[f"group_{group}"] = Job(fit.subset(members), None, 0, group, own)
        return jobs

    def key(self, real: Split, seed: int, task: TaskSpec, image_size: int, plan: list[int]) -> str:
        """Cache key: a digest of everything that changes the trained weights, the models the `plan` uses and the
        code that trains them (for a seconds or FLOP budget, also the plan's counts, which it pays for first)."""
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
            "models": sorted(self.jobs(real, task, plan, seed)),
            "selection": {"points": self.select_points, "holdout": self.select_holdout, "rule": SELECTION_RULE},
            "early_stop": early_stop,
            "code": self.code(task, image_size),
        }
        if self._budget.kind != "steps":
            identity["synthesis_plan"] = plan
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def code(self, task: TaskSpec, image_size: int) -> dict:
        """The code that trains the models: the generator plugin's provenance (distribution, version, git commit,
        source digest) and the harness's (this strategy, the shared loop, the selection signal)."""
        spec = ImageSpec(task.channels, image_size, task.num_outputs)
        return {
            "generator": generator_provenance(self.generator, spec, **self.generator_params),
            "trainer": plugin_provenance(type(self), gt.fit, HoldoutScore),
        }

    def fitted(
        self, context: StrategyContext, plan: list[int] | None = None
    ) -> tuple[dict[str, GenerativeModel], dict]:
        """The trained models the `plan` (default: this strategy's, `plan`) uses and their card: loaded from
        `generator_dir` (a damaged or altered one is an error naming the file) or the cache (a damaged entry is
        retrained, saying so), else trained and saved."""
        data, device = context.dataset, context.device
        if self.generator_dir is not None:
            models, card = gt.load_saved(Path(self.generator_dir), device)
            check_trained_on(card, data.train, f"the generator in {self.generator_dir}")
            return models, card
        plan = self.plan(data) if plan is None else plan
        root = context.work_dir or cache_dir() / "generators"
        directory = root / f"{self.generator}-{self.key(data.train, context.seed, data.task, data.image_size, plan)}"
        if self.reuse and (directory / gt.CARD).is_file():
            try:
                models, card = gt.load_strategy_card(directory, device)
                card["reused_from"] = str(directory)
                return models, card
            except DamagedCheckpoint as error:
                notice(f"the cached generator is damaged: {error}; retraining it")
        models, card = self.train_models(context, plan)
        gt.save(directory, models, card)
        card["saved_to"] = str(directory)
        return models, card

    def train_models(self, context: StrategyContext, plan: list[int]) -> tuple[dict[str, GenerativeModel], dict]:
        """Train every model the plan uses under its part of the budget, each kept at its best checkpoint; the card
        records the split, the counted costs, what each model spent and its selection curve. Every budget problem is
        raised before anything trains."""
        data, task, device = context.dataset, context.dataset.task, context.device
        jobs = self.jobs(data.train, task, plan, context.seed)
        with flops.isolated_rng(device):  # each model is seeded; the RNG state after building them stays as it was
            models = {name: self.build(job, task, data.image_size, context.seed) for name, job in jobs.items()}
        selection = RandomFeatures(task.channels).to(device)
        scorers = self.scorers(jobs, task, selection, context)
        costs = self.costs(models, jobs, device, scorers)
        budgets, reserved = self.training_budgets(jobs, models, costs, images_per_model(plan, models), device)
        features = self.monitor_features(context) if self.monitored else None  # trained first: not generator time
        histories = {
            name: self.fit_one(name, job, models[name], budgets[name], scorers, features, context)
            for name, job in jobs.items()
        }
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
            "plan": plan,
            "histories": {name: asdict(h) for name, h in histories.items()},
            "selection": self.selection_record(jobs, scorers, histories, selection),
            "monitor": self.monitor_record(features),
            "code": code_version(),
            "trained_by": self.code(task, data.image_size),
        }
        return models, card

    def fit_one(
        self,
        name: str,
        job: Job,
        model: GenerativeModel,
        budget: gt.GeneratorBudget,
        scorers: dict[str, HoldoutScore],
        features: FeatureExtractor | None,
        context: StrategyContext,
    ) -> gt.FitHistory:
        """Train one model under its budget, with its checkpoint selection and (if any) the quality monitor."""
        monitor = self.monitor(context, job, features, budget.steps) if features is not None else None
        selector = gt.CheckpointSelector(scorers[name], self.select_points) if name in scorers else None
        history = gt.fit(
            model,
            job.split.images,
            job.cond,
            budget,
            self.generator_batch_size,
            context.device,
            context.seed,
            progress=context.progress,
            desc=f"{self.generator} {name}",
            monitor=monitor,
            selector=selector,
        )
        if history.failure:
            raise gt.GeneratorFailure(f"generator {self.generator} ({name}) stopped: {history.failure}")
        return history

    def scorers(
        self, jobs: dict[str, Job], task: TaskSpec, features: FeatureExtractor, context: StrategyContext
    ) -> dict[str, HoldoutScore]:
        """The checkpoint-selection score of every model with at least 2 held-out images of its classes (the others
        are used at their last iterate)."""
        return {
            name: HoldoutScore(
                job.held,
                conditioning(job.held.labels, task) if job.cond_dim else None,
                features,
                context.seed + SELECTION_SEED,
                context.device,
            )
            for name, job in jobs.items()
            if job.held is not None and len(job.held) >= 2
        }

    def build(self, job: Job, task: TaskSpec, image_size: int, seed: int) -> GenerativeModel:
        """A freshly initialised model for one job, seeded so its weights do not depend on what ran before."""
        torch.manual_seed(seed)
        spec = ImageSpec(channels=task.channels, image_size=image_size, cond_dim=job.cond_dim)
        return create("generator", self.generator, spec=spec, **self.generator_params)

    def costs(
        self,
        models: dict[str, GenerativeModel],
        jobs: dict[str, Job],
        device: torch.device,
        scorers: dict[str, HoldoutScore] | None = None,
    ) -> dict[str, dict]:
        """Per model, counted on copies: FLOPs of one training step at its batch (the sampler's: min(batch size,
        training images)), of sampling one image, and of one checkpoint-selection score and its reference features."""
        costs = {}
        for name, model in models.items():
            batch = min(self.generator_batch_size, len(jobs[name].split))
            costs[name] = {
                "batch_size": batch,
                "step_flops": gt.step_flops(model, batch, device),
                "sample_flops_per_image": gt.sample_flops(model, device),
            }
            if scorers and name in scorers:
                costs[name] |= scorers[name].flops(costs[name]["sample_flops_per_image"])
        return costs

    def training_budgets(
        self,
        jobs: dict[str, Job],
        models: dict[str, GenerativeModel],
        costs: dict[str, dict],
        images: dict[str, int],
        device: torch.device,
    ) -> tuple[dict[str, gt.GeneratorBudget], dict | None]:
        """Each model's part of the training budget, and what was set aside (synthesis, selection). A seconds or FLOP
        budget first pays for synthesising `images` per model (FLOPs counted; seconds timed on one sampling chunk of an
        untrained copy) and, for FLOPs, for every checkpoint-selection score (a seconds budget counts selection time
        as it is spent); the rest is shared by SPLIT_RULE, and FLOP parts become whole steps."""
        budget, kind = self._budget, self._budget.kind
        sizes = {name: len(job.split) for name, job in jobs.items()}
        if kind == "steps" or not jobs:
            return budget.split(sizes) if jobs else {}, None
        if kind == "flops":
            synthesis = float(sum(images[name] * costs[name]["sample_flops_per_image"] for name in models))
            selection = float(sum(selection_flops(cost, self.select_points) for cost in costs.values()))
            one_step = float(sum(cost["step_flops"] for cost in costs.values()))
        else:
            synthesis = sum(
                n * gt.sample_seconds(models[name], min(n, SAMPLE_CHUNK), device) / min(n, SAMPLE_CHUNK)
                for name, n in images.items()
                if n
            )
            selection, one_step = 0.0, 0.0
        left = budget.amount - synthesis - selection
        if left < one_step or left <= 0:
            raise MedAugBenchError(
                f"generator {self.generator}: its budget of {budget.amount:.4g} {kind} (the generator share of the "
                f"total) cannot pay for synthesising {sum(images.values())} images ({synthesis:.4g} {kind}) and "
                f"checkpoint selection ({selection:.4g} {kind}) plus one training step of each of its {len(models)} "
                f"model(s) ({one_step:.4g} {kind}); raise total_{kind} or generator_share, synthesise fewer images, "
                "or lower select_points"
            )
        parts = budget.of(kind, left).split(sizes)
        if kind == "flops":
            parts = {
                name: part.in_steps(costs[name]["step_flops"], f"generator {self.generator} ({name})")
                for name, part in parts.items()
            }
        return parts, {"synthesis": synthesis, "selection": selection if kind == "flops" else None}

    def budget_record(
        self,
        jobs: dict[str, Job],
        budgets: dict[str, gt.GeneratorBudget],
        histories: dict[str, gt.FitHistory],
        costs: dict[str, dict],
        reserved: dict | None,
    ) -> dict:
        """The total budget, what synthesis and checkpoint selection were allotted of it, the split rule, and per
        model: training images, allotted part (in its kind: FLOP parts are whole steps), steps, images, training
        FLOPs and seconds, selection FLOPs and seconds, and the step whose weights were kept."""
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
                "selection_flops": selection_flops(costs[name], len(h.selection_step)),
                "selection_seconds": h.selection_seconds,
                "selected_step": h.selected_step,
            }
            for name, h in histories.items()
        }
        keys = ("steps", "images_seen", "flops", "seconds", "selection_flops", "selection_seconds")
        spent = {key: sum(model[key] for model in per_model.values()) for key in keys}
        rule = gt.GeneratorBudget.SPLIT_RULE if len(jobs) > 1 else "one model: the whole budget"
        return {
            "kind": kind,
            "total": self._budget.amount,
            "reserved_for_synthesis": reserved["synthesis"] if reserved else None,
            "reserved_for_selection": reserved["selection"] if reserved else None,
            "split_rule": rule if jobs else "no model: the plan asks for no synthetic image",
            "per_model": per_model,
            "spent": spent,
        }

    def selection_record(
        self,
        jobs: dict[str, Job],
        scorers: dict[str, HoldoutScore],
        histories: dict[str, gt.FitHistory],
        features: FeatureExtractor,
    ) -> dict | None:
        """How each model's checkpoint was chosen: the rule, the feature space, and per model its held-out images,
        the (step, FID) curve and the step kept (None: the last iterate, with the reason). None without selection."""
        if not self.select_points:
            return None
        per_model = {}
        for name, job in jobs.items():
            history = histories[name]
            per_model[name] = {
                "held_out": len(job.held) if job.held is not None else 0,
                "fakes": scorers[name].fakes if name in scorers else 0,
                "curve": [[step, score] for step, score in zip(history.selection_step, history.selection)],
                "selected_step": history.selected_step,
                "last_step": history.steps,
            }
            if name not in scorers:
                per_model[name]["note"] = "fewer than 2 held-out images of its classes: the last iterate is used"
        return {
            "rule": SELECTION_RULE,
            "points": self.select_points,
            "holdout_fraction": self.select_holdout,
            "features": features.describe(),
            "per_model": per_model,
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
        """Generate `plan[g]` images for each group g, as uint8, with their labels. Every image any caller gets passes
        through here: samples with a non-finite value fail the generator (`GeneratorFailure`) before the cast to uint8
        would hide them."""
        generator = torch.Generator(device=device).manual_seed(seed + 1)
        label_generator = torch.Generator().manual_seed(seed + 1)
        images, labels, nonfinite = [], [], torch.zeros((), dtype=torch.long, device=device)
        for group, n in enumerate(plan):
            if n == 0:
                continue
            rows = label_rows(real, task, group, n, label_generator)
            model = models.get(ALL) or models.get(f"group_{group}")
            if model is None:
                raise MedAugBenchError(
                    f"no generator was trained for {task.labels[group]!r} (it has no training images, or the "
                    "generator in generator_dir was trained for another synthesis plan); train it with this policy"
                )
            cond = conditioning(rows, task).to(device) if ALL in models else None
            for start in range(0, n, SAMPLE_CHUNK):
                chunk = min(SAMPLE_CHUNK, n - start)
                part = gt.sample(model, cond[start : start + chunk] if cond is not None else None, chunk, generator)
                nonfinite += part.isfinite().logical_not().sum()
                images.append(gt.to_uint8(part).cpu())
            labels.append(rows)
        if not images:
            return Split(real.images[:0], real.labels[:0])
        images = torch.cat(images)
        gt.check_finite(self.generator, int(nonfinite), images.numel())
        return Split(images, torch.cat(labels))

    def synthesize(self, context: StrategyContext) -> Split:
        data, task = context.dataset, context.dataset.task
        plan = self.plan(data)
        models, card = self.fitted(context, plan)
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
                real_images(data),
                synthetic,
                task,
                self.extractor(context),
                max_images=self.quality_images,
                seed=context.seed,
                device=context.device,
            ).to_dict()
        return synthetic

    def preview_plan(
        self, models: dict[str, GenerativeModel], task: TaskSpec, per_class: int = PREVIEW_PER_CLASS
    ) -> list[int]:
        """`per_class` images of every class a model was trained for (per-class models exist for the classes the plan
        samples only, so the preview shows those; a conditional model shows every class)."""
        return [per_class if ALL in models or f"group_{g}" in models else 0 for g in range(task.num_outputs)]

    def preview(self) -> Split | None:
        """The last synthesis's preview: PREVIEW_PER_CLASS images of every class a model was trained for
        (`preview_plan`), from their own generator seed (not part of the training set, its budget or its compute)."""
        return self._preview

    def compute(
        self, models: dict[str, GenerativeModel], card: dict, context: StrategyContext, plan: list[int], seconds: float
    ) -> dict:
        """FLOPs and device-seconds of generator training, checkpoint selection included (from the card: a reused
        generator costs what training it did, flagged `reused`, with its cache folder's name as `generator` so a grid
        total counts it once) and of this synthesis, per model and summed; costs are counted now for a card older than
        them."""
        data = context.dataset
        costs = card.get("costs") or self.costs(
            models, self.jobs(data.train, data.task, plan, context.seed), context.device
        )
        histories = card["histories"]
        images = images_per_model(plan, models)
        scores = {name: len(h.get("selection_step", [])) for name, h in histories.items()}
        selection = {
            "flops": sum(selection_flops(costs[name], n) for name, n in scores.items()),
            "seconds": sum(h.get("selection_seconds", 0.0) for h in histories.values()),
            "scores": scores,
        }
        return {
            "generator_training": {
                "flops": sum(h["steps"] * costs[name]["step_flops"] for name, h in histories.items())
                + selection["flops"],
                "seconds": sum(h["seconds"] for h in histories.values()) + selection["seconds"],
                "selection": selection,
                "steps": {name: h["steps"] for name, h in histories.items()},
                "step_flops": {name: cost["step_flops"] for name, cost in costs.items()},
                "batch_size": {name: cost["batch_size"] for name, cost in costs.items()},
                "reused": "reused_from" in card,  # trained by an earlier cell: what it cost once, not spent again
                "generator": Path(card.get("reused_from") or card.get("saved_to") or "").name or None,
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

    def prepare_for(self, dataset: LoadedDataset) -> None:
        self._augmenter.prepare_for(dataset)  # e.g. `augment_with="geometric"` follows the dataset's modality

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        return self._augmenter.augment(images, targets, generator)

    def report(self) -> dict:
        return self._report


def selection_flops(cost: dict, scores: int) -> int:
    """FLOPs of `scores` checkpoint-selection scores and the reference features (0 for a model without selection,
    or a card from before it)."""
    if not scores or "selection_flops_per_score" not in cost:
        return 0
    return scores * cost["selection_flops_per_score"] + cost["selection_reference_flops"]


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
