"""Test helpers shared by the test modules (fixtures live in conftest.py): where the real data is, skipping
when an official file is missing, and a fake ChestMNIST file."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("MEDAUGBENCH_DATA_DIR") or REPO.parent / "shared" / "data" / "medmnist").resolve()


def require_medmnist(flag: str, size: int = 28) -> Path:
    """Path of an official file in the data folder, or skip the test saying which file is missing and where."""
    name = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    path = DATA_DIR / name
    if not path.is_file():
        pytest.skip(f"{name} is not in {DATA_DIR} (set MEDAUGBENCH_DATA_DIR to a folder holding it)")
    return path


def fake_chestmnist(folder: Path, monkeypatch, sizes=(60, 20, 20), images=None, positive_rate: float = 0.2) -> dict:
    """Write `chestmnist.npz` in ChestMNIST's exact layout (uint8 N×28×28 images, N×14 multi-hot labels), make it
    pass as the official file, and point the data folder at it. Row 0 of each split is positive for every label
    and rows 1-4 are all-negative, so every label has both classes (AUC is defined) and no-finding images exist.
    `images` (a dict split → array) replaces the random images with real ones."""
    import numpy as np

    from benchmark.data import files as datafiles

    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes):
        arrays[f"{split}_images"] = (
            images[split][:n] if images is not None else rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        )
        labels = (rng.random((n, 14)) < positive_rate).astype(np.uint8)
        labels[0], labels[1:5] = 1, 0
        arrays[f"{split}_labels"] = labels
    path = folder / "chestmnist.npz"
    np.savez_compressed(path, **arrays)
    md5 = datafiles.md5sum(path)
    real_md5 = datafiles.expected_md5
    monkeypatch.setattr(
        datafiles, "expected_md5", lambda flag, size: md5 if flag == "chestmnist" else real_md5(flag, size)
    )
    monkeypatch.setenv("MEDAUGBENCH_DATA_DIR", str(folder))
    return arrays


def make_distribution(root: Path, dist: str, module: str, source: str, version: str = "0.1") -> None:
    """A real installed distribution on sys.path: a module plus `.dist-info` with an entry point in group
    medaugbench."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[medaugbench]\n{module} = {module}\n")


def install_plugin(root: Path, monkeypatch: pytest.MonkeyPatch, dist: str, module: str, source: str) -> None:
    """`make_distribution` on sys.path, allowed past the tests' block on installed third-party plugins."""
    from benchmark import registry

    make_distribution(root, dist, module, source)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv(registry.LOAD_PLUGINS_ENV, dist)


def one_line_error(result) -> str:
    """The CLI must fail with exit code 1 and end on a single 'Error: …' line, never a traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    return errors[0]


def failing_strategy_plugin():
    """A third-party strategy that raises while preparing, registered like an installed plugin (as `boom`)."""
    from benchmark.hookspecs import hookimpl
    from benchmark.train.strategy import Strategy

    class Boom(Strategy):
        name = "boom"

        def synthesize(self, context):
            raise RuntimeError("boom plugin broke")

    class Plugin:
        @hookimpl
        def register_strategies(self, register):
            register("boom", Boom, "always fails")

    return Plugin()
