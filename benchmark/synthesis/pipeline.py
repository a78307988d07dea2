"""Every registered generator as a strategy: train its models (or reuse saved ones), select their checkpoints and
guidance, synthesise per the policy, merge; then, apart, score what was synthesised.

The synthesis plan (images per class, `plan_counts`) is computed once per synthesis and decides what trains:
conditional generators are trained once on all images with their label vectors (when the plan asks for any image);
unconditional ones (or any generator with `conditioning=False`, the seed paper's ablation) are trained one per
class, or per label for multi-label data, for the classes the plan samples only (`ModelKey`, named by class name).
Whether a generator conditions is asked of the model itself (`model.conditional`, benchmark/generate/model.py).

The generator budget is the strategy's TOTAL in the cell: the per-class models share it (`GeneratorBudget.split`),
so `dcgan` spends what `cgan` does; a seconds or FLOP budget pays for synthesis and checkpoint selection first
(benchmark/synthesis/compute.py). Each model is used at its best checkpoint: a stratified part of the cell's training
subset, drawn with the generator seed, is held out from the generator's training, and class-matched FID against it
in a fixed random feature space (benchmark/evaluate/selection.py) picks the weights kept; a model offering guidance
weights (`guidance_candidates`) then gets the one the same score prefers. Both count as generator compute.

Early stopping and quality tracking score samples with an extractor trained on the cell's training subset only,
against the cell's own training images of the same classes: nothing outside that subset steers the training. A
pilot's tracking against validation images only records, with each model's in-distribution floor beside its curve
(benchmark/synthesis/floor.py). The quality step after synthesis (`assess`, benchmark/synthesis/quality.py) uses
another extractor, one per dataset and size, and is evaluation: timed apart, never generator compute."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from benchmark.data.dataset import LoadedDataset, Split
from benchmark.data.files import cache_dir
from benchmark.data.task import TaskSpec
from benchmark.errors import MedAugBenchError
from benchmark.evaluate.features import FeatureExtractor, make_extractor
from benchmark.evaluate.fidelity import DEFAULT_MAX_FID_RATIO
from benchmark.evaluate.quality import fid_kid
from benchmark.evaluate.selection import HoldoutScore, RandomFeatures, holdout_split
from benchmark.generate import loop as gt
from benchmark.generate.model import GenerativeModel, ImageSpec, can_condition, generator_provenance
from benchmark.generate.synthesis import SynthesisPolicy, conditioning, group_members, label_rows, plan_counts
from benchmark.provenance import code_version, plugin_provenance
from benchmark.registry import create
from benchmark.synthesis import cache, compute
from benchmark.synthesis import quality as assessment
from benchmark.synthesis.config import (
    MONITOR_IMAGES,
    MONITOR_REFERENCES,
    SELECTION_RULE,
    CacheParams,
    ModelParams,
    MonitorParams,
    QualityParams,
    SelectionParams,
    SynthesisConfig,
    generator_budget,
)
from benchmark.synthesis.floor import FLOOR_RULE, MonitorFloor, monitor_floor
from benchmark.synthesis.keys import ALL, ModelKey, keyed
from benchmark.train import device as dev
from benchmark.train import flops
from benchmark.train.config import GeneratorBudget
from benchmark.train.strategy import Strategy, StrategyContext, merge_splits

PREVIEW_PER_CLASS = 8
PREVIEW_SEED = 1000  # the preview's generator seed is the cell's seed + this, apart from the synthesis draws
HOLDOUT_SEED = 4  # the selection holdout is drawn with the generator seed + this
SELECTION_SEED = 5  # the selection samples' noise: the generator seed + this, the same at every checkpoint


@dataclass(frozen=True)
class Job:
    """One model to train: its real training images with labels, their conditioning rows (None: unconditional), and
    the images of its classes held out from them to select its checkpoint (None: no selection)."""

    split: Split
    cond: torch.Tensor | None
    cond_dim: int
    group: int | None = None  # the class (multi-label: the label) of a per-group model; None for one model of all
    held: Split | None = None

    @property
    def key(self) -> ModelKey:
        return ModelKey(self.group)


@dataclass(frozen=True)
class Trained:
    """The models a synthesis uses, keyed by ModelKey, and their card (models named by class name)."""

    models: dict[ModelKey, GenerativeModel]
    card: dict


@dataclass
class GenerativeStrategy(Strategy):
    """Synthetic-data augmentation with a registered generator (see the module docstring). Its fields are the flat
    parameters users pass (`-S generator_steps=...`); `settings` holds them grouped and checked."""

    name = "generative"
    generator: str = "cgan"
    generator_steps: int | None = None  # None with no other budget: DEFAULT_STEPS (benchmark/synthesis/config.py)
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
    class_fidelity: bool = True
    on_unrecognisable: str = "flag"
    max_fid_ratio: float = DEFAULT_MAX_FID_RATIO
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
        self.settings = SynthesisConfig(
            model=ModelParams(self.generator, self.generator_params, self.generator_batch_size, self.conditioning),
            budget=generator_budget(self.generator_steps, self.generator_seconds, self.generator_flops),
            policy=SynthesisPolicy(self.policy, self.ratio, self.multiplier, dict(self.counts)),
            monitor=MonitorParams(
                self.early_stop_every,
                self.early_stop_patience,
                self.track_quality_every,
                tuple(self.track_quality_at or ()),
                self.track_quality_on,
                self.monitor_extractor,
                self.monitor_params,
            ),
            selection=SelectionParams(self.select_points, self.select_holdout),
            quality=QualityParams(
                self.quality_extractor,
                self.quality_params,
                self.quality_images,
                self.class_fidelity,
                self.on_unrecognisable,
                self.max_fid_ratio,
            ),
            cache=CacheParams(self.generator_dir, self.reuse),
        )
        self._augmenter = create("strategy", self.augment_with)
        self._report: dict = {}
        self._preview: Split | None = None
        self._extractor: FeatureExtractor | None = None

    def plugins_used(self) -> list[tuple[str, str]]:
        """The generator, the strategy batches are augmented with, and the extractors this strategy runs."""
        used = [("generator", self.generator)] + [("strategy", self.augment_with)] * (self.augment_with != "none")
        if self.settings.quality.extractor is not None:
            used.append(("extractor", self.settings.quality.extractor))
        if self.settings.monitor.monitored:
            used.append(("extractor", self.settings.monitor.extractor))
        return used

    @property
    def budget(self) -> GeneratorBudget:
        """The strategy's total generator budget in a cell (per-class models share it)."""
        return self.settings.budget

    # -- planning --------------------------------------------------------------------------------------------------
    def plan(self, data: LoadedDataset) -> list[int]:
        """The synthesis plan for the cell's training subset (`plan_counts`): images per group."""
        return plan_counts(data.train.labels, data.task, self.settings.policy)

    def per_group(self, spec: ImageSpec) -> bool:
        """Unconditional generators (the model built for the task's conditioning `spec` says it is not conditional),
        and conditional ones with conditioning off, are trained one per group."""
        model = self.settings.model
        return not model.conditioning or not can_condition(model.generator, spec, **model.params)

    def holdout(self, real: Split, task: TaskSpec, seed: int) -> tuple[Split, Split]:
        """(what the generators train on, what selects their checkpoints): a stratified `select_holdout` part of the
        cell's training subset, drawn with the generator seed. Class fidelity uses the same two parts."""
        return holdout_split(real, task, self.settings.selection.holdout, seed + HOLDOUT_SEED)

    def jobs(self, real: Split, task: TaskSpec, plan: list[int], seed: int) -> dict[ModelKey, Job]:
        """The models the plan uses: one on all images with their label vectors if it asks for any image, or one per
        group it samples that has training images; each with the held-out images of its classes (none without
        checkpoint selection, which then trains on all of the cell's images)."""
        fit, held = self.holdout(real, task, seed) if self.settings.selection.points else (real, None)
        if not self.per_group(ImageSpec(task.channels, real.images.shape[-1], task.num_outputs, task.multilabel)):
            return {ALL: Job(fit, conditioning(fit.labels, task), task.num_outputs, None, held)} if any(plan) else {}
        jobs = {}
        for group, planned in enumerate(plan):
            members = group_members(fit.labels, task, group)
            if planned and len(members):
                own = held.subset(group_members(held.labels, task, group)) if held is not None else None
                jobs[ModelKey(group)] = Job(fit.subset(members), None, 0, group, own)
        return jobs

    # -- the cache ---------------------------------------------------------------------------------------------------
    def key(self, real: Split, seed: int, task: TaskSpec, image_size: int, plan: list[int]) -> str:
        """Cache key of the models `plan` uses (benchmark/synthesis/cache.py)."""
        return self._key(self.jobs(real, task, plan, seed), real, seed, task, image_size, plan)

    def _key(
        self, jobs: dict[ModelKey, Job], real: Split, seed: int, task: TaskSpec, image_size: int, plan: list[int]
    ) -> str:
        names = [key.name(task.labels) for key in jobs]
        code = self.code(task, image_size)
        return cache.cache_key(self.settings, real.digest(), seed, image_size, names, plan, code)

    def code(self, task: TaskSpec, image_size: int) -> dict:
        """The code that trains the models: the generator plugin's provenance (distribution, version, git commit,
        source digest) and the harness's (this strategy, the shared loop, the selection signal, the budget split)."""
        model = self.settings.model
        spec = ImageSpec(task.channels, image_size, task.num_outputs, task.multilabel)
        return {
            "generator": generator_provenance(model.generator, spec, **model.params),
            "trainer": plugin_provenance(type(self), gt.fit, HoldoutScore, compute.training_budgets),
        }

    def fitted(
        self, context: StrategyContext, plan: list[int] | None = None
    ) -> tuple[dict[str, GenerativeModel], dict]:
        """The trained models the `plan` (default: this strategy's) uses, by card name, and their card."""
        trained = self.trained(context, self.plan(context.dataset) if plan is None else plan)
        labels = context.dataset.task.labels
        return {key.name(labels): model for key, model in trained.models.items()}, trained.card

    def trained(self, context: StrategyContext, plan: list[int]) -> Trained:
        """The models `plan` uses: from `generator_dir` (a damaged, altered or foreign one is an error naming the
        file), or the cache (a damaged entry is retrained, saying so), else trained and saved."""
        data, device, labels = context.dataset, context.device, context.dataset.task.labels
        if self.settings.cache.generator_dir is not None:
            models, card = cache.load_named(Path(self.settings.cache.generator_dir), data.train, device)
            return Trained(keyed(models, labels), card)
        jobs = self.jobs(data.train, data.task, plan, context.seed)
        root = context.work_dir or cache_dir() / "generators"
        key = self._key(jobs, data.train, context.seed, data.task, data.image_size, plan)
        directory = root / f"{self.generator}-{key}"
        loaded = cache.load_cached(directory, device) if self.settings.cache.reuse else None
        if loaded is not None:
            return Trained(keyed(loaded[0], labels), loaded[1])
        models, card = self.train_models(context, jobs, plan)
        cache.save(directory, {key.name(labels): model for key, model in models.items()}, card)
        return Trained(models, card)

    # -- training ------------------------------------------------------------------------------------------------------
    def train_models(
        self, context: StrategyContext, jobs: dict[ModelKey, Job], plan: list[int]
    ) -> tuple[dict[ModelKey, GenerativeModel], dict]:
        """Train every model of `jobs` under its part of the budget, each kept at its best checkpoint (and guidance
        weight); the card records the split, the counted costs, what each model spent and its selection curve. Every
        budget problem is raised before anything trains."""
        data, task, device = context.dataset, context.dataset.task, context.device
        names = {key: key.name(task.labels) for key in jobs}
        with flops.isolated_rng(device):  # each model is seeded; the RNG state after building them stays as it was
            models = {key: self.build(job, task, data.image_size, context.seed) for key, job in jobs.items()}
        selection = RandomFeatures(task.channels).to(device)
        scorers = self.scorers(jobs, task, selection, context)
        costs = self.costs(models, jobs, device, scorers)
        scores = {key: self.settings.selection.points for key in scorers}
        sizes = {key: len(job.split) for key, job in jobs.items()}
        images = compute.images_per_model(plan, list(models))
        budgets = compute.training_budgets(self.generator, self.budget, sizes, models, costs, images, scores, device)
        features = self.monitor_features(context) if self.settings.monitor.monitored else None  # not generator time
        floors = self.monitor_floors(context, jobs, names, features)  # evaluation too, never generator time
        histories, guidance = {}, {}
        for key, job in jobs.items():
            histories[key] = self.fit_one(
                names[key], job, models[key], budgets.parts[key], scorers.get(key), features, context
            )
            if key in scorers and guided_scores(models[key]):
                guidance[key] = choose_guidance(models[key], scorers[key], histories[key], device)
                chosen = str(guidance[key]["chosen"])
                costs[key]["sample_flops_per_image"] = costs[key]["sample_flops_by_guidance"][chosen]
        guidance_scores = {key: len(record["curve"]) for key, record in guidance.items()}
        card = {
            "generator": self.generator,
            "generator_params": self.generator_params,
            "models": {names[key]: asdict(model.spec) for key, model in models.items()},
            "budget": compute.budget_record(self.budget, budgets, names, sizes, histories, costs, guidance_scores),
            "batch_size": self.generator_batch_size,
            "costs": {names[key]: cost for key, cost in costs.items()},
            "seed": context.seed,
            "conditioning": ALL in jobs,
            "dataset": data.name,
            "labels": list(task.labels),
            "task": task.kind,
            "image_size": data.image_size,
            "data_digest": data.train.digest(),
            "plan": plan,
            "histories": {names[key]: asdict(h) for key, h in histories.items()},
            "selection": self.selection_record(jobs, names, scorers, histories, selection),
            "guidance": {names[key]: record for key, record in guidance.items()} or None,
            "monitor": self.monitor_record(features, floors),
            "code": code_version(),
            "trained_by": self.code(task, data.image_size),
        }
        return models, card

    def build(self, job: Job, task: TaskSpec, image_size: int, seed: int) -> GenerativeModel:
        """A freshly initialised model for one job, seeded so its weights do not depend on what ran before."""
        torch.manual_seed(seed)
        spec = ImageSpec(task.channels, image_size, job.cond_dim, task.multilabel and job.cond_dim > 0)
        return create("generator", self.generator, spec=spec, **self.generator_params)

    def fit_one(
        self,
        name: str,
        job: Job,
        model: GenerativeModel,
        budget: GeneratorBudget,
        scorer: HoldoutScore | None,
        features: FeatureExtractor | None,
        context: StrategyContext,
    ) -> gt.FitHistory:
        """Train one model under its budget, with its checkpoint selection and (if any) the quality monitor."""
        monitor = self.monitor(context, job, features, budget.steps) if features is not None else None
        points = self.settings.selection.points
        selector = gt.CheckpointSelector(scorer, points) if scorer is not None else None
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
        self, jobs: dict[ModelKey, Job], task: TaskSpec, features: FeatureExtractor, context: StrategyContext
    ) -> dict[ModelKey, HoldoutScore]:
        """The checkpoint-selection score of every model with at least 2 held-out images of its classes (the others
        are used at their last iterate)."""
        return {
            key: HoldoutScore(
                job.held,
                conditioning(job.held.labels, task) if job.cond_dim else None,
                features,
                context.seed + SELECTION_SEED,
                context.device,
            )
            for key, job in jobs.items()
            if job.held is not None and len(job.held) >= 2
        }

    def costs(
        self,
        models: dict[ModelKey, GenerativeModel],
        jobs: dict[ModelKey, Job],
        device: torch.device,
        scorers: dict[ModelKey, HoldoutScore],
    ) -> dict[ModelKey, dict]:
        """Per model, counted on copies: FLOPs of one training step at its batch (the sampler's: min(batch size,
        training images)), of sampling one image, and of one checkpoint-selection score and its reference features;
        for a model offering guidance weights, also sampling one image at each weight (a guided sampler may run its
        network twice) and the guidance scores at those rates. Sampling is counted at the model's weight until the
        guidance choice replaces it with the chosen weight's rate."""
        costs = {}
        for key, model in models.items():
            batch = min(self.generator_batch_size, len(jobs[key].split))
            costs[key] = {
                "batch_size": batch,
                "step_flops": gt.step_flops(model, batch, device),
                "sample_flops_per_image": gt.sample_flops(model, device),
            }
            if key in scorers:
                costs[key] |= scorers[key].flops(costs[key]["sample_flops_per_image"])
                if guided_scores(model):
                    costs[key] |= guidance_costs(model, scorers[key], device)
        return costs

    # -- monitoring during training --------------------------------------------------------------------------------
    def monitor_features(self, context: StrategyContext) -> FeatureExtractor:
        """The early-stopping/tracking extractor, made from the cell's view of the data: it learns from the cell's
        training subset only (no validation, test or other training images)."""
        monitor = self.settings.monitor
        cell_view = dataclasses.replace(context.dataset, full_train=context.dataset.train)
        return make_extractor(monitor.extractor, cell_view, **monitor.params).to(context.device)

    def monitor(
        self, context: StrategyContext, job: Job, features: FeatureExtractor, model_steps: int | None
    ) -> gt.QualityMonitor:
        """FID of samples against real images of the model's classes over training (`MONITOR_REFERENCES`): early
        stopping on a plateau (`early_stop_every`), or only recorded (`track_quality_every`/`track_quality_at`)."""
        settings = self.settings.monitor
        reference = self.monitor_reference(context, job)
        task = context.dataset.task
        cond = conditioning(reference.labels, task).to(context.device) if job.cond_dim else None

        def score(model: GenerativeModel) -> float:
            generator = torch.Generator(device=context.device).manual_seed(context.seed + 2)
            fake = gt.to_uint8(gt.sample(model, cond, len(reference), generator)).cpu()
            return fid_kid(reference.images, fake, features, kid_subsets=1)["fid"]

        patience = settings.patience if settings.early_stop_every else None
        at = settings.scored_steps(model_steps, self.budget.steps)
        return gt.QualityMonitor(score=score, every=settings.every, patience=patience, at=at)

    def monitor_reference(self, context: StrategyContext, job: Job) -> Split:
        """Up to MONITOR_IMAGES of the model's own training images, or (`track_quality_on="val"`) the validation
        images of its classes, every one of them."""
        if self.settings.monitor.on == "val":
            val = context.dataset.val
            return val if job.group is None else val.subset(group_members(val.labels, context.dataset.task, job.group))
        draw = torch.Generator().manual_seed(context.seed + 3)
        index = torch.randperm(len(job.split), generator=draw)[:MONITOR_IMAGES].sort().values
        return job.split.subset(index)

    def monitor_floors(
        self,
        context: StrategyContext,
        jobs: dict[ModelKey, Job],
        names: dict[ModelKey, str],
        features: FeatureExtractor | None,
    ) -> dict[str, MonitorFloor] | None:
        """Scored against validation images: each model's in-distribution floor (benchmark/synthesis/floor.py),
        computed once, by model name. None when the monitor scores against training images, or nothing is scored."""
        if features is None or self.settings.monitor.on != "val":
            return None
        train = context.dataset.train
        return {
            names[key]: monitor_floor(self.monitor_reference(context, job), train, features, context.seed)
            for key, job in jobs.items()
        }

    def monitor_record(self, features: FeatureExtractor | None, floors: dict[str, MonitorFloor] | None) -> dict | None:
        """What scored the generator during training, and against validation images each model's floor (None:
        nothing scored it)."""
        if features is None:
            return None
        settings = self.settings.monitor
        record = {
            "extractor": features.describe(),
            "reference": MONITOR_REFERENCES[settings.on],
            "every": settings.every,
            "at_total_steps": self.track_quality_at,
            "patience": settings.patience if settings.early_stop_every else None,
        }
        if floors is not None:
            record["floor"] = {"rule": FLOOR_RULE, "per_model": {name: asdict(f) for name, f in floors.items()}}
        return record

    def selection_record(
        self,
        jobs: dict[ModelKey, Job],
        names: dict[ModelKey, str],
        scorers: dict[ModelKey, HoldoutScore],
        histories: dict[ModelKey, gt.FitHistory],
        features: FeatureExtractor,
    ) -> dict | None:
        """How each model's checkpoint was chosen: the rule, the feature space, and per model its held-out images,
        the (step, FID) curve and the step kept (None: the last iterate, with the reason). None without selection."""
        if not self.settings.selection.points:
            return None
        per_model = {}
        for key, job in jobs.items():
            history = histories[key]
            per_model[names[key]] = {
                "held_out": len(job.held) if job.held is not None else 0,
                "fakes": scorers[key].fakes if key in scorers else 0,
                "curve": [[step, score] for step, score in zip(history.selection_step, history.selection)],
                "selected_step": history.selected_step,
                "last_step": history.steps,
            }
            if key not in scorers:
                per_model[names[key]]["note"] = "fewer than 2 held-out images of its classes: the last iterate is used"
        return {
            "rule": SELECTION_RULE,
            "points": self.settings.selection.points,
            "holdout_fraction": self.settings.selection.holdout,
            "features": features.describe(),
            "per_model": per_model,
        }

    # -- synthesis -------------------------------------------------------------------------------------------------
    def sample(
        self,
        models: dict[ModelKey, GenerativeModel] | dict[str, GenerativeModel],
        task: TaskSpec,
        real: Split,
        plan: list[int],
        device: torch.device,
        seed: int,
    ) -> Split:
        """Generate `plan[g]` images for each group g, as uint8, with their labels (`models` by ModelKey or by card
        name). Every image any caller gets passes through here: samples with a non-finite value fail the generator
        (`GeneratorFailure`) before the cast to uint8 would hide them."""
        models = keyed(models, task.labels)
        generator = torch.Generator(device=device).manual_seed(seed + 1)
        label_generator = torch.Generator().manual_seed(seed + 1)
        images, labels, nonfinite = [], [], torch.zeros((), dtype=torch.long, device=device)
        for group, n in enumerate(plan):
            if n == 0:
                continue
            rows = label_rows(real, task, group, n, label_generator)
            model = models.get(ALL) or models.get(ModelKey(group))
            if model is None:
                raise MedAugBenchError(
                    f"no generator was trained for {task.labels[group]!r} (it has no training images, or the "
                    "generator in generator_dir was trained for another synthesis plan); train it with this policy"
                )
            cond = conditioning(rows, task).to(device) if ALL in models else None
            for start in range(0, n, compute.SAMPLE_CHUNK):
                chunk = min(compute.SAMPLE_CHUNK, n - start)
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
        trained = self.trained(context, plan)
        started = dev.clock(context.device)
        synthetic = self.sample(trained.models, task, data.train, plan, context.device, context.seed)
        synthesis_seconds = dev.clock(context.device) - started
        reason = gt.collapse_reason(synthetic.images[:512]) if len(synthetic) else None
        if reason:
            raise gt.GeneratorFailure(f"generator {self.generator}: {reason}; its samples were not used")
        self._preview = self.sample(
            trained.models,
            task,
            data.train,
            self.preview_plan(trained.models, task),
            context.device,
            context.seed + PREVIEW_SEED,
        )
        self._report = {
            "generator": trained.card,
            "synthesis": {"policy": self.policy, "plan": plan, "generated": len(synthetic)},
            "compute": self.compute(trained, context, plan, synthesis_seconds),
        }
        return synthetic

    def assess(self, context: StrategyContext, synthetic: Split | None) -> None:
        """The quality step (benchmark/synthesis/quality.py): the quality report and class fidelity of what
        `synthesize` made, into the report; an unrecognisable set is flagged or refused (`on_unrecognisable`)."""
        if synthetic is None or len(synthetic) == 0:
            return
        settings, data = self.settings.quality, context.dataset
        if settings.extractor is not None and len(synthetic) > 1:
            extractor = self.extractor(context)
            self._report["quality"] = assessment.quality_of(
                settings, data, synthetic, extractor, context.seed, context.device
            )
        if settings.fidelity:
            fit, held = self.holdout(data.train, data.task, context.seed)
            found = assessment.fidelity_of(
                settings, fit, held, synthetic, data, self._report.get("quality"), context.seed, context.device
            )
            self._report |= found
            assessment.act_on_flags(settings, self.generator, found["flags"])

    def extractor(self, context: StrategyContext) -> FeatureExtractor:
        """The reported-quality extractor: one per dataset and size (trained on the full training split), created
        once per strategy."""
        if self._extractor is None:
            settings = self.settings.quality
            self._extractor = make_extractor(settings.extractor, context.dataset, **settings.params).to(context.device)
        return self._extractor

    def preview_plan(
        self,
        models: dict[ModelKey, GenerativeModel] | dict[str, GenerativeModel],
        task: TaskSpec,
        per_class: int = PREVIEW_PER_CLASS,
    ) -> list[int]:
        """`per_class` images of every class a model was trained for (per-class models exist for the classes the plan
        samples only, so the preview shows those; a conditional model shows every class)."""
        keys = keyed(models, task.labels)
        return [per_class if ALL in keys or ModelKey(g) in keys else 0 for g in range(task.num_outputs)]

    def preview(self) -> Split | None:
        """The last synthesis's preview: PREVIEW_PER_CLASS images of every class a model was trained for
        (`preview_plan`), from their own generator seed (not part of the training set, its budget or its compute)."""
        return self._preview

    def compute(self, trained: Trained, context: StrategyContext, plan: list[int], seconds: float) -> dict:
        """The generator phases of the run's compute (`compute.generator_phases`); costs are counted now for a card
        older than them."""
        data, card, labels = context.dataset, trained.card, context.dataset.task.labels
        costs = card.get("costs")
        if not costs:
            jobs = self.jobs(data.train, data.task, plan, context.seed)
            counted = self.costs(trained.models, jobs, context.device, {})
            costs = {key.name(labels): cost for key, cost in counted.items()}
        images = compute.images_per_model(plan, list(trained.models))
        names = {ModelKey.parse(name, labels): name for name in card["histories"]}
        return compute.generator_phases(card, costs, {names[key]: n for key, n in images.items()}, seconds)

    def combine(self, real: Split, synthetic: Split | None) -> Split:
        if self.settings.policy.replaces_real:
            return synthetic
        return merge_splits(real, synthetic, self.generator)

    def prepare_for(self, dataset: LoadedDataset) -> None:
        self._augmenter.prepare_for(dataset)  # e.g. `augment_with="geometric"` follows the dataset's modality

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        return self._augmenter.augment(images, targets, generator)

    def report(self) -> dict:
        return self._report


