"""The pilot's report: class-matched FID on validation images against total generator steps, validation AUC against
classifier steps, and the budgets they choose (`benchmark.grid.pilot`), as JSON, Markdown and two plots."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmark.data.files import write_json_atomic, write_text_atomic  # noqa: E402
from benchmark.errors import MedAugBenchError  # noqa: E402
from benchmark.grid.pilot import BudgetChoice, choose_classifier_steps, choose_generator_steps  # noqa: E402
from benchmark.grid.store import CellRecord, load_records  # noqa: E402
from benchmark.publish.leaderboard import markdown_table  # noqa: E402
from benchmark.publish.plots import save_figure  # noqa: E402

CLASSIFIER_STRATEGY = "none"


@dataclass(frozen=True)
class GeneratorCurve:
    """One generator on one dataset: FID after each total-step point; per-class models' FIDs are averaged with
    their shares of the budget (their training images) as weights, each model scored at the same budget fraction."""

    dataset: str
    strategy: str
    steps: list[int]
    fid: list[float]
    per_model: dict[str, list[float]]
    choice: BudgetChoice


@dataclass(frozen=True)
class ClassifierCurve:
    """Validation AUC of one dataset's `none` classifier after each evaluation."""

    dataset: str
    steps: list[int]
    val_auc: list[float]
    choice: BudgetChoice


def generator_curve(record: CellRecord) -> GeneratorCurve | None:
    """The tracked curve of a generative cell that was scored at total-step points (None for other cells)."""
    card = record.result.strategy.facts.get("generator") or {}
    at = (card.get("monitor") or {}).get("at_total_steps")
    if not at:
        return None
    histories = card["histories"]
    total = sum(h["steps"] for h in histories.values())
    per_model = {name: _at_points(h, at, h["steps"] / total) for name, h in histories.items()}
    fid = [sum(per_model[name][i] * h["steps"] / total for name, h in histories.items()) for i in range(len(at))]
    coords = record.cell
    return GeneratorCurve(
        coords["dataset"], coords["strategy"], list(at), fid, per_model, choose_generator_steps(at, fid)
    )


def _at_points(history: dict, at: list[int], share: float) -> list[float]:
    """A model's scores at the total-step points, each at the same fraction of the model's own budget."""
    scores = dict(zip(history["quality_step"], history["quality"]))
    missing = [t for t in at if max(1, round(t * share)) not in scores]
    if missing:
        raise MedAugBenchError(f"a generator was not scored at total steps {missing}: it stopped before them")
    return [scores[max(1, round(t * share))] for t in at]


def classifier_curve(record: CellRecord) -> ClassifierCurve:
    """The `none` cell's validation AUC against steps and the budget where it plateaued."""
    curves = record.result.curves
    points = [(s, a) for s, a in zip(curves.step, curves.val_auc) if a is not None]
    steps, auc = [s for s, _ in points], [a for _, a in points]
    return ClassifierCurve(record.cell["dataset"], steps, auc, choose_classifier_steps(steps, auc))


def pilot_curves(results_dir: Path) -> tuple[list[GeneratorCurve], list[ClassifierCurve]]:
    """Every generator curve and every `none` classifier curve of a pilot's finished cells."""
    records = [r for r in load_records(results_dir) if r.ok]
    generators = [curve for r in records if (curve := generator_curve(r)) is not None]
    classifiers = [classifier_curve(r) for r in records if r.cell["strategy"] == CLASSIFIER_STRATEGY]
    if not generators and not classifiers:
        raise MedAugBenchError(f"{results_dir} has no finished pilot cells (tracked generators or `none` classifiers)")
    return generators, classifiers


def write_pilot(generators: list[GeneratorCurve], classifiers: list[ClassifierCurve], out: Path) -> list[Path]:
    """pilot.json, pilot.md and the two curve plots of a pilot's curves (`pilot_curves`), in `out`."""
    data = {"generators": [asdict(c) for c in generators], "classifiers": [asdict(c) for c in classifiers]}
    write_json_atomic(out / "pilot.json", data)
    write_text_atomic(out / "pilot.md", pilot_markdown(generators, classifiers))
    return [out / "pilot.json", out / "pilot.md", *_plot(generators, classifiers, out)]


def pilot_markdown(generators: list[GeneratorCurve], classifiers: list[ClassifierCurve]) -> str:
    """The two curves as tables, each row ending with the budget it chose and why."""
    points = sorted({s for c in generators for s in c.steps})
    lines = ["## Generators: class-matched FID on validation images after N total steps", ""]
    rows = []
    for c in generators:
        fid = dict(zip(c.steps, c.fid))
        scores = [f"{fid[s]:.4g}" if s in fid else "–" for s in points]
        rows.append([c.dataset, c.strategy, *scores, f"{c.choice.steps} ({c.choice.reason})", c.choice.detail])
    lines += markdown_table(["dataset", "generator", *map(str, points), "chosen", "why"], rows)
    lines += ["## Classifier (`none`): validation AUC against steps", ""]
    rows = [
        [
            c.dataset,
            f"{c.steps[0]}–{c.steps[-1]} every {c.steps[1] - c.steps[0] if len(c.steps) > 1 else '-'}",
            f"{max(c.val_auc):.4f}",
            f"{c.choice.steps} ({c.choice.reason})",
            c.choice.detail,
        ]
        for c in classifiers
    ]
    lines += markdown_table(["dataset", "steps measured", "best val AUC", "chosen", "why"], rows)
    return "\n".join(lines)


def _plot(generators: list[GeneratorCurve], classifiers: list[ClassifierCurve], out: Path) -> list[Path]:
    """pilot_fid.png (log-log FID per generator, one panel per dataset) and pilot_val_auc.png."""
    paths = []
    for name, curves, draw in (
        ("pilot_fid.png", generators, _fid_panel),
        ("pilot_val_auc.png", classifiers, _auc_panel),
    ):
        datasets = sorted({c.dataset for c in curves})
        if not datasets:
            continue
        figure, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6), squeeze=False)
        for axis, dataset in zip(axes[0], datasets):
            draw(axis, [c for c in curves if c.dataset == dataset], dataset)
        paths.append(save_figure(figure, out / name, dpi=110, metadata={"Software": None}))
    return paths


def _fid_panel(axis, curves: list[GeneratorCurve], dataset: str) -> None:  # noqa: ANN001
    for curve in curves:
        (line,) = axis.plot(curve.steps, curve.fid, marker="o", label=curve.strategy)
        chosen = curve.fid[curve.steps.index(curve.choice.steps)]
        axis.plot([curve.choice.steps], [chosen], marker="*", markersize=14, color=line.get_color())
    axis.set(xscale="log", yscale="log", xlabel="total generator steps", ylabel="class-matched FID (val)")
    axis.set_title(f"{dataset}: ★ chosen budget")
    axis.legend(fontsize=8)


def _auc_panel(axis, curves: list[ClassifierCurve], dataset: str) -> None:  # noqa: ANN001
    for curve in curves:
        axis.plot(curve.steps, curve.val_auc, label="none")
        axis.axvline(curve.choice.steps, linestyle="--", color="grey", label=f"chosen: {curve.choice.steps}")
    axis.set(xlabel="classifier steps", ylabel="validation AUC", title=dataset)
    axis.legend(fontsize=8)
