"""The grid runner: config files and presets, validation before training, records keyed by config hash, resume
after a real kill, failed cells, and executors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
from dataclasses import replace

import pytest

from benchmark import ImageSpec, registry
from benchmark.data import files as datafiles
from benchmark.errors import MedAugBenchError
from benchmark.grid.cells import expand, validate
from benchmark.grid.config import (
    BudgetBlock,
    GridConfig,
    from_mapping,
    load_grid,
    load_preset,
    preset_names,
    resolve_grid,
)
from benchmark.grid.executor import LocalExecutor
from benchmark.grid.runner import run_grid
from benchmark.grid.store import FAILED, OK, load_records, records_dir
from tests.helpers import REPO, failing_strategy_plugin, require_medmnist

TINY = """
name = "tiny"
datasets = ["breastmnist"]
strategies = ["none", "geometric"]
backbones = ["simple_cnn"]
seeds = [0, 1, 2]

[budget]
classifier_steps = 8

[train]
batch_size = 32
eval_every = 4
"""


def tiny_grid(**changes) -> GridConfig:
    return replace(from_mapping(__import__("tomllib").loads(TINY), "tiny"), **changes)


def test_toml_and_yaml_give_the_same_grid(tmp_path):
    toml_file = tmp_path / "grid.toml"
    toml_file.write_text(TINY)
    yaml_file = tmp_path / "grid.yaml"
    yaml_file.write_text(
        "name: tiny\ndatasets: [breastmnist]\nstrategies: [none, geometric]\nbackbones: [simple_cnn]\n"
        "seeds: [0, 1, 2]\n"
        "budget: {classifier_steps: 8}\ntrain: {batch_size: 32, eval_every: 4}\n"
    )
    assert load_grid(toml_file) == load_grid(yaml_file)
    assert resolve_grid(str(toml_file)) == load_grid(toml_file)
    assert resolve_grid(None) == load_preset("quick")


def test_config_file_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('datasets = ["pneumoniamnist"]\nstrategys = ["none"]\n[budget]\nclassifier_stepz = 3\n')
    with pytest.raises(MedAugBenchError) as error:
        load_grid(bad)
    assert "strategys" in str(error.value) and "classifier_stepz" in str(error.value)
    broken = tmp_path / "broken.toml"
    broken.write_text("datasets = [")
    with pytest.raises(MedAugBenchError, match="not valid TOML"):
        load_grid(broken)
    with pytest.raises(MedAugBenchError, match="unknown preset 'quik'"):
        resolve_grid("quik")


def test_bad_grid_lists_every_problem_before_training(tmp_path, monkeypatch):
    """Unknown strategy, negative budget, fraction outside (0, 1] and a missing dataset file: one error, no records."""

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(datafiles.urllib.request, "urlopen", offline)
    monkeypatch.setenv("MEDAUGBENCH_DATA_DIR", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    grid = tiny_grid(
        strategies=("none", "geometrik"),
        train_fractions=(0.5, 1.5),
        budget=BudgetBlock(classifier_steps=-3),
        datasets=("dermamnist",),
    )
    with pytest.raises(MedAugBenchError) as error:
        run_grid(grid, tmp_path / "results", LocalExecutor(), progress=False)
    message = str(error.value)
    assert "4 problem(s)" in message and "nothing was run" in message
    assert "unknown strategy 'geometrik'" in message and "Did you mean 'geometric'" in message
    assert "classifier_steps must be a positive number, got -3" in message
    assert "train_fractions must lie in (0, 1], got 1.5" in message
    assert "dataset dermamnist" in message and "cannot download dermamnist.npz" in message
    assert not (tmp_path / "results").exists()


def test_more_grid_problems_are_caught():
    grid = tiny_grid(
        strategies=("cgan",),
        seeds=(0, -1),
        policies=("balanse",),
        baseline="none",
        train={"batch_size": 0, "lr": 1},
        strategy_params={"cgan": {"ratioo": 1}},
    )
    with pytest.raises(MedAugBenchError) as error:
        validate(grid, None, check_files=False)
    message = str(error.value)
    for expected in (
        "seeds must be integers from 0 to 2**32-1, got -1",
        "unknown synthesis policy 'balanse'",
        "[train] does not take lr",
        "strategy 'cgan' does not take 'ratioo' (did you mean 'ratio'",
        "baseline 'none' is not among",
        "--batch-size must be at least 1",
    ):
        assert expected in message


def test_presets_expand_with_identical_budgets():
    shipped = "ablation cpu-answer cpu-answer-compute cpu-balancing cpu-pilot paper quick standard standard-compute"
    assert set(shipped.split()) <= set(preset_names())
    sizes = {"pneumoniamnist": 4708, "dermamnist": 7007, "chestmnist": 78468, "breastmnist": 546, "retinamnist": 1080}
    for name in preset_names():
        grid = load_preset(name)
        found = validate(grid, None, check_files=False)  # training-set sizes from medmnist.INFO
        assert found == {d: sizes[d] for d in grid.datasets}
        cells = expand(grid, found)
        fractions = sum(len(grid.fractions_for(d)) for d in grid.datasets)
        assert len(cells) == fractions * len(grid.strategies) * len(grid.seed_runs()) * len(grid.backbones)
        assert len({c.cell_id for c in cells}) == len(cells)
        for dataset in grid.datasets:
            same = [c for c in cells if c.coords["dataset"] == dataset]
            if grid.budget.is_total:
                assert len({c.config.total_budget for c in same}) == 1, "every cell gets the same total"
                # the generative ones; with fixed generator_steps beside the total every cell's classifier gets it
                same = [c for c in same if c.config.strategy_params.get("generator_flops")] or same
            assert len({c.config.budget for c in same}) == 1, "every strategy gets the same classifier budget"
            keys = ("generator_steps", "generator_seconds", "generator_flops")
            generator = {
                json.dumps({k: c.config.strategy_params.get(k) for k in keys})
                for c in same
                if any(c.config.strategy_params.get(k) for k in keys)
            }
            assert len(generator) <= 1, "every generative strategy gets the same generator budget"
    paper = expand(load_preset("paper"), sizes)
    derma = next(c for c in paper if c.coords["dataset"] == "dermamnist" and c.coords["strategy"] == "cgan")
    assert derma.config.budget.steps == -(-50 * 7007 // 32)  # 50 epochs of the real training set at batch 32
    assert derma.config.strategy_params["generator_steps"] == -(-200 * 7007 // 64)
    assert derma.config.pretrained is True and derma.config.size == 224
    ablation = {c.coords["strategy"]: c for c in expand(load_preset("ablation"), sizes)}
    assert ablation["cgan_no_conditioning"].config.strategy_params["conditioning"] is False
    assert ablation["cgan_saturating"].config.strategy_params["generator_params"] == {"loss": "saturating"}
    assert ablation["cgan_no_transfer"].config.pretrained is False and ablation["cgan_full"].config.pretrained is True
    assert ablation["cgan_only"].config.strategy_params["augment_with"] == "none"
    assert ablation["cgan_full"].config.strategy_params["augment_with"] == "geometric"


def test_ablation_rows_get_equal_total_generator_budgets():
    """The no-conditioning row trains one GAN per DermaMNIST class; they share the 5000 steps cgan_full gets."""
    derma_counts = [228, 359, 769, 80, 779, 4693, 99]  # DermaMNIST's training images per class (MedMNIST v2)
    cells = [c for c in expand(load_preset("ablation"), {"dermamnist": sum(derma_counts)}) if c.coords["seed"] == 0]
    strategies = {
        c.coords["strategy"]: registry.create("strategy", c.config.strategy, **c.config.strategy_params) for c in cells
    }
    full, split = strategies["cgan_full"], strategies["cgan_no_conditioning"]
    derma = ImageSpec(channels=3, image_size=28, cond_dim=len(derma_counts))
    assert not full.per_group(derma) and split.per_group(derma)
    parts = split.budget.split({f"group_{k}": n for k, n in enumerate(derma_counts)})
    assert len(parts) == 7 and sum(b.steps for b in parts.values()) == full.budget.steps == 5000
    assert {s.budget for s in strategies.values()} == {full.budget}


def test_cell_ids_follow_the_resolved_config():
    sizes = {"breastmnist": 546}
    cells = expand(tiny_grid(), sizes)
    assert [c.cell_id for c in cells] == [c.cell_id for c in expand(tiny_grid(), sizes)]
    longer = expand(tiny_grid(budget=BudgetBlock(classifier_steps=9)), sizes)
    assert not {c.cell_id for c in cells} & {c.cell_id for c in longer}
    on_gpu = expand(tiny_grid(train={"batch_size": 32, "eval_every": 4, "device": "cuda"}), sizes)
    assert [c.cell_id for c in on_gpu] == [c.cell_id for c in cells], "the device does not change what a cell is"


def test_failing_strategy_is_recorded_and_the_grid_goes_on(tmp_path):
    require_medmnist("breastmnist")
    registry.plugin_manager().register(failing_strategy_plugin(), name="boom-plugin")
    grid = tiny_grid(strategies=("none", "boom"), seeds=(0,))
    results = tmp_path / "results"
    run = run_grid(grid, results, LocalExecutor(), progress=False)
    assert [o.status for o in run.outcomes] == [OK, FAILED]
    failed = [r for r in load_records(results) if r.status == FAILED]
    assert len(failed) == 1 and failed[0].error["message"] == "boom plugin broke"
    assert "RuntimeError" in failed[0].error["traceback"] and failed[0].cell["strategy"] == "boom"

    again = run_grid(grid, results, LocalExecutor(), progress=False)
    assert again.skipped == 2 and not again.outcomes
    retried = run_grid(grid, results, LocalExecutor(), progress=False, retry_failed=True)
    assert [o.label.split(" · ")[1] for o in retried.outcomes] == ["boom"] and retried.skipped == 1
    assert len(list(records_dir(results).glob("*.json"))) == 2


@pytest.mark.slow
def test_killed_run_resumes_with_every_record_once(tmp_path):
    """Really kill the CLI process mid-grid, rerun the same command, and find each cell exactly once."""
    require_medmnist("breastmnist")
    config = tmp_path / "tiny.toml"
    config.write_text(TINY.replace("[0, 1, 2]", "[0, 1, 2, 3]"))
    results = tmp_path / "results"
    command = [sys.executable, "-m", "benchmark.cli", "run", str(config), "--results", str(results)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(list(records_dir(results).glob("*.json"))) < 2 if records_dir(results).is_dir() else True:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no records appeared"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = {r.cell_id for r in load_records(results)}
    assert 2 <= len(before) < 8

    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert f"{len(before)} already recorded" in finished.stdout.replace("\n", " ")
    files = sorted(records_dir(results).glob("*.json"))
    records = [json.loads(path.read_text()) for path in files]  # every file is whole JSON
    ids = [r["cell_id"] for r in records]
    assert len(ids) == len(set(ids)) == 8 and {r["status"] for r in records} == {OK}
    assert {p.stem for p in files} == set(ids) and before <= set(ids)
    assert not list(records_dir(results).glob("*.tmp"))
    assert (results / "leaderboard" / "leaderboard.md").is_file()


@pytest.mark.slow
def test_workers_give_the_same_records_as_one_process(tmp_path):
    """`-X workers=2` runs cells in two processes; metrics equal the in-process run's (determinism on CPU)."""
    require_medmnist("breastmnist")
    grid = tiny_grid(seeds=(0,))
    one = run_grid(grid, tmp_path / "one", LocalExecutor(), progress=False)
    two = run_grid(grid, tmp_path / "two", LocalExecutor(workers=2), progress=False)
    assert {o.cell_id for o in one.outcomes} == {o.cell_id for o in two.outcomes}
    metrics = {r.cell_id: r.result.metrics.test for r in load_records(tmp_path / "one")}
    assert {r.cell_id: r.result.metrics.test for r in load_records(tmp_path / "two")} == metrics
    with pytest.raises(MedAugBenchError, match="at least 1"):
        LocalExecutor(workers=0)


