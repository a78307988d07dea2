"""Console printing shared by the commands: the console, a table from rows, and how a metric is shown."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table


def console() -> Console:
    """A console for the current stdout; piped output is not cut to 80 columns."""
    return Console(width=None if sys.stdout.isatty() else 200)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[str]], title: str | None = None) -> None:
    """One rich table with these column headers and rows of text; on a narrow terminal cells wrap (and long values
    fold onto the next line) rather than being cut with an ellipsis, so no p-value or CI loses digits."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console().print(table)


def metric(value: object) -> str:
    """A metric to four decimals, or n/a when it is undefined (e.g. AUC with one class present)."""
    return "n/a" if value is None else f"{value:.4f}"
