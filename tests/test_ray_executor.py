"""The `ray` executor: same records as the local executor, records shipped back to the driver, a worker killed
mid-cell (retried, or recorded as failed once), the install message without Ray, and the CLI end to end."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "medaugbench[ray]")')

from benchmark import registry
from benchmark.errors import MedAugBenchError
from benchmark.grid.config import GridConfig, Variant, from_mapping
from benchmark.grid.executor import LocalExecutor
from benchmark.grid.runner import run_grid
from benchmark.grid.store import FAILED, OK, load_records, records_dir
from plugins.ray_executor import INSTALL, SCRATCH, RayExecutor, remove_dead_scratch
from tests.helpers import make_distribution, require_medmnist

TINY = """
name = "tiny-ray"
datasets = ["breastmnist"]
strategies = ["none", "geometric"]
backbones = ["simple_cnn"]
seeds = [0, 1]

[budget]
classifier_steps = 6

[train]
batch_size = 32
eval_every = 3
"""

# A strategy that SIGKILLs the Ray worker running it while it synthesises: every time (`always`), or only the first
# time (the marker file records that it already did, so Ray's retry trains normally).
CRASH_PLUGIN = """
    import os
    import signal
    from dataclasses import dataclass
    from pathlib import Path

    from benchmark.hookspecs import hookimpl
    from benchmark.train.strategy import Strategy

    @dataclass
    class Crash(Strategy):
        name = "crash"
        marker: str = ""
        always: bool = False

        def synthesize(self, context):
            marker = Path(self.marker)
            if self.always or not marker.exists():
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
            return None

    @hookimpl
    def register_strategies(register):
        register("crash", Crash, "test only: kills its own worker process")