def test_hook_register_executors():
    assert "local" in registry.entries("executor")
    assert registry.create("executor", "local", workers=3).workers == 3


@pytest.mark.slow
def test_cli_dry_run_lists_cells_and_leaderboard_rebuilds(tmp_path, cli):
    require_medmnist("breastmnist")
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    listed = cli("run", str(config), "--results", str(tmp_path / "results"), "--dry-run")
    assert listed.exit_code == 0, listed.output
    assert "6 cells" in listed.output and listed.output.count("to run") == 6
    assert not (tmp_path / "results").exists()

    from tests.fake_results import make_fake_results

    make_fake_results(tmp_path / "fake", failed=(("retinamnist", "cgan", 1),))
    board = cli("leaderboard", str(tmp_path / "fake"))
    assert board.exit_code == 0, board.output
    assert "retinamnist" in board.output and (tmp_path / "fake" / "leaderboard" / "leaderboard.md").is_file()
    assert (tmp_path / "fake" / "leaderboard" / "plots" / "pneumoniamnist_auc_ci.png").is_file()
    missing = cli("leaderboard", str(tmp_path / "nowhere"))
    assert missing.exit_code == 1 and "is not a folder" in missing.output
    (tmp_path / "empty").mkdir()
    empty = cli("leaderboard", str(tmp_path / "empty"))
    assert empty.exit_code == 1 and "medaugbench run" in empty.output


