"""Built-in grid executor: `local` (in-process, or one worker process per visible GPU: `-X workers=N`)."""

from __future__ import annotations

from benchmark import hookimpl
from benchmark.grid.executor import LocalExecutor


@hookimpl
def register_executors(register) -> None:
    register("local", LocalExecutor, "one cell at a time in this process, or one worker per visible GPU (-X workers=N)")
