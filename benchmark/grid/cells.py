"""Grid → cells: every problem of a grid is found before any training starts, then each grid point becomes a
`Cell` (its coordinates and its fully resolved TrainConfig), identified by a hash of that config."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark import registry
from benchmark.data.dataset import DataOptions, dataset_source
from benchmark.errors import MedAugBenchError
from benchmark.generate.synthesis import SynthesisPolicy
from benchmark.grid.config import CELL_FIELDS, GridConfig
from benchmark.train.config import Budget, OptimConfig, TrainConfig

CELL_SCHEMA = 1
# TrainConfig fields newer than CELL_SCHEMA 1 (dotted: nested), with their defaults: left out of the id at the default
ADDED_FIELDS = {"compile": False, "total_budget": None, "budget.flops": None}
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - set(CELL_FIELDS)


@dataclass(frozen=True)
class Cell:
    """One grid point: where it sits in the leaderboard (`coords`) and exactly how it trains (`config`)."""

    coords: dict
    config: TrainConfig
    grid: str

    @property
    def cell_id(self) -> str:
        """Hash of the resolved config and coordinates; the device is left out so a run resumes on other hardware,
        and fields added after schema 1 count only when they differ from their default, so old records stay valid."""
        config = without_added_defaults({k: v for k, v in self.config.to_dict().items() if k != "device"})
        payload = json.dumps(
            {"schema": CELL_SCHEMA, "coords": self.coords, "config": config}, sort_keys=True, default=str
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def label(self) -> str:
        c = self.coords
        extra = "" if c["train_fraction"] == 1.0 else f" frac={c['train_fraction']:g}"
        extra += f" {c['policy']}" if c["policy"] else ""
        return f"{c['dataset']} · {c['strategy']} · {c['backbone']} · seed {c['seed']}{extra}"


def without_added_defaults(config: dict) -> dict:
    """`config` without the ADDED_FIELDS that still hold their default (the id an older schema-1 cell had)."""
    for path, default in ADDED_FIELDS.items():
        *parents, key = path.split(".")
        node = config
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict) and key in node and node[key] == default:
            del node[key]
    return config


def is_generative(strategy: str) -> bool:
    return strategy in registry.entries("generator")


def validate(grid: GridConfig, data_dir: Path | None, check_files: bool = True) -> dict[str, int]:
    """Check the whole grid and raise one error listing every problem; returns real training-set sizes per dataset.

    Checks names against the registries, strategy/backbone parameters by constructing them, budgets, fractions,
    seeds and policies; with `check_files`, also that every dataset's files are present (downloading official files
    if needed) and that pretrained weights load.
    """
    problems: list[str] = list(grid.budget.problems())

    def known(kind: str, name: str) -> bool:
        try:
            registry.get_entry(kind, name)
            return True
        except MedAugBenchError as error:
            problems.append(str(error))
            return False

    def attempt(what: str, build: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`build(*args, **kwargs)`, or None with a problem named after `what` when it rejects its arguments."""
        try:
            return build(*args, **kwargs)
        except MedAugBenchError as error:
            problems.append(f"{what}: {error}")
        except TypeError as error:
            problems.append(f"{what}: bad parameter ({error})")
        return None

    for key in ("datasets", "strategies", "backbones", "seeds", "train_fractions", "policies"):
        values = getattr(grid, key)
        if len(set(map(str, values))) != len(values):
            problems.append(f"{key} lists a value twice: {list(values)}")
    for seed in grid.seeds:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            problems.append(f"seeds must be non-negative integers, got {seed!r}")
    for fraction in grid.train_fractions:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            problems.append(f"train_fractions must lie in (0, 1], got {fraction!r}")
    for policy in grid.policies:
        try:
            SynthesisPolicy(kind=policy, counts={"0": 1} if policy == "fixed" else {})
        except MedAugBenchError as error:
            problems.append(str(error))
    bad_train = sorted(set(grid.train) - TRAIN_FIELDS)
    if bad_train:
        problems.append(f"[train] does not take {', '.join(bad_train)}; allowed: {', '.join(sorted(TRAIN_FIELDS))}")
    for label, variant in grid.variants.items():
        bad = sorted(set(variant.train) - TRAIN_FIELDS)
        if bad:
            problems.append(f"variants.{label}.train does not take {', '.join(bad)}")
    unused = sorted(set(grid.strategy_params) - set(grid.strategies) - {v.strategy for v in grid.variants.values()})
    if unused:
        problems.append(f"[strategy_params] names {', '.join(unused)}, which the grid does not run")

    generative_any = False
    for label in grid.strategies:
        variant = grid.variant(label)
        if not known("strategy", variant.strategy):
            continue
        generative_any |= is_generative(variant.strategy)
        for policy in grid.policies if is_generative(variant.strategy) else [None]:
            params = strategy_params(grid, label, policy, generator_steps=1)
            attempt(f"strategy {label}", registry.create, "strategy", variant.strategy, **params)
    if grid.baseline not in grid.strategies:
        problems.append(
            f"baseline {grid.baseline!r} is not among the strategies {list(grid.strategies)}; add it or set `baseline`"
        )
    pretrained = grid.train.get("pretrained", False) if check_files else False
    for backbone in grid.backbones:
        if known("backbone", backbone):
            attempt(
                f"backbone {backbone}",
                registry.create,
                "backbone",
                backbone,
                in_chans=1,
                num_classes=2,
                image_size=grid.train.get("size", 28),
                pretrained=pretrained,
                **grid.backbone_params.get(backbone, {}),
            )
    if not generative_any and grid.budget.has_generator_budget:
        problems.append("[budget] sets a generator budget but the grid runs no generative strategy")
    if generative_any and not problems and not (grid.budget.has_generator_budget or grid.budget.is_total):
        problems.append(
            "the grid runs generative strategies: set generator_steps, generator_seconds or generator_epochs "
            "in [budget]"
        )

    sizes: dict[str, int] = {}
    options = DataOptions(data_dir=data_dir, size=grid.train.get("size", 28))

    def train_size(plugin: str, params: dict) -> int | None:
        source = registry.create("dataset", plugin, **params)
        if check_files:
            source.prepare(options)
        split_sizes = source.info(options).split_sizes
        return int(split_sizes["train"]) if split_sizes else None

    for name in grid.datasets:
        plugin, params = dataset_source(name, grid.dataset_params.get(name, {}))
        if known("dataset", plugin):
            size = attempt(f"dataset {name}", train_size, plugin, params)
            if size is not None:
                sizes[name] = size
    for name in grid.datasets:
        if grid.budget.uses_epochs and name not in sizes and not any(name in p for p in problems):
            problems.append(
                f"dataset {name}: its training-set size is unknown, so epoch budgets cannot be converted; give steps"
            )
    if grid.budget.uses_epochs and "per_class_cap" in grid.train:
        problems.append(
            "epoch budgets with [train] per_class_cap: the capped size is unknown before loading; give steps"
        )
    attempt("[train]", TrainConfig, **train_fields({k: v for k, v in grid.train.items() if k in TRAIN_FIELDS}))
    if problems:
        raise MedAugBenchError(
            f"the grid {grid.name!r} has {len(problems)} problem(s); nothing was run:\n  - " + "\n  - ".join(problems)
        )
    return sizes


