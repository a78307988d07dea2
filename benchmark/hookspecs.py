"""Plugin hooks of medaugbench. Each hook hands the plugin a `register(name, factory, description="")` callback."""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "medaugbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[..., None]
"""`register(name: str, factory: Callable[..., Any], description: str = "")`."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset sources: `factory(**options)` returns an object with `info`, `load` and `prepare`."""


@hookspec
def register_strategies(register: Register) -> None:
    """Register augmentation strategies: `factory(**params)` returns a `benchmark.train.strategy.Strategy`."""


@hookspec
def register_backbones(register: Register) -> None:
    """Register classifier backbones: `factory(in_chans, num_classes, image_size, **params)` returns an nn.Module."""


@hookspec
def register_generators(register: Register) -> None:
    """Register generative models: `factory(spec: ImageSpec, **params)` returns a
    `benchmark.generate.model.GenerativeModel`.

    Every generator also becomes a strategy of the same name that trains it and adds its samples.
    """


@hookspec
def register_extractors(register: Register) -> None:
    """Register image feature extractors for quality metrics: `factory(**params)` returns a
    `benchmark.evaluate.features.FeatureExtractor` (an nn.Module mapping uint8 images to float feature vectors)."""


@hookspec
def register_executors(register: Register) -> None:
    """Register grid executors: `factory(**options)` returns a `benchmark.grid.executor.Executor` that runs cells."""
