"""Faults, hostile input and concurrent runs at the grid, its results folder and the runner (issue 23): grid names
that would escape runs/, a folder that remembers its grid, the folder lock, the exit code when cells fail, the
thread count as part of a cell's config, and one message instead of a traceback for each bad input."""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark import registry
from benchmark.errors import MedAugBenchError
from benchmark.grid import store
from benchmark.grid.cells import Cell, expand, validate
from benchmark.grid.config import BudgetBlock, GridConfig, from_mapping, load_preset
from benchmark.grid.executor import LocalExecutor, record_failure
from benchmark.grid.plan import split_cells
from benchmark.grid.runner import run_grid
from benchmark.grid.store import CellRecord, load_predictions, load_records, records_dir
from benchmark.train.loop import train_model
from tests.helpers import REPO, failing_strategy_plugin, one_line_error, require_medmnist

TINY = """
name = "tiny"
datasets = ["breastmnist"]
strategies = ["none"]
backbones = ["simple_cnn"]
seeds = [0]

[budget]
classifier_steps = 2

[train]
batch_size = 32
eval_every = 1
threads = 1
"""
SIZES = {"breastmnist": 546}


def tiny_grid(**changes) -> GridConfig:
    return dataclasses.replace(from_mapping(tomllib.loads(TINY), "tiny"), **changes)


def write_failed(results: Path, cells: list[Cell]) -> None:
    """A failed record per cell, written as the runner writes one (nothing trains)."""
    error = {"type": "RuntimeError", "message": "planted", "traceback": ""}
    for cell in cells:
        record_failure(results, cell, error, {"wall_seconds": 0.0})


def short_error(result) -> str:
    """Exit 1, no traceback, and one 'Error: …' message of at most six lines ending the output (a grid's problems
    are listed one per line under it); returns the message as one string."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith("Error: ")]
    assert len(starts) == 1 and len(lines) - starts[0] <= 6, result.output
    return " ".join(lines[starts[0] :])


def grid_file(tmp_path: Path, text: str, encoding: str = "utf-8") -> str:
    path = tmp_path / "grid.toml"
    path.write_bytes(text.encode(encoding))
    return str(path)


# 1. grid names never make `run` write outside runs/


@pytest.mark.parametrize("name", ["../../escaped", "/abs/grid", "a/b", "..", "a\\b"])
def test_a_grid_name_that_is_a_path_is_refused(tmp_path, cli, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    config = grid_file(tmp_path, TINY.replace('"tiny"', json.dumps(name)))
    message = short_error(cli("run", config))
    assert "name must be a plain folder name" in message and "-o" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.toml", "work"]  # no runs/, nothing beside it
    with pytest.raises(MedAugBenchError, match="plain folder name"):  # a grid built in code is checked too
        validate(tiny_grid(name=name), None, check_files=False)


# 2. a results folder remembers its grid


def test_an_edited_grid_is_refused_naming_the_difference_and_a_grown_one_resumes(tmp_path, cli):
    results = tmp_path / "results"
    write_failed(results, expand(tiny_grid(), SIZES))
    edited = expand(tiny_grid(budget=BudgetBlock(classifier_steps=3)), SIZES)
    with pytest.raises(MedAugBenchError) as error:
        split_cells(edited, results, retry_failed=False)
    assert "budget.steps 2 → 3" in str(error.value) and "new folder (-o)" in str(error.value)
    message = one_line_error(
        cli("run", grid_file(tmp_path, TINY.replace("steps = 2", "steps = 3")), "-o", str(results), "--dry-run")
    )
    assert "under another config" in message

    grown = split_cells(expand(tiny_grid(seeds=(0, 1), strategies=("none", "geometric")), SIZES), results, False)
    assert len(grown.done) == 1 and len(grown.todo) == 3  # new seeds and rows are no clash
    fewer = split_cells(expand(tiny_grid(seeds=(1,)), SIZES), results, False)
    assert len(fewer.todo) == 1  # a record of another seed of the same config is no clash either

    for grid in (tiny_grid(), tiny_grid(), tiny_grid(seeds=(0, 1))):  # grid.json keeps the grids it grew from
        store.write_grid_file(results, grid.to_dict(), {}, "now")
    written = store.read_grid_file(results)
    assert written["grid"]["seeds"] == [0, 1] and [e["grid"]["seeds"] for e in written["earlier"]] == [[0]]


@pytest.mark.parametrize(
    ("folder", "preset"),
    [("quick", "quick"), ("cpu-answer", "cpu-answer"), ("cpu-answer-compute", "cpu-answer-compute")],
)
def test_published_folders_are_recognised_by_their_own_presets(folder, preset):
    """Pinning threads = 1 in the presets keeps every published cell's id (they ran at 1 thread), so a rerun of the
    preset finds them recorded and its grid identity check accepts the folder."""
    grid = load_preset(preset)
    cells = expand(grid, validate(grid, None, check_files=False))
    published = load_records(REPO / "results" / folder)
    planned = split_cells(cells, REPO / "results" / folder, retry_failed=False)
    assert {r.cell_id for r in published} <= {c.cell_id for c in planned.done}
    assert not planned.damaged


# 3. one run per results folder


def hold_lock(results: Path, pid: int, host: str) -> object:
    """Hold the folder's lock as another live run would: flocked, naming its holder."""
    results.mkdir(parents=True, exist_ok=True)
    handle = open(results / store.LOCK_FILE, "a+")  # noqa: SIM115
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.write(json.dumps({"pid": pid, "host": host, "started": "2026-12-06T10:00:00+00:00"}))
    handle.flush()
    return handle


