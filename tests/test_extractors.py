"""Feature extractors: Inception weights load safely from every place they are looked for, and fail fast and clearly
offline; the domain network trains once through the training loop on exactly the images it is given (by default
the dataset's full training split, from any source), is cached by their digest, and is deterministic."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
from PIL import Image

from benchmark.data.dataset import DataOptions, LoadedDataset, dataset_source, load_dataset
from benchmark.data.files import file_digest
from benchmark.errors import MedAugBenchError
from benchmark.evaluate.features import make_extractor, ship_weights
from benchmark.registry import create, entries, resolved
from benchmark.train import loop as training
from plugins import extractors
from tests.helpers import DATA_DIR, REPO, require_medmnist

SHARED_WEIGHTS = REPO.parent / "shared" / "weights"


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> dict[str, Path]:
    """torch-fidelity's InceptionV3 with random init (its constructor always loads weights: skip that), saved twice."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tf_inception, "load_state_dict_from_url", lambda *args, **kwargs: {})
        mp.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        net = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    folder = tmp_path_factory.mktemp("inception")
    torch.save(state, folder / "random.pth")
    safetensors.torch.save_file(state, folder / "random.safetensors")
    return {"state": state, "pth": folder / "random.pth", "safetensors": folder / "random.safetensors"}


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache, no env var, and a download URL nothing listens on."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.delenv(extractors.INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(extractors, "WEIGHTS_URL", f"http://127.0.0.1:9/{extractors.WEIGHTS_NAMES[0]}")
    return tmp_path / "hub" / "checkpoints" / extractors.WEIGHTS_NAMES[0]


def gray_images(n: int, seed: int = 0, size: int = 28) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_hook_register_extractors() -> None:
    found = entries("extractor")
    assert (
        resolved(found["inception"].factory) is extractors.InceptionExtractor
        and resolved(found["domain"].factory) is extractors.DomainExtractor
    )
    assert found["inception"].plugin == found["domain"].plugin == "plugins.builtin" and found["domain"].description


@pytest.mark.parametrize("suffix", ["pth", "safetensors"])
@pytest.mark.slow
def test_inception_loads_local_weights_and_matches_torch_fidelity(random_weights, suffix: str) -> None:
    extractor = create("extractor", "inception", weights=random_weights[suffix])
    loaded = extractor.net.state_dict()
    assert loaded.keys() == random_weights["state"].keys()
    assert all(torch.equal(loaded[k], v) for k, v in random_weights["state"].items())
    images = gray_images(4)
    started = time.perf_counter()
    features = extractor(images)
    print(f"inception forward, 4 images at 28 px: {time.perf_counter() - started:.2f} s")
    assert features.shape == (4, extractor.num_features) == (4, 2048)
    assert features.dtype == torch.float32 and torch.isfinite(features).all()
    reference = tf_inception.FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(random_weights["pth"])
    )
    assert torch.equal(features, reference(images.repeat(1, 3, 1, 1))[0])  # grayscale → RGB replication, same resize
    described = extractor.describe()
    assert described["weights"] == str(random_weights[suffix]) and described["official_weights"] is False
    assert (
        described["resize"] == "299 bilinear (torch-fidelity, TF1.x-compatible)"
        and len(described["weights_sha256"]) == 64
    )


def test_inception_weights_from_env_var_and_hub_cache(random_weights, offline_hub, monkeypatch) -> None:
    monkeypatch.setenv(extractors.INCEPTION_WEIGHTS_ENV, str(random_weights["pth"]))
    assert extractors.find_inception_weights() == random_weights["pth"]
    monkeypatch.delenv(extractors.INCEPTION_WEIGHTS_ENV)
    pytorch_fid_name = offline_hub.with_name("pt_inception-2015-12-05-6726825d.pth")
    pytorch_fid_name.parent.mkdir(parents=True)
    pytorch_fid_name.symlink_to(random_weights["pth"])
    assert extractors.find_inception_weights() == pytorch_fid_name
    offline_hub.symlink_to(random_weights["pth"])
    assert extractors.find_inception_weights() == offline_hub == extractors.hub_weights_path()