def guided_scores(model: GenerativeModel) -> int:
    """How many guidance weights a model offers to choose from (0 when it offers fewer than two)."""
    candidates = model.guidance_candidates()
    return len(candidates) if len(candidates) > 1 else 0


def guidance_costs(model: GenerativeModel, scorer: HoldoutScore, device: torch.device) -> dict:
    """FLOPs of sampling one image at each guidance weight the model offers (by weight, as text: card keys), and of
    the guidance choice's scores (one per weight, each at its weight's rate), counted on copies."""
    by_weight = {}
    for weight in model.guidance_candidates():
        clone = copy.deepcopy(model)
        clone.set_guidance(weight)
        by_weight[str(float(weight))] = gt.sample_flops(clone, device)
    scores = sum(scorer.flops(rate)["selection_flops_per_score"] for rate in by_weight.values())
    return {"sample_flops_by_guidance": by_weight, "guidance_flops": scores}


def choose_guidance(model: GenerativeModel, scorer: HoldoutScore, history: gt.FitHistory, device: torch.device) -> dict:
    """After checkpoint selection: score each guidance weight the model offers with the same held-out score, keep
    the best (`set_guidance`, saved with the weights), and return the curve and the choice. Its time counts as
    selection (generator compute)."""
    started = dev.clock(device)
    curve = []
    for weight in model.guidance_candidates():
        model.set_guidance(weight)
        curve.append([float(weight), scorer(model)])
    chosen = float(min(curve, key=lambda point: point[1])[0])
    model.set_guidance(chosen)
    history.selection_seconds += dev.clock(device) - started
    return {"rule": "the guidance weight whose samples have the lowest selection FID", "curve": curve, "chosen": chosen}
