"""The pilot's budget choice follows from its curves (fabricated ones here, with a known answer)."""

from __future__ import annotations

import pytest

from benchmark.grid.pilot import LIMIT, PLATEAU, choose_classifier_steps, choose_generator_steps


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


def test_classifier_budget_is_where_smoothed_val_auc_reaches_its_plateau():
    steps = list(range(100, 1100, 100))
    auc = [0.70, 0.80, 0.86, 0.90, 0.91, 0.915, 0.912, 0.916, 0.914, 0.915]
    choice = choose_classifier_steps(steps, auc, tolerance=0.005, window=3)
    # 3-evaluation means: 0.8900 (500), 0.9083 (600), 0.9123 (700), 0.9143 (800), 0.9140, best 0.9150 (1000): the
    # first within 0.005 of the best is step 700
    assert (choice.steps, choice.reason) == (700, PLATEAU)


def test_classifier_still_rising_at_the_end_is_the_limit():
    choice = choose_classifier_steps([100, 200, 300, 400], [0.6, 0.7, 0.8, 0.9], tolerance=0.001, window=1)
    assert (choice.steps, choice.reason) == (400, LIMIT)


def test_a_curve_must_have_one_value_per_increasing_step():
    with pytest.raises(ValueError, match="as many values"):
        choose_classifier_steps([100, 200], [0.5])
    with pytest.raises(ValueError, match="must increase"):
        choose_generator_steps([200, 100], [1.0, 2.0])


TINY_TRACKED = {
    "generator_steps": 8,
    "generator_batch_size": 16,
    "generator_params": {"base_channels": 8, "z_dim": 16},
    "quality_extractor": None,
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


def test_validation_tracking_scores_against_every_validation_image_of_the_models_classes(breast):
    from benchmark import StrategyContext, create
    from plugins.generative_strategies import Job

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
        train={"batch_size": 32, "eval_every": 5},
        strategy_params={"vae": tracked},
    )
    run_grid(grid, tmp_path, LocalExecutor(), progress=False)
    generators, classifiers = pilot_curves(tmp_path)
    (gan,) = generators
    assert gan.steps == [50, 100, 200] and len(gan.fid) == 3 and set(gan.per_model) == {"group_0", "group_1"}
    assert gan.choice == choose_generator_steps(gan.steps, gan.fid)
    (clf,) = classifiers
    assert clf.steps == [5, 10, 15, 20] and clf.choice == choose_classifier_steps(clf.steps, clf.val_auc)
    result = cli("pilot", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "pilot").iterdir()} == {
        "pilot.json",
        "pilot.md",
        "pilot_fid.png",
        "pilot_val_auc.png",
    }
    assert "| breastmnist | vae |" in (tmp_path / "pilot" / "pilot.md").read_text()