@pytest.mark.slow
def test_generative_cell_saves_sample_grid_and_closest_pairs(tmp_path):
    require_medmnist("breastmnist")
    grid = tiny_grid(
        strategies=("none", "cgan"),
        seeds=(0,),
        budget=BudgetBlock(classifier_steps=4, generator_steps=4),
        strategy_params={"cgan": {"quality_params": {"steps": 4}, "quality_images": 64}},
    )
    run = run_grid(grid, tmp_path, LocalExecutor(), progress=False)
    assert [o.status for o in run.outcomes] == [OK, OK]
    cgan = next(r for r in load_records(tmp_path) if r.cell["strategy"] == "cgan")
    from PIL import Image

    from benchmark.grid.store import pairs_path, samples_path

    assert Image.open(samples_path(tmp_path, cgan.cell_id)).size[1] > 64  # a row per class
    assert Image.open(pairs_path(tmp_path, cgan.cell_id)).size[0] > 64
    none = next(r for r in load_records(tmp_path) if r.cell["strategy"] == "none")
    assert not samples_path(tmp_path, none.cell_id).exists()


def test_published_quick_records_match_the_preset():
    """Cell ids must stay stable across versions, or `run` would redo a finished grid: the published quick run's
    cells are exactly today's preset's (11 rows, threads = 1 as that run used)."""
    grid = load_preset("quick")
    published = {r.cell_id for r in load_records(REPO / "results" / "quick")}
    assert len(published) == 11
    assert published == {c.cell_id for c in expand(grid, validate(grid, None, check_files=False))}
