"""MedMNIST-C robustness: corrupted test sets made deterministically and cached, equal to the package's own
DatasetManager output; a classifier's robustness block; the publish table; the `medmnistc` strategy; and the one
message when the package or Wand is missing."""

from __future__ import annotations

import dataclasses
import random
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

from benchmark import MedAugBenchError, create
from benchmark.data.dataset import LoadedDataset, Split
from benchmark.data.task import TaskSpec
from benchmark.evaluate import robustness
from benchmark.grid.cells import expand, validate
from benchmark.grid.config import BudgetBlock, GridConfig
from benchmark.grid.executor import LocalExecutor
from benchmark.grid.runner import run_grid
from benchmark.grid.store import OK, CellRecord, load_records, write_record
from benchmark.publish.leaderboard import write_leaderboard
from benchmark.publish.robustness import render, robustness_table, scores_table
from benchmark.train.config import TrainConfig
from benchmark.train.record import CorruptionScore, RobustnessReport
from tests.fake_results import make_fake_results
from tests.helpers import require_medmnist


def _installed() -> str:
    """'' when medmnistc and Wand import, else why not."""
    try:
        robustness.load_registry()
    except MedAugBenchError as error:
        return str(error)
    return ""


needs_medmnistc = pytest.mark.skipif(bool(_installed()), reason=_installed() or "installed")
BREAST = TaskSpec("binary", ("malignant", "normal, benign"), 1)


def tiny_breast(n: int = 6, size: int = 28) -> LoadedDataset:
    """A fabricated dataset named breastmnist (so it takes BreastMNIST's corruption list): random images."""
    images = torch.randint(0, 256, (n, 1, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    split = Split(images, torch.arange(n) % 2)
    return LoadedDataset("breastmnist", BREAST, split, split, split, source_size=size, image_size=size)


def global_states() -> tuple:
    """Python's and numpy's global RNG states and, where Wand imports, ImageMagick's thread limit."""
    states = (random.getstate(), np.random.get_state()[1].tobytes())
    if _installed():
        return states
    from wand.resource import limits

    return (*states, limits["thread"])


@needs_medmnistc
def test_corrupted_sets_are_deterministic_cached_and_leave_global_rngs_alone(monkeypatch) -> None:
    data = tiny_breast()
    before = global_states()
    first = dict(robustness.corrupted_test_sets(data))
    assert global_states() == before
    assert list(first) == list(robustness.corruptions("breastmnist"))
    assert all(sets.shape == (5, 6, 1, 28, 28) and sets.dtype == torch.uint8 for sets in first.values())
    key = robustness.corrupted_test_sets(data).key
    assert "breastmnist_28px_medmnistc-" in key and len(list(robustness.cache_folder(key).glob("*.npy"))) == 7
    made = robustness.corrupt_images("breastmnist", robustness.to_package_layout(data.test.images), 0)
    assert all(np.array_equal(made[name], first[name][:, :, 0].numpy()) for name in made)
    monkeypatch.setattr(robustness, "each_corruption", lambda *args: pytest.fail("the cache was not used"))
    again = dict(robustness.corrupted_test_sets(data))
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not torch.equal(first["speckle_noise"][0], data.test.images)  # corrupted indeed


@needs_medmnistc
def test_corrupted_sets_equal_the_package_dataset_manager_output(tmp_path, monkeypatch) -> None:
    """The package's own pipeline on a fabricated 224-pixel BreastMNIST file: the same bytes for every corruption and
    severity (its motion blur run with numpy's removed `fromstring` shimmed, which our repair replaces)."""
    from medmnistc.dataset_manager import DatasetManager

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 224, 224), dtype=np.uint8)
    labels = np.zeros((2, 1), dtype=np.uint8)
    splits = ("train", "val", "test")
    arrays = {f"{s}_images": images for s in splits} | {f"{s}_labels": labels for s in splits}
    np.savez(tmp_path / "breastmnist_224.npz", **arrays)
    monkeypatch.setattr(np, "fromstring", lambda data, dtype: np.frombuffer(data, dtype), raising=False)
    monkeypatch.setenv("PYTHONHASHSEED", "0")  # the package's seed_everything sets it; undone after the test
    for flag in ("deterministic", "benchmark"):
        monkeypatch.setattr(torch.backends.cudnn, flag, getattr(torch.backends.cudnn, flag))
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng():
        DatasetManager(str(tmp_path), str(tmp_path / "out"), random_seed=0).create_single_dataset("breastmnist")
    random.setstate(python_state)
    np.random.set_state(numpy_state)
    ours = robustness.corrupt_images("breastmnist", images, seed=0)
    for name, sets in ours.items():
        theirs = np.load(tmp_path / "out" / "breastmnist" / f"{name}.npz")["test_images"]
        assert np.array_equal(theirs, sets.reshape(-1, 224, 224)), name


