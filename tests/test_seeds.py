"""Generator seeds × classifier seeds: grid expansion and its bad input, a generator trained once for the classifier
seeds of its generator seed (and counted once), and common random numbers: for one classifier seed every strategy
starts from the same weights and sees the same real images in the same order."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass

import pytest
import torch

from benchmark import hookimpl, registry
from benchmark.data.dataset import Split
from benchmark.data.sampling import BatchSampler, MixedBatches, stream_generator, stream_seed
from benchmark.errors import MedAugBenchError
from benchmark.grid.cells import expand, validate
from benchmark.grid.config import GridConfig, from_mapping
from benchmark.grid.executor import LocalExecutor
from benchmark.grid.runner import generator_waves, run_grid
from benchmark.grid.store import compute_total, load_records
from benchmark.train import loop as training
from benchmark.train.config import Budget, TrainConfig
from benchmark.train.strategy import Strategy, StrategyContext
from tests.helpers import require_medmnist

BASE = """
name = "seeds"
datasets = ["breastmnist"]
strategies = ["none", "cgan"]
[budget]
classifier_steps = 4
generator_steps = 4
[train]
batch_size = 32
eval_every = 4
"""
SIZES = {"breastmnist": 546}


def grid_with(**seeds: object) -> GridConfig:
    """The base grid with these seed keys (a quality extractor of None: the TOML cannot say it)."""
    grid = from_mapping(tomllib.loads(BASE) | seeds, "seeds")
    return GridConfig(
        **{**grid.__dict__, "strategy_params": {"cgan": {"quality_extractor": None, "class_fidelity": False}}}
    )


def test_streams_are_named_deterministic_and_distinct():
    seeds = {(seed, name): stream_seed(seed, name) for seed in (0, 1) for name in ("init", "real_order", "augment")}
    assert len(set(seeds.values())) == len(seeds)
    assert stream_seed(0, "init") == stream_seed(0, "init")
    first = torch.rand(3, generator=stream_generator(7, "augment"))
    assert torch.equal(first, torch.rand(3, generator=stream_generator(7, "augment")))


def test_added_images_do_not_reshuffle_the_real_ones():
    """The real indices of a mixed run are the real-only run's sequence, cut into smaller batches; each batch holds
    the set's share of added images to within one."""
    plain = MixedBatches(10, 0, 6, seed=3, device="cpu")
    mixed = MixedBatches(10, 5, 6, seed=3, device="cpu")
    batches = [mixed.next() for _ in range(10)]
    real = torch.cat([b[b < 10] for b in batches])
    assert torch.equal(real, torch.cat([plain.next() for _ in range(10)])[: len(real)])
    added = [int((b >= 10).sum()) for b in batches]
    assert all(len(b) == 6 for b in batches) and set(added) == {2} and sum(added) == 10 * 6 * 5 // 15
    sampler = BatchSampler(4, 4, torch.Generator().manual_seed(0))
    assert sorted(sampler.take(3).tolist() + sampler.take(1).tolist()) == [0, 1, 2, 3]  # one permutation, cut


def test_generator_and_classifier_seeds_expand_into_paired_runs():
    grid = grid_with(generator_seeds=[0, 1, 2], classifier_seeds=4)
    validate(grid, None, check_files=False)
    cells = expand(grid, SIZES)
    assert len(cells) == 2 * 12 and len({c.cell_id for c in cells}) == 24
    runs = {
        s: [(c.coords["generator_seed"], c.coords["seed"]) for c in cells if c.coords["strategy"] == s]
        for s in ("none", "cgan")
    }
    assert runs["none"] == runs["cgan"] == [(g, g + 1000 * k) for g in (0, 1, 2) for k in range(4)]
    cell = next(c for c in cells if c.coords["strategy"] == "cgan" and c.coords["seed"] == 2002)
    assert (cell.config.seed, cell.config.generator_seed, cell.config.data_seed) == (2002, 2, 2)
    record_config = cell.config.to_dict()
    assert (record_config["seed"], record_config["generator_seed"]) == (2002, 2)
    listed = expand(grid_with(generator_seeds=[5], classifier_seeds=[1, 2]), SIZES)
    assert [(c.coords["generator_seed"], c.coords["seed"]) for c in listed][:2] == [(5, 1), (5, 2)]


