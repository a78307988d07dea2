"""Every registered generator as a strategy; the pipeline behind it is the core synthesis stage
(`benchmark/synthesis/`, see its `pipeline.py`), imported when a strategy is first made."""

from __future__ import annotations

from benchmark import LazyFactory, Register, entries, hookimpl

PIPELINE = "benchmark.synthesis.pipeline:GenerativeStrategy"
PARAMETERS = (
    "generator",
    "generator_steps",
    "generator_seconds",
    "generator_flops",
    "generator_batch_size",
    "generator_params",
    "conditioning",
    "policy",
    "ratio",
    "multiplier",
    "counts",
    "augment_with",
    "generator_dir",
    "reuse",
    "quality_extractor",
    "quality_params",
    "quality_images",
    "class_fidelity",
    "on_unrecognisable",
    "max_fid_ratio",
    "early_stop_every",
    "early_stop_patience",
    "track_quality_every",
    "track_quality_at",
    "track_quality_on",
    "monitor_extractor",
    "monitor_params",
    "select_points",
    "select_holdout",
)
"""`GenerativeStrategy`'s parameters, declared so a dry run checks them without importing torch (tests/test_plugins.py
compares them with the class)."""


@hookimpl
def register_strategies(register: Register) -> None:
    for name, generator in entries("generator").items():
        factory = LazyFactory(PIPELINE, PARAMETERS, {"generator": name})
        register(name, factory, f"synthetic data from {name}: {generator.description}")
