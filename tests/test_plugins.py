"""The plugin system: built-ins, real entry-point discovery of a third-party distribution, restriction, duplicates."""

from __future__ import annotations

import importlib.metadata
import inspect
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from benchmark import hookspecs, registry
from benchmark.errors import MedAugBenchError
from tests.helpers import install_plugin

TESTS = Path(__file__).parent


STRATEGY_PLUGIN = """
    from dataclasses import dataclass
    from benchmark.hookspecs import hookimpl
    from benchmark.train.strategy import Strategy

    @dataclass
    class Invert(Strategy):
        name = "invert"
        def augment(self, images, targets, generator):
            return 1.0 - images, targets

    @hookimpl
    def register_strategies(register):
        register("invert", Invert, "inverts intensities")
"""


def registering(hook: str, name: str, factory: str) -> str:
    """The source of a one-hook plugin that registers `factory` (a Python expression) as `name`."""
    return f"from benchmark import hookimpl\n\n@hookimpl\ndef {hook}(register):\n    register({name!r}, {factory})\n"


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "medaugbench-invert", "medaugbench_invert", STRATEGY_PLUGIN)
    yield tmp_path
    sys.modules.pop("medaugbench_invert", None)


def test_plugins_list_shows_every_kind_from_built_ins(cli):
    result = cli("plugins", "list")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "│" in line]
    kinds = {row.split("│")[1].strip() for row in rows}
    assert {"dataset", "strategy", "backbone"} <= kinds
    assert any("pneumoniamnist" in row and "built-in" in row for row in rows)


def test_third_party_distribution_is_discovered_through_its_entry_point(third_party, cli):
    result = cli("plugins", "list")
    row = next(line for line in result.output.splitlines() if "invert" in line)
    assert "strategy" in row and "medaugbench-invert 0.1" in row
    images = torch.rand(2, 1, 4, 4)
    out, _ = registry.create("strategy", "invert").augment(images, torch.zeros(2, 2), torch.Generator())
    assert torch.allclose(out, 1 - images)


def test_load_plugins_variable_restricts_third_party(third_party, monkeypatch):
    monkeypatch.setenv("MEDAUGBENCH_LOAD_PLUGINS", "")
    assert "invert" not in registry.entries("strategy")
    assert "none" in registry.entries("strategy")  # built-ins always load
    registry.reset()
    monkeypatch.setenv("MEDAUGBENCH_LOAD_PLUGINS", "medaugbench_invert")  # any spelling of the distribution name
    assert registry.entries("strategy")["invert"].distribution == "medaugbench-invert 0.1"


def test_load_plugins_naming_an_absent_distribution(monkeypatch, cli):
    monkeypatch.setenv("MEDAUGBENCH_LOAD_PLUGINS", "medaugbench-nowhere")
    result = cli("plugins", "list")
    assert result.exit_code == 1 and "medaugbench-nowhere, not installed" in result.output


def test_duplicate_name_is_an_error_naming_both_sources(tmp_path, monkeypatch, cli):
    source = registering("register_datasets", "pneumoniamnist", "dict")
    install_plugin(tmp_path, monkeypatch, "medaugbench-clash", "medaugbench_clash", source)
    with pytest.raises(MedAugBenchError) as caught:
        registry.entries("dataset")
    message = str(caught.value)
    assert "dataset 'pneumoniamnist' is registered twice" in message
    assert "plugins.builtin (built-in)" in message and "medaugbench_clash (medaugbench-clash 0.1)" in message
    result = cli("datasets", "list")
    assert result.exit_code == 1 and "registered twice" in result.output


def test_example_plugin_in_examples_registers_a_working_strategy(tmp_path, monkeypatch):
    example = TESTS.parent / "examples" / "medaugbench-example-plugin"
    install_plugin(
        tmp_path,
        monkeypatch,
        "medaugbench-example-plugin-shim",  # not the example's own name: an installed copy must not clash with it
        "medaugbench_example_shim",
        "from medaugbench_example import *  # noqa\nfrom medaugbench_example import register_strategies\n",
    )
    monkeypatch.syspath_prepend(str(example))
    strategy = registry.create("strategy", "gaussian_noise", sigma=0.1)
    images = torch.full((8, 1, 16, 16), 0.5)
    out, _ = strategy.augment(images, torch.zeros(8, 2), torch.Generator().manual_seed(0))
    assert 0.05 < (out - images).std() < 0.15
    sys.modules.pop("medaugbench_example_shim", None)


