"""medaugbench: a harness that compares synthetic-data and classic augmentation under equal budgets.

This module is the plugin author's API: everything a plugin needs is importable from `benchmark` itself, e.g.
`from benchmark import GenerativeModel, ImageSpec, hookimpl`. Deeper modules are the harness's internals.
"""

import importlib

__version__ = "0.1.0"

# name -> module that defines it: imported on first use (PEP 562), so `import benchmark` (and every CLI start-up)
# does not pay for torch until something needs it
_EXPORTS = {
    "SPLITS": "benchmark.data.dataset",
    "DataOptions": "benchmark.data.dataset",
    "DatasetInfo": "benchmark.data.dataset",
    "DatasetSource": "benchmark.data.dataset",
    "LoadedDataset": "benchmark.data.dataset",
    "Split": "benchmark.data.dataset",
    "TaskSpec": "benchmark.data.task",
    "MedAugBenchError": "benchmark.errors",
    "notice": "benchmark.errors",
    "FeatureExtractor": "benchmark.evaluate.features",
    "GenerativeModel": "benchmark.generate.model",
    "ImageSpec": "benchmark.generate.model",
    "Cell": "benchmark.grid.cells",
    "CellJob": "benchmark.grid.executor",
    "CellOutcome": "benchmark.grid.executor",
    "Executor": "benchmark.grid.executor",
    "Register": "benchmark.hookspecs",
    "hookimpl": "benchmark.hookspecs",
    "create": "benchmark.registry",
    "LazyFactory": "benchmark.registry",
    "entries": "benchmark.registry",
    "Strategy": "benchmark.train.strategy",
    "StrategyContext": "benchmark.train.strategy",
}


def __getattr__(name: str) -> object:
    """The public API's names, each imported from its module when first used."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'benchmark' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


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
    "LazyFactory",
    "LoadedDataset",
    "MedAugBenchError",
    "Register",
    "Split",
    "Strategy",
    "StrategyContext",
    "TaskSpec",
    "__version__",
    "create",
    "entries",
    "hookimpl",
    "notice",
]
