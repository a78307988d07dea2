"""medaugbench: a harness that compares synthetic-data and classic augmentation under equal budgets.

This module is the plugin author's API: everything a plugin needs is importable from `benchmark` itself, e.g.
`from benchmark import GenerativeModel, ImageSpec, hookimpl`. Deeper modules are the harness's internals.
"""

__version__ = "0.1.0"

from benchmark.data.dataset import SPLITS, DataOptions, DatasetInfo, DatasetSource, LoadedDataset, Split  # noqa: E402
from benchmark.data.task import TaskSpec  # noqa: E402
from benchmark.errors import MedAugBenchError  # noqa: E402
from benchmark.evaluate.features import FeatureExtractor  # noqa: E402
from benchmark.generate.model import GenerativeModel, ImageSpec  # noqa: E402
from benchmark.grid.cells import Cell  # noqa: E402
from benchmark.grid.executor import CellJob, CellOutcome, Executor  # noqa: E402
from benchmark.hookspecs import Register, hookimpl  # noqa: E402
from benchmark.registry import create  # noqa: E402
from benchmark.train.strategy import Strategy, StrategyContext  # noqa: E402

__all__ = [
    "SPLITS",
    "Cell",
    "CellJob",
    "CellOutcome",
    "DataOptions",
    "DatasetInfo",
    "DatasetSource",
    "Executor",
    "FeatureExtractor",
    "GenerativeModel",
    "ImageSpec",
    "LoadedDataset",
    "MedAugBenchError",
    "Register",
    "Split",
    "Strategy",
    "StrategyContext",
    "TaskSpec",
    "__version__",
    "create",
    "hookimpl",
]
