"""Start-up stays light: `medaugbench --help` and each command's `--help` import none of the heavy libraries (torch,
timm, diffusers, matplotlib, ray, pandas, scikit-learn); they are imported where a command needs them. Checked in a
fresh interpreter, not timed (benchmarks/startup.py measures the seconds)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "torchvision", "timm", "diffusers", "matplotlib", "ray", "pandas", "sklearn", "scipy", "medmnist")

# each command's --help in turn in one fresh interpreter, reporting the heavy packages loaded after each
PROBE = """
import json, sys
from benchmark.cli import main
heavy, loaded = json.loads(sys.argv[2]), {}
for args in json.loads(sys.argv[1]):
    sys.argv = ["medaugbench", *args]
    try:
        main()
    except SystemExit:
        pass
    loaded[" ".join(args)] = sorted(name for name in heavy if name in sys.modules)
print(json.dumps(loaded))
"""
HELP = [["--help"], *([command, "--help"] for command in ("run", "train", "synth", "quality", "leaderboard"))]
HELP += [["plugins", "--help"], ["datasets", "--help"]]


def test_help_imports_no_heavy_library():
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HELP), json.dumps(HEAVY)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == {" ".join(args): [] for args in HELP}


@pytest.mark.slow
def test_the_public_api_is_lazy_yet_complete():
    """`import benchmark` is light; each exported name is imported from its module on first use."""
    code = (
        "import sys, benchmark; light = 'torch' not in sys.modules; "
        "print(light, all(getattr(benchmark, name) is not None for name in benchmark.__all__))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["True", "True"], done.stderr
