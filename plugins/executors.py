"""Built-in grid executor: `local` (in-process, or one worker process per visible GPU)."""

from __future__ import annotations

from benchmark.grid.executor import LocalExecutor
from benchmark.hookspecs import hookimpl


@hookimpl
def register_executors(register) -> None:
    register("local", LocalExecutor, "one cell at a time in this process, or one worker per visible GPU (--workers N)")