def test_inception_offline_without_weights_fails_fast_naming_where_to_put_them(offline_hub) -> None:
    started = time.perf_counter()
    with pytest.raises(MedAugBenchError) as error:
        create("extractor", "inception")
    assert time.perf_counter() - started < 5
    message = str(error.value)
    assert str(offline_hub) in message and extractors.INCEPTION_WEIGHTS_ENV in message and "weights=" in message
    assert extractors.WEIGHTS_URL in message and "\n" not in message
    assert not offline_hub.parent.exists() or not any(offline_hub.parent.iterdir())


def test_inception_missing_weights_file_is_an_error(tmp_path, monkeypatch) -> None:
    with pytest.raises(MedAugBenchError, match="not found"):
        create("extractor", "inception", weights=tmp_path / "nope.pth")
    monkeypatch.setenv(extractors.INCEPTION_WEIGHTS_ENV, str(tmp_path / "nope.pth"))
    with pytest.raises(MedAugBenchError, match=extractors.INCEPTION_WEIGHTS_ENV):
        create("extractor", "inception")


class Payload:
    """A pickled object that is not a tensor: `weights_only=True` must refuse it."""


@pytest.mark.parametrize(
    "name, write",
    [
        ("wrong.pth", lambda path: torch.save({"conv.weight": torch.zeros(3)}, path)),
        ("wrong.safetensors", lambda path: safetensors.torch.save_file({"conv.weight": torch.zeros(3)}, path)),
        ("corrupt.pth", lambda path: path.write_bytes(b"not a checkpoint")),
        ("corrupt.safetensors", lambda path: path.write_bytes(b"not a checkpoint")),
        ("pickled.pth", lambda path: torch.save({"payload": Payload()}, path)),
    ],
)
def test_inception_bad_weights_file_is_an_error_naming_it(tmp_path, name: str, write) -> None:
    path = tmp_path / name
    write(path)
    with pytest.raises(MedAugBenchError) as error:
        create("extractor", "inception", weights=path)
    assert str(path) in str(error.value)


def serve(folder: Path):
    """A local HTTP server for `folder`, in a thread; returns (base URL, server)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def test_inception_downloads_into_the_hub_cache_and_checks_the_hash(random_weights, offline_hub, monkeypatch) -> None:
    base, server = serve(random_weights["pth"].parent)
    try:
        monkeypatch.setattr(extractors, "WEIGHTS_URL", f"{base}/random.pth")
        with pytest.raises(MedAugBenchError, match="SHA-256"):
            extractors.find_inception_weights()
        assert not offline_hub.exists() and not list(offline_hub.parent.glob("*.part"))
        monkeypatch.setattr(extractors, "WEIGHTS_SHA256_PREFIX", extractors._sha256(random_weights["pth"])[:8])
        assert extractors.find_inception_weights() == offline_hub
    finally:
        server.shutdown()
    assert offline_hub.read_bytes() == random_weights["pth"].read_bytes()


class RGBImages(torch.utils.data.Dataset):
    """uint8 grayscale images as torch-fidelity takes them: one 3×H×W uint8 tensor per item."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images.repeat(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def real_inception_weights() -> Path | None:
    candidates = [os.environ.get(extractors.INCEPTION_WEIGHTS_ENV)] + [
        SHARED_WEIGHTS / name for name in extractors.WEIGHTS_NAMES
    ]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # torch-fidelity's loader asks for 4 workers
def test_inception_fid_matches_torch_fidelity_with_the_real_weights() -> None:
    weights = real_inception_weights()
    if weights is None:
        pytest.skip(
            f"no real Inception weights: set {extractors.INCEPTION_WEIGHTS_ENV} "
            f"or put {extractors.WEIGHTS_NAMES[0]} in {SHARED_WEIGHTS}"
        )
    require_medmnist("breastmnist")
    import torch_fidelity
    from torchmetrics.image.fid import FrechetInceptionDistance

    data = load_dataset("breastmnist", DataOptions())
    real, fake = data.train.images[:24], data.test.images[:24]
    fid = FrechetInceptionDistance(feature=create("extractor", "inception", weights=weights))
    fid.update(real, real=True)
    fid.update(fake, real=False)
    ours = float(fid.compute())
    reference = torch_fidelity.calculate_metrics(
        input1=RGBImages(real),
        input2=RGBImages(fake),
        fid=True,
        cuda=False,
        cache=False,
        verbose=False,
        feature_extractor_weights_path=str(weights),
        batch_size=8,
    )["frechet_inception_distance"]
    assert ours == pytest.approx(reference, rel=1e-2)


