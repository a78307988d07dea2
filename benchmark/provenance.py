"""Where a number came from: the code version (package version, git commit, dirty flag), the machine and the
package versions, and a UTC timestamp. Every record, generator card and grid file carries them."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch

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


def code_version() -> dict:
    """The package version and, when the code runs from a git checkout, its commit and whether files differ from it."""
    source = Path(__file__).resolve().parent
    version = {"medaugbench": importlib.metadata.version("medaugbench"), "git_commit": None, "git_dirty": None}
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
        status = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return version
    return version | {"git_commit": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