EXAMPLES = TESTS.parent / "examples"


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir() if (p / "pyproject.toml").is_file()))
def test_each_example_ships_the_module_its_entry_point_names(example):
    """hatchling ships a folder named like the project unless `packages` says otherwise; the entry point's module
    must be in the wheel, or `pip install -e examples/...` fails (it did for the example plugin)."""
    project = tomllib.loads((EXAMPLES / example / "pyproject.toml").read_text())
    module = next(iter(project["project"]["entry-points"]["medaugbench"].values())).split(":")[0].split(".")[0]
    default = [project["project"]["name"].replace("-", "_")]
    shipped = project.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {})
    packages = shipped.get("packages", default)
    assert module in packages and (EXAMPLES / example / module / "__init__.py").is_file()


@pytest.mark.parametrize("dist, name", [("medaugbench-example-plugin", "gaussian_noise")])
def test_the_installed_example_plugin_is_listed_with_its_distribution(dist, name, monkeypatch, cli):
    """.ci/run installs the example with the command its README shows (`pip install -e examples/...`)."""
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{dist} is not installed (pip install --no-deps -e examples/{dist}, as .ci/run does)")
    monkeypatch.setenv(registry.LOAD_PLUGINS_ENV, dist)
    result = cli("plugins", "list")
    row = next(line for line in result.output.splitlines() if f" {name} " in line)
    assert f"{dist} {version}" in row and "built-in" not in row


LAZY_IMPL = """
    from dataclasses import dataclass
    from benchmark import Strategy

    @dataclass
    class Invert(Strategy):
        name = "invert"
        strength: float = 1.0

        def augment(self, images, targets, generator):
            return self.strength - images, targets
"""


def test_a_plugin_registered_by_reference_is_imported_only_when_created(tmp_path, monkeypatch):
    """`register(name, "module:attr", ...)`: listing and looking up the name import nothing; `create` imports the
    module; a declared parameter list refuses a wrong parameter without importing it, with `create`'s message."""
    (tmp_path / "medaugbench_lazy_impl.py").write_text(inspect.cleandoc(LAZY_IMPL))
    source = (
        "from benchmark import LazyFactory, hookimpl\n\n@hookimpl\ndef register_strategies(register):\n"
        "    register('invert_ref', 'medaugbench_lazy_impl:Invert', 'by reference')\n"
        "    register('invert_declared', LazyFactory('medaugbench_lazy_impl:Invert', ('strength',)), 'declared')\n"
    )
    install_plugin(tmp_path, monkeypatch, "medaugbench-lazy", "medaugbench_lazy", source)
    entries = registry.entries("strategy")
    assert entries["invert_ref"].distribution == "medaugbench-lazy 0.1"
    with pytest.raises(MedAugBenchError) as caught:
        registry.check("strategy", "invert_declared", strenght=2.0)
    assert str(caught.value) == (
        "strategy 'invert_declared' does not take 'strenght' (did you mean 'strength' for 'strenght'?); "
        "it accepts: strength"
    )
    assert "medaugbench_lazy_impl" not in sys.modules
    strategy = registry.create("strategy", "invert_ref", strength=2.0)
    assert "medaugbench_lazy_impl" in sys.modules and type(strategy).__name__ == "Invert" and strategy.strength == 2.0
    for name in ("medaugbench_lazy", "medaugbench_lazy_impl"):
        sys.modules.pop(name, None)


def test_a_malformed_reference_is_one_message_naming_the_form():
    with pytest.raises(MedAugBenchError, match="'plugins.classic_strategies' is not 'package.module:attr'"):
        registry.LazyFactory("plugins.classic_strategies")


def test_every_declared_parameter_list_is_the_factory_s_real_signature():
    """Built-ins register by reference and declare their parameters, so a dry run checks them without importing
    torch; each declaration must equal what the imported factory really takes (update plugins/builtin.py if not)."""
    declared = [
        entry
        for entry in registry.all_entries()
        if isinstance(entry.factory, registry.LazyFactory) and entry.factory.parameters is not None
    ]
    assert len(declared) >= 20
    wrong = {
        f"{entry.kind} {entry.name}": registry.accepted_parameters(entry.factory.resolve())
        for entry in declared
        if list(entry.factory.parameters) != registry.accepted_parameters(entry.factory.resolve())
    }
    assert not wrong, f"declared parameters differ from the real signatures: {wrong}"


