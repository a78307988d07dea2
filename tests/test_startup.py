"""Start-up stays light: `medaugbench --help`, each command's `--help`, `plugins list` and `run --dry-run` import
none of the heavy libraries (torch, timm, diffusers, matplotlib, ray, pandas, scikit-learn, ...); they are imported
where a command needs them. Checked in a fresh interpreter, not timed (benchmarks/startup.py measures the seconds)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import require_medmnist

HEAVY = (
    "torch",
    "torchvision",
    "timm",
    "diffusers",
    "torch_fidelity",
    "matplotlib",
    "ray",
    "pandas",
    "sklearn",
    "scipy",
)
HEAVY += ("medmnist",)

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


def heavy_imports(commands: list[list[str]]) -> dict[str, list[str]]:
    """The heavy packages loaded after each command, run in turn in one fresh interpreter."""
    return probed(commands)[0]


def probed(commands: list[list[str]]) -> tuple[dict[str, list[str]], str]:
    """`heavy_imports`, and everything the commands printed."""
    probe = [sys.executable, "-c", PROBE, json.dumps(commands), json.dumps(HEAVY)]
    done = subprocess.run(probe, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout + done.stderr


def test_help_imports_no_heavy_library():
    assert heavy_imports(HELP) == {" ".join(args): [] for args in HELP}


def test_plugins_list_imports_no_heavy_library():
    """Built-in plugins register lazy references (plugins/builtin.py): listing them imports none of their modules."""
    assert heavy_imports([["plugins", "list"]]) == {"plugins list": []}


def test_a_dry_run_imports_no_heavy_library(tmp_path):
    """`run quick --dry-run` checks the grid (names, parameters by their declarations, data files, budgets) and lists
    its cells without importing torch; a wrong strategy parameter is still refused with `create`'s message."""
    for flag in ("breastmnist", "pneumoniamnist"):
        require_medmnist(flag)
    command = ["run", "quick", "--dry-run", "-o", str(tmp_path / "runs")]
    assert heavy_imports([command]) == {" ".join(command): []}


@pytest.mark.slow
def test_the_public_api_is_lazy_yet_complete():
    """`import benchmark` is light; each exported name is imported from its module on first use."""
    code = (
        "import sys, benchmark; light = 'torch' not in sys.modules; "
        "print(light, all(getattr(benchmark, name) is not None for name in benchmark.__all__))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["True", "True"], done.stderr


WRONG_PARAMETER = """
name = "wrong"
datasets = ["breastmnist"]
strategies = ["none", "geometric"]
backbones = ["simple_cnn"]
seeds = [0]

[budget]
classifier_steps = 5

[strategy_params.geometric]
nosuchparam = 3
"""


def test_a_dry_run_refuses_a_wrong_strategy_parameter_without_torch(tmp_path):
    require_medmnist("breastmnist")
    (tmp_path / "wrong.toml").write_text(WRONG_PARAMETER)
    command = ["run", str(tmp_path / "wrong.toml"), "--dry-run", "-o", str(tmp_path / "runs")]
    loaded, output = probed([command])
    assert loaded == {" ".join(command): []}
    message = (
        "strategy geometric: strategy 'geometric' does not take 'nosuchparam'; it accepts: modality, flip_p, degrees"
    )
    assert message in " ".join(output.split())