def test_old_seed_grids_keep_their_cell_ids():
    """`seeds` means each seed is both; the (g, g) runs of a split grid are those very cells, so a folder resumes."""
    old = {c.cell_id for c in expand(grid_with(seeds=[0, 1]), SIZES)}
    assert {c.cell_id for c in expand(grid_with(generator_seeds=[0, 1]), SIZES)} == old
    split = expand(grid_with(generator_seeds=[0, 1], classifier_seeds=2), SIZES)
    assert {c.cell_id for c in split if c.coords["seed"] == c.coords["generator_seed"]} == old
    assert (
        "generator_seeds" not in grid_with(seeds=[0]).to_dict()
        and "seeds" not in grid_with(generator_seeds=[0]).to_dict()
    )


@pytest.mark.parametrize(
    "seeds, message",
    [
        ({"generator_seeds": [0], "classifier_seeds": 0}, "classifier_seeds must be a count of at least 1"),
        ({"generator_seeds": [0], "classifier_seeds": True}, "classifier_seeds must be a count of at least 1"),
        ({"generator_seeds": [0], "classifier_seeds": []}, "classifier_seeds must not be empty"),
        ({"generator_seeds": [0], "classifier_seeds": [3, 3]}, "classifier_seeds lists a value twice"),
        ({"classifier_seeds": 2}, "classifier_seeds needs generator_seeds"),
        ({"generator_seeds": []}, "generator_seeds must not be empty"),
        ({"seeds": []}, "seeds must not be empty"),
        ({"generator_seeds": [1, 1]}, "generator_seeds lists a value twice"),
        ({"seeds": [2, 2]}, "seeds lists a value twice"),
        ({"generator_seeds": [-1]}, "generator_seeds must be integers from 0 to 2**32-1, got -1"),
        ({"seeds": [2**32]}, "seeds must be integers from 0 to 2**32-1, got 4294967296"),
        ({"generator_seeds": [0], "classifier_seeds": [1.5]}, "classifier_seeds must be integers from 0 to 2**32-1"),
        ({"seeds": [0], "generator_seeds": [0]}, "give either `seeds`"),
        ({"generator_seeds": [0, 1000], "classifier_seeds": 2}, "must be distinct and at most 2**32-1"),
        ({"generator_seeds": [2**32 - 1], "classifier_seeds": 2}, "must be distinct and at most 2**32-1"),
    ],
)
def test_bad_seeds_are_one_message_before_training(seeds, message):
    with pytest.raises(MedAugBenchError) as error:
        validate(grid_with(**seeds), None, check_files=False)
    assert message in str(error.value)


@pytest.mark.parametrize("seeds", [{"seed": -1}, {"generator_seed": 2**32}, {"seed": True}])
def test_train_config_refuses_bad_seeds(seeds):
    with pytest.raises(MedAugBenchError, match="must be an integer from 0 to 2\\*\\*32-1"):
        TrainConfig(**seeds)


def test_the_generator_seed_fixes_the_training_subset():
    require_medmnist("breastmnist")

    def subset(seed: int, generator_seed: int) -> str:
        config = TrainConfig(dataset="breastmnist", train_fraction=0.2, seed=seed, generator_seed=generator_seed)
        return training.load_data(config, None).train.digest()

    assert subset(1, 5) == subset(2, 5) != subset(1, 6)


def test_siblings_run_after_the_first_classifier_seed_of_their_generator():
    cells = expand(grid_with(generator_seeds=[0, 1], classifier_seeds=2), SIZES)
    first, later = generator_waves(cells)
    assert {(c.coords["strategy"], c.coords["seed"]) for c in later} == {("cgan", 1000), ("cgan", 1001)}
    assert len(first) == 6 and generator_waves(cells[:2]) == [cells[:2]]


def test_a_variant_runs_after_the_cells_that_train_its_generator():
    """cgan+geometric reuses cgan's generator: it waits for the second wave instead of training it again beside it."""
    data = tomllib.loads(BASE) | {"strategies": ["none", "cgan+geometric", "cgan"], "generator_seeds": [0, 1]}
    data["variants"] = {"cgan+geometric": {"strategy": "cgan", "params": {"augment_with": "geometric"}}}
    cells = expand(from_mapping(data, "seeds"), SIZES)
    first, later = generator_waves(cells)
    # whichever is listed first trains the generator of its seed; the other finds it in the cache
    assert {(c.coords["strategy"], c.coords["generator_seed"]) for c in first if c.coords["policy"]} == {
        ("cgan+geometric", 0),
        ("cgan+geometric", 1),
    }
    assert {(c.coords["strategy"], c.coords["generator_seed"]) for c in later} == {("cgan", 0), ("cgan", 1)}


