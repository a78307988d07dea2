"""The pilot's report: class-matched FID on validation images against total generator steps (the mean, min and max
over generator seeds, beside the in-distribution floor and the class fidelity of what each generator made), every
strategy's validation AUC at the end of runs with each candidate classifier budget (the pilot's budget branches), and
the budgets they choose (`benchmark.grid.pilot`, from the seed-mean curves), as JSON, Markdown and two plots."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from benchmark.data.files import write_json_atomic, write_text_atomic  # noqa: E402
from benchmark.errors import MedAugBenchError  # noqa: E402
from benchmark.grid.pilot import (  # noqa: E402
    LIMIT,
    BudgetChoice,
    ClassifierBudget,
    choose_classifier_budget,
    choose_generator_steps,
    choose_strategy_steps,
)
from benchmark.grid.store import CellRecord, load_records  # noqa: E402
from benchmark.publish.fmt import markdown_table  # noqa: E402
from benchmark.publish.plots import save_figure  # noqa: E402


@dataclass(frozen=True)
class GeneratorRun:
    """One generator seed's curve on one dataset: FID after each total-step point; per-class models' FIDs (and
    floors) are averaged with their shares of the budget (their training images) as weights, each model scored at the
    same budget fraction. `floor`: the same average of the models' in-distribution floors (None: not measured, e.g.
    records older than it); `fidelity`/`fidelity_real`: the overall class fidelity of the cell's synthetic set and the
    same classifier's recall on real held-out images (None: not measured); `flags`: why the set was flagged (None:
    not checked)."""

    dataset: str
    strategy: str
    seed: int
    steps: list[int]
    fid: list[float]
    per_model: dict[str, list[float]]
    floor: float | None
    fidelity: float | None
    fidelity_real: float | None
    flags: list[str] | None


@dataclass(frozen=True)
class GeneratorCurve:
    """One generator on one dataset over its seeds: the mean FID per step with its min and max, the mean floor and
    class fidelity, each seed's flags (prefixed with the seed), and the budget the seed-mean curve chooses."""

    dataset: str
    strategy: str
    seeds: list[int]
    steps: list[int]
    fid: list[float]
    fid_min: list[float]
    fid_max: list[float]
    floor: float | None
    fidelity: float | None
    fidelity_real: float | None
    flags: list[str] | None
    runs: list[GeneratorRun]
    choice: BudgetChoice


def generator_run(record: CellRecord) -> GeneratorRun | None:
    """The tracked curve of a generative cell that was scored at total-step points (None for other cells)."""
    facts = record.result.strategy.facts
    card = facts.get("generator") or {}
    monitor = card.get("monitor") or {}
    at = monitor.get("at_total_steps")
    if not at:
        return None
    histories = card["histories"]
    total = sum(h["steps"] for h in histories.values())
    shares = {name: h["steps"] / total for name, h in histories.items()}
    per_model = {name: _at_points(h, at, shares[name]) for name, h in histories.items()}
    fid = [sum(per_model[name][i] * share for name, share in shares.items()) for i in range(len(at))]
    overall = (facts.get("fidelity") or {}).get("overall") or {}
    return GeneratorRun(
        dataset_label(record.cell),
        record.cell["strategy"],
        record.cell.get("generator_seed", record.cell["seed"]),
        list(at),
        fid,
        per_model,
        _floor(monitor, shares),
        overall.get("fidelity"),
        overall.get("recall"),
        facts.get("flags"),
    )


def _floor(monitor: dict, shares: dict[str, float]) -> float | None:
    """The models' floors averaged with their budget shares (None when any model has none)."""
    floors = (monitor.get("floor") or {}).get("per_model") or {}
    values = [(floors.get(name) or {}).get("fid") for name in shares]
    if any(value is None for value in values):
        return None
    return sum(value * share for value, share in zip(values, shares.values()))