def strategy_params(grid: GridConfig, label: str, policy: str | None, **budget: object) -> dict:
    """Parameters of one strategy label: [strategy_params] of its plugin, then of the label, the variant's, the
    cell's policy and the generator budget."""
    variant = grid.variant(label)
    params = {
        **grid.strategy_params.get(variant.strategy, {}),
        **(grid.strategy_params.get(label, {}) if label != variant.strategy else {}),
        **variant.params,
    }
    if policy is not None:
        params["policy"] = policy
        params.update({k: v for k, v in budget.items() if v is not None})
    return params


def train_fields(train: dict) -> dict:
    """[train] values as TrainConfig arguments: lists become tuples, an `optim` table becomes an OptimConfig."""
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in train.items()}
    if isinstance(fields.get("optim"), dict):
        optim = {k: tuple(v) if isinstance(v, list) else v for k, v in fields["optim"].items()}
        fields["optim"] = OptimConfig(**optim)
    return fields


def _epochs_to_steps(epochs: float, n_train: int, fraction: float, batch_size: int) -> int:
    return max(1, math.ceil(epochs * max(1, round(n_train * fraction)) / batch_size))


def expand(grid: GridConfig, sizes: dict[str, int]) -> list[Cell]:
    """Every cell of a validated grid, in a stable order (dataset, fraction, backbone, strategy, policy, seed)."""
    cells = []
    for dataset in grid.datasets:
        plugin, dataset_params = dataset_source(dataset, grid.dataset_params.get(dataset, {}))
        for fraction in grid.train_fractions:
            for backbone in grid.backbones:
                for label in grid.strategies:
                    variant = grid.variant(label)
                    train = {**grid.train, **variant.train}
                    generative = is_generative(variant.strategy)
                    for policy in grid.policies if generative else [None]:
                        budgets = cell_budgets(
                            grid, label, policy, sizes.get(dataset), fraction, train.get("batch_size", 128), generative
                        )
                        for seed in grid.seeds:
                            classifier, total, generator_budget = budgets
                            config = TrainConfig(
                                dataset=plugin,
                                strategy=variant.strategy,
                                backbone=backbone,
                                seed=int(seed),
                                budget=classifier,
                                total_budget=total,
                                train_fraction=float(fraction),
                                strategy_params=strategy_params(grid, label, policy, **generator_budget),
                                backbone_params=dict(grid.backbone_params.get(backbone, {})),
                                dataset_params=dataset_params,
                                **train_fields(train),
                            )
                            coords = {
                                "dataset": dataset,
                                "strategy": label,
                                "base_strategy": variant.strategy,
                                "backbone": backbone,
                                "seed": int(seed),
                                "train_fraction": float(fraction),
                                "policy": policy,
                            }
                            cells.append(Cell(coords=coords, config=config, grid=grid.name))
    return cells