@needs_medmnistc
def test_a_classifier_gets_a_robustness_block_per_corruption_and_severity() -> None:
    data = tiny_breast()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 2))
    report = robustness.robustness_report(model, data, TrainConfig(dataset="breastmnist"), torch.device("cpu"))
    names = list(robustness.corruptions("breastmnist"))
    assert [(s.corruption, s.severity) for s in report.scores] == [(n, k) for n in names for k in range(1, 6)]
    assert all(0 <= s.balanced_error <= 1 and 0 <= s.ece <= 1 and len(s.recall_per_class) == 2 for s in report.scores)
    assert report.images == 6 and report.package.startswith("medmnistc ")
    assert RobustnessReport.from_dict(report.to_dict()) == report


@needs_medmnistc
@pytest.mark.slow
def test_a_grid_cell_with_robustness_writes_the_block_in_its_record(tmp_path) -> None:
    require_medmnist("breastmnist")
    grid = GridConfig(
        name="robust",
        datasets=("breastmnist",),
        strategies=("none", "medmnistc"),
        seeds=(0,),
        budget=BudgetBlock(classifier_steps=2),
        train={"robustness": True, "eval_every": 2, "batch_size": 32},
    )
    run = run_grid(grid, tmp_path, LocalExecutor(), progress=False)
    assert not run.failed
    for record in load_records(tmp_path):
        block = record.result.robustness
        assert block is not None and len(block.scores) == 35 and block.images == record.result.metrics.test.n
        assert block.seconds > 0 and "robustness" not in record.result.budget.seconds  # evaluation, not training
    ids = {flag: cell_ids(dataclasses.replace(grid, train=grid.train | {"robustness": flag})) for flag in (True, False)}
    plain = dataclasses.replace(grid, train={k: v for k, v in grid.train.items() if k != "robustness"})
    assert ids[False] == cell_ids(plain) != ids[True]  # off keeps the ids of cells written before the option


def cell_ids(grid: GridConfig) -> list[str]:
    return [cell.cell_id for cell in expand(grid, validate(grid, None, check_files=False))]


def fabricated_block(error: float) -> RobustnessReport:
    """Two corruptions, each at severities 1-5: pixelate's error `error` at every severity, noise's 2 × `error`."""
    scores = [
        CorruptionScore(name, severity, factor * error, None, 0.1, [0.5, 0.5])
        for name, factor in (("pixelate", 1), ("gaussian_noise", 2))
        for severity in range(1, 6)
    ]
    return RobustnessReport("medmnistc 0.1.0", "key", 0, 200, scores, 1.0)


def with_blocks(records: list[CellRecord], errors: dict[str, float]) -> list[CellRecord]:
    """The records with a fabricated robustness block of their strategy's error."""
    blocks = [fabricated_block(errors[r.cell["strategy"]]) for r in records]
    return [dataclasses.replace(r, result=dataclasses.replace(r.result, robustness=b)) for r, b in zip(records, blocks)]


def test_the_robustness_table_gives_relative_mce_against_none(tmp_path) -> None:
    records = make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("none", "geometric"))
    table = robustness_table(scores_table(with_blocks(records, {"none": 0.2, "geometric": 0.1})), "none")
    rows = table.set_index("strategy")
    assert rows.loc["none", "relative_mce"] == pytest.approx(1.0)
    assert rows.loc["geometric", "relative_mce"] == pytest.approx(0.5)
    assert rows.loc["geometric", "corrupted_balanced_error"] == pytest.approx(0.15)  # mean of 0.1 and 0.2
    assert rows.loc["geometric", "error_gaussian_noise"] == pytest.approx(0.2)
    assert rows.loc["geometric", "corrupted_ece"] == pytest.approx(0.1) and rows.loc["none", "runs"] == 3
    assert rows.loc["geometric", "corrupted_recall_1"] == pytest.approx(0.5)
    clean = [1 - r.result.metrics.test.balanced_accuracy for r in records if r.cell["strategy"] == "none"]
    assert rows.loc["none", "clean_balanced_error"] == pytest.approx(np.mean(clean))