def _at_points(history: dict, at: list[int], share: float) -> list[float]:
    """A model's scores at the total-step points, each at the same fraction of the model's own budget."""
    scores = dict(zip(history["quality_step"], history["quality"]))
    missing = [t for t in at if max(1, round(t * share)) not in scores]
    if missing:
        raise MedAugBenchError(f"a generator was not scored at total steps {missing}: it stopped before them")
    return [scores[max(1, round(t * share))] for t in at]


def generator_curves(runs: list[GeneratorRun]) -> list[GeneratorCurve]:
    """The runs grouped by dataset and generator (sorted by both), each aggregated over its seeds."""
    groups: dict[tuple[str, str], list[GeneratorRun]] = defaultdict(list)
    for run in runs:
        groups[(run.dataset, run.strategy)].append(run)
    return [seed_curve(sorted(groups[key], key=lambda r: r.seed)) for key in sorted(groups)]


def seed_curve(runs: list[GeneratorRun]) -> GeneratorCurve:
    """One generator's seeds on one dataset: mean, min and max FID per step; the budget rule reads the mean."""
    first = runs[0]
    if any(run.steps != first.steps for run in runs):
        raise MedAugBenchError(f"{first.strategy} on {first.dataset}: its seeds were scored at different steps")
    columns = list(zip(*(run.fid for run in runs)))
    fid = [sum(column) / len(column) for column in columns]
    flags = None if all(r.flags is None for r in runs) else [f"seed {r.seed}: {f}" for r in runs for f in r.flags or []]
    return GeneratorCurve(
        first.dataset,
        first.strategy,
        [run.seed for run in runs],
        first.steps,
        fid,
        [min(column) for column in columns],
        [max(column) for column in columns],
        _mean([run.floor for run in runs]),
        _mean([run.fidelity for run in runs]),
        _mean([run.fidelity_real for run in runs]),
        flags,
        runs,
        _seed_mean_choice(first.steps, fid, len(runs)),
    )


def _seed_mean_choice(steps: list[int], fid: list[float], seeds: int) -> BudgetChoice:
    """The budget rule on the seed-mean curve; its detail says it read a mean when there are several seeds."""
    choice = choose_generator_steps(steps, fid)
    return choice if seeds == 1 else replace(choice, detail=f"mean of {seeds} seeds: {choice.detail}")


def _mean(values: list[float | None]) -> float | None:
    """The mean of the values, None when any is missing."""
    return None if any(v is None for v in values) else sum(values) / len(values)


@dataclass(frozen=True)
class StrategyCurve:
    """One strategy on one dataset: validation AUC at the end of a run with each candidate classifier budget, the
    mean over its `runs` (seeds), and the budget its curve chose."""

    dataset: str
    strategy: str
    steps: list[int]
    val_auc: list[float]
    runs: int
    choice: BudgetChoice


@dataclass(frozen=True)
class ClassifierPilot:
    """Every strategy's curve, the budget each dataset's slowest strategy sets, the run's (the largest of those; its
    `strategy` says which strategy on which dataset) and the one optimizer config every strategy trained with."""

    curves: list[StrategyCurve]
    budgets: dict[str, ClassifierBudget]
    run: ClassifierBudget
    optim: dict


@dataclass(frozen=True)
class Pilot:
    """What `medaugbench pilot` reads from a pilot's records; `classifier` is None for records without budget
    branches (made by the pilot before per-strategy branches)."""

    generators: list[GeneratorCurve]
    classifier: ClassifierPilot | None


OLD_PILOT_NOTE = (
    "These records have no budget branches: they were made by the old pilot, whose classifier curve was one `none` "
    "run's validation AUC along a single 1000-step cosine, not the scores of runs with those budgets, and covered no "
    "other strategy. No classifier budget is chosen from them; run a pilot preset with `pilot_budgets` (cpu-pilot)."
)


def pilot_curves(results_dir: Path) -> Pilot:
    """Every generator curve and every strategy's budget curve of a pilot's finished cells."""
    records = [r for r in load_records(results_dir) if r.ok]
    generators = generator_curves([run for r in one_per_generator(records) if (run := generator_run(r)) is not None])
    branched = [r for r in records if r.result.budget_branches]
    if not generators and not branched:
        raise MedAugBenchError(
            f"{results_dir} has no finished pilot cells (tracked generators, or classifiers with pilot_budgets)"
        )
    return Pilot(generators, classifier_pilot(branched) if branched else None)