def test_a_held_lock_stops_a_second_run_and_its_temp_files_survive(tmp_path):
    require_medmnist("breastmnist")
    results = tmp_path / "results"
    in_flight = records_dir(results) / "abc.json.x1y2.tmp"
    in_flight.parent.mkdir(parents=True)
    in_flight.write_text("{")
    handle = hold_lock(results, 4242, socket.gethostname())
    try:
        with pytest.raises(MedAugBenchError) as error:
            run_grid(tiny_grid(), results, LocalExecutor(), progress=False)
    finally:
        handle.close()
    assert "in use by another `medaugbench run` (pid 4242 on" in str(error.value)
    assert "2026-12-06T10:00:00" in str(error.value)
    assert in_flight.exists() and not list(records_dir(results).glob("*.json"))


def test_a_second_process_is_refused_with_one_message(tmp_path, cli):
    require_medmnist("breastmnist")
    results = tmp_path / "results"
    results.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(results / store.LOCK_FILE)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        message = one_line_error(cli("run", grid_file(tmp_path, TINY), "-o", str(results)))
    finally:
        holder.kill()
        holder.wait()
    assert f"pid {holder.pid} on {socket.gethostname()}" in message and "wait for it" in message


HOLDER = """
import fcntl, json, os, socket, sys, time
handle = open(sys.argv[1], "a+")
fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "then"}))
handle.flush()
print("held", flush=True)
time.sleep(120)
"""


def test_a_stale_lock_is_taken_over_saying_so(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)
    lock = results / store.LOCK_FILE
    lock.write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "started": "earlier"}))
    said = []
    with store.results_lock(results, "now", say=said.append) as me:
        assert store.read_lock(lock) == me and me.pid == os.getpid()
    assert said and f"pid {dead}" in said[0] and "no longer running" in said[0]
    assert lock.read_text() == ""  # released: free for the next run
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "earlier"}))
    with pytest.raises(MedAugBenchError, match="another machine .*delete"):
        with store.results_lock(results, "now"):
            pass


# 4. `run` exits non-zero when a cell failed


def test_run_exits_1_naming_failed_cells_unless_allowed(tmp_path, cli):
    require_medmnist("breastmnist")
    registry.plugin_manager().register(failing_strategy_plugin(), name="boom-plugin")
    config = grid_file(tmp_path, TINY.replace('["none"]', '["none", "boom"]'))
    results = tmp_path / "results"
    message = one_line_error(cli("run", config, "-o", str(results)))
    assert "1 of 2 cells run failed (breastmnist · boom" in message and "--allow-failures" in message
    assert (results / "leaderboard" / "leaderboard.md").is_file()  # the leaderboard is still written
    allowed = cli("run", config, "-o", str(results), "--retry-failed", "--allow-failures")
    assert allowed.exit_code == 0, allowed.output
    assert "failed: breastmnist · boom" in allowed.output


