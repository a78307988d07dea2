"""The plugin manager, the registries it fills, and the one way to make a plugin: `create(kind, name, **params)`."""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache, partial
from typing import Any

import pluggy

from benchmark import hookspecs
from benchmark.errors import MedAugBenchError, notice

DEFAULT_PLUGINS = ("plugins.builtin", "plugins.generative_strategies")
"""The built-in hook modules: they register lazy references (`LazyFactory`), so loading them imports no torch; a new
built-in plugin registers in `plugins/builtin.py`, by reference."""
ENTRY_POINT_GROUP = hookspecs.PROJECT
LOAD_PLUGINS_ENV = "MEDAUGBENCH_LOAD_PLUGINS"
DISABLE_PLUGINS_ENV = "MEDAUGBENCH_DISABLE_PLUGINS"
BUILT_IN = "built-in"
PRODUCTS: dict[str, type] = {}
"""What each kind's factories return, declared by the module that defines the interface (`declare_product`)."""
TORCH_PRODUCTS = {"backbone": "Module"}
"""Kinds whose interface is a `torch.nn` class: looked up when one is created, so loading plugins needs no torch."""

KIND_HOOKS = {
    "dataset": "register_datasets",
    "strategy": "register_strategies",
    "backbone": "register_backbones",
    "generator": "register_generators",
    "extractor": "register_extractors",
    "executor": "register_executors",
}


@dataclass(frozen=True)
class LazyFactory:
    """A factory named by reference (`"package.module:attr"`), imported on its first call, so registering, listing
    and checking a plugin's parameters import nothing heavy; `keywords` are bound like `functools.partial`'s."""

    reference: str
    parameters: tuple[str, ...] | None = None
    """The keyword parameters it takes (as `inspect.signature` of the target gives them, bound `keywords` included),
    declared so they are known without importing; None: read from the imported target."""
    keywords: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        module, _, attr = self.reference.partition(":")
        if not module or not attr:
            raise MedAugBenchError(
                f"plugin factory reference {self.reference!r} is not 'package.module:attr'; name the module and the "
                "class or function in it, e.g. 'my_plugin.strategies:GaussianNoise'"
            )

    def resolve(self) -> Callable[..., Any]:
        """The referenced callable (imported now), with `keywords` bound."""
        module, _, attr = self.reference.partition(":")
        target = importlib.import_module(module)
        for part in attr.split("."):
            target = getattr(target, part)
        return partial(target, **self.keywords) if self.keywords else target

    def __call__(self, *args: Any, **params: Any) -> Any:
        return self.resolve()(*args, **params)


def as_factory(factory: Callable[..., Any] | str) -> Callable[..., Any]:
    """What `register` accepts as a factory: a callable, or a `"module:attr"` string (a `LazyFactory`)."""
    return LazyFactory(factory) if isinstance(factory, str) else factory


def resolved(factory: Callable[..., Any]) -> Callable[..., Any]:
    """The callable behind a factory: a `LazyFactory`'s target (imported now), anything else as it is."""
    return factory.resolve() if isinstance(factory, LazyFactory) else factory


@dataclass(frozen=True)
class PluginEntry:
    """One registered name: what it makes, and which plugin and distribution it came from."""

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str
    plugin: str
    distribution: str


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class FailedPlugin:
    """An installed plugin whose module raised on import: skipped, so every other plugin and command still works;
    `plugins list` and a note on stderr name it, its distribution, the error and how to disable it."""

    plugin: str
    distribution: str
    error: str

    @property
    def remedy(self) -> str:
        name = self.distribution.split()[0]
        return f"fix or uninstall it, or set {DISABLE_PLUGINS_ENV}={name} to stop loading it"


_FAILED: list[FailedPlugin] = []


def _env_names(variable: str) -> set[str] | None:
    """The canonical distribution names a comma-separated variable lists (None when it is unset)."""
    value = os.environ.get(variable)
    return None if value is None else {_canonical(part) for part in value.split(",") if part.strip()}


def _load_third_party(pm: pluggy.PluginManager) -> None:
    """Load entry-point plugins; `MEDAUGBENCH_LOAD_PLUGINS` (comma-separated distributions) restricts which,
    `MEDAUGBENCH_DISABLE_PLUGINS` leaves some out, and one whose import raises is skipped (`FailedPlugin`)."""
    wanted, disabled = _env_names(LOAD_PLUGINS_ENV), _env_names(DISABLE_PLUGINS_ENV) or set()
    installed = set()
    for dist in importlib.metadata.distributions():
        dist_name = _canonical(dist.metadata["Name"] or "")
        installed.add(dist_name)
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or pm.is_blocked(ep.name):
                continue
            if dist_name in disabled or (wanted is not None and dist_name not in wanted):
                pm.set_blocked(ep.name)
            else:
                _try_import(pm, ep, f"{dist.metadata['Name']} {dist.version}")
    missing = sorted((wanted or set()) - installed)
    if missing:
        raise MedAugBenchError(
            f"{LOAD_PLUGINS_ENV} names {', '.join(missing)}, not installed; install it or remove it from the variable"
        )
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)


def _try_import(pm: pluggy.PluginManager, ep: importlib.metadata.EntryPoint, distribution: str) -> None:
    """Import an entry point's module; if that raises, block it, remember it and say so on stderr."""
    try:
        ep.load()
    except Exception as error:  # any error in third-party code: that plugin is skipped, the command goes on
        failed = FailedPlugin(ep.name, distribution, f"{type(error).__name__}: {error}")
        _FAILED.append(failed)
        pm.set_blocked(ep.name)
        notice(
            f"plugin {failed.plugin} ({failed.distribution}) failed to import ({failed.error}); it is skipped: "
            f"{failed.remedy}"
        )