def one_per_generator(records: list[CellRecord]) -> list[CellRecord]:
    """The records with the first of each trained generator (its cache name in the compute report), a base
    strategy's before its variants': cgan+geometric and later classifier seeds reuse cgan's generator, whose curve
    is not a second measurement."""
    seen: set[str] = set()
    kept = []
    for record in sorted(records, key=lambda r: r.cell["strategy"] != r.cell.get("base_strategy", r.cell["strategy"])):
        phase = record.result.compute.phases.get("generator_training")
        name = phase.detail.get("generator") if phase is not None else None
        if name is None or name not in seen:
            kept.append(record)
        if name is not None:
            seen.add(name)
    return kept


def classifier_pilot(records: list[CellRecord]) -> ClassifierPilot:
    """The strategies' budget curves (mean over seeds), each dataset's budget and the run's, from records with
    budget branches all trained under one optimizer config."""
    optim = one_optim(records)
    groups: dict[tuple[str, str], list[CellRecord]] = defaultdict(list)
    for record in records:
        groups[(dataset_label(record.cell), record.cell["strategy"])].append(record)
    curves = [strategy_curve(dataset, strategy, group) for (dataset, strategy), group in groups.items()]
    budgets = {
        dataset: choose_classifier_budget({c.strategy: c.choice for c in curves if c.dataset == dataset})
        for dataset in dict.fromkeys(c.dataset for c in curves)
    }
    per_dataset = {f"{b.strategy} on {d}": BudgetChoice(b.steps, b.reason, b.detail) for d, b in budgets.items()}
    return ClassifierPilot(curves, budgets, choose_classifier_budget(per_dataset), optim)


def dataset_label(cell: dict) -> str:
    """The dataset, with its training fraction when it is not the whole split."""
    fraction = cell.get("train_fraction", 1.0)
    return cell["dataset"] if fraction == 1.0 else f"{cell['dataset']} {fraction:g}"


def one_optim(records: list[CellRecord]) -> dict:
    """The optimizer config (schedule included) every record trained with; different ones are an error, since their
    budgets would not compare."""
    configs = {json.dumps(r.result.config["optim"], sort_keys=True): r.cell["strategy"] for r in records}
    if len(configs) > 1:
        raise MedAugBenchError(
            f"the pilot's strategies trained with {len(configs)} different optimizer configs (e.g. "
            f"{', '.join(sorted(configs.values()))}): their budgets do not compare; give every strategy the same "
            "[train] optimizer/optim (no variant overriding them) and re-run the pilot"
        )
    return json.loads(next(iter(configs)))


def strategy_curve(dataset: str, strategy: str, records: list[CellRecord]) -> StrategyCurve:
    """Mean validation AUC over the records (seeds) at each budget they all measured, and the budget it chooses."""
    scores = [r.result.budget_branches for r in records]
    steps = [s.steps for s in scores[0]]
    if any([s.steps for s in run] != steps for run in scores):
        raise MedAugBenchError(f"{strategy} on {dataset}: its runs measured different budgets; re-run the pilot")
    if any(s.val_auc is None for run in scores for s in run):
        raise MedAugBenchError(f"{strategy} on {dataset}: validation AUC is undefined (one class in validation)")
    auc = [sum(run[i].val_auc for run in scores) / len(scores) for i in range(len(steps))]
    return StrategyCurve(dataset, strategy, steps, auc, len(scores), choose_strategy_steps(steps, auc))


def write_pilot(pilot: Pilot, out: Path) -> list[Path]:
    """pilot.json, pilot.md and the curve plots of a pilot (`pilot_curves`), in `out`."""
    classifier = None if pilot.classifier is None else asdict(pilot.classifier)
    data = {"generators": [asdict(c) for c in pilot.generators], "classifier": classifier}
    if pilot.classifier is None:
        data["note"] = OLD_PILOT_NOTE
    write_json_atomic(out / "pilot.json", data)
    write_text_atomic(out / "pilot.md", pilot_markdown(pilot))
    return [out / "pilot.json", out / "pilot.md", *_plot(pilot, out)]