@pytest.fixture(scope="module")
def breast_domain(tmp_path_factory):
    """A small domain network made for real BreastMNIST the way runs make it (`make_extractor`), trained into a cache
    of its own; returns (extractor, cache root, dataset)."""
    require_medmnist("breastmnist")
    root = tmp_path_factory.mktemp("domain-cache")
    data = load_dataset("breastmnist", DataOptions())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDAUGBENCH_CACHE_DIR", str(root))
        started = time.perf_counter()
        extractor = make_extractor("domain", data, steps=40)
        print(f"domain extractor, 40 steps on BreastMNIST: {time.perf_counter() - started:.1f} s")
    return extractor, root, data


@pytest.mark.slow
def test_domain_features_and_card(breast_domain) -> None:
    extractor, root, data = breast_domain
    test = data.test
    features = extractor(test.images)
    assert features.shape == (len(test), extractor.num_features) == (len(test), 256)
    assert features.dtype == torch.float32 and torch.isfinite(features).all()
    card = json.loads((extractor.weights.parent / "card.json").read_text())
    assert extractor.weights.parent.parent == root / "extractors" and extractor.weights.parent.name.startswith(
        "domain-breastmnist-28px-"
    )
    recipe = card["recipe"]
    assert (recipe["strategy"], recipe["backbone"], recipe["budget"], recipe["batch_size"], recipe["seed"]) == (
        "geometric",
        "simple_cnn",
        {"steps": 40, "seconds": None, "flops": None},
        128,
        0,
    )
    trained_on = card["trained_on"]
    assert trained_on["images"] == len(data.train) == 546 and trained_on["data_digest"] == data.train.digest()
    assert trained_on["fit"] + trained_on["held_out"] == 546
    assert trained_on["held_out"] == round(0.2 * 147) + round(0.2 * 399)  # stratified: 20 % of each class
    described = extractor.describe()
    assert described["name"] == "domain" and described["recipe"] == recipe and described["trained_on"] == trained_on
    assert described["weights_sha256"] == file_digest(extractor.weights.parent / "model.safetensors", "sha256")
    assert 0.0 <= described["holdout_auc"] <= 1.0 and described["selected_by"] == "held-out auc"

    # the classes are separated more than by chance: class-mean distance with true labels beats shuffled labels
    def class_mean_distance(labels: torch.Tensor) -> float:
        return float((features[labels == 0].mean(0) - features[labels == 1].mean(0)).norm())

    shuffled = [
        class_mean_distance(test.labels[torch.randperm(len(test), generator=torch.Generator().manual_seed(s))])
        for s in range(20)
    ]
    assert class_mean_distance(test.labels) > max(shuffled)


@pytest.mark.slow
def test_domain_second_construction_loads_from_cache(breast_domain, monkeypatch) -> None:
    extractor, root, data = breast_domain
    monkeypatch.setenv("MEDAUGBENCH_CACHE_DIR", str(root))
    monkeypatch.setattr(
        training, "train_model", lambda *args, **kwargs: pytest.fail("trained instead of loading the cache")
    )
    again = create("extractor", "domain", images=data.train, task=data.task, dataset="breastmnist", steps=40)
    assert torch.equal(again(data.val.images), extractor(data.val.images))


@pytest.mark.slow
def test_domain_training_is_deterministic(breast_domain) -> None:
    extractor, root, data = breast_domain  # the test's own (empty) cache dir: trains again from scratch
    fresh = extractors.DomainExtractor(data.train, data.task, dataset="breastmnist", steps=40)
    assert fresh.weights.parent.parent.parent != root and fresh.sha256 == extractor.sha256
    assert torch.equal(fresh(data.val.images), extractor(data.val.images))


