"""`medaugbench datasets …` end to end: listing, preparing (offline and over a local server), grids, bad input."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import time

import numpy as np
import pytest
from PIL import Image

from benchmark.data import files as datafiles
from tests.helpers import one_line_error, require_medmnist


def test_list_shows_required_datasets_with_facts(cli):
    require_medmnist("pneumoniamnist")
    result = cli("datasets", "list")
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 5}
    for name in (
        "pneumoniamnist",
        "dermamnist",
        "chestmnist",
        "breastmnist",
        "retinamnist",
        "bloodmnist",
        "imagefolder",
    ):
        assert name in rows
    assert "binary" in rows["pneumoniamnist"] and "4708/524/624" in rows["pneumoniamnist"]
    assert "px 28" in rows["pneumoniamnist"] and "CC BY 4.0" in rows["pneumoniamnist"]
    assert "multilabel" in rows["chestmnist"] and "14 labels" in rows["chestmnist"]
    assert "CC BY-NC 4.0" in rows["dermamnist"]
    assert "dermamnist: Split by image, not by lesion" in " ".join(result.output.split())


def test_prepare_uses_local_file_in_place(cli):
    path = require_medmnist("pneumoniamnist")
    result = cli("datasets", "prepare", "pneumoniamnist")
    assert result.exit_code == 0, result.output
    assert f"ready: {path}" in result.output.replace("\n", "")
    assert not (datafiles.cache_dir() / "medmnist").exists()


def test_prepare_offline_fails_fast_with_where_to_put_the_file(cli, tmp_path, monkeypatch):
    # port 9 (discard) on loopback refuses connections, as an offline machine does
    monkeypatch.setattr(datafiles, "official_url", lambda flag, size: "http://127.0.0.1:9/dermamnist.npz")
    started = time.monotonic()
    line = one_line_error(cli("datasets", "prepare", "dermamnist", "--data-dir", str(tmp_path)))
    assert time.monotonic() - started < 10
    assert "cannot download dermamnist.npz" in line and "--data-dir" in line and "MEDAUGBENCH_DATA_DIR" in line
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def file_server(tmp_path):
    """Serve a folder over HTTP on loopback, standing in for the official download host."""
    root = tmp_path / "served"
    root.mkdir()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_prepare_downloads_and_verifies(cli, tmp_path, monkeypatch, file_server):
    source = require_medmnist("breastmnist")
    served, url = file_server
    shutil.copy(source, served / "breastmnist.npz")
    monkeypatch.setattr(datafiles, "official_url", lambda flag, size: f"{url}/{flag}.npz")
    target = tmp_path / "data"
    monkeypatch.delenv("MEDAUGBENCH_DATA_DIR")
    monkeypatch.setattr(datafiles, "clone_data_dir", lambda: None)  # else the clone's shared folder has the file
    result = cli("datasets", "prepare", "breastmnist")
    assert result.exit_code == 0, result.output
    downloaded = datafiles.cache_dir() / "medmnist" / "breastmnist.npz"
    assert downloaded.is_file() and datafiles.md5sum(downloaded) == datafiles.expected_md5("breastmnist", 28)
    assert not target.exists()


GRID = """name = "fetch"
datasets = ["breastmnist"]
strategies = ["none"]
backbones = ["simple_cnn"]
seeds = [0]
baseline = "none"

