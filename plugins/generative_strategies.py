"""Every registered generator as a strategy: train it (or reuse the saved one), synthesise per the policy, merge.

Conditional generators are trained once on all images with their label vectors; unconditional ones (or any
generator with `conditioning=False`, the seed paper's ablation) are trained one per class, or per label for
multi-label data. Trained generators are saved under the cache keyed by everything that determines them
(generator, parameters, budget, seed, and a digest of the exact training images and labels), so a second run
with the same config and seed reuses them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import torch

from benchmark import generator_training as gt
from benchmark.datafiles import cache_dir
from benchmark.dataset import Split
from benchmark.errors import MedAugBenchError
from benchmark.features import FeatureExtractor, make_extractor
from benchmark.generative import GenerativeModel, ImageSpec, is_conditional
from benchmark.hookspecs import hookimpl
from benchmark.quality import fid_kid, quality_report
from benchmark.registry import create_generator, create_strategy, entries
from benchmark.strategy import Strategy, StrategyContext, merge_splits
from benchmark.synthesis import SynthesisPolicy, conditioning, group_members, label_rows
from benchmark.task import TaskSpec

SAMPLE_CHUNK = 256
ALL = "all"


def data_digest(split: Split) -> str:
    """Digest of the exact training images and labels a generator sees."""
    digest = hashlib.sha256()
    for tensor in (split.images, split.labels):
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class GenerativeStrategy(Strategy):
    """Synthetic-data augmentation with a registered generator (see the module docstring)."""

    name = "generative"
    generator: str = "cgan"
    generator_steps: int | None = 2000
    generator_seconds: float | None = None
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

    def __post_init__(self) -> None:
        if self.generator_seconds is not None and self.generator_steps == 2000:
            self.generator_steps = None  # a seconds budget replaces the default steps budget
        self._budget = gt.GeneratorBudget(steps=self.generator_steps, seconds=self.generator_seconds)
        self._policy = SynthesisPolicy(kind=self.policy, ratio=self.ratio, multiplier=self.multiplier, counts=dict(self.counts))
        self._augmenter = create_strategy(self.augment_with)
        self._report: dict = {}
        if self.generator_batch_size < 1:
            raise MedAugBenchError("generator_batch_size must be at least 1")
        if (self.early_stop_every or self.track_quality_every) and self.quality_extractor is None:
            raise MedAugBenchError("early stopping and quality tracking score the generator with a quality extractor; set quality_extractor")
        self._extractor: FeatureExtractor | None = None

    def extractor(self, context: StrategyContext) -> FeatureExtractor:
        """The quality extractor for this dataset, created once per strategy."""
        if self._extractor is None:
            self._extractor = make_extractor(self.quality_extractor, context.dataset, **self.quality_params).to(context.device)
        return self._extractor

    def monitor(self, context: StrategyContext, group: int | None) -> gt.QualityMonitor | None:
        """FID between samples and held-out real (validation) images over training: early stopping on a plateau
        (`early_stop_every`), or only recorded (`track_quality_every`, the seed paper's Figure 3)."""
        every = self.early_stop_every or self.track_quality_every
        if every is None:
            return None
        data, task = context.dataset, context.dataset.task
        held_out = data.val if group is None else data.val.subset(group_members(data.val.labels, task, group))
        held_out = held_out.subset(torch.arange(min(len(held_out), 256)))
        cond = conditioning(held_out.labels, task).to(context.device) if group is None else None
        features = self.extractor(context)  # built (maybe trained) now, so it is not timed as generator training

        def score(model: GenerativeModel) -> float:
            generator = torch.Generator(device=context.device).manual_seed(context.seed + 2)
            fake = gt.to_uint8(model.sample(cond, len(held_out), generator)).cpu()
            return fid_kid(held_out.images, fake, features, kid_subsets=1)["fid"]

        patience = self.early_stop_patience if self.early_stop_every else None
        return gt.QualityMonitor(score=score, every=every, patience=patience)

    # -- training or reuse -------------------------------------------------------------------------------
    def per_group(self) -> bool:
        """Unconditional generators, and conditional ones with conditioning off, are trained one per group."""
        return not (is_conditional(entries("generator")[self.generator].factory) and self.conditioning)

    def key(self, real: Split, seed: int, image_size: int) -> str:
        identity = {
            "generator": self.generator, "params": self.generator_params, "budget": asdict(self._budget),
            "batch_size": self.generator_batch_size, "conditioning": self.conditioning, "seed": seed,
            "image_size": image_size, "data": data_digest(real),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def fitted(self, context: StrategyContext) -> tuple[dict[str, GenerativeModel], dict]:
        """The trained models and their card: loaded from `generator_dir` or the cache, else trained and saved."""
        data, device = context.dataset, context.device
        if self.generator_dir is not None:
            return gt.load(Path(self.generator_dir), device)
        root = context.work_dir or cache_dir() / "generators"
        directory = root / f"{self.generator}-{self.key(data.train, context.seed, data.image_size)}"
        if self.reuse and (directory / gt.CARD).is_file():
            models, card = gt.load(directory, device)
            card["reused_from"] = str(directory)
            return models, card
        models, card = self.train_models(context)
        gt.save(directory, models, card)
        card["saved_to"] = str(directory)
        return models, card

    def train_models(self, context: StrategyContext) -> tuple[dict[str, GenerativeModel], dict]:
        data, task = context.dataset, context.dataset.task
        real = data.train
        jobs: dict[str, tuple[torch.Tensor, torch.Tensor | None, int]] = {}
        if self.per_group():
            for group in range(task.num_outputs):
                members = group_members(real.labels, task, group)
                if len(members) == 0:
                    continue
                jobs[f"group_{group}"] = (real.images[members], None, 0)
        else:
            jobs[ALL] = (real.images, conditioning(real.labels, task), task.num_outputs)
        models, histories, specs = {}, {}, {}
        for name, (images, cond, cond_dim) in jobs.items():
            spec = ImageSpec(channels=task.channels, image_size=data.image_size, cond_dim=cond_dim)
            torch.manual_seed(context.seed)
            model = create_generator(self.generator, spec=spec, **self.generator_params)
            history = gt.fit(model, images, cond, self._budget, self.generator_batch_size, context.device, context.seed,
                             progress=context.progress, desc=f"{self.generator} {name}",
                             monitor=self.monitor(context, None if name == ALL else int(name.split("_")[1])))
            if history.failure:
                raise gt.GeneratorFailure(f"generator {self.generator} ({name}) stopped: {history.failure}")
            models[name], histories[name], specs[name] = model, asdict(history), asdict(spec)
        card = {
            "generator": self.generator, "generator_params": self.generator_params, "models": specs,
            "budget": asdict(self._budget), "batch_size": self.generator_batch_size, "seed": context.seed,
            "conditioning": not self.per_group(), "dataset": data.name, "labels": list(task.labels),
            "task": task.kind, "image_size": data.image_size, "data_digest": data_digest(real), "histories": histories,
        }
        return models, card

    # -- synthesis -----------------------------------------------------------------------------------------
    def sample(self, models: dict[str, GenerativeModel], task: TaskSpec, real: Split, plan: list[int],
               device: torch.device, seed: int) -> Split:
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
                part = model.sample(cond[start : start + chunk] if cond is not None else None, chunk, generator)
                images.append(gt.to_uint8(part).cpu())
            labels.append(rows)
        if not images:
            return Split(real.images[:0], real.labels[:0])
        return Split(torch.cat(images), torch.cat(labels))

    def synthesize(self, context: StrategyContext) -> Split:
        data, task = context.dataset, context.dataset.task
        models, card = self.fitted(context)
        if card.get("image_size", data.image_size) != data.image_size or card.get("labels", list(task.labels)) != list(task.labels):
            raise MedAugBenchError(
                f"the saved generator was trained on {card.get('dataset')} at {card.get('image_size')} px; "
                f"this run uses {data.name} at {data.image_size} px"
            )
        plan = self._policy.plan(data.train.class_counts(task), task)
        synthetic = self.sample(models, task, data.train, plan, context.device, context.seed)
        reason = gt.collapse_reason(synthetic.images[:512]) if len(synthetic) else None
        if reason:
            raise gt.GeneratorFailure(f"generator {self.generator}: {reason}; its samples were not used")
        self._report = {"generator": card, "synthesis": {"policy": self.policy, "plan": plan, "generated": len(synthetic)}}
        if self.quality_extractor is not None and len(synthetic) > 1:
            self._report["quality"] = quality_report(data.train, data.test, synthetic, task, self.extractor(context),
                                                     max_images=self.quality_images, seed=context.seed)
        return synthetic

    def combine(self, real: Split, synthetic: Split | None) -> Split:
        if self._policy.replaces_real:
            return synthetic
        return merge_splits(real, synthetic, self.generator)

    def augment(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        return self._augmenter.augment(images, targets, generator)

    def report(self) -> dict:
        return self._report


@hookimpl
def register_strategies(register) -> None:
    for name, entry in entries("generator").items():
        register(name, partial(GenerativeStrategy, generator=name), f"synthetic data from {name}: {entry.description}")
