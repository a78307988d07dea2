"""The pilot's budget choice follows from its curves (fabricated ones here, with a known answer)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmark.grid.pilot import (
    LIMIT,
    PEAKED,
    PLATEAU,
    choose_classifier_budget,
    choose_generator_steps,
    choose_strategy_steps,
)
from benchmark.publish.pilot import budget_sentence


def test_generator_budget_is_the_smallest_within_ten_percent_of_the_best():
    steps = [250, 500, 1000, 2000, 4000]
    fid = [120.0, 80.0, 60.0, 57.0, 56.0]  # from 1000 on, more steps gain only 6.7 %
    choice = choose_generator_steps(steps, fid)
    assert (choice.steps, choice.reason) == (1000, PLATEAU)
    assert "within 10% of the best measured, 56" in choice.detail and "6.7%" in choice.detail


def test_a_gan_whose_fid_rises_then_falls_is_not_stopped_at_the_bump():
    steps = [125, 250, 500, 1000, 2000]
    fid = [142.2, 84.8, 50.1, 56.7, 33.0]  # the pilot's BreastMNIST DCGAN: worse at 1000, far better at 2000
    assert choose_generator_steps(steps, fid).steps == 2000
    assert choose_generator_steps(steps, fid).reason == LIMIT


def test_a_worse_fid_after_doubling_is_a_plateau_too():
    assert choose_generator_steps([100, 200, 400], [90.0, 70.0, 75.0]).steps == 200


def test_generator_still_improving_takes_the_most_measured_and_says_so():
    choice = choose_generator_steps([250, 500, 1000], [100.0, 70.0, 50.0])
    assert (choice.steps, choice.reason) == (1000, LIMIT)
    assert "still improved by 28.6%" in choice.detail


def test_generator_budgets_must_double():
    with pytest.raises(ValueError, match="must double"):
        choose_generator_steps([250, 500, 750], [3.0, 2.0, 1.0])


CANDIDATES = [100, 200, 300, 400, 600, 800, 1000]


def test_the_classifier_budget_follows_the_slowest_strategy_not_none():
    none = choose_strategy_steps(CANDIDATES, [0.950, 0.960, 0.961, 0.960, 0.962, 0.961, 0.962])
    cutmix = choose_strategy_steps(CANDIDATES, [0.80, 0.85, 0.88, 0.91, 0.940, 0.943, 0.944])
    assert (none.steps, none.reason) == (200, PLATEAU)
    assert (cutmix.steps, cutmix.reason) == (600, PLATEAU)
    budget = choose_classifier_budget({"none": none, "cutmix_mixup": cutmix})
    assert (budget.steps, budget.reason, budget.strategy) == (600, PLATEAU, "cutmix_mixup")


def test_a_strategy_still_improving_at_the_largest_budget_makes_the_budget_the_limit():
    none = choose_strategy_steps(CANDIDATES, [0.950, 0.960, 0.961, 0.960, 0.962, 0.961, 0.962])
    cutmix = choose_strategy_steps(CANDIDATES, [0.80, 0.85, 0.88, 0.91, 0.92, 0.93, 0.94])
    assert (cutmix.steps, cutmix.reason) == (1000, LIMIT) and "still improving" in cutmix.detail
    budget = choose_classifier_budget({"none": none, "cutmix_mixup": cutmix})
    assert (budget.steps, budget.reason, budget.strategy) == (1000, LIMIT, "cutmix_mixup")
    assert "LIMIT: cutmix_mixup was still improving at 1000 steps" in budget_sentence(budget)


def test_a_tie_at_the_largest_choice_is_set_by_the_strategy_that_hit_the_limit():
    limit = choose_strategy_steps([100, 200], [0.80, 0.90])
    late = choose_strategy_steps([100, 200, 300], [0.80, 0.90, 0.902])
    assert (limit.steps, limit.reason, late.steps, late.reason) == (200, LIMIT, 200, PLATEAU)
    assert choose_classifier_budget({"a": late, "b": limit}).strategy == "b"


def test_a_curve_best_early_then_worse_is_peaked_early_not_a_plateau():
    choice = choose_strategy_steps([100, 200, 300, 400], [0.90, 0.95, 0.93, 0.91])
    assert (choice.steps, choice.reason) == (200, PEAKED) and "fell to 0.9100 at 400" in choice.detail
    cgan = choose_generator_steps([125, 250, 500, 1000, 2000], [55.1, 84.1, 82.7, 130.1, 171.2])  # BreastMNIST cGAN
    assert (cgan.steps, cgan.reason) == (125, PEAKED)


def test_pilot_md_calls_a_peaked_curve_peaked_early_and_states_the_limit():
    from benchmark.publish.pilot import ClassifierPilot, Pilot, StrategyCurve, generator_curves, pilot_markdown

    curves = [
        StrategyCurve("breastmnist", "none", [100, 200, 300], [0.90, 0.95, 0.91], 1, None),
        StrategyCurve("breastmnist", "cutmix_mixup", [100, 200, 300], [0.80, 0.85, 0.90], 1, None),
    ]
    curves = [replace(c, choice=choose_strategy_steps(c.steps, c.val_auc)) for c in curves]
    budgets = {"breastmnist": choose_classifier_budget({c.strategy: c.choice for c in curves})}
    run = replace(budgets["breastmnist"], strategy="cutmix_mixup on breastmnist")
    (cgan,) = generator_curves([_run(0, [55.1, 84.1, 82.7])])
    text = pilot_markdown(Pilot([cgan], ClassifierPilot(curves, budgets, run, {"schedule": "wsd"})))
    assert "| breastmnist | cgan | 0 | 30 | 55.1 | 84.1 | 82.7 | 125 (peaked early) | 0.90 (0.80) | none |" in text
    assert "| none | 1 | 0.9000 | 0.9500 | 0.9100 | 200 (peaked early) |" in text
    assert "(plateau)" not in text
    assert "**Budget on breastmnist: 300 steps**, set by cutmix_mixup (limit)." in text
    assert "LIMIT: cutmix_mixup on breastmnist was still improving at 300 steps" in text


def test_strategies_trained_under_different_schedules_are_refused():
    from types import SimpleNamespace

    from benchmark import MedAugBenchError
    from benchmark.publish.pilot import one_optim

    def record(strategy: str, schedule: str) -> SimpleNamespace:
        return SimpleNamespace(cell={"strategy": strategy}, result=SimpleNamespace(config={"optim": {"s": schedule}}))

    assert one_optim([record("none", "wsd"), record("geometric", "wsd")]) == {"s": "wsd"}
    with pytest.raises(MedAugBenchError, match="2 different optimizer configs"):
        one_optim([record("none", "wsd"), record("geometric", "cosine")])


def test_wsd_warms_up_holds_and_decays_linearly():
    from benchmark.train.config import OPTIM_PRESETS, OptimConfig, TrainConfig

    wsd = OptimConfig(schedule="wsd", warmup_steps=10, decay=0.2)
    assert wsd.factor(0 / 100, 0) == pytest.approx(0.1) and wsd.factor(4 / 100, 4) == pytest.approx(0.5)
    assert wsd.factor(10 / 100, 10) == 1.0 and wsd.factor(79 / 100, 79) == 1.0  # stable
    assert wsd.factor(90 / 100, 90) == pytest.approx(0.5) and wsd.factor(99 / 100, 99) == pytest.approx(0.05)
    assert wsd.factor(0.5, 500) == wsd.factor(0.25, 500)  # the stable phase does not depend on the budget
    assert TrainConfig(optimizer="wsd").resolved_optim() == OPTIM_PRESETS["wsd"]
    assert OptimConfig().factor(0.5, 3) == pytest.approx(0.5)  # no warmup unless asked: cosine as before


def test_each_budget_forks_where_its_learning_rate_first_differs():
    from benchmark.train.branches import fork_points
    from benchmark.train.config import OPTIM_PRESETS, OptimConfig

    assert fork_points(OPTIM_PRESETS["wsd"], [50, 100, 1000], 1000) == {40: [50], 80: [100]}
    assert fork_points(OptimConfig(), [50, 100], 1000) == {1: [50, 100]}  # cosine: a run per budget
    assert fork_points(OptimConfig(schedule="constant"), [50], 1000) == {50: [50]}  # constant: the run's own step


@pytest.mark.slow
def test_a_branch_ends_exactly_where_a_standalone_run_with_its_budget_ends(breast):
    from benchmark.train.config import Budget, TrainConfig
    from benchmark.train.loop import train

    base = {"dataset": "breastmnist", "strategy": "cutmix_mixup", "batch_size": 32, "eval_every": 5}
    base |= {"optimizer": "wsd", "device": "cpu"}
    pilot = train(TrainConfig(budget=Budget(steps=24), pilot_budgets=(12, 18), **base), progress=False, data=breast)
    assert [(b.steps, b.forked_at) for b in pilot.budget_branches] == [(12, 10), (18, 15), (24, 24)]
    for branch in pilot.budget_branches[:2]:
        alone = train(TrainConfig(budget=Budget(steps=branch.steps), **base), progress=False, data=breast)
        curves = alone.curves
        assert alone.budget_branches == [] and branch.val_auc == curves.val_auc[-1]
        assert branch.val_balanced_accuracy == curves.val_balanced_accuracy[-1]
        assert branch.train_loss == curves.train_loss[-1]
        assert (branch.best_step, branch.best_score) == (alone.best["step"], alone.metrics.val.auc)
    assert pilot.budget_branches[-1].val_auc == pilot.curves.val_auc[-1]


def test_pilot_budgets_beyond_the_classifier_budget_are_a_grid_problem():
    from benchmark import MedAugBenchError
    from benchmark.grid.cells import validate
    from benchmark.grid.config import BudgetBlock, GridConfig

    grid = GridConfig(budget=BudgetBlock(classifier_steps=100), train={"pilot_budgets": [50, 200]})
    with pytest.raises(MedAugBenchError, match=r"pilot_budgets \[200\] exceed classifier_steps 100"):
        validate(grid, None, check_files=False)


def test_a_curve_must_have_one_value_per_increasing_step():
    with pytest.raises(ValueError, match="as many values"):
        choose_strategy_steps([100, 200], [0.5])
    with pytest.raises(ValueError, match="must increase"):
        choose_generator_steps([200, 100], [1.0, 2.0])


TINY_TRACKED = {
    "generator_steps": 8,
    "generator_batch_size": 16,
    "generator_params": {"base_channels": 8, "z_dim": 16},
    "quality_extractor": None,
    "class_fidelity": False,
    "reuse": False,
    "monitor_params": {"steps": 3},
}


def _fit(name: str, data, **params):
    import torch

    from benchmark import StrategyContext, create

    strategy = create("strategy", name, **TINY_TRACKED, **params)
    return strategy.fitted(StrategyContext(dataset=data, device=torch.device("cpu"), seed=0, progress=False))


@pytest.fixture(scope="module")
def breast():
    from benchmark.data.dataset import load_dataset
    from tests.helpers import require_medmnist

    require_medmnist("breastmnist")
    return load_dataset("breastmnist")


def test_pilot_tracking_scores_per_class_models_at_the_same_fractions_of_their_budgets(breast):
    _, card = _fit("dcgan", breast, track_quality_at=[2, 4, 8], track_quality_on="val")
    steps = {name: h["steps"] for name, h in card["histories"].items()}
    assert sum(steps.values()) == 8
    for name, history in card["histories"].items():
        share = steps[name] / 8
        assert history["quality_step"] == sorted({max(1, round(t * share)) for t in (2, 4, 8)})
        assert all(q > 0 for q in history["quality"])
    assert card["monitor"]["at_total_steps"] == [2, 4, 8] and "validation image" in card["monitor"]["reference"]
    floors = card["monitor"]["floor"]["per_model"]
    assert set(floors) == set(card["histories"])  # once per model, against that model's validation reference
    for name, floor in floors.items():
        own = int((breast.val.labels == breast.task.labels.index(name)).sum())
        assert floor["reference_images"] == own and floor["images"] == own and floor["fid"] > 0


def test_validation_tracking_scores_against_every_validation_image_of_the_models_classes(breast):
    from benchmark import StrategyContext, create
    from benchmark.synthesis.pipeline import Job

    strategy = create("strategy", "dcgan", **TINY_TRACKED, track_quality_at=[8], track_quality_on="val")
    context = StrategyContext(dataset=breast, device=None, seed=0)
    malignant = strategy.monitor_reference(context, Job(breast.train, None, 0, group=0))
    assert len(malignant) == int((breast.val.labels == 0).sum()) and bool((malignant.labels == 0).all())
    assert len(strategy.monitor_reference(context, Job(breast.train, None, 2, group=None))) == len(breast.val)


def test_tracking_only_records_it_never_changes_the_weights(breast):
    import torch

    tracked, card = _fit("cgan", breast, track_quality_at=[2, 4, 8], track_quality_on="val")
    plain, _ = _fit("cgan", breast)
    assert card["histories"]["all"]["quality_step"] == [2, 4, 8]
    weights = zip(tracked["all"].state_dict().values(), plain["all"].state_dict().values())
    assert all(torch.equal(a, b) for a, b in weights)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"track_quality_on": "test"}, "track_quality_on must be one of train, val, got 'test'"),
        ({"track_quality_on": "val", "early_stop_every": 4}, "track_quality_on='val' only records"),
        (
            {"track_quality_at": [4], "generator_steps": None, "generator_seconds": 3.0},
            "track_quality_at is in generator",
        ),
    ],
)
def test_bad_tracking_settings_are_one_message(params, message):
    from benchmark import MedAugBenchError, create

    with pytest.raises(MedAugBenchError, match=message):
        create("strategy", "cgan", **{**TINY_TRACKED, **params})


@pytest.mark.slow
def test_the_pilot_report_reads_a_tiny_pilot_run_and_chooses_from_its_curves(tmp_path, cli):
    from benchmark.grid.config import BudgetBlock, GridConfig
    from benchmark.grid.executor import LocalExecutor
    from benchmark.grid.runner import run_grid
    from benchmark.publish.pilot import pilot_curves
    from tests.helpers import require_medmnist

    require_medmnist("breastmnist")
    tracked = {**TINY_TRACKED, "track_quality_at": [50, 100, 200], "track_quality_on": "val", "conditioning": False}
    tracked.pop("generator_steps")
    tracked["generator_params"] = {"base_channels": 8, "latent_dim": 8}  # one VAE per class
    grid = GridConfig(
        name="tiny-pilot",
        datasets=("breastmnist",),
        strategies=("none", "vae"),
        budget=BudgetBlock(classifier_steps=20, generator_steps=200),  # fewer: the malignant VAE still collapses
        train={"batch_size": 32, "eval_every": 5, "optimizer": "wsd", "pilot_budgets": [10, 15]},
        strategy_params={"vae": tracked},
    )
    run_grid(grid, tmp_path, LocalExecutor(), progress=False)
    pilot = pilot_curves(tmp_path)
    (gan,) = pilot.generators
    (run,) = gan.runs
    assert gan.steps == [50, 100, 200] and len(gan.fid) == 3 and set(run.per_model) <= {"malignant", "normal, benign"}
    assert gan.choice == choose_generator_steps(gan.steps, gan.fid) and gan.seeds == [0] and gan.floor > 0
    curves = {c.strategy: c for c in pilot.classifier.curves}
    assert set(curves) == {"none", "vae"}  # every strategy, not only `none`
    for curve in curves.values():
        assert curve.steps == [10, 15, 20] and curve.choice == choose_strategy_steps(curve.steps, curve.val_auc)
    assert pilot.classifier.budgets["breastmnist"] == choose_classifier_budget({n: c.choice for n, c in curves.items()})
    assert pilot.classifier.optim["schedule"] == "wsd"
    result = cli("pilot", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "pilot").iterdir()} == {
        "pilot.json",
        "pilot.md",
        "pilot_fid.png",
        "pilot_val_auc.png",
    }
    text = (tmp_path / "pilot" / "pilot.md").read_text()
    assert "| breastmnist | vae |" in text and "| vae | 1 |" in text and "The run's classifier budget" in text


def test_the_published_old_pilot_is_still_read_and_says_it_sizes_no_classifier_budget(tmp_path, cli):
    import shutil

    from benchmark.publish.pilot import OLD_PILOT_NOTE
    from tests.helpers import REPO

    folder = tmp_path / "pilot-copy"
    shutil.copytree(REPO / "results" / "pilot" / "records", folder / "records")
    result = cli("pilot", str(folder))
    assert result.exit_code == 0, result.output
    text = (folder / "pilot" / "pilot.md").read_text()
    assert "| breastmnist | cgan | 0 | – | 55.1 | 84.08 | 82.66 | 130.1 | 171.2 | 125 (peaked early) | – | – |" in text
    assert OLD_PILOT_NOTE in text and not (folder / "pilot" / "pilot_val_auc.png").exists()


def test_a_variant_with_its_own_schedule_is_a_grid_problem():
    from benchmark import MedAugBenchError
    from benchmark.grid.cells import validate
    from benchmark.grid.config import GridConfig, Variant

    variant = Variant(strategy="geometric", train={"optimizer": "medmnist"})
    grid = GridConfig(strategies=("none", "fast"), variants={"fast": variant}, train={"optimizer": "wsd"})
    with pytest.raises(MedAugBenchError, match=r"variants.fast.train sets optimizer: every strategy trains with"):
        validate(grid, None, check_files=False)


def _run(seed: int, fid: list[float], floor: float | None = 30.0, flags: list[str] | None = None):
    from benchmark.publish.pilot import GeneratorRun

    steps = [125, 250, 500, 1000, 2000][: len(fid)]
    return GeneratorRun("breastmnist", "cgan", seed, steps, fid, {}, floor, 0.9, 0.8, [] if flags is None else flags)


def test_the_pilot_aggregates_generator_seeds_and_chooses_from_their_mean():
    from benchmark.publish.pilot import generator_curves, generator_markdown

    runs = [_run(2, [60.0, 40.0, 30.0], 20.0, ["class 'malignant': not recognisable"]), _run(0, [100.0, 50.0, 30.0])]
    runs.append(_run(1, [80.0, 30.0, 36.0], 40.0))
    (curve,) = generator_curves(runs)
    assert curve.seeds == [0, 1, 2] and curve.fid == [80.0, 40.0, 32.0]
    assert (curve.fid_min, curve.fid_max) == ([60.0, 30.0, 30.0], [100.0, 50.0, 36.0])
    assert curve.floor == pytest.approx(30.0) and curve.flags == ["seed 2: class 'malignant': not recognisable"]
    mean_choice = choose_generator_steps(curve.steps, curve.fid)  # seed 1 alone would choose 250
    assert (curve.choice.steps, curve.choice.reason) == (mean_choice.steps, mean_choice.reason) == (500, LIMIT)
    assert curve.choice.detail.startswith("mean of 3 seeds: ")
    row = next(line for line in generator_markdown([curve]) if line.startswith("| breastmnist"))
    assert row.startswith("| breastmnist | cgan | 0, 1, 2 | 30 | 80 (60–100) | 40 (30–50) | 32 (30–36) | 500 (limit) |")
    assert "| seed 2: class 'malignant': not recognisable |" in row


def test_a_seed_without_a_floor_leaves_the_floor_unmeasured_and_differing_steps_are_refused():
    from benchmark import MedAugBenchError
    from benchmark.publish.pilot import generator_curves

    (curve,) = generator_curves([_run(0, [3.0, 2.0]), _run(1, [3.0, 2.0], floor=None, flags=None)])
    assert curve.floor is None and curve.flags == []
    with pytest.raises(MedAugBenchError, match="scored at different steps"):
        generator_curves([_run(0, [3.0, 2.0]), _run(1, [3.0, 2.0, 1.0])])


def test_a_records_floor_is_its_models_floors_weighted_like_their_fids():
    from types import SimpleNamespace

    from benchmark.publish.pilot import generator_run

    histories = {
        "malignant": {"steps": 50, "quality_step": [25, 50], "quality": [90.0, 70.0]},
        "normal": {"steps": 150, "quality_step": [75, 150], "quality": [50.0, 30.0]},
    }
    floor = {"per_model": {"malignant": {"fid": 40.0}, "normal": {"fid": 20.0}}}
    card = {"histories": histories, "monitor": {"at_total_steps": [100, 200], "floor": floor}}
    facts = {"generator": card, "fidelity": {"overall": {"fidelity": 0.7, "recall": 0.9}}, "flags": []}
    cell = {"dataset": "breastmnist", "strategy": "dcgan", "seed": 3}
    run = generator_run(SimpleNamespace(cell=cell, result=SimpleNamespace(strategy=SimpleNamespace(facts=facts))))
    assert run.fid == [0.25 * 90 + 0.75 * 50, 0.25 * 70 + 0.75 * 30] and run.floor == 0.25 * 40 + 0.75 * 20
    assert (run.seed, run.fidelity, run.fidelity_real, run.flags) == (3, 0.7, 0.9, [])


def test_the_floor_draws_training_images_in_the_references_class_composition():
    import torch

    from benchmark.data.dataset import Split
    from benchmark.synthesis.floor import composition_matched

    def split(labels: list[int]) -> Split:
        return Split(torch.zeros(len(labels), 1, 4, 4, dtype=torch.uint8), torch.tensor(labels))

    reference = split([0] * 4 + [1] * 8)
    drawn = composition_matched(reference, split([0] * 10 + [1] * 20 + [2] * 5), torch.Generator().manual_seed(0))
    assert torch.bincount(drawn.labels, minlength=3).tolist() == [4, 8, 0]
    short = composition_matched(reference, split([0] * 10 + [1] * 6), torch.Generator().manual_seed(0))
    assert torch.bincount(short.labels).tolist() == [3, 6]  # 6 of the 8 ones there are: every class times 3/4
    rows = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])  # multi-label: exact label rows
    pool = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    images = torch.zeros(5, 1, 4, 4, dtype=torch.uint8)
    drawn = composition_matched(Split(images[:4], rows), Split(images, pool), torch.Generator().manual_seed(0))
    assert drawn.labels.tolist() == [[1.0, 0.0], [1.0, 1.0]]  # one [1, 1] row in the pool: every row halved


def test_training_reference_tracking_records_no_floor(breast):
    _, card = _fit("cgan", breast, track_quality_at=[4, 8])
    assert "floor" not in card["monitor"]


def test_the_seeds_companion_runs_the_pilots_own_gan_cells_with_other_seeds():
    from benchmark.grid.cells import expand, validate
    from benchmark.grid.config import load_preset
    from benchmark.grid.plan import config_signature, row_key

    def rows(name: str) -> dict[str, list]:
        grid = load_preset(name)
        cells = expand(grid, validate(grid, None, check_files=False))
        found: dict[str, list] = {}
        for cell in cells:
            found.setdefault(row_key(cell.coords), []).append(
                (cell.coords["seed"], config_signature(cell.config.to_dict()))
            )
        return found

    pilot, seeds = rows("cpu-pilot"), rows("cpu-pilot-seeds")
    assert len(seeds) == 2 and set(seeds) <= set(pilot)
    for row, runs in seeds.items():
        ((_, wanted),) = pilot[row]  # cpu-pilot runs seed 0 only
        assert sorted(seed for seed, _ in runs) == [1, 2] and all(signature == wanted for _, signature in runs)


def test_a_reused_generator_is_one_curve_named_by_its_base_strategy():
    """cgan+geometric and a later classifier seed reuse cgan's generator (same cache name): one curve, cgan's."""
    from types import SimpleNamespace

    from benchmark.publish.pilot import one_per_generator
    from benchmark.train.record import PhaseCompute

    def record(strategy: str, seed: int, generator: str | None):
        phases = {} if generator is None else {"generator_training": PhaseCompute(detail={"generator": generator})}
        cell = {"strategy": strategy, "base_strategy": strategy.split("+")[0], "seed": seed}
        return SimpleNamespace(cell=cell, result=SimpleNamespace(compute=SimpleNamespace(phases=phases)))

    records = [record("cgan+geometric", 0, "cgan-a"), record("cgan", 1000, "cgan-a"), record("cgan", 0, "cgan-a")]
    records += [record("cgan", 1, "cgan-b"), record("none", 0, None), record("geometric", 0, None)]
    kept = one_per_generator(records)
    assert [(r.cell["strategy"], r.cell["seed"]) for r in kept] == [
        ("cgan", 1000),
        ("cgan", 1),
        ("none", 0),
        ("geometric", 0),
    ]