[budget]
classifier_steps = 5
"""


def test_a_first_run_fetches_missing_official_files_itself(cli, tmp_path, monkeypatch, file_server):
    """No `datasets prepare` first: `run` (here its dry run, which checks the files) downloads what is missing, with
    progress, into the cache."""
    source = require_medmnist("breastmnist")
    served, url = file_server
    shutil.copy(source, served / "breastmnist.npz")
    monkeypatch.setattr(datafiles, "official_url", lambda flag, size: f"{url}/{flag}.npz")
    monkeypatch.delenv("MEDAUGBENCH_DATA_DIR")
    monkeypatch.setattr(datafiles, "clone_data_dir", lambda: None)
    (tmp_path / "fetch.toml").write_text(GRID)
    result = cli("run", str(tmp_path / "fetch.toml"), "--dry-run", "-o", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    downloaded = datafiles.cache_dir() / "medmnist" / "breastmnist.npz"
    assert downloaded.is_file() and datafiles.md5sum(downloaded) == datafiles.md5sum(source)


def test_the_clone_s_shared_folder_is_the_default_data_folder(monkeypatch):
    folder = datafiles.clone_data_dir()
    if folder is None:
        pytest.skip("no ../shared/data/medmnist beside this checkout")
    monkeypatch.delenv("MEDAUGBENCH_DATA_DIR")
    assert datafiles.search_dirs(datafiles.user_data_dir(None))[0] == folder


def test_download_with_wrong_md5_leaves_nothing_behind(cli, tmp_path, monkeypatch, file_server):
    served, url = file_server
    (served / "breastmnist.npz").write_bytes(b"not the official file")
    monkeypatch.setattr(datafiles, "official_url", lambda flag, size: f"{url}/{flag}.npz")
    data = tmp_path / "data"
    data.mkdir()
    line = one_line_error(cli("datasets", "prepare", "breastmnist", "--data-dir", str(data)))
    assert "expected 750601b1f35ba3300ea97c75c52ff8f6" in line and "nothing was kept" in line
    assert list(data.iterdir()) == []


def test_show_writes_a_grid_per_class(cli, tmp_path):
    require_medmnist("pneumoniamnist")
    out = tmp_path / "grid.png"
    result = cli("datasets", "show", "pneumoniamnist", "--out", str(out), "--per-class", "4")
    assert result.exit_code == 0, result.output
    assert "normal" in result.output and "1214" in result.output and "Kermany" in result.output
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.height == 2 * (64 + 2) + 2  # one row per class
        assert np.asarray(image.convert("L"))[:, 150:].std() > 10  # real image content, not a blank canvas


def test_unknown_dataset_suggests_the_closest_name(cli):
    line = one_line_error(cli("datasets", "show", "pneumonia_mnist"))
    assert "unknown dataset 'pneumonia_mnist'" in line and "Did you mean 'pneumoniamnist'" in line


def test_missing_data_folder(cli, tmp_path):
    line = one_line_error(cli("datasets", "show", "breastmnist", "--data-dir", str(tmp_path / "nope")))
    assert "does not exist" in line and "--data-dir" in line


def test_truncated_file_fails_md5(cli, tmp_path):
    source = require_medmnist("breastmnist")
    (tmp_path / "breastmnist.npz").write_bytes(source.read_bytes()[:100_000])
    line = one_line_error(cli("datasets", "show", "breastmnist", "--data-dir", str(tmp_path)))
    assert "has MD5" in line and "corrupt, truncated or not the official one" in line


def test_corrupt_npz_with_matching_checksum_is_reported(cli, tmp_path, monkeypatch):
    bad = tmp_path / "breastmnist.npz"
    bad.write_bytes(b"PK\x03\x04 garbage that is not a zip archive")
    monkeypatch.setattr(datafiles, "expected_md5", lambda flag, size: datafiles.md5sum(bad))
    line = one_line_error(cli("datasets", "show", "breastmnist", "--data-dir", str(tmp_path)))
    assert "is not a readable MedMNIST file" in line and "datasets prepare breastmnist" in line


def test_empty_class_folder(cli, tmp_path):
    (tmp_path / "normal").mkdir()
    (tmp_path / "abnormal").mkdir()
    for i in range(3):
        Image.new("L", (20, 20), color=i * 40).save(tmp_path / "abnormal" / f"{i}.png")
    line = one_line_error(cli("datasets", "show", str(tmp_path)))
    assert "normal" in line and "empty" in line.lower()


def test_bad_plugin_option_syntax(cli):
    line = one_line_error(cli("datasets", "show", "imagefolder", "-O", "root"))
    assert "KEY=VALUE" in line
