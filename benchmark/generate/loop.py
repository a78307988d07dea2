"""The machinery every generator shares: budgeted, seeded training, the conditioning check before every training
step and sampling call (`check_cond`, `sample`), divergence and collapse checks, quality-based early stopping,
best-checkpoint selection (`CheckpointSelector`), and checkpoints (safetensors weights + a JSON card carrying the code
version). Models hold only architecture and loss.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from benchmark.data.sampling import BatchSampler
from benchmark.errors import MedAugBenchError
from benchmark.generate.checkpoints import CARD, WEIGHTS_DIGEST, DamagedCheckpoint, read_checkpoint, write_checkpoint
from benchmark.generate.model import GenerativeModel, ImageSpec
from benchmark.provenance import code_version
from benchmark.registry import create
from benchmark.train import device as dev
from benchmark.train import flops
from benchmark.train.config import GeneratorBudget

WEIGHTS = "generator.safetensors"
STRATEGY_CARD_KEYS = ("generator", "generator_params", "models", "histories", "dataset", "labels", "image_size")
"""What every card a generative strategy saves carries and its readers use (`load_strategy_card`)."""


class GeneratorFailure(MedAugBenchError):
    """The generator diverged or collapsed; its samples must not reach the classifier."""


@dataclass
class QualityMonitor:
    """Early stopping on a quality plateau (seed Algorithm 1, line 15): every `every` steps, and at the steps in
    `at`, `score(model)` is computed (lower is better, e.g. FID against the model's own training images); training
    stops after `patience` evaluations without improvement. `patience=None` only records the scores (quality over
    training, never stops)."""

    score: Callable[[GenerativeModel], float]
    every: int | None = 500
    patience: int | None = 3
    min_delta: float = 0.0
    at: tuple[int, ...] = ()

    def due(self, step: int) -> bool:
        """Whether the model is scored after `step` training steps."""
        return step in self.at or (self.every is not None and step % self.every == 0)


@dataclass
class CheckpointSelector:
    """Best-checkpoint selection, the generator's counterpart of the classifier's best-validation checkpoint:
    `score(model)` (lower is better; computed on images held out from the model's training data) is taken at
    `points` evenly spaced fractions of the model's budget, the last at its end (and when training stops early);
    `fit` keeps the best weights and loads them back when training ends. Its time is the strategy's: it counts
    against a seconds budget (`FitHistory.selection_seconds`)."""

    score: Callable[[GenerativeModel], float]
    points: int = 8

    def __post_init__(self) -> None:
        if self.points < 1:
            raise MedAugBenchError(f"checkpoint selection needs at least 1 scoring point, got {self.points}")


@dataclass
class FitHistory:
    """What one generator's training did: losses over steps, budget used (steps, and every real image drawn for
    them, e.g. n_critic batches per WGAN-GP step), quality, the checkpoint-selection curve and the step whose weights
    were kept (`selected_step`; None: the last iterate), and why it stopped. `seconds` is training time: the quality
    monitor's scoring (`monitor_seconds`) is evaluation, left out of it and of a seconds budget; checkpoint selection
    (`selection_seconds`) is left out of it but counts against a seconds budget."""

    steps: int = 0
    real_batches: int = 0
    images_seen: int = 0
    seconds: float = 0.0
    monitor_seconds: float = 0.0
    log_step: list[int] = field(default_factory=list)
    losses: dict[str, list[float]] = field(default_factory=dict)
    quality_step: list[int] = field(default_factory=list)
    quality: list[float] = field(default_factory=list)
    selection_step: list[int] = field(default_factory=list)
    selection: list[float] = field(default_factory=list)
    selection_seconds: float = 0.0
    selected_step: int | None = None
    stopped_early: bool = False
    failure: str | None = None


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] → uint8 [0, 255] (rounded, clamped)."""
    return images.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def collapse_reason(samples: torch.Tensor) -> str | None:
    """A reason if generated uint8 images are degenerate: all (nearly) the same image, or flat constant images."""
    if len(samples) < 2:
        return None
    flat = samples.float().flatten(1)
    if flat.std(dim=0).mean() < 1.0:
        return f"mode collapse: {len(samples)} samples are nearly identical (mean pixel std across samples < 1/255)"
    if flat.std(dim=1).max() < 1.0:
        return "collapse to constant images: every sample is flat (pixel std within each image < 1/255)"
    return None


def check_finite(generator: str, nonfinite: int, values: int) -> None:
    """Fail the generator (`GeneratorFailure`) if any of the `values` sampled values was NaN or infinite: cast to
    uint8 they would become black pixels the classifier trains on."""
    if nonfinite:
        raise GeneratorFailure(
            f"generator {generator}: {nonfinite / values:.2%} of its sampled values ({nonfinite} of {values}) are NaN "
            "or infinite; its samples were not used. Lower its learning rate or budget, or fix its sampler "
            "(`benchmark.testing.check_generator` finds this)"
        )


def check_cond(model: GenerativeModel, cond: torch.Tensor | None, n: int) -> None:
    """Raise if `cond` does not fit the model's spec: None for an unconditional model, else shape (n, cond_dim).
    The loop calls this before every training step and sampling call, so a model never has to."""
    cond_dim = model.spec.cond_dim
    if cond_dim == 0:
        if cond is not None:
            raise ValueError(f"{type(model).__name__} is unconditional (cond_dim 0) and takes cond=None")
    elif cond is None or tuple(cond.shape) != (n, cond_dim):
        got = None if cond is None else tuple(cond.shape)
        raise ValueError(f"{type(model).__name__} needs cond of shape ({n}, {cond_dim}) for {n} images; got {got}")


def sample(model: GenerativeModel, cond: torch.Tensor | None, n: int, generator: torch.Generator) -> torch.Tensor:
    """`model.sample` without gradients, after checking `cond` against its spec: every caller samples through here."""
    check_cond(model, cond, n)
    with torch.no_grad():
        return model.sample(cond, n, generator)


@dataclass
class _LossLog:
    """Loss sums since the last log point, averaged when the loop logs."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    count: int = 0

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0.0) + value.detach().float()
        self.count += 1

    def means(self) -> dict[str, float]:
        """The mean of each loss since the last call; starts a new interval."""
        means = {name: float(total) / self.count for name, total in self.sums.items()}
        self.sums, self.count = {}, 0
        return means


@dataclass
class _Plateau:
    """Best quality score so far and evaluations since it improved, for `QualityMonitor`'s early stopping."""

    monitor: QualityMonitor
    best: float = math.inf
    stale: int = 0

    def stop_after(self, score: float) -> bool:
        """Record a score; True when `patience` evaluations in a row did not improve on the best."""
        if score < self.best - self.monitor.min_delta:
            self.best, self.stale = score, 0
            return False
        self.stale += 1
        return self.monitor.patience is not None and self.stale >= self.monitor.patience


@dataclass
class _Best:
    """The best-scoring weights so far for `CheckpointSelector`, and how many of its points training has passed."""

    selector: CheckpointSelector
    passed: int = 0
    score: float = math.inf
    state: dict[str, torch.Tensor] | None = None

    def due(self, spent: float) -> bool:
        """Whether training, `spent` of its budget done (1: all), passed a scoring point not yet scored."""
        points = self.selector.points
        due = False
        while self.passed < points and spent >= (self.passed + 1) / points - 1e-9:
            self.passed, due = self.passed + 1, True
        return due

    def offer(self, model: GenerativeModel, history: FitHistory, device: torch.device) -> None:
        """Score the model now (timed into `selection_seconds`), record the point, keep its weights if best."""
        started = dev.clock(device)
        score = self.selector.score(model)
        model.train()
        if score < self.score:
            self.score, history.selected_step = score, history.steps
            self.state = {key: value.detach().clone() for key, value in model.state_dict().items()}
        history.selection_seconds += dev.clock(device) - started
        history.selection_step.append(history.steps)
        history.selection.append(score)

    def finish(self, model: GenerativeModel, history: FitHistory, device: torch.device) -> None:
        """Score the final weights if not scored yet, then load the best ones back."""
        if not history.selection_step or history.selection_step[-1] != history.steps:
            self.offer(model, history, device)
        if self.state is not None:
            model.load_state_dict(self.state)


def fit(
    model: GenerativeModel,
    images: torch.Tensor,
    cond: torch.Tensor | None,
    budget: GeneratorBudget,
    batch_size: int,
    device: torch.device,
    seed: int,
    progress: bool = True,
    desc: str = "generator",
    log_every: int = 50,
    monitor: QualityMonitor | None = None,
    selector: CheckpointSelector | None = None,
) -> FitHistory:
    """Train one model on uint8 images (N, C, H, W) with optional conditioning rows (N, K) under `budget`.

    Each step draws `model.real_batches_per_step` fresh batches (consecutive draws of the epoch permutation) and
    hands them stacked to `training_step`. Stops early on a non-finite loss (recorded as the failure; the losses are
    checked every `log_every` steps and where training ends, whatever the budget kind) or on a quality plateau.
    With a `selector`, the model ends with its best-scoring weights (the last iterate without one).
    """
    torch.manual_seed(seed)
    model.to(device).train()
    optimizers = model.make_optimizers()
    generator = torch.Generator(device=device).manual_seed(seed)
    data = images.to(device)
    cond = cond.to(device) if cond is not None else None
    sampler = BatchSampler(len(data), batch_size, generator)
    history, log = FitHistory(), _LossLog()
    plateau = _Plateau(monitor) if monitor is not None else None
    best = _Best(selector) if selector is not None else None
    started = dev.clock(device)
    bar = budget.progress_bar(desc, progress)
    elapsed = partial(_elapsed, budget, device, started, history)
    while budget.spent(history.steps, elapsed()) < 1:
        log.add(_train_step(model, data, cond, sampler, optimizers, generator, history))
        budget.show(bar, history.steps, elapsed())
        if history.steps % log_every == 0 or history.steps == budget.steps:
            history.failure = _record_losses(history, log.means(), bar)
            if history.failure:
                break
        if best is not None and best.due(budget.spent(history.steps, elapsed())):
            best.offer(model, history, device)
        if plateau is not None and plateau.monitor.due(history.steps):
            history.stopped_early = plateau.stop_after(_score(model, plateau.monitor, history, device))
            if history.stopped_early:
                break
    if history.failure is None and log.count:  # the budget ended between log points (any budget kind): check it too
        history.failure = _record_losses(history, log.means(), bar)
    bar.close()
    if best is not None and history.failure is None:
        best.finish(model, history, device)
    history.seconds = dev.clock(device) - started - history.monitor_seconds - history.selection_seconds
    model.eval()
    return history


def _elapsed(budget: GeneratorBudget, device: torch.device, started: float, history: FitHistory) -> float:
    """Seconds a seconds budget has spent: training and checkpoint selection, not the monitor's evaluation (0 for
    other budgets, which do not read it)."""
    if budget.seconds is None:
        return 0.0
    return dev.clock(device) - started - history.monitor_seconds


def _train_step(
    model: GenerativeModel,
    data: torch.Tensor,
    cond: torch.Tensor | None,
    sampler: BatchSampler,
    optimizers: dict[str, torch.optim.Optimizer],
    generator: torch.Generator,
    history: FitHistory,
) -> dict[str, torch.Tensor]:
    """Draw `real_batches_per_step` fresh batches, check their conditioning, take one step, count it."""
    index = torch.cat([sampler.next() for _ in range(model.real_batches_per_step)])
    batch_cond = cond[index] if cond is not None else None
    check_cond(model, batch_cond, len(index))
    losses = model.training_step(to_model_range(data[index]), batch_cond, optimizers, generator)
    history.steps += 1
    history.real_batches += model.real_batches_per_step
    history.images_seen += len(index)
    return losses


def _record_losses(history: FitHistory, means: dict[str, float], bar) -> str | None:
    """Log the mean losses at this step; the divergence reason if one is not finite."""
    history.log_step.append(history.steps)
    for name, value in means.items():
        history.losses.setdefault(name, []).append(value)
    bar.set_postfix({k: f"{v:.3g}" for k, v in means.items()})
    bad = [name for name, value in means.items() if not math.isfinite(value)]
    return f"divergence: non-finite {', '.join(bad)} by step {history.steps}" if bad else None


def _score(model: GenerativeModel, monitor: QualityMonitor, history: FitHistory, device: torch.device) -> float:
    """The monitor's quality score now, recorded with its step; its time is evaluation, not training."""
    scored = dev.clock(device)
    score = monitor.score(model)
    model.train()
    history.monitor_seconds += dev.clock(device) - scored
    history.quality_step.append(history.steps)
    history.quality.append(score)
    return score


def step_flops(model: GenerativeModel, batch_size: int, device: torch.device) -> int:
    """FLOPs of one training step at `batch_size` (`training_step` on `real_batches_per_step` stacked batches: every
    discriminator/critic update, the generator update and their backward passes), counted on a copy of the model
    with its own optimizers, a throwaway generator and every RNG state restored: the model itself is untouched."""
    spec = model.spec
    with flops.isolated_rng(device):
        clone = copy.deepcopy(model).to(device).train()
        optimizers = clone.make_optimizers()
        rows = batch_size * clone.real_batches_per_step
        images = torch.zeros(rows, spec.channels, spec.image_size, spec.image_size, device=device)
        cond = torch.zeros(rows, spec.cond_dim, device=device) if spec.cond_dim else None
        generator = torch.Generator(device=device).manual_seed(0)
        return flops.count_flops(lambda: clone.training_step(images, cond, optimizers, generator))


def sample_flops(model: GenerativeModel, device: torch.device) -> int:
    """FLOPs of sampling one image with the model's sampler (e.g. every DDIM step), counted on a copy."""
    return flops.count_flops(lambda: _sample_copy(model, 1, device))


def sample_seconds(model: GenerativeModel, n: int, device: torch.device) -> float:
    """Device-seconds of sampling `n` images from a copy of the model (weights do not change sampling time)."""
    started = dev.clock(device)
    _sample_copy(model, n, device)
    return dev.clock(device) - started


def _sample_copy(model: GenerativeModel, n: int, device: torch.device) -> torch.Tensor:
    """`n` samples from a copy of the model in eval mode, with a throwaway generator and the RNG states restored."""
    spec = model.spec
    with flops.isolated_rng(device):
        clone = copy.deepcopy(model).to(device).eval()
        cond = torch.zeros(n, spec.cond_dim, device=device) if spec.cond_dim else None
        return sample(clone, cond, n, torch.Generator(device=device).manual_seed(0))


def save(directory: Path, models: dict[str, GenerativeModel], card: dict) -> Path:
    """Write all models' weights (one safetensors file; keys prefixed by model name) and the card, atomically. The
    written card carries the code version (`provenance.code_version()`: package version, git commit) unless it
    already has one (a reloaded card keeps the code that trained it), and the weights' SHA-256, which is also set in
    `card`."""
    tensors = {f"{name}.{key}": value for name, model in models.items() for key, value in model.state_dict().items()}
    written = {"code": code_version(), **card}
    path = write_checkpoint(directory, tensors, written, WEIGHTS)
    card[WEIGHTS_DIGEST] = written[WEIGHTS_DIGEST]
    return path


def load(
    directory: Path, device: torch.device, build: Callable[..., GenerativeModel] | None = None
) -> tuple[dict[str, GenerativeModel], dict]:
    """Rebuild the models a card describes and load their weights (safetensors: no pickled code is run).
    `build(spec=...)` makes each model; by default the registered generator the card names, with its parameters.
    Weights that do not match the card's SHA-256, or a file or card that cannot be read, raise `DamagedCheckpoint`."""
    directory = Path(directory)
    if not (directory / CARD).is_file() or not (directory / WEIGHTS).is_file():
        raise MedAugBenchError(
            f"{directory} is not a saved generator (expected {CARD} and {WEIGHTS}); create one with `medaugbench synth`"
        )
    tensors, card = read_checkpoint(directory, WEIGHTS)
    try:
        if build is None:
            build = partial(create, "generator", card["generator"], **card["generator_params"])
        models = _built(card["models"], tensors, build)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise DamagedCheckpoint(
            f"{directory / CARD} does not describe loadable weights in {directory / WEIGHTS} "
            f"({type(error).__name__}: {error})"
        ) from None
    return {name: model.to(device).eval() for name, model in models.items()}, card


def load_strategy_card(directory: Path, device: torch.device) -> tuple[dict[str, GenerativeModel], dict]:
    """`load` for a generative strategy's checkpoint (the cache, `synth`), whose card must carry `STRATEGY_CARD_KEYS`:
    one without them is damaged (`DamagedCheckpoint`), not a KeyError later."""
    models, card = load(directory, device)
    missing = [key for key in STRATEGY_CARD_KEYS if key not in card]
    if missing:
        raise DamagedCheckpoint(f"{Path(directory) / CARD} lacks {', '.join(missing)}")
    return models, card


def load_saved(directory: Path, device: torch.device) -> tuple[dict[str, GenerativeModel], dict]:
    """`load_strategy_card` for a folder the user names (`generator_dir`, `quality --generator`): a damaged or altered
    one is one error naming the file and the fix."""
    try:
        return load_strategy_card(directory, device)
    except DamagedCheckpoint as error:
        raise DamagedCheckpoint(f"{error}; re-run `medaugbench synth --out {directory}` to write it again") from None


def _built(
    specs: dict[str, dict], tensors: dict[str, torch.Tensor], build: Callable[..., GenerativeModel]
) -> dict[str, GenerativeModel]:
    """Each model the card lists, built for its spec, with its prefixed weights loaded (on the CPU)."""
    models = {}
    for name, spec in specs.items():
        model = build(spec=ImageSpec(**spec))
        state = {key[len(name) + 1 :]: value for key, value in tensors.items() if key.startswith(name + ".")}
        model.load_state_dict(state)
        models[name] = model
    return models
