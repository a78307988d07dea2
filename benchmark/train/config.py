"""Configuration dataclasses for one classifier training run; the resolved config is stored in every record."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from tqdm import tqdm

from benchmark.data.apportion import largest_remainder
from benchmark.errors import MedAugBenchError


@dataclass(frozen=True)
class OptimConfig:
    """Adam and a learning-rate schedule over the budget's progress (0 → 1), after `warmup_steps` of linear warmup.

    `wsd` (warmup–stable–decay) holds the base rate until the last `decay` fraction of the budget, then decays it
    linearly towards 0. Its warmup is in steps, not a fraction, so runs with different budgets share every step
    before their decay: a pilot forks each candidate budget from one run there (`benchmark.train.branches`)."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: Literal["cosine", "step", "constant", "wsd"] = "cosine"
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    warmup_steps: int = 0
    decay: float = 0.2

    def __post_init__(self) -> None:
        for name in ("lr", "weight_decay", "gamma", "decay"):
            if not _is_number(getattr(self, name)):
                raise MedAugBenchError(f"optim {name} must be a number, got {getattr(self, name)!r}")
        if not 0 < self.lr < math.inf:
            raise MedAugBenchError(
                f"the learning rate (--lr, optim lr) must be a positive finite number, got {self.lr}"
            )
        if not 0 <= self.weight_decay < math.inf:
            raise MedAugBenchError(f"optim weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if self.schedule not in SCHEDULES:
            raise MedAugBenchError(f"unknown optim schedule {self.schedule!r}; choose {', '.join(SCHEDULES)}")
        if not _is_whole(self.warmup_steps) or self.warmup_steps < 0 or not 0 < self.decay <= 1:
            raise MedAugBenchError(
                f"optim needs warmup_steps >= 0 and 0 < decay <= 1 (the decaying fraction of the budget), got "
                f"warmup_steps={self.warmup_steps}, decay={self.decay}"
            )

    def factor(self, progress: float, step: int = 0) -> float:
        """Multiplier of the base learning rate at optimizer step `step` (0-based) when `progress` of the budget is
        spent."""
        warmup = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        return warmup * self._schedule(progress)

    def _schedule(self, progress: float) -> float:
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        if self.schedule == "step":
            return self.gamma ** sum(progress >= m for m in self.milestones)
        if self.schedule == "wsd":
            return min(1.0, max(0.0, 1.0 - progress) / self.decay)
        return 1.0


MAX_SEED = 2**32 - 1
"""The largest seed: what torch and numpy accept (a classifier or generator seed is 0 to 2**32-1)."""
SCHEDULES = ("cosine", "step", "constant", "wsd")


def _is_number(value: object) -> bool:
    """A real number (True/False are not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_whole(value: object) -> bool:
    """A whole number (True/False are not)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


OPTIM_PRESETS = {
    # the seed paper: Adam lr 1e-3 with cosine annealing
    "seed_paper": OptimConfig(),
    # the MedMNIST v2 recipe: Adam lr 1e-3, decayed ×0.1 at 50 % and 75 % of training
    "medmnist": OptimConfig(schedule="step", milestones=(0.5, 0.75), gamma=0.1),
    # warmup–stable–decay, Adam lr 1e-3: 10 warmup steps, linear decay over the last 20 % of the budget (Hägele et
    # al. 2024 find 20 % matches cosine); a pilot scores many budgets of it from one run
    "wsd": OptimConfig(schedule="wsd", warmup_steps=10, decay=0.2),
}


@dataclass(frozen=True)
class Budget:
    """How long a model trains: optimizer steps, device-seconds of training (evaluation excluded), or FLOPs (counted
    per step with FlopCounterMode and turned into whole steps before training, `in_steps`)."""

    steps: int | None = 500
    seconds: float | None = None
    flops: float | None = None
    FLAGS: ClassVar[tuple[str, str, str]] = ("--steps", "--seconds", "--flops")
    KINDS: ClassVar[tuple[str, str, str]] = ("steps", "seconds", "flops")

    def __post_init__(self) -> None:
        steps_flag, seconds_flag, flops_flag = self.FLAGS
        if sum(getattr(self, kind) is not None for kind in self.KINDS) != 1:
            raise MedAugBenchError(f"give exactly one budget: {steps_flag} N, {seconds_flag} S or {flops_flag} F")
        if self.steps is not None and (not _is_whole(self.steps) or self.steps < 1):
            raise MedAugBenchError(
                f"{steps_flag} must be a positive number of optimizer steps (a whole number), got {self.steps}"
            )
        for flag, value in ((seconds_flag, self.seconds), (flops_flag, self.flops)):
            if value is not None and not (_is_number(value) and 0 < value < math.inf):
                raise MedAugBenchError(f"{flag} must be a positive finite number, got {value}")

    @property
    def kind(self) -> str:
        return next(kind for kind in self.KINDS if getattr(self, kind) is not None)

    @property
    def amount(self) -> float:
        """The budget in its own unit (steps, seconds or FLOPs)."""
        return getattr(self, self.kind)

    def of(self, kind: str, amount: float) -> Budget:
        """A budget of this class with `amount` of `kind` (steps, seconds or flops)."""
        return type(self)(**{k: (amount if k == kind else None) for k in self.KINDS})

    def in_steps(self, step_flops: int, what: str) -> Budget:
        """A FLOP budget as the whole steps of `step_flops` it pays for (others unchanged); less than one step is
        an error naming `what`."""
        if self.flops is None:
            return self
        steps = int(self.flops // step_flops)
        if steps < 1:
            raise MedAugBenchError(
                f"{what}: a budget of {self.flops:.4g} FLOPs is less than one training step ({step_flops:.4g} FLOPs, "
                f"counted); raise the FLOP budget (total_flops, or generator_share for the generator's part)"
            )
        return self.of("steps", steps)

    def spent(self, steps: int, seconds: float) -> float:
        """Fraction of the budget used after `steps` optimizer steps and `seconds` of training (≥ 1: exhausted)."""
        if self.flops is not None:
            raise ValueError("a FLOP budget is converted to steps (in_steps) before training")
        return steps / self.steps if self.steps is not None else seconds / self.seconds

    def progress_bar(self, desc: str, enabled: bool) -> tqdm:
        """A bar counting steps, or seconds for a time budget; `show` moves it."""
        return tqdm(
            total=self.steps or self.seconds,
            desc=desc,
            unit="step" if self.steps else "s",
            disable=not enabled,
            leave=False,
        )

    def show(self, bar: tqdm, steps: int, seconds: float) -> None:
        bar.update((steps if self.steps is not None else round(seconds, 1)) - bar.n)


@dataclass(frozen=True)
class GeneratorBudget(Budget):
    """A generative strategy's TOTAL generator budget in one cell (generator steps, device-seconds or FLOPs). One
    step is one generator update with its discriminator/critic updates, each on a fresh real batch. Models trained one
    per class share the total (`split`), so a per-class strategy spends what a conditional one does. A seconds or FLOP
    budget also pays for the synthesis after training (see benchmark/synthesis/compute.py)."""

    steps: int | None = 2000
    FLAGS: ClassVar[tuple[str, str, str]] = ("--generator-steps", "--generator-seconds", "--generator-flops")
    MIN_SHARE: ClassVar[float] = 0.05
    SPLIT_RULE: ClassVar[str] = (
        "the total is shared in proportion to each model's training images, each model getting at least "
        "min(5 %, 1/K) of it (K models; steps: at least 1), the others scaled down to keep the sum; steps are "
        "rounded by largest remainder so the parts sum to the total exactly"
    )

    def split(self, sizes: dict[str, int]) -> dict[str, GeneratorBudget]:
        """The part of this budget each model gets, by `SPLIT_RULE`, from its number of training images."""
        if len(sizes) == 1:
            return dict.fromkeys(sizes, self)
        if any(n < 1 for n in sizes.values()):
            raise ValueError(f"every model needs training images to share a budget, got {sizes}")
        total = self.amount
        minimum = min(self.MIN_SHARE * total, total / len(sizes))
        if self.steps is None:
            shares = _shares(total, sizes, minimum)
            return {name: self.of(self.kind, part) for name, part in shares.items()}
        if self.steps < len(sizes):
            raise MedAugBenchError(
                f"{self.FLAGS[0]} {self.steps} is the total of {len(sizes)} per-class models, less than one step each; "
                f"give at least {len(sizes)}"
            )
        shares = _shares(total, sizes, max(1, math.floor(minimum)))
        parts = largest_remainder(list(shares.values()), self.steps)
        return {name: GeneratorBudget(steps=part) for name, part in zip(shares, parts)}


def _shares(total: float, sizes: dict[str, int], minimum: float) -> dict[str, float]:
    """Shares of `total` proportional to `sizes`, raising every share below `minimum` to it and scaling the others
    down (water-filling); needs minimum × len(sizes) ≤ total."""
    raised: set[str] = set()
    while True:
        free = {name: n for name, n in sizes.items() if name not in raised}
        rest, weight = total - minimum * len(raised), sum(free.values())
        shares = {name: rest * n / weight for name, n in free.items()}
        low = {name for name, share in shares.items() if share < minimum}
        if not low:
            return {name: minimum if name in raised else shares[name] for name in sizes}
        raised |= low


def check_pilot_budgets(budgets: tuple[int, ...], budget: Budget, total: Budget | None) -> None:
    """Pilot budgets are whole classifier steps of a run whose budget is in steps (the run's own budget, the largest
    they may be, is checked where the run starts: a grid's [train] is checked before its budget is known)."""
    if budget.steps is None or total is not None:
        raise MedAugBenchError("pilot_budgets need a classifier budget in steps (classifier_steps), not a total budget")
    bad = [b for b in budgets if isinstance(b, bool) or not isinstance(b, int) or b < 1]
    if bad:
        raise MedAugBenchError(f"pilot_budgets must be whole numbers of classifier steps, at least 1; got {bad}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines one training run (with the seeds, it fixes the metrics on CPU).

    Two seeds: `generator_seed` (None: the same as `seed`, resolved by `data_seed`) fixes the low-data training
    subset, the strategy's generator training and its synthesis; `seed`, the classifier's, fixes its initial weights,
    the order of its batches and its augmentation draws (separate streams, `benchmark.data.sampling.STREAMS`), so
    that, for one `seed`, every strategy starts from the same weights and sees the same real images in the same order.

    `budget` is the classifier's. A compute-matched cell also sets `total_budget` (FLOPs or device-seconds), the
    cell's total of generator training + synthesis + classifier training: the classifier then trains on what the
    strategy leaves of the total, and `budget` is the part it is guaranteed (the total less the generator's share).
    """

    dataset: str = "pneumoniamnist"
    strategy: str = "none"
    backbone: str = "simple_cnn"
    seed: int = 0
    generator_seed: int | None = None
    budget: Budget = field(default_factory=Budget)
    total_budget: Budget | None = None
    batch_size: int = 128
    eval_every: int = 100
    optimizer: str = "seed_paper"
    optim: OptimConfig | None = None
    pretrained: bool | str = False
    size: int = 28
    image_size: int | None = None
    train_fraction: float = 1.0
    per_class_cap: int | None = None
    strategy_params: dict = field(default_factory=dict)
    backbone_params: dict = field(default_factory=dict)
    dataset_params: dict = field(default_factory=dict)
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    pilot_budgets: tuple[int, ...] = ()  # a pilot: also score these classifier budgets (branches)
    threads: int | None = None  # torch intra-op threads while the cell trains (None: the process's setting)
    robustness: bool = False  # also score the selected checkpoint on MedMNIST-C corruptions (evaluation time)

    def __post_init__(self) -> None:
        for flag, value in (("--seed", self.seed), ("--generator-seed", self.data_seed)):
            if not _is_whole(value) or not 0 <= value <= MAX_SEED:
                raise MedAugBenchError(f"{flag} must be an integer from 0 to 2**32-1, got {value!r}")
        self._check_counts()
        if not isinstance(self.optimizer, str) or self.optimizer not in OPTIM_PRESETS:
            raise MedAugBenchError(f"unknown optimizer preset {self.optimizer!r}; choose {', '.join(OPTIM_PRESETS)}")
        if self.optim is not None and not isinstance(self.optim, OptimConfig):
            raise MedAugBenchError(
                f"optim must be a table of OptimConfig fields (lr, schedule, ...), got {self.optim!r}"
            )
        if not _is_number(self.train_fraction) or not 0 < self.train_fraction <= 1:
            raise MedAugBenchError(f"--train-fraction must lie in (0, 1], got {self.train_fraction!r}")
        for name in ("amp", "channels_last", "compile", "robustness"):
            if not isinstance(getattr(self, name), bool):
                raise MedAugBenchError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("strategy_params", "backbone_params", "dataset_params"):
            if not isinstance(getattr(self, name), dict):
                raise MedAugBenchError(f"{name} must be a table of parameters, got {getattr(self, name)!r}")
        if self.pilot_budgets:
            check_pilot_budgets(self.pilot_budgets, self.budget, self.total_budget)
        total = self.total_budget
        if total is not None and (
            total.kind == "steps" or total.kind != self.budget.kind or self.budget.amount > total.amount
        ):
            raise MedAugBenchError(
                f"a total budget is FLOPs or seconds, of the same kind as the classifier's and at least as large; got "
                f"total {total.amount:g} {total.kind}, classifier {self.budget.amount:g} {self.budget.kind}"
            )

    def _check_counts(self) -> None:
        """Whole-number fields are whole numbers of at least their minimum (None where optional)."""
        counts = (
            ("--batch-size", self.batch_size, 1, False),
            ("--eval-every", self.eval_every, 1, False),
            ("--size", self.size, 1, False),
            ("--image-size", self.image_size, 1, True),
            ("--per-class-cap", self.per_class_cap, 1, True),
            ("threads", self.threads, 1, True),
        )
        for flag, value, minimum, optional in counts:
            if not (optional and value is None) and (not _is_whole(value) or value < minimum):
                raise MedAugBenchError(f"{flag} must be at least {minimum} (a whole number), got {value!r}")

    @property
    def data_seed(self) -> int:
        """The generator seed, resolved: it fixes the training subset, the generator's training and the synthesis."""
        return self.seed if self.generator_seed is None else self.generator_seed

    def resolved_optim(self) -> OptimConfig:
        return self.optim or OPTIM_PRESETS[self.optimizer]

    def to_dict(self) -> dict:
        """The full resolved config (optimizer preset expanded, generator seed resolved), JSON-ready."""
        data = dataclasses.asdict(self)
        data["optim"] = dataclasses.asdict(self.resolved_optim())
        data["generator_seed"] = self.data_seed
        return data