# 5. the thread count is the cell's config


def test_the_config_not_the_process_decides_the_thread_count(tmp_path):
    require_medmnist("breastmnist")
    one, two = (expand(tiny_grid(train={**tiny_grid().train, "threads": n}), SIZES)[0] for n in (1, 2))
    unpinned = expand(tiny_grid(train={"batch_size": 32, "eval_every": 1}), SIZES)[0]
    assert one.cell_id != two.cell_id and one.config.to_dict()["threads"] == 1
    assert unpinned.cell_id == one.cell_id  # the id every cell had before threads were recorded
    before = torch.get_num_threads()
    runs = []
    try:
        for process_threads in (2, 1):
            torch.set_num_threads(process_threads)
            trained = train_model(one.config, progress=False)
            assert torch.get_num_threads() == process_threads  # restored after the cell
            runs.append(trained)
    finally:
        torch.set_num_threads(before)
    assert [t.record.environment["threads"] for t in runs] == [1, 1]
    assert runs[0].record.metrics.test == runs[1].record.metrics.test
    np.testing.assert_array_equal(runs[0].test_scores, runs[1].test_scores)
    assert runs[0].record.config["threads"] == 1


# 6. one message instead of a traceback


BAD_GRIDS = [
    ('datasets = ["breastmnist"]', "datasets = [1]", "datasets must list names (strings), got 1"),
    ('strategies = ["none"]', "strategies = [{a = 1}]", "strategies must list names (strings)"),
    ("[train]", "[strategy_params]\nnone = 5\n[train]", "[strategy_params] none must be a table"),
    ("threads = 1", "threads = 1\noptim = 5", "[train] optim must be a table"),
    ("threads = 1", "threads = 1\noptim = { lrr = 1 }", "optim does not take lrr"),
    ("threads = 1", "threads = 1\noptim = { lr = -1 }", "must be a positive finite number, got -1"),
    ("threads = 1", "threads = 0", "threads must be at least 1"),
    ("threads = 1", 'threads = "two"', "threads must be at least 1 (a whole number), got 'two'"),
    ("threads = 1", 'threads = 1\namp = "yes"', "amp must be true or false, got 'yes'"),
    ("batch_size = 32", 'batch_size = "32"', "--batch-size must be at least 1 (a whole number), got '32'"),
    ("seeds = [0]", "seeds = [4294967296]", "seeds must be integers from 0 to 2**32-1"),
    ("seeds = [0]", "seeds = [-1]", "seeds must be integers from 0 to 2**32-1, got -1"),
    ("threads = 1", "threads = 1\n[variants.v]\nstrategy = 3", "variants.v needs"),
]


@pytest.mark.parametrize(("old", "new", "expected"), BAD_GRIDS)
def test_wrong_toml_types_are_one_message_before_training(tmp_path, cli, old, new, expected):
    assert old in TINY
    message = short_error(cli("run", grid_file(tmp_path, TINY.replace(old, new, 1)), "-o", str(tmp_path / "r")))
    assert expected in message
    assert not (tmp_path / "r").exists()


def test_a_latin1_grid_file_is_one_message(tmp_path, cli):
    message = one_line_error(cli("run", grid_file(tmp_path, TINY.replace('"tiny"', '"café"'), "latin-1"), "--dry-run"))
    assert "is not UTF-8 text (byte 0xe9" in message and "save it as UTF-8" in message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--seed", "-1"), "--seed must be an integer from 0 to 2**32-1"),
        (("--lr", "-1"), "learning rate (--lr, optim lr) must be a positive finite number, got -1"),
        (("--lr", "nan"), "must be a positive finite number, got nan"),
        (("--flops", "inf"), "--flops must be a positive finite number, got inf"),
        (("--steps", "0"), "--steps must be a positive number of optimizer steps (a whole number), got 0"),
    ],
)
def test_bad_train_options_are_one_message(cli, args, expected):
    assert expected in one_line_error(cli("train", "--dataset", "breastmnist", *args))


def test_a_cache_dir_that_is_a_file_is_one_message(tmp_path, cli, monkeypatch):
    (tmp_path / "cache").write_text("not a folder")
    monkeypatch.setenv("MEDAUGBENCH_CACHE_DIR", str(tmp_path / "cache" / "inside"))
    message = short_error(cli("run", grid_file(tmp_path, TINY), "--dry-run"))
    assert "cache" in message and "is a file" in message and "MEDAUGBENCH_CACHE_DIR" in message