"""

CRASH_DIST = "medaugbench-crash"


def tiny_grid(**changes) -> GridConfig:
    return replace(from_mapping(tomllib.loads(TINY), "tiny-ray"), **changes)


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    """The crash plugin as an installed distribution, on PYTHONPATH before Ray starts so its workers find it too."""
    folder = tmp_path_factory.mktemp("ray-plugins")
    make_distribution(folder, CRASH_DIST, "medaugbench_crash", CRASH_PLUGIN)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(folder)] + ([old] if old else []))
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop("medaugbench_crash", None)
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="module")
def ray_cluster(plugin_path, tmp_path_factory):
    """One local Ray instance with 2 CPUs for the module, its job passing the MEDAUGBENCH_* variables to workers."""
    env = {key: value for key, value in os.environ.items() if key.startswith("MEDAUGBENCH_")}
    env["MEDAUGBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("ray-cache"))
    env[registry.LOAD_PLUGINS_ENV] = CRASH_DIST  # workers load the crash plugin and no other installed one
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, runtime_env={"env_vars": env})
    yield env
    ray.shutdown()


@pytest.fixture
def ray_instance(ray_cluster, monkeypatch):
    """The module's Ray instance, joined by the executor (and left running). The test uses the instance's cache
    folder, so the executor's variables match the job's and the tests share warm workers (torch imported once)."""
    monkeypatch.setenv("MEDAUGBENCH_CACHE_DIR", ray_cluster["MEDAUGBENCH_CACHE_DIR"])
    monkeypatch.setenv(registry.LOAD_PLUGINS_ENV, CRASH_DIST)


@pytest.mark.slow
def test_cli_runs_a_grid_with_ray_starting_and_stopping_its_own_instance(tmp_path, cli):
    """Runs first (before the module's instance exists): `--executor ray` starts a local Ray, and shuts it down."""
    require_medmnist("breastmnist")
    was_running = ray.is_initialized()
    config = tmp_path / "tiny.toml"
    config.write_text(TINY.replace("seeds = [0, 1]", "seeds = [0]").replace('["none", "geometric"]', '["none"]'))
    results = tmp_path / "results"
    result = cli("run", str(config), "--results", str(results), "--executor", "ray")
    assert result.exit_code == 0, result.output
    assert "1 cells run (0 failed)" in result.output
    records = load_records(results)
    assert len(records) == 1 and records[0].status == OK
    assert len(list(records_dir(results).glob("*.npz"))) == 1
    assert (results / "leaderboard" / "leaderboard.md").is_file()
    assert ray.is_initialized() == was_running  # shut down only what it started

    rejected = cli("run", str(config), "--results", str(results), "--executor", "local", "-X", "address=auto")
    assert (
        rejected.exit_code == 1 and "does not take 'address'; it accepts: workers, workers_per_gpu" in rejected.output
    )


@pytest.mark.slow
def test_ray_gives_the_same_records_as_the_local_executor(tmp_path, ray_instance):
    require_medmnist("breastmnist")
    grid = tiny_grid()
    local = run_grid(grid, tmp_path / "local", LocalExecutor(), progress=False)
    distributed = run_grid(grid, tmp_path / "ray", RayExecutor(), progress=False)
    assert len(distributed.outcomes) == 4 and not distributed.failed
    assert sorted(o.cell_id for o in distributed.outcomes) == sorted(o.cell_id for o in local.outcomes)
    metrics = {r.cell_id: r.result["metrics"]["test"] for r in load_records(tmp_path / "local")}
    assert {r.cell_id: r.result["metrics"]["test"] for r in load_records(tmp_path / "ray")} == metrics
    # the worker's files came back: same file names, and the predictions themselves are identical
    local_files = sorted(p.name for p in records_dir(tmp_path / "local").iterdir())
    assert sorted(p.name for p in records_dir(tmp_path / "ray").iterdir()) == local_files
    for name in local_files:
        if name.endswith(".npz"):
            assert (records_dir(tmp_path / "ray") / name).read_bytes() == (
                records_dir(tmp_path / "local") / name
            ).read_bytes()
    assert ray.is_initialized()  # joined the module's instance, left it running


@pytest.mark.slow
def test_killed_worker_is_retried_or_recorded_as_failed_once(tmp_path, ray_instance):
    """A worker SIGKILLed mid-cell: killed once, Ray's retry finishes the cell; killed on every try, the cell is
    recorded as failed (WorkerCrashed) and the rest of the grid is ok. One record per cell either way."""
    require_medmnist("breastmnist")
    registry.reset()  # the driver validates strategy names: discover the crash plugin here too
    marker = tmp_path / "killed-once"
    grid = tiny_grid(
        strategies=("none", "crash_once", "crash_always"),
        seeds=(0,),
        variants={
            "crash_once": Variant(strategy="crash", params={"marker": str(marker)}),
            "crash_always": Variant(strategy="crash", params={"marker": str(tmp_path / "always"), "always": True}),
        },
    )
    results = tmp_path / "results"
    started = time.time() - 1
    run = run_grid(grid, results, RayExecutor(max_retries=1), progress=False)
    status = {o.label.split(" · ")[1]: o.status for o in run.outcomes}
    assert status == {"none": OK, "crash_once": OK, "crash_always": FAILED}
    assert marker.exists()  # the first try of crash_once really was killed

    files = sorted(records_dir(results).glob("*.json"))
    records = load_records(results)
    assert len(files) == len(records) == 3 and len({r.cell_id for r in records}) == 3
    failed = [r for r in records if r.status == FAILED]
    assert len(failed) == 1 and failed[0].cell["strategy"] == "crash_always"
    assert failed[0].error["type"] == "WorkerCrashed"
    assert "died" in failed[0].error["message"] and "2 attempt(s) (max_retries=1)" in failed[0].error["message"]
    assert "WorkerCrashed" in run.failed[0].error
    assert not list(records_dir(results).glob("*.tmp"))
    # a killed worker's temp folder is removed by the next task on that machine and finished tasks leave none, so
    # only the attempts killed after the last task started remain (at most one per CPU)
    scratch = [p for p in Path(tempfile.gettempdir()).glob(f"{SCRATCH}*") if p.stat().st_mtime >= started]
    assert len(scratch) <= 2, scratch
    remove_dead_scratch()


def test_without_ray_the_executor_says_how_to_install_it(tmp_path, monkeypatch, cli):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(MedAugBenchError) as error:
        registry.create("executor", "ray")
    assert str(error.value) == INSTALL == '--executor ray needs Ray: pip install "medaugbench[ray]"'
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    result = cli("run", str(config), "--results", str(tmp_path / "results"), "--executor", "ray")
    assert result.exit_code == 1 and INSTALL in result.output
    assert not (tmp_path / "results").exists()


def test_ray_executor_is_registered_and_checks_its_options():
    entry = registry.get_entry("executor", "ray")
    assert registry.resolved(entry.factory) is RayExecutor and entry.distribution == "built-in"
    executor = registry.create("executor", "ray", address="auto")
    assert executor.address == "auto" and executor.max_retries == 1 and executor.cpus_per_cell is None
    with pytest.raises(MedAugBenchError, match="at least 1"):
        RayExecutor(cpus_per_cell=0)
    with pytest.raises(MedAugBenchError, match="at least 0"):
        RayExecutor(max_retries=-1)
