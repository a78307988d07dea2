"""User-facing errors: one line that names the problem and the fix; the CLI prints them without a traceback."""


class MedAugBenchError(Exception):
    """An error caused by the user's input or environment, with an actionable message."""
