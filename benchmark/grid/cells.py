"""Grid → cells: every problem of a grid is found before any training starts, then each grid point becomes a
`Cell` (its coordinates and its fully resolved TrainConfig), identified by a hash of that config."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark import registry
from benchmark.data import files
from benchmark.data.dataset import DataOptions, dataset_source
from benchmark.errors import MedAugBenchError
from benchmark.generate.synthesis import SynthesisPolicy
from benchmark.grid.config import CELL_FIELDS, CLASSIFIER_SEED_STRIDE, GridConfig, name_problem
from benchmark.train.config import MAX_SEED, Budget, OptimConfig, TrainConfig

CELL_SCHEMA = 1
# TrainConfig fields newer than CELL_SCHEMA 1 (dotted: nested), with their defaults: left out of the id at the default
ADDED_FIELDS = {"compile": False, "total_budget": None, "budget.flops": None}
# added with the pilot's budget branches and the warmup/WSD schedule
ADDED_FIELDS |= {"pilot_budgets": (), "optim.warmup_steps": 0, "optim.decay": 0.2}
# added with the cell's own thread count: an unpinned cell and one at 1 thread (what every published run used, its
# grid.json says) keep the id of the records written before threads were recorded
ADDED_FIELDS |= {"threads": None}
# added with MedMNIST-C robustness scoring: a cell that does not ask for it keeps its id
ADDED_FIELDS |= {"robustness": False}
SAME_ID_AS_DEFAULT = {"threads": (1,)}
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - set(CELL_FIELDS)
OPTIM_FIELDS = {f.name for f in dataclasses.fields(OptimConfig)}


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
        coords, config = without_implied_generator_seed(self.coords), without_implied_generator_seed(config)
        payload = json.dumps({"schema": CELL_SCHEMA, "coords": coords, "config": config}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def label(self) -> str:
        c = self.coords
        extra = "" if c["train_fraction"] == 1.0 else f" frac={c['train_fraction']:g}"
        extra += f" {c['policy']}" if c["policy"] else ""
        generator = c.get("generator_seed", c["seed"])
        seed = f"seed {c['seed']}" + (f" (generator {generator})" if generator != c["seed"] else "")
        return f"{c['dataset']} · {c['strategy']} · {c['backbone']} · {seed}{extra}"


def without_added_defaults(config: dict) -> dict:
    """`config` without the ADDED_FIELDS that still hold their default, or a value SAME_ID_AS_DEFAULT gives the
    default's id (the id an older schema-1 cell had)."""
    for path, default in ADDED_FIELDS.items():
        *parents, key = path.split(".")
        node = config
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if (
            isinstance(node, dict)
            and key in node
            and (node[key] == default or node[key] in SAME_ID_AS_DEFAULT.get(path, ()))
        ):
            del node[key]
    return config


def without_implied_generator_seed(fields: dict) -> dict:
    """`fields` (coordinates or a config) without a `generator_seed` equal to its `seed`: what every cell meant
    before the two seeds were split, so such a cell keeps the id it had."""
    if fields.get("generator_seed") == fields.get("seed"):
        return {k: v for k, v in fields.items() if k != "generator_seed"}
    return fields


def is_generative(strategy: str) -> bool:
    """Whether the strategy is a registered generator's (it trains one and synthesises images)."""
    return strategy in registry.entries("generator")


@dataclass
class Validation:
    """What the checks of `validate` share: the grid, where its files are, what earlier checks found (in order) and
    the real training-set size per dataset (filled by `check_datasets`)."""

    grid: GridConfig
    data_dir: Path | None
    check_files: bool
    build: bool = True
    problems: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)