def test_plugins_show_reads_a_lazy_factory_s_real_signature_and_docstring(cli):
    result = cli("plugins", "show", "strategy", "geometric")
    assert result.exit_code == 0, result.output
    assert "degrees" in result.output and "plugins.builtin" in result.output


# One test per hook (`test_hook_<name>`), enforced by test_every_hook_has_a_test.


def test_hook_register_datasets():
    entries = registry.entries("dataset")
    assert {"pneumoniamnist", "dermamnist", "chestmnist", "breastmnist", "retinamnist", "imagefolder"} <= set(entries)
    assert registry.create("dataset", "bloodmnist").task.num_outputs == 8


def test_hook_register_strategies():
    assert {"none", "geometric", "cutmix_mixup"} <= set(registry.entries("strategy"))
    assert registry.create("strategy", "geometric", degrees=10).params() == {
        "modality": "generic",
        "flip_p": 0.5,
        "degrees": 10,
    }


def test_hook_register_backbones():
    model = registry.create("backbone", "simple_cnn", in_chans=1, num_classes=3, image_size=28)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)


def test_every_hook_has_a_test():
    hooks = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "medaugbench_spec")]
    assert hooks, "no hookspecs found"
    tests = {name for path in TESTS.glob("test_*.py") for name in _test_names(path)}
    missing = [hook for hook in hooks if f"test_hook_{hook}" not in tests]
    assert not missing, f"hooks without a test_hook_<name> test: {missing}"


def _test_names(path: Path) -> list[str]:
    return [line.split("(")[0][4:] for line in path.read_text().splitlines() if line.startswith("def test_hook_")]


def test_unknown_plugin_kind_is_a_programming_error():
    with pytest.raises(ValueError):
        registry.entries("sampler")


def test_create_refuses_an_unknown_parameter_naming_the_plugin_and_what_it_accepts():
    with pytest.raises(MedAugBenchError) as error:
        registry.create("strategy", "geometric", nosuchparam=3)
    assert str(error.value) == "strategy 'geometric' does not take 'nosuchparam'; it accepts: modality, flip_p, degrees"
    with pytest.raises(MedAugBenchError, match="did you mean 'degrees' for 'degree'"):
        registry.create("strategy", "geometric", degree=3)
    assert registry.create("strategy", "geometric", degrees=5.0).degrees == 5.0


def test_cli_unknown_strategy_parameter_is_one_line(cli):
    result = cli("train", "--dataset", "breastmnist", "--strategy", "geometric", "-S", "nosuchparam=3", "--steps", "1")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "strategy 'geometric' does not take 'nosuchparam'; it accepts: modality, flip_p, degrees" in result.output


def test_results_path_that_is_a_file_is_one_message(cli, tmp_path):
    path = tmp_path / "results.txt"
    path.write_text("not a folder")
    result = cli("run", "quick", "-o", str(path), "--dry-run")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"the results path {path} is a file, not a folder" in " ".join(result.output.split())


def test_a_factory_returning_the_wrong_type_is_one_message_naming_the_plugin(tmp_path, monkeypatch):
    source = registering("register_strategies", "wrongtype", "dict")  # a dict, not a Strategy
    install_plugin(tmp_path, monkeypatch, "medaugbench-wrong", "medaugbench_wrong", source)
    with pytest.raises(MedAugBenchError) as caught:
        registry.create("strategy", "wrongtype")
    message = str(caught.value)
    assert "strategy plugin 'wrongtype' (from medaugbench_wrong, medaugbench-wrong 0.1) returned a dict" in message
    assert "benchmark.train.strategy.Strategy" in message
    sys.modules.pop("medaugbench_wrong", None)


def test_the_public_api_exports_what_a_plugin_needs():
    import benchmark

    for name in benchmark.__all__:
        assert hasattr(benchmark, name), name
    assert benchmark.create is registry.create and benchmark.hookimpl is hookspecs.hookimpl
