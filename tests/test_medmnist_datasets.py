"""MedMNIST dataset plugins on the real official files, plus a ChestMNIST-layout fixture for multi-label."""

from __future__ import annotations

import pytest
import torch
from medmnist import INFO

from benchmark.data import files as datafiles
from benchmark.data.dataset import DataOptions, load_dataset
from benchmark.errors import MedAugBenchError
from tests.helpers import fake_chestmnist, require_medmnist

# Label counts per split, as documented in shared/data/medmnist/SOURCES.md (counted independently of our loader).
EXPECTED_COUNTS = {
    "pneumoniamnist": {"train": [1214, 3494], "val": [135, 389], "test": [234, 390]},
    "breastmnist": {"train": [147, 399], "val": [21, 57], "test": [42, 114]},
    "retinamnist": {"train": [486, 128, 206, 194, 66], "val": [54, 12, 28, 20, 6], "test": [174, 46, 92, 68, 20]},
}


@pytest.mark.parametrize("flag", sorted(EXPECTED_COUNTS))
def test_real_files_load_with_official_shapes_and_counts(flag):
    require_medmnist(flag)
    data = load_dataset(flag)
    info = INFO[flag]
    assert data.task.channels == info["n_channels"]
    assert data.task.labels == tuple(info["label"][str(i)] for i in range(len(info["label"])))
    for split, counts in EXPECTED_COUNTS[flag].items():
        part = data.split(split)
        assert len(part) == info["n_samples"][split]
        assert part.images.dtype == torch.uint8
        assert part.images.shape == (len(part), info["n_channels"], 28, 28)
        assert part.labels.dtype == torch.int64 and part.labels.shape == (len(part),)
        assert part.class_counts(data.task) == counts


def test_task_kinds_follow_medmnist_info():
    from benchmark.registry import create

    kinds = {
        flag: create("dataset", flag).task.kind
        for flag in ("pneumoniamnist", "dermamnist", "chestmnist", "retinamnist")
    }
    assert kinds == {
        "pneumoniamnist": "binary",
        "dermamnist": "multiclass",
        "chestmnist": "multilabel",
        "retinamnist": "ordinal",
    }
    assert len(create("dataset", "chestmnist").task.labels) == 14


@pytest.mark.parametrize("flag", ["dermamnist", "chestmnist"])
def test_sets_absent_here_load_when_present(flag):
    require_medmnist(flag)  # skips with the reason when the official file is not in the data folder
    data = load_dataset(flag)
    assert len(data.train) == INFO[flag]["n_samples"]["train"]
    if flag == "chestmnist":
        assert data.train.labels.shape == (len(data.train), 14)


def test_image_size_resamples_every_split():
    require_medmnist("retinamnist")
    data = load_dataset("retinamnist", DataOptions(image_size=64))
    assert data.image_size == 64 and data.source_size == 28
    for split in ("train", "val", "test"):
        assert data.split(split).images.shape[1:] == (3, 64, 64)
        assert data.split(split).images.dtype == torch.uint8


def test_low_data_fraction_is_stratified_and_deterministic():
    require_medmnist("pneumoniamnist")
    a = load_dataset("pneumoniamnist", DataOptions(train_fraction=0.1, seed=1))
    b = load_dataset("pneumoniamnist", DataOptions(train_fraction=0.1, seed=1))
    c = load_dataset("pneumoniamnist", DataOptions(train_fraction=0.1, seed=2))
    assert a.train.class_counts(a.task) == [121, 349]  # round(0.1 × 1214), round(0.1 × 3494)
    assert torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.train.images, c.train.images)
    assert len(a.test) == 624  # only the training split is reduced


def test_per_class_cap():
    require_medmnist("retinamnist")
    data = load_dataset("retinamnist", DataOptions(per_class_cap=100))
    assert data.train.class_counts(data.task) == [100, 100, 100, 100, 66]


@pytest.fixture
def chest_fixture(tmp_path, monkeypatch):
    return fake_chestmnist(tmp_path, monkeypatch)


def test_chestmnist_layout_stays_multilabel(chest_fixture):
    data = load_dataset("chestmnist")
    assert data.task.kind == "multilabel" and data.task.num_outputs == 14
    assert data.train.labels.dtype == torch.float32 and data.train.labels.shape == (60, 14)
    assert data.train.class_counts(data.task) == chest_fixture["train_labels"].sum(axis=0).tolist()
    assert torch.equal(data.train.images[:, 0], torch.from_numpy(chest_fixture["train_images"]))


def test_multilabel_low_data_keeps_every_stratum(chest_fixture):
    data = load_dataset("chestmnist", DataOptions(train_fraction=0.2, seed=0))
    full = load_dataset("chestmnist")
    assert 0 < len(data.train) < len(full.train)
    # the all-negative images form their own stratum and are kept
    assert (data.train.labels.sum(dim=1) == 0).any()


def test_64_pixel_files_are_looked_up_under_official_names(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDAUGBENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(MedAugBenchError, match=r"pneumoniamnist_64\.npz not found.*--size 64"):
        load_dataset("pneumoniamnist", DataOptions(size=64))
    with pytest.raises(MedAugBenchError, match="choose --size from 28, 64, 128, 224"):
        load_dataset("pneumoniamnist", DataOptions(size=32))


def test_md5_is_checked_once_per_file(monkeypatch):
    require_medmnist("breastmnist")
    calls = []
    real = datafiles.md5sum
    monkeypatch.setattr(datafiles, "md5sum", lambda path: calls.append(path) or real(path))
    load_dataset("breastmnist")
    load_dataset("breastmnist")
    assert len(calls) == 1


def test_files_in_data_dir_are_used_in_place():
    path = require_medmnist("pneumoniamnist")
    data = load_dataset("pneumoniamnist")
    assert data.provenance["file"] == str(path)
    assert not (datafiles.cache_dir() / "medmnist" / "pneumoniamnist.npz").exists()
