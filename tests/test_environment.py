"""The environment stored with every results folder names the code that produced it."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

from benchmark.provenance import environment

REPO = Path(__file__).resolve().parent.parent


def test_environment_records_package_version_and_git_commit():
    code = environment()["code"]
    assert code["medaugbench"] == importlib.metadata.version("medaugbench")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # CI runs from a clean git checkout
        assert code["git_commit"] == head.stdout.strip() and isinstance(code["git_dirty"], bool)
    else:
        assert code["git_commit"] is None
