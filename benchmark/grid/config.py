"""A benchmark grid: datasets × strategies × backbones × seeds × training fractions × synthesis policies, with one
budget block applied identically to every cell. Read from TOML or YAML, or from a shipped preset.

File layout (every key optional except where noted; see `benchmark/grid/presets/*.toml`):

    name = "my-grid"
    datasets = ["pneumoniamnist"]          # registered names, or folders/CSVs of your own images
    strategies = ["none", "geometric", "cgan", "cgan_plain"]
    backbones = ["simple_cnn"]
    seeds = [0, 1, 2]                      # each seed is both the generator and the classifier seed; or:
    # generator_seeds = [0, 1, 2]          # generator seeds: training subset, generator training, synthesis
    # classifier_seeds = 4                 # per generator seed g: g, g + 1000, g + 2000, g + 3000 (or a list,
                                           # the same classifier seeds under every generator seed)
    train_fractions = [1.0]
    # [dataset_fractions]                  # per dataset, instead of train_fractions for that dataset
    # pneumoniamnist = [0.1]
    policies = ["balance"]                 # synthesis policies; only generative strategies vary over them
    baseline = "none"                      # what leaderboards compare against

    [budget]                               # exactly one classifier_* and at most one generator_* key
    classifier_steps = 500                 # or classifier_seconds, or classifier_epochs (of the real training set)
    generator_steps = 2000                 # or generator_seconds, or generator_epochs: the strategy's total,
                                           # shared by per-class models (GeneratorBudget.SPLIT_RULE)
    # or compute-matched, instead of the keys above: every cell spends the same total
    # total_flops = 2e15                   # or total_seconds (device-seconds): generator training + synthesis +
    # generator_share = 0.5                # classifier training; generative strategies give this share to their
                                           # generator and its synthesis, classic ones train the classifier on all

    [train]                                # TrainConfig fields shared by every cell
    batch_size = 128

    [strategy_params.cgan]                 # parameters per strategy (or variant) name
    ratio = 1.0

    [variants.cgan_plain]                  # a named variant of a strategy plugin, e.g. for ablations
    strategy = "cgan"
    params = { augment_with = "none" }
    train = { pretrained = false }
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from benchmark.errors import MedAugBenchError

PRESET_PACKAGE = "benchmark.grid.presets"
LIST_KEYS = ("datasets", "strategies", "backbones", "seeds", "generator_seeds", "train_fractions", "policies")
NAME_LIST_KEYS = ("datasets", "strategies", "backbones", "policies")
GRID_NAME = re.compile(r"[A-Za-z0-9._-]+")  # a grid's name is a folder name under runs/, never a path
CLASSIFIER_SEED_STRIDE = 1000  # a count of classifier seeds gives generator seed g the seeds g + 1000 k, k = 0, 1, ...
TABLE_KEYS = (
    "budget",
    "train",
    "strategy_params",
    "backbone_params",
    "dataset_params",
    "dataset_fractions",
    "variants",
)
TOP_KEYS = ("name", "description", "baseline", *LIST_KEYS, "classifier_seeds", *TABLE_KEYS)
CLASSIFIER_BUDGET_KEYS = ("classifier_steps", "classifier_seconds", "classifier_epochs")
GENERATOR_BUDGET_KEYS = ("generator_steps", "generator_seconds", "generator_epochs")
TOTAL_BUDGET_KEYS = ("total_flops", "total_seconds")
GENERATOR_SHARE = 0.5  # default share of a total budget for a generative strategy's generator and synthesis
# Fields a grid may not set through [train]: the grid's own axes and budget set them per cell.
CELL_FIELDS = (
    "dataset",
    "strategy",
    "backbone",
    "seed",
    "generator_seed",
    "budget",
    "train_fraction",
    "strategy_params",
    "backbone_params",
    "dataset_params",
)


@dataclass(frozen=True)
class Variant:
    """A leaderboard row that runs strategy plugin `strategy` with extra `params` and TrainConfig overrides `train`."""

    strategy: str
    params: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BudgetBlock:
    """The one budget every cell gets: the classifier's, and the generator's for generative strategies; or one total
    (FLOPs or device-seconds) that every cell spends, compute-matched.

    Epochs are converted to optimizer steps from the size of the real training set (after `train_fraction`), so
    synthetic images never buy a strategy extra steps. The generator budget is each strategy's total in a cell:
    a strategy that trains one model per class shares it among them in proportion to their training images (with a
    minimum each, `GeneratorBudget.SPLIT_RULE`), so generator epochs come to about epochs × own images / batch per
    model and to the same total a conditional model gets.

    A total (`total_flops` / `total_seconds`) is generator training + synthesis + classifier training: a classic
    strategy's classifier gets all of it; a generative strategy's generator gets `generator_share` of it, which must
    also pay for synthesising its images, and the classifier the rest (plus whatever the generator left unspent).
    With `generator_steps` beside a total, the generator trains those steps (the same generators as a grid with that
    generator budget, so they are reused) and the classifier gets what its training and synthesis left.
    """

    classifier_steps: int | None = None
    classifier_seconds: float | None = None
    classifier_epochs: float | None = None
    generator_steps: int | None = None
    generator_seconds: float | None = None
    generator_epochs: float | None = None
    total_flops: float | None = None
    total_seconds: float | None = None
    generator_share: float | None = None

    def problems(self) -> list[str]:
        if self.is_total:
            return self._total_problems()
        found = []
        if self.generator_share is not None:
            found.append("budget.generator_share goes with total_flops or total_seconds")
        for group, keys in (("classifier", CLASSIFIER_BUDGET_KEYS), ("generator", GENERATOR_BUDGET_KEYS)):
            given = [k for k in keys if getattr(self, k) is not None]
            if group == "classifier" and len(given) != 1:
                found.append(
                    f"[budget] needs exactly one of {', '.join(keys)} (got {', '.join(given) or 'none'}), or "
                    f"one of {', '.join(TOTAL_BUDGET_KEYS)}"
                )
            if group == "generator" and len(given) > 1:
                found.append(f"[budget] takes at most one of {', '.join(keys)} (got {', '.join(given)})")
            found += [problem for key in given if (problem := _amount_problem(key, getattr(self, key)))]
        return found

    def _total_problems(self) -> list[str]:
        """What is wrong with a total budget: two totals, per-model keys beside it (but `generator_steps`, which fixes
        the generator and gives the classifier the rest), a bad amount or share."""
        given = [k for k in TOTAL_BUDGET_KEYS if getattr(self, k) is not None]
        found = [] if len(given) == 1 else [f"[budget] takes one of {', '.join(TOTAL_BUDGET_KEYS)}, not both"]
        keys = (*CLASSIFIER_BUDGET_KEYS, *(k for k in GENERATOR_BUDGET_KEYS if k != "generator_steps"))
        mixed = [k for k in keys if getattr(self, k) is not None]
        if self.generator_steps is not None:
            found += [p for p in [_amount_problem("generator_steps", self.generator_steps)] if p]
            if self.generator_share is not None:
                found.append(
                    "[budget] generator_steps fixes the generator's part of the total; drop generator_share or it"
                )
        if mixed:
            found.append(
                f"[budget] {given[0]} is the whole cell's budget and replaces {', '.join(mixed)}: drop "
                f"{'them' if len(mixed) > 1 else 'it'}, or drop {given[0]}"
            )
        found += [problem for key in given if (problem := _amount_problem(key, getattr(self, key)))]
        share = self.generator_share
        if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1):
            found.append(
                f"budget.generator_share must lie strictly between 0 and 1 (the generator's part of the "
                f"total), got {share!r}"
            )
        return found

    @property
    def is_total(self) -> bool:
        """Compute-matched: one total for the whole cell."""
        return any(getattr(self, k) is not None for k in TOTAL_BUDGET_KEYS)

    @property
    def total_kind(self) -> str:
        """'flops' or 'seconds' of a total budget."""
        return "flops" if self.total_flops is not None else "seconds"

    @property
    def share(self) -> float:
        """The generator's share of a total budget (default GENERATOR_SHARE)."""
        return GENERATOR_SHARE if self.generator_share is None else float(self.generator_share)

    @property
    def has_generator_budget(self) -> bool:
        return any(getattr(self, k) is not None for k in GENERATOR_BUDGET_KEYS) or self.generator_share is not None

    @property
    def uses_epochs(self) -> bool:
        return self.classifier_epochs is not None or self.generator_epochs is not None

    def describe(self) -> str:
        keys = (*CLASSIFIER_BUDGET_KEYS, *GENERATOR_BUDGET_KEYS, *TOTAL_BUDGET_KEYS)
        parts = [f"{k.replace('_', ' ')} {getattr(self, k):g}" for k in keys if getattr(self, k) is not None]
        if self.is_total:
            parts.append(f"generator share {self.share:g}")
        return ", ".join(parts)


