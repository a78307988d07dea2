"""What the shipped presets promise: `standard` has enough runs for its tests and MedMNIST's 28-px ResNet stem."""

from __future__ import annotations

from benchmark.grid.cells import expand, validate
from benchmark.grid.config import load_preset
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