@pytest.mark.slow
def test_domain_rejects_other_sizes_and_retrains_damaged_or_stale_caches(
    breast_domain, tmp_path, monkeypatch, capsys
) -> None:
    extractor, root, data = breast_domain
    with pytest.raises(MedAugBenchError, match="trained on 28 px"):
        extractor(gray_images(2, size=64))
    with pytest.raises(MedAugBenchError, match="uint8"):
        extractor(gray_images(2).float())
    monkeypatch.setenv("MEDAUGBENCH_CACHE_DIR", str(tmp_path))
    original = root / "extractors" / extractor.weights.parent.name
    copy = tmp_path / "extractors" / original.name
    shutil.copytree(original, copy)
    retrained = []  # "retraining" restores the original entry, so the result can be compared

    def restore(self, *args):
        retrained.append(args)
        shutil.copytree(original, copy, dirs_exist_ok=True)

    monkeypatch.setattr(extractors.DomainExtractor, "_train_and_save", restore)
    card = json.loads((copy / "card.json").read_text())
    spoil = {
        "different recipe": lambda: (copy / "card.json").write_text(
            json.dumps({**card, "recipe": {**card["recipe"], "batch_size": 64}})
        ),
        "not a readable safetensors file": lambda: (copy / "model.safetensors").write_bytes(b"damaged"),
        "was altered": lambda: safetensors.torch.save_file({"x": torch.zeros(1)}, copy / "model.safetensors"),
        "not a readable JSON card": lambda: (copy / "card.json").write_text("{"),
    }
    for problem, damage in spoil.items():
        damage()
        again = extractors.DomainExtractor(data.train, data.task, dataset="breastmnist", steps=40)
        err = capsys.readouterr().err
        assert f"Note: the domain extractor cache is damaged: {copy}" in err and problem in err, err
        assert "retraining it" in err and again.sha256 == extractor.sha256
    assert len(retrained) == len(spoil)


def train_domain(data: LoadedDataset, cache: Path, threads: int, monkeypatch) -> extractors.DomainExtractor:
    """A 6-step domain network trained from scratch into `cache` while the caller runs with `threads` threads."""
    monkeypatch.setenv("MEDAUGBENCH_CACHE_DIR", str(cache))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return extractors.DomainExtractor(data.train, data.task, dataset="breastmnist", steps=6)
    finally:
        assert torch.get_num_threads() == threads  # the caller's setting is restored after training
        torch.set_num_threads(before)


@pytest.mark.slow
def test_domain_weights_are_bit_identical_whatever_the_callers_thread_count(tmp_path, monkeypatch) -> None:
    require_medmnist("breastmnist")
    data = load_dataset("breastmnist", DataOptions())
    one = train_domain(data, tmp_path / "one", 1, monkeypatch)
    two = train_domain(data, tmp_path / "two", 2, monkeypatch)
    assert one.weights != two.weights and one.sha256 == two.sha256
    assert not torch.are_deterministic_algorithms_enabled()  # restored too
    card = one.card
    assert card["recipe"]["device"] == "cpu" and "1 thread" in card["reproducibility"]


@pytest.mark.slow
def test_domain_cache_key_includes_the_code_that_trains_it(breast_domain, monkeypatch) -> None:
    extractor, root, data = breast_domain
    code = extractors.domain_code()
    assert code["distribution"] == "medaugbench" and extractor.card["code"] == code
    assert extractor.describe()["code"] == code
    monkeypatch.setenv("MEDAUGBENCH_CACHE_DIR", str(root))
    monkeypatch.setattr(extractors, "domain_code", lambda: code | {"code_digest": "edited"})
    monkeypatch.setattr(training, "train_model", lambda *args, **kwargs: pytest.fail("trained"))
    with pytest.raises(pytest.fail.Exception, match="trained"):  # edited code does not reuse the cached network
        extractors.DomainExtractor(data.train, data.task, dataset="breastmnist", steps=40)


@pytest.mark.slow
def test_shipped_domain_weights_carry_their_digest_and_load_without_training(breast_domain, tmp_path, monkeypatch):
    extractor, root, data = breast_domain
    shipped = ship_weights(extractor.describe(), tmp_path / "extractors")
    assert shipped.name == f"breastmnist-domain-{extractor.sha256[:12]}.safetensors"
    assert file_digest(shipped, "sha256") == extractor.sha256
    card = json.loads(shipped.with_suffix(".json").read_text())
    assert card["weights_sha256"] == extractor.sha256 and card["card"] == extractor.card
    monkeypatch.setattr(training, "train_model", lambda *args, **kwargs: pytest.fail("trained instead of loading"))
    loaded = make_extractor("domain", data, weights=str(shipped))
    assert loaded.sha256 == extractor.sha256 and loaded.describe()["weights"] == str(shipped)
    assert torch.equal(loaded(data.val.images), extractor(data.val.images))
    assert ship_weights(loaded.describe(), tmp_path / "again").read_bytes() == shipped.read_bytes()
    shipped.write_bytes(shipped.read_bytes()[:-4] + b"0000")
    with pytest.raises(MedAugBenchError, match="SHA-256"):
        make_extractor("domain", data, weights=str(shipped))