def pilot_markdown(pilot: Pilot) -> str:
    """The generator curves and every strategy's budget curve as tables, each row ending with the budget it chose
    and why, then the budget each dataset's slowest strategy sets and the run's."""
    return "\n".join([*generator_markdown(pilot.generators), *classifier_markdown(pilot.classifier)])


GENERATOR_NOTE = (
    "A step column is the class-matched FID against validation images after that many total generator steps: the "
    "mean over the generator seeds listed, with min–max when there are several; the budget rule reads the seed-mean "
    "curve. `floor`: the FID of real training images of the same classes, as many and in the same class composition, "
    "against the same validation images in the same feature space (what a perfect generator of the training "
    "distribution would score; a dashed line in pilot_fid.png). `fidelity (real)`: the fraction of the cell's "
    "synthetic images a classifier trained on its real training images assigns to their intended class, beside its "
    "recall on real held-out images (mean over seeds); `flags`: why a seed's synthetic set was flagged."
)


def generator_markdown(generators: list[GeneratorCurve]) -> list[str]:
    """One row per dataset and generator: seeds, floor, FID per step (mean, min–max), the budget chosen and why,
    class fidelity and flags."""
    points = sorted({s for c in generators for s in c.steps})
    lines = ["## Generators: class-matched FID on validation images after N total steps", "", GENERATOR_NOTE, ""]
    rows = []
    for c in generators:
        scores = {step: _spread(c, i) for i, step in enumerate(c.steps)}
        rows.append(
            [c.dataset, c.strategy, ", ".join(map(str, c.seeds)), _number(c.floor)]
            + [scores.get(s, "–") for s in points]
            + [f"{c.choice.steps} ({c.choice.reason})", _fidelity(c), _flags(c.flags), c.choice.detail]
        )
    header = ["dataset", "generator", "seeds", "floor", *map(str, points), "chosen", "fidelity (real)", "flags", "why"]
    return lines + markdown_table(header, rows)


def _spread(curve: GeneratorCurve, i: int) -> str:
    """The mean FID at step index i, with min–max over seeds when there are several."""
    if len(curve.seeds) == 1:
        return f"{curve.fid[i]:.4g}"
    return f"{curve.fid[i]:.4g} ({curve.fid_min[i]:.4g}–{curve.fid_max[i]:.4g})"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _fidelity(curve: GeneratorCurve) -> str:
    if curve.fidelity is None:
        return "–"
    real = "–" if curve.fidelity_real is None else f"{curve.fidelity_real:.2f}"
    return f"{curve.fidelity:.2f} ({real})"


def _flags(flags: list[str] | None) -> str:
    """The flags joined (none: "none"; not checked: "–")."""
    if flags is None:
        return "–"
    return "; ".join(flags) or "none"


def classifier_markdown(classifier: ClassifierPilot | None) -> list[str]:
    lines = ["## Classifier budget: validation AUC at the end of a run with each budget, every strategy", ""]
    if classifier is None:
        return [*lines, OLD_PILOT_NOTE, ""]
    optim = ", ".join(f"{k} {v}" for k, v in classifier.optim.items())
    lines += [
        f"Every strategy trained with the same optimizer and schedule ({optim}). A column is the mean validation AUC "
        "(over the strategy's runs) at the end of a run with that classifier budget: a branch of the pilot's run "
        "from the step where that budget's learning rate first differs, trained to its own end (the steps a run with "
        "that budget takes). A strategy's choice: the smallest budget within 0.005 of its best; a dataset's budget: "
        "the largest of its strategies' choices, so the slowest strategy has plateaued too.",
        "",
    ]
    for dataset, budget in classifier.budgets.items():
        curves = [c for c in classifier.curves if c.dataset == dataset]
        steps = curves[0].steps
        rows = [
            [c.strategy, str(c.runs), *(f"{a:.4f}" for a in c.val_auc), f"{c.choice.steps} ({c.choice.reason})"]
            + [c.choice.detail]
            for c in curves
        ]
        lines += [f"### {dataset}", ""]
        lines += markdown_table(["strategy", "runs", *map(str, steps), "chosen", "why"], rows)
        lines += [f"**Budget on {dataset}: {budget.steps} steps**, set by {budget.strategy} ({budget.reason}).", ""]
    lines += [budget_sentence(classifier.run), ""]
    return lines


