"""`medaugbench plugins list|show`: every registered plugin, and one plugin's parameters and documentation."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape

from benchmark import registry
from benchmark.cli.display import console, print_table
from benchmark.errors import MedAugBenchError

app = typer.Typer(no_args_is_help=True, help="Registered plugins.")

# where a user sets each kind's parameters on the command line (grid files have a table per kind)
OPTION_FLAGS = {
    "dataset": "-O KEY=VALUE",
    "strategy": "-S KEY=VALUE",
    "backbone": "-B KEY=VALUE",
    "generator": "-S generator_params.KEY=VALUE (through its strategy)",
    "extractor": "-E KEY=VALUE",
    "executor": "-X KEY=VALUE",
}

Kind = Annotated[str, typer.Argument(help=f"The plugin kind: {', '.join(registry.KIND_HOOKS)}.")]
Name = Annotated[str, typer.Argument(help="The plugin's name, as `plugins list` shows it.")]


@app.command("list")
def plugins_list() -> None:
    """Show every registered plugin by kind, with the distribution it came from."""
    rows = [(e.kind, e.name, escape(source(e)), escape(e.description)) for e in registry.all_entries()]
    print_table(("kind", "name", "from", "description"), rows)
    failed = [(f.plugin, escape(f.distribution), escape(f.error), f.remedy) for f in registry.failed_plugins()]
    if failed:
        print_table(("plugin", "from", "error", "what to do"), failed, title="FAILED to import (skipped)")
    console().print("`medaugbench plugins show KIND NAME` lists a plugin's parameters (the keys of -O/-S/-B/-E/-X).")


@app.command("show")
def plugins_show(kind: Kind, name: Name) -> None:
    """Show one plugin: where it comes from, the parameters its factory takes (with defaults) and its docstring."""
    if kind not in registry.KIND_HOOKS:
        raise MedAugBenchError(f"unknown plugin kind {kind!r}; choose one of {', '.join(registry.KIND_HOOKS)}")
    entry = registry.get_entry(kind, name)
    out = console()
    out.print(f"[bold]{kind} {name}[/bold] (plugin {entry.plugin}, {escape(source(entry))})")
    out.print(escape(entry.description), highlight=False)
    out.print(f"\nparameters, set with {OPTION_FLAGS[kind]}:", highlight=False)
    factory = registry.resolved(entry.factory)
    for line in parameter_lines(factory):
        out.print(f"  {escape(line)}", highlight=False)
    doc = inspect.getdoc(_unwrapped(factory))
    if doc:
        out.print(f"\n{escape(doc)}", highlight=False)


def source(entry: registry.PluginEntry) -> str:
    """The distribution that supplies a plugin: for the strategy the harness makes of each generator, the generator's
    distribution (the built-in strategy only wraps it), so a third-party generator is never credited to built-in."""
    generators = registry.entries("generator") if entry.kind == "strategy" else {}
    generator = generators.get(entry.name)
    if generator is None or generator.distribution == entry.distribution:
        return entry.distribution
    return f"{generator.distribution} (generator; strategy {entry.distribution})"


def parameter_lines(factory: Callable[..., Any]) -> list[str]:
    """`name: type = default` for each keyword parameter a factory takes (a `**kwargs` takes any further keyword)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return ["(cannot be inspected: see the docstring)"]
    made = _made_defaults(_unwrapped(factory))
    lines = []
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            lines.append(f"**{parameter.name}: any further keyword")
        elif parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            lines.append(_parameter_line(parameter, made))
    return lines or ["(none)"]


def _parameter_line(parameter: inspect.Parameter, made: dict[str, object]) -> str:
    line = parameter.name
    annotation = parameter.annotation
    if annotation is not inspect.Parameter.empty:
        line += f": {annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)}"
    if parameter.name in made:
        return f"{line} = {made[parameter.name]!r}"
    if parameter.default is inspect.Parameter.empty:
        return f"{line}  (given by the harness)"
    return f"{line} = {parameter.default!r}"


def _made_defaults(factory: Callable[..., Any]) -> dict[str, object]:
    """A dataclass's fields whose default is made per instance (`field(default_factory=...)`), with that default."""
    if not (isinstance(factory, type) and dataclasses.is_dataclass(factory)):
        return {}
    return {
        f.name: f.default_factory() for f in dataclasses.fields(factory) if f.default_factory is not dataclasses.MISSING
    }


def _unwrapped(factory: Callable[..., Any]) -> Callable[..., Any]:
    """The function or class behind `functools.partial` layers (whose own docstring is partial's)."""
    while isinstance(factory, functools.partial):
        factory = factory.func
    return factory