def cell_budgets(
    grid: GridConfig, label: str, policy: str | None, n_train: int | None, fraction: float, batch: int, generative: bool
) -> tuple[Budget, Budget | None, dict]:
    """A cell's classifier budget, its total (compute-matched grids) and the generator budget parameters of a
    generative strategy: epochs become steps of the real training set; a total gives a generative strategy's
    generator `generator_share` of it and its classifier the rest, a classic strategy's classifier all of it."""
    budget = grid.budget
    if budget.is_total:
        kind = budget.total_kind
        amount = float(getattr(budget, f"total_{kind}"))
        total = Budget(steps=None, **{kind: amount})
        if not generative:
            return total, total, {}
        generator = amount * budget.share
        return Budget(steps=None, **{kind: amount - generator}), total, {f"generator_{kind}": generator}
    steps = budget.classifier_steps
    if budget.classifier_epochs is not None:
        steps = _epochs_to_steps(budget.classifier_epochs, n_train, fraction, batch)
    classifier = Budget(steps=int(steps) if steps is not None else None, seconds=budget.classifier_seconds)
    if not generative:
        return classifier, None, {}
    generator_steps = budget.generator_steps
    if budget.generator_epochs is not None:
        generator_batch = strategy_params(grid, label, policy).get("generator_batch_size", 64)
        generator_steps = _epochs_to_steps(budget.generator_epochs, n_train, fraction, generator_batch)
    return classifier, None, {"generator_steps": generator_steps, "generator_seconds": budget.generator_seconds}
