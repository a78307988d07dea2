"""Several cells per GPU: the local executor deals N workers per GPU round-robin, Ray asks 1/N GPU per cell (GPUs
simulated here: the assignment is what is tested, not CUDA)."""

from __future__ import annotations

import pytest

import benchmark.grid.executor as executor
from benchmark.errors import MedAugBenchError
from benchmark.grid.executor import LocalExecutor
from tests.helpers import one_line_error


def test_local_runs_n_workers_per_gpu_dealt_round_robin(monkeypatch):
    monkeypatch.setattr(executor, "visible_gpus", lambda: 2)
    three = LocalExecutor(workers_per_gpu=3)
    assert three.workers == 6 and three.worker_devices == [0, 1, 0, 1, 0, 1]
    assert LocalExecutor().worker_devices == [0, 1]  # the default: one worker per GPU, as before


def test_explicit_workers_win_and_are_dealt_over_the_gpus(monkeypatch):
    monkeypatch.setattr(executor, "visible_gpus", lambda: 4)
    assert LocalExecutor(workers=3, workers_per_gpu=2).worker_devices == [0, 1, 2]


def test_without_a_gpu_workers_per_gpu_leaves_one_cpu_worker(monkeypatch):
    monkeypatch.setattr(executor, "visible_gpus", lambda: 0)
    cpu = LocalExecutor(workers_per_gpu=4)
    assert cpu.workers == 1 and cpu.worker_devices == [None]


def test_workers_per_gpu_must_be_a_positive_whole_number():
    with pytest.raises(MedAugBenchError, match="workers_per_gpu must be an integer of at least 1, got 0"):
        LocalExecutor(workers_per_gpu=0)


def test_the_cli_flag_reaches_the_executor(cli, monkeypatch):
    import benchmark.grid.runner as runner

    monkeypatch.setattr(executor, "visible_gpus", lambda: 2)
    made = []

    def stop(grid, results_dir, cells_executor, **kwargs):
        made.append(cells_executor)
        raise MedAugBenchError("stopped before running")

    monkeypatch.setattr(runner, "run_grid", stop)
    one_line_error(cli("run", "quick", "--workers-per-gpu", "2"))
    assert made[0].worker_devices == [0, 1, 0, 1]


def test_ray_cells_ask_for_a_fraction_of_a_gpu():
    pytest.importorskip("ray")
    from plugins.ray_executor import RayExecutor

    shared = RayExecutor(workers_per_gpu=4)
    assert shared.task_resources(gpus=True) == {"num_gpus": 0.25}
    assert shared.task_resources(gpus=False) == {"num_gpus": 0}
    assert RayExecutor().task_resources(gpus=True) == {"num_gpus": 1.0}