def _amount_problem(key: str, value: object) -> str | None:
    """Why a budget amount is invalid (not a positive finite number, or fractional steps), or None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        return f"budget.{key} must be a positive number, got {value!r}"
    if key.endswith("_steps") and int(value) != value:
        return f"budget.{key} must be a whole number of steps, got {value!r}"
    return None


@dataclass(frozen=True)
class GridConfig:
    """A whole benchmark grid (see the module docstring for the file layout)."""

    name: str = "grid"
    description: str = ""
    datasets: tuple[str, ...] = ("pneumoniamnist",)
    strategies: tuple[str, ...] = ("none",)
    backbones: tuple[str, ...] = ("simple_cnn",)
    seeds: tuple[int, ...] = (0,)
    generator_seeds: tuple[int, ...] | None = None
    classifier_seeds: int | tuple[int, ...] | None = None
    train_fractions: tuple[float, ...] = (1.0,)
    policies: tuple[str, ...] = ("balance",)
    baseline: str = "none"
    budget: BudgetBlock = field(default_factory=lambda: BudgetBlock(classifier_steps=500))
    train: dict = field(default_factory=dict)
    strategy_params: dict = field(default_factory=dict)
    backbone_params: dict = field(default_factory=dict)
    dataset_params: dict = field(default_factory=dict)
    dataset_fractions: dict = field(default_factory=dict)
    variants: dict = field(default_factory=dict)

    def variant(self, label: str) -> Variant:
        """The plugin and parameters behind a strategy label (a plain strategy is its own variant)."""
        if label in self.variants:
            return self.variants[label]
        return Variant(strategy=label)

    def seed_runs(self) -> list[tuple[int, int]]:
        """Every run's (generator seed, classifier seed), generator seed by generator seed: each of `seeds` is both;
        with `generator_seeds`, each is its own classifier seed, or gets `classifier_seeds` (a count: g + 1000 k;
        a list: those seeds). A generator trained for one pair serves every pair of its generator seed."""
        if self.generator_seeds is None:
            return [(int(seed), int(seed)) for seed in self.seeds]
        return [(int(g), int(c)) for g in self.generator_seeds for c in self.classifier_seeds_of(g)]

    def classifier_seeds_of(self, generator_seed: int) -> tuple[int, ...]:
        """The classifier seeds run with one generator seed (see `seed_runs`)."""
        if self.classifier_seeds is None:
            return (generator_seed,)
        if isinstance(self.classifier_seeds, int):
            return tuple(generator_seed + CLASSIFIER_SEED_STRIDE * k for k in range(self.classifier_seeds))
        return tuple(self.classifier_seeds)

    def fractions_for(self, dataset: str) -> tuple[float, ...]:
        """The training fractions a dataset runs at: its `dataset_fractions` entry, else `train_fractions`."""
        return tuple(self.dataset_fractions.get(dataset, self.train_fractions))

    def to_dict(self) -> dict:
        """The grid as JSON; `dataset_fractions` and the generator/classifier seeds only when set, so grids without
        them keep their old form (and grids with generator seeds drop the `seeds` they do not use)."""
        data = dataclasses.asdict(self)
        if not self.dataset_fractions:
            del data["dataset_fractions"]
        unused = ("generator_seeds", "classifier_seeds") if self.generator_seeds is None else ("seeds",)
        return {key: value for key, value in data.items() if key not in unused}


def from_mapping(data: dict, source: str) -> GridConfig:
    """A GridConfig from parsed TOML/YAML; every shape problem is collected into one error naming `source`."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise MedAugBenchError(f"{source}: expected a table of settings at the top level")
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(TOP_KEYS)}")
    values: dict = {}
    for key in ("name", "description", "baseline"):
        if key in data:
            if not isinstance(data[key], str):
                problems.append(f"{key} must be a string")
            else:
                values[key] = data[key]
    if (problem := name_problem(values.get("name", GridConfig.name))) is not None:
        problems.append(problem)
    for key in LIST_KEYS:
        if key in data:
            items = data[key] if isinstance(data[key], list) else [data[key]]
            if not items:
                problems.append(f"{key} must not be empty")
            problems += _item_type_problems(key, items)
            values[key] = tuple(items)
    if "classifier_seeds" in data:  # a count, or a list of seeds
        given = data["classifier_seeds"]
        values["classifier_seeds"] = tuple(given) if isinstance(given, list) else given
    problems += _seed_key_problems(data)
    tables = {}
    for key in TABLE_KEYS:
        tables[key] = data.get(key, {})
        if not isinstance(tables[key], dict):
            problems.append(f"[{key}] must be a table")
            tables[key] = {}
    problems += _nested_table_problems(tables)
    budget_keys = (*CLASSIFIER_BUDGET_KEYS, *GENERATOR_BUDGET_KEYS, *TOTAL_BUDGET_KEYS, "generator_share")
    bad_budget = sorted(set(tables["budget"]) - set(budget_keys))
    if bad_budget:
        problems.append(f"unknown budget key(s) {', '.join(bad_budget)}; allowed: {', '.join(budget_keys)}")
    if "budget" in data:
        values["budget"] = BudgetBlock(**{k: v for k, v in tables["budget"].items() if k not in bad_budget})
    values["variants"] = {}
    for label, spec in tables["variants"].items():
        if (
            not isinstance(spec, dict)
            or not isinstance(spec.get("strategy"), str)
            or set(spec) - {"strategy", "params", "train"}
            or not all(isinstance(spec.get(key, {}), dict) for key in ("params", "train"))
        ):
            problems.append(f'variants.{label} needs `strategy = "PLUGIN"` and optional `params`/`train` tables only')
            continue
        values["variants"][label] = Variant(
            strategy=spec["strategy"], params=dict(spec.get("params", {})), train=dict(spec.get("train", {}))
        )
    for key in ("train", "strategy_params", "backbone_params", "dataset_params"):
        if key in data:
            values[key] = tables[key]
    values["dataset_fractions"] = {
        name: tuple(items if isinstance(items, list) else [items])
        for name, items in tables["dataset_fractions"].items()
    }
    if problems:
        raise MedAugBenchError(f"{source} has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))
    return GridConfig(**values)


def name_problem(name: object) -> str | None:
    """Why a grid name cannot be a folder name under runs/ (the default results folder is runs/<name>), or None."""
    if isinstance(name, str) and GRID_NAME.fullmatch(name) and name not in (".", ".."):
        return None
    return (
        f"name must be a plain folder name (letters, digits, '.', '_', '-'; no separators or absolute paths), got "
        f"{name!r}: the results go to runs/<name>; pass -o to put them elsewhere"
    )


def _item_type_problems(key: str, items: list) -> list[str]:
    """A problem for each item of a list key that is of the wrong type (names: strings; seeds and fractions are
    range-checked by `benchmark.grid.cells`, so only tables and lists are refused here)."""
    if key in NAME_LIST_KEYS:
        return [f"{key} must list names (strings), got {item!r}" for item in items if not isinstance(item, str)]
    return [f"{key} must list numbers, got {item!r}" for item in items if isinstance(item, dict | list)]


def _nested_table_problems(tables: dict) -> list[str]:
    """Each entry of the per-name parameter tables is itself a table (`[strategy_params.cgan]`), `[train] optim`
    is a table, and `[dataset_fractions]` gives numbers."""
    problems = [
        f"[{key}] {name} must be a table of parameters ([{key}.{name}]), got {value!r}"
        for key in ("strategy_params", "backbone_params", "dataset_params")
        for name, value in tables[key].items()
        if not isinstance(value, dict)
    ]
    optim = tables["train"].get("optim")
    if optim is not None and not isinstance(optim, dict):
        problems.append(f'[train] optim must be a table such as {{ lr = 1e-3, schedule = "wsd" }}, got {optim!r}')
    problems += [
        f"[dataset_fractions] {name} must be a fraction or a list of fractions, got {value!r}"
        for name, value in tables["dataset_fractions"].items()
        if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, dict | list) for v in value))
    ]
    return problems