def validate(grid: GridConfig, data_dir: Path | None, check_files: bool = True, build: bool = True) -> dict[str, int]:
    """Check the whole grid and raise one error listing every problem; returns real training-set sizes per dataset.

    Runs every check of CHECKS in turn (names against the registries, strategy/backbone parameters by constructing
    them, budgets, fractions, seeds and policies; with `check_files`, also that every dataset's files are present,
    downloading official files if needed, and that pretrained weights load), then raises once if any found a problem.
    With `build=False` (a dry run) strategies and backbones are checked by name and parameter names only
    (`registry.check`), so their modules, and torch, are not imported; their values are checked when the run starts.
    """
    state = Validation(grid, data_dir, check_files, build)
    for check in CHECKS:
        state.problems += check(state)
    if state.problems:
        raise MedAugBenchError(
            f"the grid {grid.name!r} has {len(state.problems)} problem(s); nothing was run:\n  - "
            + "\n  - ".join(state.problems)
        )
    return state.sizes


def _unknown(kind: str, name: str) -> list[str]:
    """No problem if `name` is registered for `kind`, else the registry's message (with the closest name)."""
    try:
        registry.get_entry(kind, name)
    except MedAugBenchError as error:
        return [str(error)]
    return []


def _attempt(what: str, build: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
    """`build(*args, **kwargs)` and no problem, or None and a problem named after `what` when it rejects them."""
    try:
        return build(*args, **kwargs), []
    except MedAugBenchError as error:
        return None, [f"{what}: {error}"]
    except TypeError as error:
        return None, [f"{what}: bad parameter ({error})"]


def check_name(state: Validation) -> list[str]:
    """The grid's name is a plain folder name (runs/<name> is its default results folder)."""
    problem = name_problem(state.grid.name)
    return [problem] if problem is not None else []


def check_cache_dir(state: Validation) -> list[str]:
    """The cache folder (downloads, trained generators, feature extractors) is a folder, or can become one."""
    folder = files.cache_dir()
    existing = next((path for path in (folder, *folder.parents) if path.exists()), None)
    if existing is None or existing.is_dir():
        return []
    return [
        f"the cache folder {folder} ({files.CACHE_DIR_ENV}) cannot be created: {existing} is a file; point "
        f"{files.CACHE_DIR_ENV} at a folder (it holds downloads, trained generators and feature extractors)"
    ]


def check_budget(state: Validation) -> list[str]:
    """The [budget] table is consistent: one budget per model (or one total), positive amounts, a share in (0, 1)."""
    return list(state.grid.budget.problems())


def check_repeated_values(state: Validation) -> list[str]:
    """No axis of the grid lists a value twice (it would make two cells with one id)."""
    problems = []
    for key in ("datasets", "strategies", "backbones", "seeds", "generator_seeds", "train_fractions", "policies"):
        values = getattr(state.grid, key) or ()
        if len(set(map(str, values))) != len(values):
            problems.append(f"{key} lists a value twice: {list(values)}")
    return problems


def _bad_seeds(key: str, seeds: tuple) -> list[str]:
    """A problem for each of `seeds` that is no integer from 0 to 2**32-1 (what torch and numpy accept as a seed)."""
    return [
        f"{key} must be integers from 0 to 2**32-1, got {seed!r}"
        for seed in seeds
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED
    ]


def _classifier_seed_problems(grid: GridConfig) -> list[str]:
    """`classifier_seeds` is a positive count or a non-empty list of distinct seeds, and goes with generator seeds."""
    given = grid.classifier_seeds
    if given is None:
        return []
    if grid.generator_seeds is None:
        return ["classifier_seeds needs generator_seeds (the generator seeds they train with); add generator_seeds"]
    if isinstance(given, tuple):
        if not given:
            return ["classifier_seeds must not be empty: give a count (e.g. 4) or a list of seeds"]
        repeated = [f"classifier_seeds lists a value twice: {list(given)}"] if len(set(given)) != len(given) else []
        return _bad_seeds("classifier_seeds", given) + repeated
    if isinstance(given, bool) or not isinstance(given, int) or given < 1:
        return [f"classifier_seeds must be a count of at least 1 or a list of seeds, got {given!r}"]
    return []


def check_seeds(state: Validation) -> list[str]:
    """Seeds are integers from 0 to 2**32-1; `generator_seeds` lists at least one; `classifier_seeds` goes with
    them (a positive count or a list of distinct seeds); a count's derived seeds fit and are distinct in the grid."""
    grid = state.grid
    if grid.generator_seeds is None:
        return _bad_seeds("seeds", grid.seeds) + _classifier_seed_problems(grid)
    problems = _bad_seeds("generator_seeds", grid.generator_seeds) + _classifier_seed_problems(grid)
    if not grid.generator_seeds:
        problems.append("generator_seeds must not be empty: list at least one seed")
    if problems or not isinstance(grid.classifier_seeds, int):
        return problems
    derived = [c for _, c in grid.seed_runs()]
    if len(set(derived)) != len(derived) or max(derived) > MAX_SEED:
        problems.append(
            f"classifier_seeds = {grid.classifier_seeds} gives generator seed g the seeds g + "
            f"{CLASSIFIER_SEED_STRIDE} k, which must be distinct and at most 2**32-1 (got {derived}); use generator "
            f"seeds below {CLASSIFIER_SEED_STRIDE}, or a list of classifier seeds"
        )
    return problems


def _listed_fractions(grid: GridConfig) -> list[object]:
    return [fraction for fractions in grid.dataset_fractions.values() for fraction in fractions]


def check_dataset_fractions(state: Validation) -> list[str]:
    """`[dataset_fractions]` names datasets of the grid, each with at least one fraction."""
    grid = state.grid
    unknown = sorted(set(grid.dataset_fractions) - set(grid.datasets))
    empty = sorted(name for name, fractions in grid.dataset_fractions.items() if not fractions)
    return [f"[dataset_fractions] names {name!r}, which the grid does not run" for name in unknown] + [
        f"[dataset_fractions] gives {name!r} no fraction" for name in empty
    ]


def check_fractions(state: Validation) -> list[str]:
    """Training fractions lie in (0, 1]."""
    return [
        f"train_fractions must lie in (0, 1], got {fraction!r}"
        for fraction in [*state.grid.train_fractions, *_listed_fractions(state.grid)]
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1
    ]


def check_policies(state: Validation) -> list[str]:
    """Every synthesis policy is one SynthesisPolicy knows."""
    problems = []
    for policy in state.grid.policies:
        try:
            SynthesisPolicy(kind=policy, counts={"0": 1} if policy == "fixed" else {})
        except MedAugBenchError as error:
            problems.append(str(error))
    return problems


def check_train_fields(state: Validation) -> list[str]:
    """[train] and each variant's train table name only TrainConfig fields a grid may set."""
    problems = []
    bad_train = sorted(set(state.grid.train) - TRAIN_FIELDS)
    if bad_train:
        problems.append(f"[train] does not take {', '.join(bad_train)}; allowed: {', '.join(sorted(TRAIN_FIELDS))}")
    for label, variant in state.grid.variants.items():
        bad = sorted(set(variant.train) - TRAIN_FIELDS)
        if bad:
            problems.append(f"variants.{label}.train does not take {', '.join(bad)}")
    return problems


def check_unused_strategy_params(state: Validation) -> list[str]:
    """[strategy_params] names only strategies (or labels) the grid runs: anything else is likely a typo."""
    grid = state.grid
    unused = sorted(set(grid.strategy_params) - set(grid.strategies) - {v.strategy for v in grid.variants.values()})
    return [f"[strategy_params] names {', '.join(unused)}, which the grid does not run"] if unused else []


def check_strategies(state: Validation) -> list[str]:
    """Every strategy label names a registered strategy that accepts its parameters (under each policy)."""
    grid, problems = state.grid, []
    for label in grid.strategies:
        variant = grid.variant(label)
        unknown = _unknown("strategy", variant.strategy)
        problems += unknown
        if unknown:
            continue
        for policy in grid.policies if is_generative(variant.strategy) else [None]:
            params = strategy_params(grid, label, policy, generator_steps=1)
            make = registry.create if state.build else registry.check
            problems += _attempt(f"strategy {label}", make, "strategy", variant.strategy, **params)[1]
    return problems


def check_baseline(state: Validation) -> list[str]:
    """The baseline the statistics compare against is one of the grid's strategies."""
    grid = state.grid
    if grid.baseline in grid.strategies:
        return []
    return [f"baseline {grid.baseline!r} is not among the strategies {list(grid.strategies)}; add it or set `baseline`"]


def check_backbones(state: Validation) -> list[str]:
    """Every backbone is registered and builds with its parameters (and, with `check_files`, its pretrained weights)."""
    grid, problems = state.grid, []
    pretrained = grid.train.get("pretrained", False) if state.check_files else False
    for backbone in grid.backbones:
        unknown = _unknown("backbone", backbone)
        problems += unknown
        if not unknown:
            problems += _attempt(
                f"backbone {backbone}",
                registry.create if state.build else registry.check,
                "backbone",
                backbone,
                in_chans=1,
                num_classes=2,
                image_size=grid.train.get("size", 28),
                pretrained=pretrained,
                **grid.backbone_params.get(backbone, {}),
            )[1]
    return problems


def check_generator_budget(state: Validation) -> list[str]:
    """A generator budget goes with generative strategies, and they need one (asked only of an otherwise sound
    grid, since an unknown strategy name may be the cause)."""
    grid = state.grid
    known = registry.entries("strategy")
    generative_any = any(
        grid.variant(label).strategy in known and is_generative(grid.variant(label).strategy)
        for label in grid.strategies
    )
    if not generative_any and grid.budget.has_generator_budget:
        return ["[budget] sets a generator budget but the grid runs no generative strategy"]
    if generative_any and not state.problems and not (grid.budget.has_generator_budget or grid.budget.is_total):
        return [
            "the grid runs generative strategies: set generator_steps, generator_seconds or generator_epochs "
            "in [budget]"
        ]
    return []


def check_datasets(state: Validation) -> list[str]:
    """Every dataset is registered and answers for its size (with `check_files`, after preparing its files); the
    sizes go into `state.sizes`."""
    grid, problems = state.grid, []
    options = DataOptions(data_dir=state.data_dir, size=grid.train.get("size", 28))

    def train_size(plugin: str, params: dict) -> int | None:
        source = registry.create("dataset", plugin, **params)
        if state.check_files:
            source.prepare(options)
        split_sizes = source.info(options).split_sizes
        return int(split_sizes["train"]) if split_sizes else None

    for name in grid.datasets:
        plugin, params = dataset_source(name, grid.dataset_params.get(name, {}))
        unknown = _unknown("dataset", plugin)
        problems += unknown
        if not unknown:
            size, found = _attempt(f"dataset {name}", train_size, plugin, params)
            problems += found
            if size is not None:
                state.sizes[name] = size
    return problems


def check_epoch_budgets(state: Validation) -> list[str]:
    """Epoch budgets become steps through each dataset's training-set size, so that size must be known."""
    grid = state.grid
    if not grid.budget.uses_epochs:
        return []
    problems: list[str] = []
    for name in grid.datasets:
        if name not in state.sizes and not any(name in p for p in state.problems + problems):
            problems.append(
                f"dataset {name}: its training-set size is unknown, so epoch budgets cannot be converted; give steps"
            )
    if "per_class_cap" in grid.train:
        problems.append(
            "epoch budgets with [train] per_class_cap: the capped size is unknown before loading; give steps"
        )
    return problems


def check_train_table(state: Validation) -> list[str]:
    """The [train] values, and each variant's over them, make a valid TrainConfig (optimizer preset, sizes, ...)."""
    tables = {"[train]": state.grid.train}
    tables |= {f"variants.{label}.train": {**state.grid.train, **v.train} for label, v in state.grid.variants.items()}
    return [problem for what, table in tables.items() for problem in _attempt(what, _train_config, table)[1]]


def _train_config(train: dict) -> TrainConfig:
    """A TrainConfig from a [train] table's values (the fields a grid may set)."""
    return TrainConfig(**train_fields({k: v for k, v in train.items() if k in TRAIN_FIELDS}))


def check_pilot_budgets(state: Validation) -> list[str]:
    """[train] pilot_budgets go with a classifier_steps budget at least as large as each (the run they branch from)."""
    budgets, steps = state.grid.train.get("pilot_budgets") or [], state.grid.budget.classifier_steps
    if not budgets or not isinstance(budgets, list | tuple):
        return []
    if steps is None:
        return ["[train] pilot_budgets need [budget] classifier_steps (the pilot's run, the largest budget measured)"]
    over = [b for b in budgets if isinstance(b, int | float) and b > steps]
    return [f"[train] pilot_budgets {over} exceed classifier_steps {steps}; raise it to the largest"] if over else []


def check_one_schedule(state: Validation) -> list[str]:
    """Every strategy trains under the grid's one optimizer and schedule: a variant may not set its own (it would get
    a schedule the other strategies are denied, and a pilot's budgets would not hold for it)."""
    return [
        f"variants.{label}.train sets {', '.join(sorted(own))}: every strategy trains with [train]'s optimizer; drop it"
        for label, variant in state.grid.variants.items()
        if (own := set(variant.train) & {"optimizer", "optim"})
    ]


def check_robustness(state: Validation) -> list[str]:
    """With `robustness = true`, the MedMNIST-C package is installed and covers every dataset of the grid."""
    asked = state.grid.train.get("robustness") or any(v.train.get("robustness") for v in state.grid.variants.values())
    if asked is not True:
        return []
    from benchmark.evaluate import robustness  # here, not at the top: only a grid asking for it loads the package

    problems = []
    for dataset in state.grid.datasets:
        try:
            robustness.corruptions(dataset)
        except MedAugBenchError as error:
            problems.append(str(error))
    return sorted(set(problems))


CHECKS: tuple[Callable[[Validation], list[str]], ...] = (
    check_name,
    check_cache_dir,
    check_budget,
    check_repeated_values,
    check_seeds,
    check_fractions,
    check_dataset_fractions,
    check_policies,
    check_train_fields,
    check_unused_strategy_params,
    check_strategies,
    check_baseline,
    check_backbones,
    check_generator_budget,
    check_datasets,
    check_epoch_budgets,
    check_train_table,
    check_pilot_budgets,
    check_one_schedule,
    check_robustness,
)
"""The checks `validate` runs, in the order their problems are listed; each returns its problems."""


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
        unknown = sorted(set(optim) - OPTIM_FIELDS)
        if unknown:
            raise MedAugBenchError(
                f"optim does not take {', '.join(unknown)}; allowed: {', '.join(sorted(OPTIM_FIELDS))}"
            )
        fields["optim"] = OptimConfig(**optim)
    return fields


def _epochs_to_steps(epochs: float, n_train: int, fraction: float, batch_size: int) -> int:
    return max(1, math.ceil(epochs * max(1, round(n_train * fraction)) / batch_size))


def expand(grid: GridConfig, sizes: dict[str, int]) -> list[Cell]:
    """Every cell of a validated grid, in a stable order (dataset, fraction, backbone, strategy, policy, generator
    seed, classifier seed)."""
    cells = []
    for dataset in grid.datasets:
        plugin, dataset_params = dataset_source(dataset, grid.dataset_params.get(dataset, {}))
        for fraction in grid.fractions_for(dataset):
            for backbone in grid.backbones:
                for label in grid.strategies:
                    variant = grid.variant(label)
                    train = {**grid.train, **variant.train}
                    generative = is_generative(variant.strategy)
                    for policy in grid.policies if generative else [None]:
                        budgets = cell_budgets(
                            grid, label, policy, sizes.get(dataset), fraction, train.get("batch_size", 128), generative
                        )
                        for generator_seed, seed in grid.seed_runs():
                            classifier, total, generator_budget = budgets
                            config = TrainConfig(
                                dataset=plugin,
                                strategy=variant.strategy,
                                backbone=backbone,
                                seed=seed,
                                generator_seed=generator_seed,
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
                                "seed": seed,
                                "generator_seed": generator_seed,
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
        if budget.generator_steps is not None:  # fixed generator; the classifier gets what it leaves of the total
            return total, total, {"generator_steps": int(budget.generator_steps)}
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
