"""What the shipped presets promise: `standard` has enough runs for its tests and MedMNIST's 28-px ResNet stem."""

from __future__ import annotations

import pytest

from benchmark.grid.cells import expand, validate
from benchmark.grid.config import load_preset
from benchmark.grid.runner import generator_waves
from benchmark.registry import create


def test_standard_runs_twelve_seed_pairs_with_the_medmnist_resnet_stem():
    grid = load_preset("standard")
    runs = grid.seed_runs()  # 3 generator seeds × 4 classifier seeds: 12 runs per row (issue 22)
    assert len(set(runs)) == 12 and {g for g, _ in runs} == {0, 1, 2}
    assert grid.train["robustness"] is True
    cells = expand(grid, validate(grid, None, check_files=False))
    assert {c.config.backbone_params.get("stem") for c in cells} == {"small"}
    model = create("backbone", "resnet18", in_chans=1, num_classes=2, image_size=28, **cells[0].config.backbone_params)
    assert model.conv1.stride == (1, 1)


def test_dataset_fractions_set_a_datasets_own_training_fractions():
    from benchmark.grid.cells import expand
    from benchmark.grid.config import GridConfig

    grid = GridConfig(datasets=("breastmnist", "pneumoniamnist"), dataset_fractions={"pneumoniamnist": (0.1,)})
    cells = expand(grid, {"breastmnist": 546, "pneumoniamnist": 4708})
    assert [(c.coords["dataset"], c.coords["train_fraction"]) for c in cells] == [
        ("breastmnist", 1.0),
        ("pneumoniamnist", 0.1),
    ]
    assert "dataset_fractions" not in GridConfig().to_dict()  # grids without it keep their old form


def test_dataset_fractions_naming_another_dataset_is_a_problem(tmp_path):
    import pytest

    from benchmark.errors import MedAugBenchError
    from benchmark.grid.cells import validate
    from benchmark.grid.config import GridConfig

    grid = GridConfig(datasets=("breastmnist",), dataset_fractions={"pneumoniamnist": (0.1,)})
    with pytest.raises(MedAugBenchError, match="dataset_fractions\\] names 'pneumoniamnist'"):
        validate(grid, None, check_files=False)


ANSWER_ROWS = {
    "none",
    "oversample",
    "class_weighted",
    "geometric",
    "randaugment",
    "trivialaugment",
    "augmix",
    "cutmix_mixup",
    "medmnistc",
    "vae",
    "dcgan",
    "cgan",
    "ddpm",
    "cgan+geometric",
    "ddpm+geometric",
}
GENERATORS = {"vae", "dcgan", "cgan", "ddpm"}
SIMPLE_CNN_STEP_FLOPS = 3851747328  # one simple_cnn step at batch 64 on 28-px grey images, forward and backward


def answer_cells(name: str) -> list:
    grid = load_preset(name)
    return expand(grid, validate(grid, None, check_files=False))


def test_the_answer_expands_to_twelve_runs_per_row_on_three_datasets_with_reused_generators():
    """cpu-answer-2 (issue 22): 3 datasets × 15 rows × 12 runs from 3 generator seeds, robustness scored; one generator
    per dataset × generator × generator seed (36), shared by its 4 classifier seeds and its +geometric variant."""
    cells = answer_cells("cpu-answer-2")
    assert len(cells) == 540
    blocks = {(c.coords["dataset"], c.coords["train_fraction"]) for c in cells}
    assert blocks == {("breastmnist", 1.0), ("pneumoniamnist", 0.1), ("retinamnist", 1.0)}
    assert {c.coords["strategy"] for c in cells} == ANSWER_ROWS
    rows: dict[tuple, set] = {}
    for c in cells:
        rows.setdefault((c.coords["dataset"], c.coords["strategy"]), set()).add(
            (c.coords["generator_seed"], c.coords["seed"])
        )
    assert all(len(runs) == 12 and {g for g, _ in runs} == {0, 1, 2} for runs in rows.values())
    assert all(c.config.robustness for c in cells)
    generative = [c for c in cells if c.coords["base_strategy"] in GENERATORS]
    trainings = {(c.coords["dataset"], c.coords["base_strategy"], c.coords["generator_seed"]) for c in generative}
    assert len(trainings) == 3 * 4 * 3 and len(generative) == 3 * 6 * 12
    leaders = generator_waves(cells)[0]
    assert sum(c.coords["base_strategy"] in GENERATORS for c in leaders) == 3 * 4 * 3  # one cell trains each
    budgets = {(c.config.budget.steps, c.config.strategy_params.get("generator_steps")) for c in generative}
    assert len(budgets) == 1  # one classifier and one generator budget for every generative cell


def test_the_learning_curve_shares_the_answers_ten_percent_cells():
    """cpu-answer-2-curve: none and geometric at 5-100 % of PneumoniaMNIST, 6 runs per point; its 10 % cells are the
    answer's own (same ids), so running it into the answer's folder trains only the other fractions."""
    curve, answer = answer_cells("cpu-answer-2-curve"), answer_cells("cpu-answer-2")
    assert {c.coords["train_fraction"] for c in curve} == {0.05, 0.1, 0.2, 0.4, 1.0}
    assert len(curve) == 2 * 5 * 6
    shared = {c.cell_id for c in curve} & {c.cell_id for c in answer}
    assert shared == {c.cell_id for c in curve if c.coords["train_fraction"] == 0.1} and len(shared) == 12


@pytest.mark.parametrize("multiple", [1, 2, 4])
def test_the_compute_curve_totals_are_multiples_of_a_classic_answer_cell(multiple):
    """cpu-answer-2-compute-Nx: every generative row and geometric/randaugment (and none, the baseline) on
    PneumoniaMNIST 10 % at N × the FLOPs of an answer cell's classifier, 3 runs per point, half to the generator."""
    cells = answer_cells(f"cpu-answer-2-compute-{multiple}x")
    classic_steps = load_preset("cpu-answer-2").budget.classifier_steps
    grid = load_preset(f"cpu-answer-2-compute-{multiple}x")
    assert grid.budget.total_flops == pytest.approx(multiple * classic_steps * SIMPLE_CNN_STEP_FLOPS, rel=1e-3)
    assert grid.budget.generator_share == 0.5
    assert {c.coords["strategy"] for c in cells} == {"none", "geometric", "randaugment"} | (
        ANSWER_ROWS & (GENERATORS | {"cgan+geometric", "ddpm+geometric"})
    )
    assert {(c.coords["dataset"], c.coords["train_fraction"]) for c in cells} == {("pneumoniamnist", 0.1)}
    assert len(cells) == 9 * 3


def test_the_simple_cnn_step_costs_what_the_compute_presets_assume():
    import torch
    import torch.nn.functional as F

    from benchmark.train.flops import count_flops

    model = create("backbone", "simple_cnn", in_chans=1, num_classes=2, image_size=28)
    images, labels = torch.zeros(64, 1, 28, 28), torch.zeros(64, dtype=torch.long)
    assert count_flops(lambda: F.cross_entropy(model(images), labels).backward()) == SIMPLE_CNN_STEP_FLOPS