def _seed_key_problems(data: dict) -> list[str]:
    """`seeds` given together with the generator/classifier seeds it excludes (the values are checked by
    `benchmark.grid.cells.check_seeds`)."""
    if "seeds" in data and ("generator_seeds" in data or "classifier_seeds" in data):
        return [
            "give either `seeds` (each both the generator and the classifier seed) or `generator_seeds` with "
            "`classifier_seeds`, not both"
        ]
    return []


def load_grid(path: Path) -> GridConfig:
    """Read a grid from a .toml, .yaml/.yml or .json file."""
    path = Path(path)
    if not path.is_file():
        raise MedAugBenchError(
            f"grid config {path} not found; pass a .toml/.yaml file or a preset name ({', '.join(preset_names())})"
        )
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise MedAugBenchError(
            f"{path} is not UTF-8 text (byte {error.object[error.start]:#x} at position {error.start}); save it as "
            "UTF-8 (TOML, YAML and JSON files are UTF-8)"
        ) from None
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise MedAugBenchError(f"{path}: unknown config format {suffix!r}; use .toml, .yaml or .json")
    except (tomllib.TOMLDecodeError, ValueError) as error:
        raise MedAugBenchError(f"{path} is not valid {suffix[1:].upper()}: {error}") from None
    except Exception as error:  # yaml.YAMLError without importing yaml at module level
        if type(error).__module__.startswith("yaml"):
            raise MedAugBenchError(f"{path} is not valid YAML: {error}") from None
        raise
    return from_mapping(data, str(path))


def preset_names() -> list[str]:
    """The names of the shipped presets (`medaugbench run NAME`), sorted."""
    return sorted(
        p.name[: -len(".toml")] for p in resources.files(PRESET_PACKAGE).iterdir() if p.name.endswith(".toml")
    )


def load_preset(name: str) -> GridConfig:
    """A shipped preset: quick, standard, paper or ablation."""
    if name not in preset_names():
        raise MedAugBenchError(
            f"unknown preset {name!r}; presets: {', '.join(preset_names())}, or give a .toml/.yaml file"
        )
    return from_mapping(
        tomllib.loads(resources.files(PRESET_PACKAGE).joinpath(f"{name}.toml").read_text()), f"preset {name}"
    )


def resolve_grid(spec: str | None) -> GridConfig:
    """`None` → the quick preset; an existing file → that file; else a preset name."""
    if spec is None:
        return load_preset("quick")
    if Path(spec).suffix.lower() in (".toml", ".yaml", ".yml", ".json") or Path(spec).exists():
        return load_grid(Path(spec))
    return load_preset(spec)
