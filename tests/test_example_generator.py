"""The example generator distribution (examples/medaugbench-example-generator): it passes the conformance kit, is
found through a real entry point, shows in `plugins list` and trains as a strategy in a tiny `train` run; and the
kit (benchmark.testing) names the check a broken generator fails."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import sys
from functools import partial
from pathlib import Path

import pytest
import torch

from benchmark import GenerativeModel, ImageSpec, registry
from benchmark.testing import GeneratorCheckFailed, check_generator
from tests.helpers import install_plugin, require_medmnist

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "medaugbench-example-generator"
DIST = "medaugbench-example-generator"
SHIM = "medaugbench-example-generator-shim"  # not DIST: an installed copy of the example must not clash with it


@pytest.fixture
def example(monkeypatch):
    """The example's module, imported from its folder (or from the installed distribution, the same file)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return importlib.import_module("medaugbench_example_generator")


@pytest.fixture
def shim(example, tmp_path, monkeypatch):
    """The example behind a real entry point: a distribution whose module re-exports the example's hook."""
    source = "from medaugbench_example_generator import register_generators  # noqa: F401\n"
    install_plugin(tmp_path, monkeypatch, SHIM, "medaugbench_example_generator_shim", source)
    yield
    sys.modules.pop("medaugbench_example_generator_shim", None)


@pytest.mark.parametrize("how", ["class", "partial", "lambda"])
def test_the_example_passes_the_conformance_kit_whatever_its_factory(example, how):
    cls = example.ClassGaussian
    factory = {"class": cls, "partial": partial(cls, lr=0.05), "lambda": lambda spec, **params: cls(spec, **params)}
    check_generator(factory[how], lr=0.1)


def test_it_is_found_through_an_entry_point_and_listed(shim, cli):
    generator = registry.entries("generator")["class_gaussian"]
    assert generator.distribution == f"{SHIM} 0.1"
    assert "class_gaussian" in registry.entries("strategy")  # every generator becomes a strategy of its name
    result = cli("plugins", "list")
    assert result.exit_code == 0 and "class_gaussian" in result.output and SHIM in result.output
    strategy_row = next(
        line for line in result.output.splitlines() if "│ strategy" in line and "class_gaussian" in line
    )
    assert SHIM in strategy_row  # the strategy made of a third-party generator is credited to it, not to built-in


def test_its_strategy_trains_in_a_tiny_train_run(shim, cli, tmp_path):
    require_medmnist("breastmnist")
    out = tmp_path / "record.json"
    result = cli(
        "train",
        "--dataset",
        "breastmnist",
        "--strategy",
        "class_gaussian",
        "--generator-steps",
        "5",
        "--steps",
        "5",
        "--batch-size",
        "16",
        "--eval-every",
        "5",
        "-S",
        "quality_extractor=none",
        "-S",
        "class_fidelity=false",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    card = json.loads(out.read_text())["strategy"]["generator"]
    assert card["generator"] == "class_gaussian" and card["conditioning"] is True  # one conditional model
    assert card["histories"]["all"]["steps"] == 5 and card["code"]["medaugbench"]


def test_the_installed_example_is_found_through_its_own_entry_point(monkeypatch):
    """.ci/run installs the example (`pip install -e examples/medaugbench-example-generator`)."""
    try:
        version = importlib.metadata.version(DIST)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{DIST} is not installed (pip install --no-deps -e examples/{DIST}, as .ci/run does)")
    monkeypatch.setenv(registry.LOAD_PLUGINS_ENV, DIST)
    registry.reset()
    assert registry.entries("generator")["class_gaussian"].distribution == f"{DIST} {version}"


# -- the kit names what a broken generator gets wrong ---------------------------------------------------------------
def broken(example, **methods) -> type:
    """The example with some methods replaced by broken ones."""
    return type("Broken", (example.ClassGaussian,), methods)


def wrong_shape(self, cond, n, generator):
    return example_sample(self, cond, n, generator)[:, :, :14]


def out_of_range(self, cond, n, generator):
    return example_sample(self, cond, n, generator) * 3


def global_noise(self, cond, n, generator):
    return (self.mean(cond) + self.log_std.exp() * torch.randn(n, self.base.numel())).clamp(-1, 1).view(n, 1, 28, 28)


def ignores_cond(self, cond, n, generator):
    return example_sample(self, None, n, generator)


def nan_loss(self, images, cond, optimizers, generator):
    return {"nll": torch.tensor(float("nan"))}


def halves_outside_the_state_dict(self, images, cond, optimizers, generator):
    self.scale = getattr(self, "scale", 1.0) / 2
    return example_step(self, images, cond, optimizers, generator)


def scaled_sample(self, cond, n, generator):
    return example_sample(self, cond, n, generator) * getattr(self, "scale", 1.0)


def example_sample(self, cond, n, generator):
    return type(self).__base__.sample(self, cond, n, generator)  # the example's own method


def example_step(self, images, cond, optimizers, generator):
    return type(self).__base__.training_step(self, images, cond, optimizers, generator)


@pytest.mark.parametrize(
    "methods, check, why",
    [
        ({"sample": wrong_shape}, "sample shape and range", r"shape \(5, 1, 14, 28\), expected \(5, 1, 28, 28\)"),
        ({"sample": out_of_range}, "sample shape and range", r"in \[-1, 1\]"),
        ({"training_step": nan_loss}, "training through the shared loop", "divergence: non-finite nll"),
        ({"sample": ignores_cond}, "samples follow cond", "sample ignores cond"),
        ({"sample": global_noise}, "seed determinism", "not the global RNG"),
        (
            {"training_step": halves_outside_the_state_dict, "sample": scaled_sample},
            "save → load round trip",
            r"in state_dict\(\)",
        ),
    ],
)
def test_the_kit_names_the_check_a_broken_generator_fails(example, methods, check, why):
    with pytest.raises(GeneratorCheckFailed, match=f"'{check}' failed .*: .*{why}"):
        check_generator(broken(example, **methods))


class NoSample(GenerativeModel):
    """Forgets `sample`."""

    def make_optimizers(self):
        return {}

    def training_step(self, images, cond, optimizers, generator):
        return {}


def test_a_generator_missing_a_method_or_of_the_wrong_type_fails_the_build_check():
    with pytest.raises(TypeError, match="abstract method '?sample"):
        NoSample(ImageSpec(1, 28))
    with pytest.raises(GeneratorCheckFailed, match="'build' failed .*abstract method '?sample"):
        check_generator(NoSample)
    with pytest.raises(
        GeneratorCheckFailed, match="'build' failed .*returned a Linear, not a benchmark.GenerativeModel"
    ):
        check_generator(lambda spec: torch.nn.Linear(1, 1))
    assert isinstance(GeneratorCheckFailed("x"), AssertionError)