def rows(images: torch.Tensor) -> list[bytes]:
    """Each image's bytes, to compare image sets without caring about order."""
    return [image.numpy().tobytes() for image in images]


def test_domain_learns_and_selects_only_on_the_images_it_is_given(monkeypatch) -> None:
    """Fit and held-out parts are disjoint and together exactly the given images: nothing else (no validation
    split) trains it or picks its checkpoint; other images give another cache entry."""
    require_medmnist("breastmnist")
    data = load_dataset("breastmnist", DataOptions(per_class_cap=20))
    seen = []
    real_train_model = training.train_model

    def spy(config, progress, data):
        seen.append(data)
        return real_train_model(config, progress, data=data)

    monkeypatch.setattr(training, "train_model", spy)
    extractor = extractors.DomainExtractor(data.train, data.task, steps=3)
    (used,) = seen
    assert sorted(rows(used.train.images) + rows(used.val.images)) == sorted(rows(data.train.images))
    assert not set(rows(used.train.images)) & set(rows(used.val.images))
    assert torch.equal(used.test.images, used.val.images)
    trained_on = extractor.describe()["trained_on"]
    assert trained_on == {"images": 40, "data_digest": data.train.digest(), "fit": 32, "held_out": 8}
    other = extractors.DomainExtractor(data.train.subset(torch.arange(30)), data.task, steps=3)
    assert other.weights.parent != extractor.weights.parent and len(seen) == 2


def test_full_train_is_the_split_before_the_low_data_subset() -> None:
    require_medmnist("breastmnist")
    whole = load_dataset("breastmnist", DataOptions())
    cell = load_dataset("breastmnist", DataOptions(per_class_cap=20, image_size=32))
    assert whole.full_train is whole.train and len(cell.train) == 40
    assert cell.full_train.images.shape == (546, 1, 32, 32) and torch.equal(cell.full_train.labels, whole.train.labels)
    assert set(rows(cell.train.images)) <= set(rows(cell.full_train.images))


def test_reported_extractor_is_trained_on_the_full_training_split_of_a_low_data_cell() -> None:
    """One extractor per dataset and size: every cell of BreastMNIST, whatever its subset, gets the same network."""
    require_medmnist("breastmnist")
    cell = load_dataset("breastmnist", DataOptions(per_class_cap=20))
    other_cell = load_dataset("breastmnist", DataOptions(train_fraction=0.5, seed=3))
    first, second = make_extractor("domain", cell, steps=3), make_extractor("domain", other_cell, steps=3)
    assert first.describe()["trained_on"]["images"] == len(cell.full_train) == 546
    assert first.weights.parent == second.weights.parent and first.sha256 == second.sha256


def test_domain_extractor_from_an_explicit_data_dir_without_the_env_variable(monkeypatch) -> None:
    require_medmnist("breastmnist")
    monkeypatch.delenv("MEDAUGBENCH_DATA_DIR")
    data = load_dataset("breastmnist", DataOptions(data_dir=DATA_DIR, per_class_cap=20))
    assert make_extractor("domain", data, steps=3)(data.test.images[:4]).shape == (4, 256)


def write_image_folder(root: Path, per_class: dict[str, int], size: int = 28) -> None:
    """A folder dataset of the user's own images: one sub-folder per class of seeded random grayscale PNGs."""
    rng = np.random.default_rng(0)
    for label, count in per_class.items():
        (root / label).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8), "L").save(root / label / f"{i}.png")


def load_image_folder(root: Path) -> LoadedDataset:
    """The folder loaded as the CLI and grids load a path (→ the `imagefolder` plugin)."""
    plugin, params = dataset_source(str(root), {})
    return load_dataset(plugin, DataOptions(), **params)


def test_domain_extractor_for_an_imagefolder_dataset(tmp_path) -> None:
    write_image_folder(tmp_path / "images", {"cat": 12, "dog": 12})
    data = load_image_folder(tmp_path / "images")
    assert data.name == "imagefolder"
    extractor = make_extractor("domain", data, steps=3)
    assert extractor(data.test.images).shape == (len(data.test), 256)
    assert extractor.describe()["trained_on"]["images"] == len(data.full_train)
