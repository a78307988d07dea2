"""Shared test setup: the real MedMNIST folder, an isolated cache, and the CLI runner."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
import torch
from typer.testing import CliRunner

from benchmark import registry
from tests.helpers import DATA_DIR

# module- and session-scoped fixtures run before the per-test environment below: give them the same data folder
os.environ["MEDAUGBENCH_DATA_DIR"] = str(DATA_DIR)
SESSION_CACHE = tempfile.mkdtemp(prefix="medaugbench-test-cache-")
os.environ["MEDAUGBENCH_CACHE_DIR"] = SESSION_CACHE


def pytest_unconfigure(config: pytest.Config) -> None:
    """The session's cache folder goes when the session ends (each run used to leave one in the temp folder)."""
    shutil.rmtree(SESSION_CACHE, ignore_errors=True)


# One intra-op thread: with two OpenMP threads on two cores, any other busy process slows small convolutions by
# 10-30x (measured: a tiny DCGAN step 0.07 s with one thread, 1.9 s with two under load), so timings would be luck.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """Every test sees the real data folder, a cache of its own, and freshly discovered plugins: the built-ins only,
    never third-party plugins that happen to be installed (a test that installs one allows it by name)."""
    monkeypatch.setenv("MEDAUGBENCH_DATA_DIR", str(DATA_DIR))
    monkeypatch.setenv("MEDAUGBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv(registry.LOAD_PLUGINS_ENV, "")
    registry.reset()
    yield
    registry.reset()


@pytest.fixture
def cli():
    """Invoke the CLI in-process; returns the click Result."""
    from benchmark.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke
