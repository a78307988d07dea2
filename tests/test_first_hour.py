"""A newcomer's first hour (issue 24): what the help says, what a narrow terminal shows, who may read what the
harness writes, and what a test run leaves behind."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from rich.console import Console

from benchmark.cli import display
from benchmark.data import files
from benchmark.generate.checkpoints import write_checkpoint
from benchmark.train.config import Budget

REPO = Path(__file__).resolve().parent.parent


def test_train_help_shows_the_default_budget(cli):
    result = cli("train", "--help")
    assert result.exit_code == 0
    assert f"default {Budget().steps} when no budget is given" in " ".join(result.output.replace("│", " ").split())


def test_narrow_tables_wrap_and_never_cut_a_value(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(display, "console", lambda: Console(file=out, width=80))
    values = ("+0.0123 [-0.0456, +0.0789]", "1.2345e-07 / 0.0312", "0.04999999", "-3.4 [-7.9, +0.9] ↑")
    display.print_table(("strategy", "Δ AUC [95% CI]", "Holm p (t / boot)", "MDD", "Δ acc"), [("randaugment", *values)])
    text = out.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    body = [line.split("│")[1:-1] for line in text.split("┡")[1].splitlines() if line.startswith("│")]
    columns = ["".join("".join(cells[i].split()) for cells in body) for i in range(len(values) + 1)]
    assert columns[1:] == ["".join(value.split()) for value in values]  # each cell, read down its column, whole


def test_checkpoints_are_shared_like_records(tmp_path):
    folder = write_checkpoint(tmp_path / "gen", {"w": torch.zeros(2)}, {"generator": "x"}, "weights.safetensors")
    files.write_json_atomic(tmp_path / "record.json", {"a": 1})
    assert stat.S_IMODE(folder.stat().st_mode) == files.SHARED_FOLDER
    for path in (folder / "weights.safetensors", folder / "card.json", tmp_path / "record.json"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path  # group and others may read it


@pytest.mark.slow
def test_a_test_run_leaves_no_cache_folder_behind(tmp_path):
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from tests.conftest import *  # noqa: F403
        from tests.conftest import pytest_unconfigure  # noqa: F401
    """)
    )
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_nothing.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not list(temp.glob("medaugbench-test-cache-*"))


def test_the_readme_s_two_commands_are_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    assert "scripts/dev.sh run" in readme and "scripts/dev.sh test" in readme
    assert "scripts/dev.sh test" in (REPO / ".ci" / "run").read_text()
    script = (REPO / "scripts" / "dev.sh").read_text()
    for example in sorted(p.name for p in (REPO / "examples").iterdir() if (p / "pyproject.toml").is_file()):
        assert f"-e examples/{example}" in script  # tested through a real install
