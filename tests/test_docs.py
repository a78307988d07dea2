"""The README, docs/ and the examples' READMEs stay true to the code: every topic page is linked from the README,
every relative link resolves, every public name is documented, every `medaugbench` command shown in a fenced block
parses, and every ```python block marked runnable runs."""

from __future__ import annotations

import re
import runpy
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

import benchmark
from benchmark.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
EXAMPLES = sorted(ROOT.glob("examples/*/README.md"))
PAGES = [README, *DOCS, *EXAMPLES]
TOPICS = ["datasets", "training", "generators", "quality", "grids", "executors", "plugins"]
RUNNABLE = "<!-- runnable -->"
"""Put this line right before a ```python block to have this test run it (in a temporary folder)."""
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it starts, its language, its text, and whether it is marked runnable."""

    page: Path
    line: int
    language: str
    text: str
    runnable: bool

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def fenced_blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, in order."""
    blocks, lines = [], page.read_text().splitlines()
    start, language, marked = None, "", False
    for number, line in enumerate(lines, 1):
        if not line.startswith("```"):
            continue
        if start is None:
            start, language = number, line[3:].strip()
            marked = number > 1 and lines[number - 2].strip() == RUNNABLE
        else:
            blocks.append(Block(page, start, language, "\n".join(lines[start : number - 1]) + "\n", marked))
            start = None
    return blocks


BLOCKS = [block for page in PAGES for block in fenced_blocks(page)]


def command_lines(block: Block) -> list[list[str]]:
    """The `medaugbench ...` command lines of a shell block, as argument lists (comments, continuations and leading
    VAR=value assignments removed)."""
    if block.language not in ("bash", "sh", "shell", "console", ""):
        return []
    commands = []
    for line in block.text.replace("\\\n", " ").splitlines():
        tokens = shlex.split(line.removeprefix("$ "), comments=True)
        while tokens and ENV_ASSIGNMENT.match(tokens[0]):
            tokens.pop(0)
        if tokens and tokens[0] == "medaugbench":
            commands.append(tokens[1:])
    return commands


COMMANDS = [pytest.param(args, id=f"{b.where} {' '.join(args)}") for b in BLOCKS for args in command_lines(b)]


def links(page: Path) -> list[str]:
    """Relative link targets of a page (web and mail links left out)."""
    return [target for target in LINK.findall(page.read_text()) if not re.match(r"^[a-z]+:", target)]


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def resolve(command: Any, args: list[str]) -> tuple[Any, list[str], list[str]]:
    """Walk the sub-command names at the front of `args` through click groups: the command reached, its path and the
    arguments left. (Duck-typed: recent typer vendors its own copy of click.)"""
    path, args = [], list(args)
    while hasattr(command, "commands") and args and not args[0].startswith("-"):
        name = args.pop(0)
        assert name in command.commands, f"`medaugbench {' '.join([*path, name])}` is not a command"
        path.append(name)
        command = command.commands[name]
    return command, path, args


def option_names(command: Any) -> set[str]:
    """Every spelling of every option of a click command (`--out`, `-S`, `--strategy-option`, ...)."""
    options = [param for param in command.params if param.param_type_name == "option"]
    return {name for option in options for name in (*option.opts, *option.secondary_opts)}


@pytest.mark.parametrize("topic", TOPICS)
def test_every_topic_page_exists_and_the_readme_links_it(topic: str) -> None:
    page = ROOT / "docs" / f"{topic}.md"
    assert page.is_file(), f"docs/{topic}.md is missing"
    assert f"docs/{topic}.md" in links(README), f"README.md does not link docs/{topic}.md"


def test_every_page_in_docs_is_linked_from_the_readme() -> None:
    linked = {(README.parent / target.split("#")[0]).resolve() for target in links(README)}
    unlinked = [page.name for page in DOCS if page.resolve() not in linked]
    assert not unlinked, f"README.md does not link: {', '.join(unlinked)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_a_file_that_exists(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {', '.join(broken)}"


def test_every_public_name_is_documented_in_the_plugins_page() -> None:
    text = (ROOT / "docs" / "plugins.md").read_text()
    missing = [name for name in benchmark.__all__ if f"`{name}`" not in text]
    assert not missing, f"docs/plugins.md does not describe: {', '.join(missing)}"


def test_the_docs_show_commands_and_runnable_examples() -> None:
    assert len(COMMANDS) > 20
    assert sum(block.runnable for block in BLOCKS) >= 2


def check_command(args: list[str]) -> None:
    """Fail unless `medaugbench ARGS` names a command, uses only its options, and parses (nothing runs)."""
    command, path, rest = resolve(typer.main.get_command(app), args)
    assert not hasattr(command, "commands"), f"`{' '.join(path)}` needs a sub-command"
    flags = [arg.split("=")[0] for arg in rest if re.match(r"^-[-a-zA-Z]", arg)]
    unknown = [flag for flag in flags if flag not in option_names(command)]
    assert not unknown, f"not options of `medaugbench {' '.join(path)}`: {', '.join(unknown)}"
    try:  # values and arguments parse as click parses them; `--help` is not used, it would skip option parsing
        command.make_context(f"medaugbench {' '.join(path)}", rest)
    except Exception as error:
        pytest.fail(f"`medaugbench {' '.join(args)}` does not parse: {error}")


@pytest.mark.parametrize("args", COMMANDS)
def test_every_command_shown_parses(args: list[str]) -> None:
    check_command(args)


@pytest.mark.parametrize(
    "line",
    ["datasets frobnicate", "datasets", "train --no-such-flag 1", "train --steps many", "leaderboard"],
)
def test_the_command_check_rejects_what_the_cli_would_reject(line: str) -> None:
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        check_command(line.split())


def test_the_runnable_marker_only_precedes_python_blocks() -> None:
    misplaced = [block.where for block in BLOCKS if block.runnable and block.language != "python"]
    assert not misplaced, f"{RUNNABLE} must precede a ```python block: {', '.join(misplaced)}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.runnable], ids=lambda b: b.where)
def test_every_runnable_python_block_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "block.py"
    script.write_text(block.text)
    runpy.run_path(str(script), run_name="__docs__")
