"""User-facing errors: one line that names the problem and the fix; the CLI prints them without a traceback. Notes
the user should see that do not stop the command (`notice`) go to stderr as one 'Note: …' line."""

import sys


class MedAugBenchError(Exception):
    """An error caused by the user's input or environment, with an actionable message."""


def notice(message: str) -> None:
    """Tell the user what the harness did on its own (e.g. retrained a damaged cache entry): one line on stderr."""
    print(f"Note: {message}", file=sys.stderr)
