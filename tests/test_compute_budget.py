"""Compute-matched budgets: one total of FLOPs (counted with FlopCounterMode) or device-seconds per cell, split
between generator training + synthesis and the classifier; the compute every record carries, the leaderboard's compute
columns and AUC-vs-compute plot, and the train-on-synthetic score (CAS)."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from benchmark.data.dataset import DataOptions, load_dataset
from benchmark.errors import MedAugBenchError
from benchmark.generate import loop as gt
from benchmark.generate.model import GenerativeModel, ImageSpec
from benchmark.grid.cells import expand, validate
from benchmark.grid.config import BudgetBlock, GridConfig, load_preset
from benchmark.grid.executor import LocalExecutor
from benchmark.grid.runner import run_grid
from benchmark.grid.store import OK, CellRecord, load_records, write_record
from benchmark.publish.leaderboard import write_leaderboard
from benchmark.publish.plots import write_plots
from benchmark.registry import create
from benchmark.train import flops
from benchmark.train import loop as training
from benchmark.train.config import Budget, GeneratorBudget, TrainConfig
from plugins.ddpm import DDPM
from tests.fake_results import TASKS, fake_result, fake_scores, make_fake_results
from tests.helpers import require_medmnist

TOTAL = 1.2e10  # FLOPs: a few simple_cnn steps at batch 32 (1.9e9 each) and ~100 tiny cGAN steps (6.6e7 each)
SHARE = 0.6
TINY_GAN = {  # two checkpoint-selection points leave these tiny budgets mostly to training
    "generator_batch_size": 16,
    "generator_params": {"base_channels": 8},
    "quality_extractor": None,
    "class_fidelity": False,
    "select_points": 2,
}
PHASES = ("generator_training", "synthesis", "classifier_training")


def tiny_grid(budget: BudgetBlock, strategies: tuple[str, ...] = ("none", "geometric", "cgan", "dcgan")) -> GridConfig:
    """BreastMNIST (147 / 399 training images: `balance` synthesises 252), simple_cnn, one seed."""
    return GridConfig(
        name="compute",
        datasets=("breastmnist",),
        strategies=strategies,
        budget=budget,
        train={"batch_size": 32, "eval_every": 1000},
        strategy_params={name: TINY_GAN for name in strategies if name in ("cgan", "dcgan")},
    )


@pytest.fixture(scope="module")
def flops_run(tmp_path_factory):
    """The four strategies under one total_flops budget, run by the grid runner; returns (folder, records by name)."""
    require_medmnist("breastmnist")
    root = tmp_path_factory.mktemp("compute")
    run_grid(tiny_grid(BudgetBlock(total_flops=TOTAL, generator_share=SHARE)), root, LocalExecutor(), progress=False)
    records = load_records(root)
    assert all(r.status == OK for r in records), [r.error for r in records if not r.ok]
    return root, {r.cell["strategy"]: r.result for r in records}


@pytest.mark.slow
def test_cells_of_every_strategy_spend_the_same_total_within_one_step(flops_run):
    _, results = flops_run
    for name, result in results.items():
        compute = result["compute"]
        step = compute["phases"]["classifier_training"]["step_flops"]
        assert TOTAL - step < compute["total"]["flops"] <= TOTAL, name
        assert compute["total"]["flops"] == sum(compute["phases"][p]["flops"] for p in PHASES)
        assert compute["budget"]["total"] == {"kind": "flops", "amount": TOTAL}
        assert result["budget"]["steps"] == compute["phases"]["classifier_training"]["steps"]
    for name in ("none", "geometric"):
        assert results[name]["compute"]["phases"]["generator_training"]["flops"] == 0


@pytest.mark.slow
def test_generative_cells_split_the_total_by_generator_share(flops_run):
    _, results = flops_run
    for name in ("cgan", "dcgan"):
        phases = results[name]["compute"]["phases"]
        training_part = phases["generator_training"]
        generator_steps = sum(training_part["step_flops"].values())  # one step of each (per-class) model
        spent = training_part["flops"] + phases["synthesis"]["flops"]
        assert SHARE * TOTAL - generator_steps < spent <= SHARE * TOTAL, name
        assert training_part["flops"] == training_part["selection"]["flops"] + sum(
            training_part["steps"][m] * training_part["step_flops"][m] for m in training_part["steps"]
        )  # checkpoint selection is generator compute
        synthesis = phases["synthesis"]
        assert synthesis["images"] == 252 and synthesis["flops"] > 0 and synthesis["seconds"] > 0
        assert synthesis["flops"] == 252 * next(iter(synthesis["flops_per_image"].values()))
        assert results[name]["strategy"]["generator"]["budget"]["reserved_for_synthesis"] == synthesis["flops"]
    assert set(results["dcgan"]["compute"]["phases"]["generator_training"]["steps"]) == {"malignant"}  # balance's only


def test_expand_gives_the_generator_its_share_and_the_classifier_the_rest():
    cells = expand(tiny_grid(BudgetBlock(total_flops=1e12, generator_share=0.25)), {"breastmnist": 546})
    by_name = {c.coords["strategy"]: c.config for c in cells}
    assert by_name["none"].budget == by_name["none"].total_budget == Budget(steps=None, flops=1e12)
    assert by_name["cgan"].strategy_params["generator_flops"] == 0.25e12
    assert by_name["cgan"].budget == Budget(steps=None, flops=0.75e12)
    assert by_name["cgan"].total_budget == Budget(steps=None, flops=1e12)
    default = expand(tiny_grid(BudgetBlock(total_seconds=60.0), ("none", "cgan")), {"breastmnist": 546})
    assert default[1].config.strategy_params["generator_seconds"] == 30.0  # generator_share defaults to 0.5


class HandBuilt(GenerativeModel):
    """One linear layer from 8 noise dimensions to the image, two real batches per step: FLOPs known by hand."""

    Z = 8

    def __init__(self, spec: ImageSpec) -> None:
        super().__init__(spec)
        self.net = nn.Linear(self.Z, spec.channels * spec.image_size**2)

    @property
    def real_batches_per_step(self) -> int:
        return 2

    def make_optimizers(self):
        return {"net": torch.optim.Adam(self.net.parameters())}

    def training_step(self, images, cond, optimizers, generator):
        z = torch.randn(len(images), self.Z, generator=generator, device=images.device)
        loss = (self.net(z) - images.flatten(1)).pow(2).mean()
        optimizers["net"].zero_grad()
        loss.backward()
        optimizers["net"].step()
        return {"loss": loss.detach()}

    @torch.no_grad()
    def sample(self, cond, n, generator):
        z = torch.randn(n, self.Z, generator=generator)
        return self.net(z).view(n, self.spec.channels, self.spec.image_size, self.spec.image_size)


def test_counts_equal_flop_counter_mode_and_leave_the_model_untouched():
    model, cpu = HandBuilt(ImageSpec(channels=1, image_size=28)), torch.device("cpu")
    pixels, before = 28 * 28, {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    batch = 5
    # forward addmm 2·B·Z·D plus the weight gradient 2·B·Z·D, on real_batches_per_step stacked batches
    assert gt.step_flops(model, batch, cpu) == 4 * (2 * batch) * HandBuilt.Z * pixels
    assert gt.sample_flops(model, cpu) == 2 * HandBuilt.Z * pixels
    with FlopCounterMode(display=False) as counter:
        model.training_step(
            torch.zeros(2 * batch, 1, 28, 28), None, model.make_optimizers(), torch.Generator().manual_seed(0)
        )
    model.load_state_dict(before)
    assert gt.step_flops(model, batch, cpu) == counter.get_total_flops()
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_classifier_step_count_equals_flop_counter_mode():
    require_medmnist("breastmnist")
    config = TrainConfig(dataset="breastmnist", batch_size=8)
    data = load_dataset("breastmnist", DataOptions())
    batch = data.train.subset(torch.arange(8))
    model = training.create("backbone", "simple_cnn", in_chans=1, num_classes=2, image_size=28)
    images = training.normalize(batch.images.float().div(255))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(images), batch.labels).backward()
    rng = torch.get_rng_state()
    assert (
        training.classifier_step_flops(config, data, create("strategy", "none"), batch, torch.device("cpu"))
        == counter.get_total_flops()
    )
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.slow
def test_counting_does_not_change_the_seeded_run(monkeypatch):
    """The same cell with every count replaced by a constant (no counting at all) gives identical metrics."""
    require_medmnist("breastmnist")
    config = TrainConfig(
        dataset="breastmnist",
        strategy="cgan",
        budget=Budget(steps=6),
        batch_size=32,
        eval_every=3,
        strategy_params={**TINY_GAN, "generator_steps": 40, "reuse": False, "select_points": 0},
    )  # no checkpoint selection: its feature FLOPs are counted apart (test_checkpoint_selection)
    counted = training.train(config, progress=False)
    monkeypatch.setattr(training, "classifier_step_flops", lambda *args: 1)
    monkeypatch.setattr(gt, "step_flops", lambda *args: 1)
    monkeypatch.setattr(gt, "sample_flops", lambda *args: 1)
    plain = training.train(config, progress=False)
    assert counted.metrics == plain.metrics and counted.curves.train_loss == plain.curves.train_loss
    assert counted.compute["phases"]["classifier_training"]["flops"] > 6
    assert plain.compute["total"]["flops"] == 6 + 40 + 252  # steps × 1 + generator steps × 1 + images × 1


@pytest.mark.slow
def test_a_seconds_total_is_respected_within_one_step():
    require_medmnist("breastmnist")
    total = 3.0
    for config in (
        c.config for c in expand(tiny_grid(BudgetBlock(total_seconds=total), ("none", "cgan")), {"breastmnist": 546})
    ):
        record = training.train(config, progress=False)
        phases = record.compute["phases"]
        per_step = phases["classifier_training"]["seconds"] / phases["classifier_training"]["steps"]
        assert total - 1e-6 <= record.compute["total"]["seconds"] <= total + 5 * per_step + 0.2, config.strategy
        if config.strategy == "cgan":
            assert phases["generator_training"]["seconds"] <= total / 2 + 0.2 and phases["synthesis"]["seconds"] > 0


@pytest.mark.parametrize(
    "budget, message",
    [
        (
            dict(total_flops=1e12, classifier_steps=10),
            "total_flops is the whole cell's budget and replaces classifier_steps",
        ),
        (dict(total_flops=1e12, generator_share=0.0), "generator_share must lie strictly between 0 and 1"),
        (dict(total_seconds=60, generator_share=1.5), "generator_share must lie strictly between 0 and 1"),
        (dict(total_flops=1e12, total_seconds=60), "takes one of total_flops, total_seconds, not both"),
        (dict(classifier_steps=10, generator_steps=10, generator_share=0.5), "generator_share goes with total_flops"),
        (dict(total_flops=-1.0), "budget.total_flops must be a positive number"),
    ],
)
def test_bad_total_budgets_are_one_error_before_any_training(budget, message):
    with pytest.raises(MedAugBenchError) as error:
        validate(tiny_grid(BudgetBlock(**budget)), None, check_files=False)
    assert message in str(error.value) and "1 problem(s); nothing was run" in str(error.value)


@pytest.mark.parametrize(
    "strategy, total, share, message",
    [
        ("none", 1e9, None, "the classifier: a budget of 1e+09 FLOPs is less than one training step"),
        ("cgan", 4e9, 0.9, "the classifier: a budget of 4e+08 FLOPs is less than one training step"),
        ("cgan", 4e9, 0.01, "cannot pay for synthesising 252 images"),
    ],
)
def test_a_budget_too_small_for_one_step_fails_before_training(monkeypatch, strategy, total, share, message):
    require_medmnist("breastmnist")
    monkeypatch.setattr(gt, "fit", lambda *args, **kwargs: pytest.fail("a generator trained"))
    monkeypatch.setattr(training, "MixedBatches", lambda *args: pytest.fail("the classifier trained"))
    grid = tiny_grid(BudgetBlock(total_flops=total, generator_share=share), (strategy,))
    config = expand(grid, {"breastmnist": 546})[0].config
    with pytest.raises(MedAugBenchError, match=re.escape(message)):
        training.train(config, progress=False)


def test_flop_budgets_become_whole_steps_and_split_like_seconds():
    assert Budget(steps=None, flops=10.5e9).in_steps(1e9, "x") == Budget(steps=10)
    with pytest.raises(MedAugBenchError, match="x: a budget of 5e\\+08 FLOPs is less than one training step"):
        Budget(steps=None, flops=5e8).in_steps(1e9, "x")
    parts = GeneratorBudget(steps=None, flops=1e9).split({"a": 300, "b": 100})
    assert parts == {"a": GeneratorBudget(steps=None, flops=7.5e8), "b": GeneratorBudget(steps=None, flops=2.5e8)}
    with pytest.raises(MedAugBenchError, match="exactly one budget"):
        Budget(steps=10, flops=1e9)


def test_cell_ids_of_earlier_runs_are_unchanged():
    """Ids of results/quick, computed before budgets gained FLOPs and totals: old records are still recognised."""
    ids = {c.coords["strategy"]: c.cell_id for c in expand(load_preset("quick"), {"pneumoniamnist": 4708})}
    assert ids["none"] == "97ddfbe00e7a7284" and ids["geometric"] == "5ed3868a1090673a"
    assert ids["cgan"] == "b68b940cc54847f4"


@pytest.mark.slow
def test_leaderboard_shows_compute_and_plots_auc_against_it(flops_run, tmp_path):
    root, results = flops_run
    board = write_leaderboard(root)
    wide = board.wide["breastmnist"].set_index("strategy")
    for name, result in results.items():
        assert wide.loc[name, "total_flops_mean"] == result["compute"]["total"]["flops"]
        assert wide.loc[name, "synthesis_flops_mean"] == result["compute"]["phases"]["synthesis"]["flops"]
    csv = pd.read_csv(root / "leaderboard" / "breastmnist.csv")
    assert {f"{p}_{u}_mean" for p in PHASES for u in ("flops", "seconds")} | {"total_flops_mean"} <= set(csv)
    assert "### Compute per cell" in board.markdown and "Total FLOPs" in board.markdown
    plots = write_plots(load_records(root), tmp_path)
    png = tmp_path / "breastmnist_auc_vs_compute.png"
    assert png in plots and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert Image.open(png).size[0] > 300


@pytest.mark.slow
def test_cas_appears_for_synthetic_only_cells(tmp_path):
    make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("none", "cgan"), seeds=(0, 1))
    task, rng = TASKS["pneumoniamnist"], np.random.default_rng(7)
    labels = np.random.default_rng(100).integers(0, 2, 200)
    aucs = []
    for seed in (0, 1):
        scores = fake_scores(task, labels, 0.5, rng)
        result = fake_result(task, "pneumoniamnist", "cgan", labels, scores, rng)
        aucs.append(result["metrics"]["test"]["auc"])
        cell = {
            "dataset": "pneumoniamnist",
            "strategy": "cgan",
            "base_strategy": "cgan",
            "backbone": "simple_cnn",
            "seed": seed,
            "train_fraction": 1.0,
            "policy": "synthetic_only",
        }
        write_record(tmp_path, CellRecord(f"cas-{seed}", OK, cell, {}, result=result), labels, scores)
    board = write_leaderboard(tmp_path)
    quality = board.quality.set_index("model")
    assert quality.loc["cgan[synthetic_only]", "cas_auc_mean"] == pytest.approx(np.mean(aucs))
    assert np.isnan(quality.loc["cgan[balance]", "cas_auc_mean"]) and "none" not in quality.index
    assert quality.loc["cgan[synthetic_only]", "fid_mean"] > 0
    section = board.markdown.split("### Generator quality and train-on-synthetic (CAS)")[1].split("###")[0]
    assert f"{np.mean(aucs):.3f}" in section and "CAS AUC" in section


@pytest.mark.slow
def test_a_total_with_fixed_generator_steps_gives_the_classifier_what_the_generator_left(tmp_path):
    """The compute-matched twin of a classifier-matched grid: the same generators (same steps, reused from the cache),
    each cell's classifier filling the total up."""
    require_medmnist("breastmnist")
    budget = BudgetBlock(total_flops=TOTAL, generator_steps=40)
    cells = {c.coords["strategy"]: c.config for c in expand(tiny_grid(budget, ("none", "cgan")), {"breastmnist": 546})}
    assert (
        cells["cgan"].strategy_params["generator_steps"] == 40
        and "generator_flops" not in cells["cgan"].strategy_params
    )
    assert cells["cgan"].budget == cells["none"].budget == Budget(steps=None, flops=TOTAL)
    run_grid(tiny_grid(budget, ("none", "cgan")), tmp_path, LocalExecutor(), progress=False)
    records = {r.cell["strategy"]: r.result for r in load_records(tmp_path)}
    gan = records["cgan"].compute["phases"]
    assert gan["generator_training"]["steps"] == {"all": 40} and gan["generator_training"]["flops"] > 0
    step = gan["classifier_training"]["step_flops"]
    for result in records.values():
        assert TOTAL - step < result.compute["total"]["flops"] <= TOTAL
    assert gan["classifier_training"]["steps"] < records["none"].compute["phases"]["classifier_training"]["steps"]


