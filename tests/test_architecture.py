"""The folder tree is the architecture: each stage imports only the plugin system and the stages before it, and
no core module imports a built-in plugin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "benchmark"
# plugin system first, then the stages in data-flow order; a module may import its own level or any lower one
LEVELS = [
    "errors",
    "hookspecs",
    "registry",
    "provenance",
    "data",
    "train",
    "generate",
    "evaluate",
    "synthesis",
    "grid",
    "publish",
    "cli",
]
PLUGIN_SYSTEM = {"errors", "hookspecs", "registry", "provenance"}  # provenance: code and machine facts, a leaf
TOP_LEVEL = {"__init__", "testing"}  # the public API and the conformance kit sit above the stages they re-export


def _level(part: str) -> int:
    return 0 if part in PLUGIN_SYSTEM else LEVELS.index(part)


def _imports(path: Path) -> list[str]:
    """Every module a file imports, lazy imports inside functions included."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _stage(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "benchmark" or len(parts) < 2 or parts[1] in TOP_LEVEL:
        return None
    return parts[1] if parts[1] in LEVELS else None


CORE_FILES = sorted(p for p in CORE.rglob("*.py"))


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(CORE)))
def test_a_core_module_imports_only_earlier_stages_and_no_plugin(path: Path) -> None:
    own = path.relative_to(CORE).parts[0].removesuffix(".py")
    imported = _imports(path)
    assert not [m for m in imported if m.split(".")[0] == "plugins"], f"{path.name} imports a built-in plugin"
    if own in TOP_LEVEL:
        return
    upward = [m for m in imported if (stage := _stage(m)) and _level(stage) > _level(own)]
    assert not upward, f"{path.relative_to(CORE)} ({own}) imports a later stage: {upward}"


@pytest.mark.parametrize("package", [p for p in CORE.iterdir() if (p / "__init__.py").is_file()], ids=lambda p: p.name)
def test_every_sub_package_says_what_it_owns(package: Path) -> None:
    assert ast.get_docstring(ast.parse((package / "__init__.py").read_text())), f"{package.name}/ has no docstring"


PLUGIN_FILES = sorted((CORE.parent / "plugins").glob("*.py"))
EXAMPLE_FILES = sorted((CORE.parent / "examples").rglob("*.py"))
PLUGIN_SYSTEM_MODULES = {f"benchmark.{name}" for name in PLUGIN_SYSTEM - {"provenance"}}


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: p.name)
def test_built_in_plugins_take_the_plugin_system_from_the_public_api(path: Path) -> None:
    """hookimpl, Register, create and MedAugBenchError come from `benchmark`, as a third party's would."""
    deep = [m for m in _imports(path) if m in PLUGIN_SYSTEM_MODULES]
    assert not deep, f"plugins/{path.name} imports {deep}; import the names from `benchmark`"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(CORE.parent)))
def test_examples_import_only_the_public_api(path: Path) -> None:
    deep = [m for m in _imports(path) if m.startswith("benchmark.") and m.removeprefix("benchmark.") not in _public()]
    assert not deep, f"{path.relative_to(CORE.parent)} imports internals {deep}; use `from benchmark import ...`"


def _public() -> set[str]:
    import benchmark

    return set(benchmark.__all__)