def test_records_that_is_a_file_is_one_message(tmp_path, cli):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "records").write_text("")
    message = one_line_error(cli("run", grid_file(tmp_path, TINY), "-o", str(tmp_path / "results"), "--dry-run"))
    assert "records is a file" in message and "move it away" in message


def test_a_record_of_the_wrong_shape_names_the_file_and_the_fix(tmp_path, cli):
    bad = records_dir(tmp_path) / "0123456789abcdef.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"schema": store.SCHEMA, "cell_id": "0123456789abcdef", "status": "ok"}))
    message = one_line_error(cli("run", grid_file(tmp_path, TINY), "-o", str(tmp_path), "--dry-run"))
    assert str(bad) in message and "move it out of" in message and "runs again" in message


@pytest.fixture(scope="module")
def trained_cell(tmp_path_factory):
    """One tiny "ok" cell recorded by the runner (two classifier steps)."""
    require_medmnist("breastmnist")
    results = tmp_path_factory.mktemp("trained")
    run = run_grid(tiny_grid(), results, LocalExecutor(), progress=False)
    assert [o.status for o in run.outcomes] == ["ok"]
    return results, run.outcomes[0].cell_id


def test_a_truncated_predictions_file_reruns_its_cell(trained_cell, tmp_path):
    source, cell_id = trained_cell
    results = tmp_path / "copy"
    records_dir(results).mkdir(parents=True)
    for path in records_dir(source).iterdir():
        data = path.read_bytes()
        (records_dir(results) / path.name).write_bytes(data[: len(data) // 2] if path.suffix == ".npz" else data)
    assert load_predictions(results, cell_id) is None  # BadZipFile is no traceback
    planned = split_cells(expand(tiny_grid(), SIZES), results, retry_failed=False)
    assert [c.cell_id for c in planned.todo] == [cell_id] and planned.damaged == [
        store.predictions_path(results, cell_id)
    ]


def test_a_full_disk_loses_no_record_and_leaves_no_orphan(trained_cell, tmp_path, monkeypatch):
    source, cell_id = trained_cell
    record = store.read_record(store.record_path(source, cell_id))
    labels, scores = load_predictions(source, cell_id)
    store.write_record(tmp_path, dataclasses.replace(record, cell_id="kept"), labels, scores)

    def full(path, payload):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store, "write_json_atomic", full)
    with pytest.raises(MedAugBenchError, match="No space left on device.*free some space and rerun"):
        store.write_record(tmp_path, record, labels, scores)
    assert sorted(p.name for p in records_dir(tmp_path).iterdir()) == ["kept.json", "kept.npz"]
    assert isinstance(store.read_record(store.record_path(tmp_path, "kept")), CellRecord)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_a_read_only_results_folder_is_one_message(tmp_path, cli, monkeypatch, code):
    require_medmnist("breastmnist")

    def refused(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(store, "open", refused, raising=False)
    message = one_line_error(cli("run", grid_file(tmp_path, TINY), "-o", str(tmp_path / "results")))
    assert f"cannot take the lock run.lock in {tmp_path / 'results'}" in message and "-o" in message


@pytest.mark.slow
def test_a_worker_ends_when_its_driver_is_killed(tmp_path):
    # A killed driver's worker once finished its cell and rewrote the record of a cell a new run had planned again.
    script = tmp_path / "driver.py"
    script.write_text(
        "import multiprocessing, os, sys, time\n"
        "from benchmark.grid.executor import exit_with_parent\n"
        "def worker(parent):\n"
        "    exit_with_parent(parent, every=0.1)\n"
        "    time.sleep(60)\n"
        "if __name__ == '__main__':\n"
        "    child = multiprocessing.get_context('spawn').Process(target=worker, args=(os.getpid(),))\n"
        "    child.start()\n"
        "    print(child.pid, flush=True)\n"
        "    time.sleep(60)\n"
    )
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=Path.cwd())
    worker = int(driver.stdout.readline())
    driver.kill()
    driver.wait()
    for _ in range(100):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, 9)
    pytest.fail("the worker outlived its killed driver by 10 s")