@pytest.mark.slow
def test_one_generator_serves_its_classifier_seeds_and_counts_once(tmp_path):
    """A tiny cGAN trained once for two classifier seeds: the second cell reuses it, says so, and the folder's total
    counts its training once; the `none` row runs the same (generator, classifier) pairs."""
    require_medmnist("breastmnist")
    run = run_grid(grid_with(generator_seeds=[0], classifier_seeds=2), tmp_path, LocalExecutor(), progress=False)
    assert run.outcomes[-1].label.endswith("seed 1000 (generator 0) balance") and len(run.failed) == 0
    records = load_records(tmp_path)
    pairs = {(r.cell["strategy"], r.config["generator_seed"], r.config["seed"]) for r in records}
    assert pairs == {(s, 0, c) for s in ("none", "cgan") for c in (0, 1000)}
    phases = {r.config["seed"]: r.result.compute["phases"]["generator_training"] for r in records if r.cell["policy"]}
    assert (phases[0]["reused"], phases[1000]["reused"]) == (False, True)
    assert phases[0]["flops"] == phases[1000]["flops"] > 0 and phases[0]["generator"] == phases[1000]["generator"]
    total = compute_total(records)
    every = sum(phase["flops"] for r in records for phase in r.result.compute["phases"].values())
    assert (total.generators, total.reused) == (1, 1) and total.flops == every - phases[0]["flops"]


@dataclass
class AddCopies(Strategy):
    """Adds flipped copies of the first `n` training images (a stand-in for a generator that adds images)."""

    name = "add_copies"
    n: int = 40

    def synthesize(self, context: StrategyContext) -> Split:
        train = context.dataset.train
        return Split(train.images[: self.n].flip(-1), train.labels[: self.n])


class AddCopiesPlugin:
    @hookimpl
    def register_strategies(self, register):
        register("add_copies", AddCopies, "adds flipped copies of training images")


REAL_NEXT, REAL_BUILD = MixedBatches.next, training.build_classifier


def spy_on_run(monkeypatch, config: TrainConfig) -> tuple[list[torch.Tensor], dict, int]:
    """Train `config` and return its batches' indices, its initial weights and its number of real images."""
    batches, initial, n_real = [], {}, []

    def next_batch(self):
        batches.append(REAL_NEXT(self))
        n_real.append(self.n_real)
        return batches[-1]

    def build(*args):
        model, optimizer = REAL_BUILD(*args)
        initial.update({k: v.clone() for k, v in model.state_dict().items()})
        return model, optimizer

    monkeypatch.setattr(MixedBatches, "next", next_batch)
    monkeypatch.setattr(training, "build_classifier", build)
    training.train(config, progress=False)
    return batches, initial, n_real[0]


@pytest.mark.slow
def test_every_strategy_starts_alike_and_sees_the_real_images_in_one_order(monkeypatch):
    require_medmnist("breastmnist")
    registry.plugin_manager().register(AddCopiesPlugin(), name="add-copies")
    runs = {
        strategy: spy_on_run(
            monkeypatch,
            TrainConfig(dataset="breastmnist", strategy=strategy, seed=4, budget=Budget(steps=20), batch_size=32),
        )
        for strategy in ("none", "geometric", "add_copies")
    }
    (none, weights, n_real), (geometric, geometric_weights, _), (added, added_weights, added_real) = runs.values()
    assert all(
        torch.equal(weights[k], geometric_weights[k]) and torch.equal(weights[k], added_weights[k]) for k in weights
    )
    assert all(torch.equal(a, b) for a, b in zip(none, geometric)) and len(none) == 20  # 640 images: past an epoch
    assert added_real == n_real == 546
    real_order = torch.cat([batch[batch < n_real] for batch in added])
    assert torch.equal(real_order, torch.cat(none)[: len(real_order)])
    assert 0 < int(sum((batch >= n_real).sum() for batch in added)) < 20 * 32
    other, other_weights, _ = spy_on_run(
        monkeypatch, TrainConfig(dataset="breastmnist", seed=5, budget=Budget(steps=1), batch_size=32)
    )
    assert not torch.equal(other[0], none[0]) and not all(torch.equal(weights[k], other_weights[k]) for k in weights)


def test_train_cli_records_both_seeds(cli, tmp_path):
    require_medmnist("breastmnist")
    out = tmp_path / "record.json"
    args = ("--steps", "2", "--batch-size", "16", "--eval-every", "2", "--seed", "3", "--generator-seed", "5")
    result = cli("train", "--dataset", "breastmnist", *args, "--out", str(out))
    assert result.exit_code == 0, result.output
    config = json.loads(out.read_text())["config"]
    assert (config["seed"], config["generator_seed"]) == (3, 5) and "generator seed 5" in result.output