def test_robustness_against_none_is_tested_over_generator_seed_means_and_holm_corrected(tmp_path) -> None:
    records = make_fake_results(
        tmp_path, datasets=("pneumoniamnist",), strategies=("none", "geometric", "augmix"), generator_seeds=(0, 1, 2)
    )
    shift = {"none": 0.0, "geometric": -0.1, "augmix": 0.0}  # geometric 10 pp less error; augmix only noise
    blocks = {
        r.cell_id: fabricated_block(
            0.3
            + shift[r.cell["strategy"]]
            + 0.01 * r.cell["generator_seed"] * (r.cell["strategy"] != "none")
            + 0.002 * (r.cell["seed"] % 2)
        )
        for r in records
    }
    scored = [
        dataclasses.replace(r, result=dataclasses.replace(r.result, robustness=blocks[r.cell_id])) for r in records
    ]
    rows = robustness_table(scores_table(scored), "none").set_index("strategy")
    # per generator seed the geometric − none difference is 1.5 × (−0.1 + 0.01 g): means −0.15, −0.135, −0.12
    means = np.array([-0.15, -0.135, -0.12])
    t = means.mean() / (means.std(ddof=1) / np.sqrt(3))
    p = 2 * sps.t.sf(abs(t), 2)
    geometric = rows.loc["geometric"]
    assert geometric["n_paired"] == 9 and geometric["corrupted_diff"] == pytest.approx(means.mean())
    assert geometric["corrupted_p"] == pytest.approx(p)
    half = sps.t.ppf(0.975, 2) * means.std(ddof=1) / np.sqrt(3)
    assert geometric["corrupted_ci_low"] == pytest.approx(means.mean() - half)
    augmix = rows.loc["augmix"]
    assert geometric["corrupted_p_holm"] == pytest.approx(min(1.0, 2 * min(p, augmix["corrupted_p"])))
    assert geometric["corrupted_marker"] == "more robust" and augmix["corrupted_marker"] == ""
    assert pd.isna(rows.loc["none", "corrupted_diff"])
    text = render(robustness_table(scores_table(scored), "none").reset_index(drop=True), "note")
    assert f"{100 * means.mean():+.1f} [" in text and "↑" in text


def test_the_leaderboard_writes_robustness_files_only_where_cells_scored_it(tmp_path) -> None:
    plain, scored = tmp_path / "plain", tmp_path / "scored"
    make_fake_results(plain, datasets=("breastmnist",), strategies=("none", "geometric"), seeds=(0, 1))
    write_leaderboard(plain)
    assert not list((plain / "leaderboard").glob("robustness*"))
    make_fake_results(scored, datasets=("breastmnist",), strategies=("none", "geometric"), seeds=(0, 1))
    for record in with_blocks(load_records(scored), {"none": 0.3, "geometric": 0.2}):
        assert record.status == OK
        write_record(scored, record)
    board = write_leaderboard(scored)
    out = scored / "leaderboard"
    assert {p.name for p in out.glob("robustness*")} == {
        "robustness.csv",
        "robustness_scores.csv",
        "robustness.md",
        "robustness_breastmnist.png",
    }
    assert "## Robustness under MedMNIST-C corruptions" in board.markdown and "0.667" in board.markdown


@needs_medmnistc
def test_the_medmnistc_strategy_is_fixed_by_its_generator_and_leaves_global_rngs_alone() -> None:
    strategy = create("strategy", "medmnistc")
    strategy.prepare_for(tiny_breast())
    images = tiny_breast(32).train.images.float().div(255)
    targets = torch.eye(2)[torch.arange(32) % 2]

    def run(seed: int) -> torch.Tensor:
        out, same_targets = strategy.augment(images, targets, torch.Generator().manual_seed(seed))
        assert same_targets is targets and out.shape == images.shape and out.dtype == images.dtype
        return out

    before = global_states()
    first = run(0)
    assert global_states() == before
    assert torch.equal(first, run(0)) and not torch.equal(first, run(1))
    assert not torch.equal(first, images)  # some images were corrupted (identity is one choice of eight)
    colour_list = create("strategy", "medmnistc", corruptions_of="retinamnist")  # an RGB list on greyscale images
    colour_list.prepare_for(tiny_breast())
    assert colour_list.augment(images, targets, torch.Generator().manual_seed(0))[0].shape == images.shape


def test_a_missing_package_is_one_message_naming_the_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "medmnistc.corruptions.registry", None)  # import fails as if not installed
    grid = GridConfig(datasets=("breastmnist",), strategies=("none",), train={"robustness": True})
    attempts = (robustness.load_registry, lambda: create("strategy", "medmnistc"), lambda: validate(grid, None, False))
    for attempt in attempts:
        with pytest.raises(MedAugBenchError) as caught:
            attempt()
        message = str(caught.value)
        assert "pip install -e '.[robustness]'" in message and "libmagickwand-dev" in message
        assert "medmnistc==0.1.0" in message


@needs_medmnistc
def test_a_grid_asking_for_robustness_on_a_dataset_medmnist_c_lacks_is_refused(tmp_path) -> None:
    grid = GridConfig(datasets=("breastmnist",), strategies=("none",), train={"robustness": True})
    validate(grid, None, check_files=False)
    own = str(tmp_path / "xrays")
    with pytest.raises(MedAugBenchError, match=f"MedMNIST-C defines no corruptions for '{own}'"):
        validate(dataclasses.replace(grid, datasets=(own,)), None, check_files=False)
