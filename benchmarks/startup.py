"""Start-up time of the CLI's quick commands against `python -c "import torch"`.

Each command runs in a fresh interpreter `--repeats` times (after one untimed warm-up run, so the file cache is
warm); the median wall-clock seconds are reported, with the heavy packages the command imported. `run --dry-run`
reads the quick preset's data files (set MEDAUGBENCH_DATA_DIR, or run from a clone with ../shared/data/medmnist).
The CLI commands run with the built-in plugins only (MEDAUGBENCH_LOAD_PLUGINS=""), as on a plain install; one more
row lists plugins with every installed third-party plugin loaded, whose hook modules may import torch themselves.

Usage: python benchmarks/startup.py [--repeats 5]
Prints one JSON object: {"python", "cpu_count", "repeats", "seconds": {command: median}, "relative_to_import_torch":
{command: ratio}, "heavy_imports": {command: [packages]}}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "torchvision", "timm", "diffusers", "torch_fidelity", "matplotlib", "ray", "medmnist")
HEAVY += ("pandas", "sklearn", "scipy")
BASELINE = "python -c 'import torch'"
BUILT_INS_ONLY = {"MEDAUGBENCH_LOAD_PLUGINS": ""}
COMMANDS = {
    BASELINE: (None, {}),
    "medaugbench --help": (("--help",), BUILT_INS_ONLY),
    "medaugbench plugins list": (("plugins", "list"), BUILT_INS_ONLY),
    "medaugbench run quick --dry-run": (("run", "quick", "--dry-run"), BUILT_INS_ONLY),
    "medaugbench plugins list (installed third-party plugins too)": (("plugins", "list"), {}),
}
PROBE = """
import json, sys
heavy = json.loads(sys.argv[2])
sys.argv = ["medaugbench", *json.loads(sys.argv[1])]
from benchmark.cli import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write("HEAVY " + json.dumps([name for name in heavy if name in sys.modules]) + "\\n")
"""


def argv(args: tuple[str, ...] | None) -> list[str]:
    """The interpreter command for one CLI call (through the probe, which reports its imports), or the baseline."""
    if args is None:
        return [sys.executable, "-c", "import torch"]
    return [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)]


def timed(command: list[str], env: dict[str, str]) -> tuple[float, list[str]]:
    """Wall-clock seconds of one run (with `env` over this process's environment) and the heavy packages it
    imported."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, **env})
    seconds = time.perf_counter() - started
    lines = [line for line in done.stderr.splitlines() if line.startswith("HEAVY ")]
    return seconds, json.loads(lines[-1][6:]) if lines else []


def measure(repeats: int) -> dict:
    """Median seconds per command over `repeats` runs after one warm-up run."""
    seconds, heavy = {}, {}
    for name, (args, env) in COMMANDS.items():
        command = argv(args)
        timed(command, env)
        runs = [timed(command, env) for _ in range(repeats)]
        seconds[name] = round(statistics.median(s for s, _ in runs), 3)
        heavy[name] = runs[-1][1] if args is not None else ["torch"]
    return {
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "repeats": repeats,
        "seconds": seconds,
        "relative_to_import_torch": {name: round(s / seconds[BASELINE], 2) for name, s in seconds.items()},
        "heavy_imports": heavy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    print(json.dumps(measure(parser.parse_args().repeats), indent=2))


if __name__ == "__main__":
    main()