def budget_sentence(run: ClassifierBudget) -> str:
    """The run's classifier budget in one sentence; a budget the machine's limit bound says so plainly."""
    sentence = f"**The run's classifier budget: {run.steps} steps**, set by {run.strategy} ({run.reason})."
    if run.reason == LIMIT:
        sentence += (
            f" LIMIT: {run.strategy} was still improving at {run.steps} steps, the largest budget measured: this "
            "budget is the most the pilot measured, not a plateau."
        )
    return sentence


def _plot(pilot: Pilot, out: Path) -> list[Path]:
    """pilot_fid.png (log-log FID per generator, one panel per dataset) and pilot_val_auc.png (every strategy's
    budget curve, one panel per dataset)."""
    classifier = pilot.classifier.curves if pilot.classifier is not None else []
    paths = []
    for name, curves, draw in (
        ("pilot_fid.png", pilot.generators, _fid_panel),
        ("pilot_val_auc.png", classifier, _auc_panel),
    ):
        datasets = list(dict.fromkeys(c.dataset for c in curves))
        if not datasets:
            continue
        figure, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6), squeeze=False)
        for axis, dataset in zip(axes[0], datasets):
            draw(axis, [c for c in curves if c.dataset == dataset], dataset)
        paths.append(save_figure(figure, out / name, dpi=110, metadata={"Software": None}))
    return paths


def _fid_panel(axis, curves: list[GeneratorCurve], dataset: str) -> None:  # noqa: ANN001
    """Per generator: the seed-mean FID (band: min–max over seeds), ★ at the chosen budget, its floor dashed."""
    for curve in curves:
        seeds = f" ({len(curve.seeds)} seeds)" if len(curve.seeds) > 1 else ""
        (line,) = axis.plot(curve.steps, curve.fid, marker="o", label=curve.strategy + seeds)
        color = line.get_color()
        if len(curve.seeds) > 1:
            axis.fill_between(curve.steps, curve.fid_min, curve.fid_max, color=color, alpha=0.15)
        chosen = curve.fid[curve.steps.index(curve.choice.steps)]
        axis.plot([curve.choice.steps], [chosen], marker="*", markersize=14, color=color)
        if curve.floor is not None:
            axis.axhline(curve.floor, linestyle="--", linewidth=1, color=color)
    axis.set(xscale="log", yscale="log", xlabel="total generator steps", ylabel="class-matched FID (val)")
    points = sorted({step for curve in curves for step in curve.steps})
    axis.set_xticks(points, [str(step) for step in points], minor=False)
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_title(f"{dataset}: ★ chosen budget, -- floor")
    axis.legend(fontsize=8)


def _auc_panel(axis, curves: list[StrategyCurve], dataset: str) -> None:  # noqa: ANN001
    for curve in curves:
        (line,) = axis.plot(curve.steps, curve.val_auc, marker=".", label=curve.strategy)
        chosen = curve.val_auc[curve.steps.index(curve.choice.steps)]
        axis.plot([curve.choice.steps], [chosen], marker="*", markersize=12, color=line.get_color())
    budget = choose_classifier_budget({c.strategy: c.choice for c in curves})
    axis.axvline(budget.steps, linestyle="--", color="grey", label=f"budget {budget.steps} ({budget.strategy})")
    axis.set(xlabel="classifier budget (steps)", ylabel="val AUC at the budget's end", title=f"{dataset}: ★ chosen")
    axis.legend(fontsize=7, ncol=2)