def failed_plugins() -> list[FailedPlugin]:
    """The installed plugins that failed to import (skipped), after loading plugins."""
    plugin_manager()
    return list(_FAILED)


@lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    """Built-in plugins plus installed third-party ones (group `medaugbench`)."""
    _FAILED.clear()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    _load_third_party(pm)
    return pm


def _distributions(pm: pluggy.PluginManager) -> dict[int, str]:
    return {id(plugin): f"{dist.project_name} {dist.version}" for plugin, dist in pm.list_plugin_distinfo()}


@cache
def entries(kind: str) -> dict[str, PluginEntry]:
    """All names registered for one kind; a name registered twice is an error naming both sources."""
    if kind not in KIND_HOOKS:
        raise ValueError(f"unknown plugin kind {kind!r}")
    pm = plugin_manager()
    dists = _distributions(pm)
    found: dict[str, PluginEntry] = {}
    for impl in getattr(pm.hook, KIND_HOOKS[kind]).get_hookimpls():
        source = dists.get(id(impl.plugin), BUILT_IN)

        def register(
            name: str,
            factory: Callable[..., Any] | str,
            description: str = "",
            *,
            _plugin=impl.plugin_name,
            _source=source,
        ) -> None:
            entry = PluginEntry(kind, name, as_factory(factory), description, _plugin, _source)
            if name in found:
                first = found[name]
                raise MedAugBenchError(
                    f"{kind} {name!r} is registered twice: by plugin {first.plugin} ({first.distribution}) "
                    f"and by plugin {_plugin} ({_source}); "
                    f"uninstall one, or list the plugins to load in {LOAD_PLUGINS_ENV}"
                )
            found[name] = entry

        impl.function(register=register)
    return dict(sorted(found.items()))


def all_entries() -> list[PluginEntry]:
    return [entry for kind in KIND_HOOKS for entry in entries(kind).values()]


def get_entry(kind: str, name: str) -> PluginEntry:
    """The entry for `name`, or an error listing the available names and the closest match."""
    known = entries(kind)
    if name in known:
        return known[name]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    hint += "".join(f" Plugin {f.plugin} ({f.distribution}) failed to import: {f.error}." for f in failed_plugins())
    raise MedAugBenchError(
        f"unknown {kind} {name!r}.{hint} Available: {', '.join(known)} (see `medaugbench plugins list`)"
    )


def accepted_parameters(factory: Callable[..., Any]) -> list[str] | None:
    """The keyword parameters a factory takes, or None when it takes any (`**kwargs`) or cannot be inspected; a
    `LazyFactory` that declares them is not imported."""
    if isinstance(factory, LazyFactory):
        return list(factory.parameters) if factory.parameters is not None else accepted_parameters(factory.resolve())
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    keywords = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters if p.kind in keywords]


def declare_product(kind: str, product: type) -> None:
    """Say what a `kind`'s factories must return (the stage that owns the interface calls this at import), so
    `create` can name the plugin whose factory returned something else."""
    PRODUCTS[kind] = product


def _checked_parameters(entry: PluginEntry, params: dict[str, Any]) -> None:
    accepted = accepted_parameters(entry.factory)
    unknown = sorted(set(params) - set(accepted)) if accepted is not None else []
    if unknown:
        close = {key: difflib.get_close_matches(key, accepted, n=1) for key in unknown}
        hints = "; ".join(f"did you mean {match[0]!r} for {key!r}?" for key, match in close.items() if match)
        raise MedAugBenchError(
            f"{entry.kind} {entry.name!r} does not take {', '.join(map(repr, unknown))}"
            + (f" ({hints})" if hints else "")
            + f"; it accepts: {', '.join(accepted) or 'no parameters'}"
        )


def check(kind: str, name: str, **params: Any) -> PluginEntry:
    """What `create` checks before it builds (the name is registered and its factory takes these parameters), without
    importing the plugin when its factory is a `LazyFactory` that declares its parameters; returns the entry."""
    entry = get_entry(kind, name)
    _checked_parameters(entry, params)
    return entry


def create(kind: str, name: str, **params: Any) -> Any:
    """Create the plugin registered as `name` for `kind` (timm's `create_model` style), e.g.
    `create("strategy", "geometric", degrees=10)` or `create("generator", "dcgan", spec=ImageSpec(1, 28, 2))`.

    An unknown name is an error listing the available ones; a parameter the factory does not take is one error
    naming the plugin and the parameters it accepts (rather than a TypeError from inside the factory); a factory
    that returns something other than its kind's interface is an error naming the plugin.
    """
    entry = check(kind, name, **params)
    product = entry.factory(**params)
    expected = PRODUCTS.get(kind) or _torch_product(kind)
    if expected is not None and not isinstance(product, expected):
        raise MedAugBenchError(
            f"{kind} plugin {name!r} (from {entry.plugin}, {entry.distribution}) returned a {type(product).__name__}, "
            f"not a {expected.__module__}.{expected.__qualname__}; its factory must return one"
        )
    return product


def _torch_product(kind: str) -> type | None:
    if kind not in TORCH_PRODUCTS:
        return None
    return getattr(importlib.import_module("torch.nn"), TORCH_PRODUCTS[kind])


def reset() -> None:
    """Forget loaded plugins so the next lookup rediscovers them (after installing one, or in tests)."""
    plugin_manager.cache_clear()
    entries.cache_clear()