def test_fixed_generator_steps_beside_a_share_is_one_problem():
    problems = BudgetBlock(total_flops=1e12, generator_steps=40, generator_share=0.5).problems()
    assert problems == ["[budget] generator_steps fixes the generator's part of the total; drop generator_share or it"]
    assert BudgetBlock(total_flops=1e12, generator_seconds=4.0).problems()  # other generator keys still conflict


def attention_flops(shape: tuple[int, int, int, int], backward: bool) -> int:
    """Hand count for self-attention on (B, H, L, E): QK^T and AV forward (2 matmuls of 2·B·H·L²·E); backward
    recomputes QK^T and takes the gradients of V, P, Q and K (5 more), as torch's sdpa formulas count it."""
    b, h, length, e = shape
    return (2 + 5 * backward) * 2 * b * h * length * length * e


def test_cpu_attention_is_counted_forward_and_backward():
    """FlopCounterMode alone has no formula for the CPU flash kernel and counts zero; ours counts it by hand."""
    shape = (2, 3, 49, 16)
    draw = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(shape, generator=draw, requires_grad=True) for _ in range(3))
    with FlopCounterMode(display=False) as plain:
        torch.nn.functional.scaled_dot_product_attention(q, k, v).sum().backward()
    assert plain.get_total_flops() == 0
    with torch.no_grad():
        assert flops.count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)) == attention_flops(
            shape, backward=False
        )
    counted = flops.count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v).sum().backward())
    assert counted == attention_flops(shape, backward=True)


class AttentionCalls(TorchDispatchMode):
    """Records the query shape of every CPU flash-attention call (the kernel F.scaled_dot_product_attention runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default:
            self.shapes.append(tuple(args[0].shape))
        return func(*args, **(kwargs or {}))


def test_ddpm_with_attention_step_counts_its_attention():
    """A DDPM training step with attention counts what FlopCounterMode alone counts plus, per attention call, the
    hand count of its forward and backward."""
    model = DDPM(ImageSpec(channels=1, image_size=28), block_out_channels=(16, 32, 32), sample_steps=2)
    cpu = torch.device("cpu")

    def step() -> None:
        clone = copy.deepcopy(model)
        rows = 4 * clone.real_batches_per_step
        clone.training_step(torch.zeros(rows, 1, 28, 28), None, clone.make_optimizers(), torch.Generator())

    with flops.isolated_rng(cpu), FlopCounterMode(display=False) as plain:
        step()
    with flops.isolated_rng(cpu), AttentionCalls() as calls:
        step()
    assert calls.shapes, "the DDPM ran no CPU attention kernel"
    hand = sum(attention_flops(shape, backward=True) for shape in calls.shapes)
    assert gt.step_flops(model, 4, cpu) == plain.get_total_flops() + hand
