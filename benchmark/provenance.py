"""Where a number came from: the code version (package version, git commit, dirty flag), the machine and the
package versions, and a UTC timestamp. Every record, generator card and grid file carries them. A plugin object's
provenance (`plugin_provenance`: its distribution, version and a digest of its source) keys the caches of what it
trains, so an edited plugin is never mistaken for the one that trained a cached model."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PACKAGES = (
    "medaugbench",
    "torch",
    "torchvision",
    "timm",
    "diffusers",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "torchmetrics",
    "torch-fidelity",
    "medmnist",
    "pluggy",
    "safetensors",
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def environment() -> dict:
    """Package versions and the machine, stored next to the results."""
    import torch  # here, not at the top: records are read (dry runs, leaderboards) without torch

    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(memory / 2**30, 1) if memory else None,
        "gpus": gpus,
        "cuda": torch.version.cuda if gpus else None,
        "packages": versions,
        "code": code_version(),
    }


CODE_PATHS = ("benchmark", "plugins", "pyproject.toml")  # what "dirty" looks at: published results are not code


def code_version() -> dict:
    """The package version and, when the code runs from a git checkout, its commit and whether its code (not the
    published results beside it) differs from it."""
    source = Path(__file__).resolve().parent
    version = {"medaugbench": importlib.metadata.version("medaugbench"), "git_commit": None, "git_dirty": None}
    commit = _git(source, "rev-parse", "HEAD")
    status = _git(source.parent, "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    if commit is None or status is None:
        return version
    return version | {"git_commit": commit, "git_dirty": bool(status)}


def _git(folder: Path, *args: str) -> str | None:
    """The stripped output of `git -C folder ARGS`, or None outside a git checkout (or without git)."""
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


HARNESS_ROOT = Path(__file__).resolve().parent.parent
HARNESS_PACKAGES = ("benchmark", "plugins")  # medaugbench's own top-level packages (its built-in plugins included)
UNTRACKED_PACKAGES = frozenset(sys.stdlib_module_names) | {"builtins", "torch"}


def plugin_provenance(*objects: Any) -> dict:
    """Who made a plugin object and the code it runs: the distribution and version of the first object's module
    (built-ins: medaugbench), the git commit of that module's folder (None outside a checkout), and `code_digest`, a
    digest of the source files of every object's module and of its base classes' modules (stdlib and torch left
    out), so an edit in place, with no new commit or version, changes it. Takes classes, instances, functions and
    `functools.partial` factories and lazy references; pass a factory and what it built to cover both."""
    modules = sorted({name for obj in objects for name in _source_modules(obj)})
    files = {name: _module_file(name) for name in modules}
    digest = hashlib.sha256()
    for name, file in files.items():
        digest.update(name.encode())
        digest.update(file.read_bytes() if file is not None else b"")
    primary = next(iter(_source_modules(objects[0])), None)
    distribution = _distribution(primary) if primary else None
    folder = files[primary].parent if primary and files[primary] is not None else None
    return {
        "distribution": distribution,
        "version": importlib.metadata.version(distribution) if distribution else None,
        "git_commit": _git(folder, "rev-parse", "HEAD") if folder is not None else None,
        "code_digest": digest.hexdigest()[:16],
        "modules": modules,
    }


def _source_modules(obj: Any) -> list[str]:
    """The modules whose code `obj` runs: a function's own; a class's and its bases' (an instance: its class's),
    those of the stdlib and torch left out; the object's own module first. A registered `LazyFactory` counts as the
    callable it names."""
    from benchmark.registry import resolved

    obj = resolved(obj)
    while isinstance(obj, functools.partial):
        obj = obj.func
    if not (inspect.isclass(obj) or inspect.isroutine(obj)):
        obj = type(obj)
    owners = obj.__mro__ if inspect.isclass(obj) else (obj,)
    names = [owner.__module__ for owner in owners]
    return [name for i, name in enumerate(names) if name not in names[:i] and _tracked(name)]


def _tracked(module: str) -> bool:
    return module.partition(".")[0] not in UNTRACKED_PACKAGES


def _module_file(module: str) -> Path | None:
    """The source file of an imported module (None for one without a file)."""
    file = getattr(sys.modules.get(module), "__file__", None)
    return Path(file).resolve() if file else None


def _distribution(module: str) -> str | None:
    """The installed distribution that provides `module`: medaugbench for its own packages, else the one that lists
    its top-level package, else the one whose `medaugbench` entry point loads it; None if none does."""
    top = module.partition(".")[0]
    file = _module_file(module)
    if top in HARNESS_PACKAGES and file is not None and file.is_relative_to(HARNESS_ROOT):
        return "medaugbench"
    listed = importlib.metadata.packages_distributions().get(top)
    if listed:
        return listed[0]
    for entry in importlib.metadata.entry_points(group="medaugbench"):
        if entry.module.partition(".")[0] == top and entry.dist is not None:
            return entry.dist.name
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
