"""Faults around generators, classifiers, plugins and image input (issue 23): non-finite samples and losses are
caught, damaged checkpoints are one message (or retrained in the cache, saying so), a plugin that fails to import is
named and skipped, and bad image input is one message, never a traceback."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from benchmark import GenerativeModel, ImageSpec, MedAugBenchError, StrategyContext, TaskSpec, create, registry
from benchmark.data.dataset import DataOptions, LoadedDataset, Split, load_dataset
from benchmark.data.files import cache_dir
from benchmark.evaluate.image_sets import load_image_set
from benchmark.generate import loop as gt
from benchmark.generate.checkpoints import DamagedCheckpoint
from benchmark.synthesis.keys import ALL
from benchmark.train.loop import chance_note
from plugins.image_folder import ImageFolderSource, scan_csv
from tests.helpers import install_plugin, make_distribution, one_line_error, require_medmnist

CPU = torch.device("cpu")
TASK = TaskSpec("binary", ("a", "b"), channels=1)


class HalfNaN(GenerativeModel):
    """Samples whose first half of the rows are NaN: what a diverged decoder emits."""

    def make_optimizers(self):
        return {}

    def training_step(self, images, cond, optimizers, generator):
        return {}

    def sample(self, cond, n, generator):
        images = torch.zeros(n, self.spec.channels, self.spec.image_size, self.spec.image_size)
        images[: n // 2] = float("nan")
        return images


class NaNLoss(HalfNaN):
    """A model whose loss is NaN from the first step."""

    def __init__(self, spec: ImageSpec) -> None:
        super().__init__(spec)
        self.weight = torch.nn.Parameter(torch.ones(1))

    def training_step(self, images, cond, optimizers, generator):
        return {"loss": (self.weight * float("nan")).sum().detach()}


def test_non_finite_samples_fail_the_generator_before_they_become_training_data():
    real = Split(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
    strategy = create("strategy", "cgan", quality_extractor=None, class_fidelity=False)
    models = {"all": HalfNaN(ImageSpec(1, 28, 2))}
    with pytest.raises(gt.GeneratorFailure, match=r"generator cgan: 50\.00% of its sampled values .* NaN or infinite"):
        strategy.sample(models, TASK, real, [4, 2], CPU, 0)


@pytest.mark.parametrize(
    "budget", [gt.GeneratorBudget(steps=None, seconds=0.3), gt.GeneratorBudget(steps=7)], ids=["seconds", "steps"]
)
def test_divergence_is_checked_where_any_budget_ends(budget):
    """A budget that ends before the first log point (here: never reached) still has its losses checked."""
    images = torch.zeros(8, 1, 28, 28, dtype=torch.uint8)
    history = gt.fit(NaNLoss(ImageSpec(1, 28)), images, None, budget, 4, CPU, 0, progress=False, log_every=10**9)
    assert history.failure == f"divergence: non-finite loss by step {history.steps}" and history.steps >= 1


def test_a_classifier_that_diverges_stops_with_one_message(cli):
    require_medmnist("breastmnist")
    result = cli("train", "--dataset", "breastmnist", "--lr", "1e30", "--steps", "4", "--eval-every", "4")
    assert "the classifier diverged" in one_line_error(result) and "lower the learning rate" in result.output


@pytest.mark.parametrize(
    ("aucs", "noted"), [([0.5, 0.5, None], True), ([0.41], True), ([0.5, 0.51], False), ([], False)]
)
def test_the_record_notes_a_validation_auc_that_never_left_chance(aucs, noted):
    loop = SimpleNamespace(curves=SimpleNamespace(val_auc=aucs), optim=SimpleNamespace(lr=1e6))
    note = chance_note(loop)
    assert bool(note) == noted
    assert not noted or "never rose above chance" in note["note"]


# -- damaged checkpoints -------------------------------------------------------------------------------------------
GENERATOR_CARD = {
    "generator": "cgan",
    "generator_params": {"base_channels": 4},
    "models": {"all": {"channels": 1, "image_size": 28, "cond_dim": 2}},
    "histories": {"all": {"steps": 0, "seconds": 0.0}},
    "dataset": "breastmnist",
    "labels": ["malignant", "normal, benign"],
    "image_size": 28,
}


def saved_generator(folder: Path) -> Path:
    """A real (untrained) cgan saved the way `synth` saves one."""
    model = create("generator", "cgan", spec=ImageSpec(1, 28, 2), base_channels=4)
    return gt.save(folder, {"all": model}, json.loads(json.dumps(GENERATOR_CARD)))


class _Touch:
    """Unpickling this creates a file: proof that a pickle was (or was not) executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _truncated(folder: Path) -> None:
    weights = folder / gt.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:20])


def _pickled(folder: Path) -> None:
    (folder / gt.WEIGHTS).write_bytes(pickle.dumps(_Touch(folder.parent / "unpickled")))


def _altered(folder: Path) -> None:
    save_file({"all.other": torch.zeros(2)}, folder / gt.WEIGHTS)


def _card(text: str):
    return lambda folder: (folder / gt.CARD).write_text(text)


DAMAGES = {
    "safetensors header cut short": (_truncated, gt.WEIGHTS, "not a readable safetensors file"),
    "a pickle named .safetensors": (_pickled, gt.WEIGHTS, "not a readable safetensors file"),
    "weights altered after synth": (_altered, gt.WEIGHTS, "was altered after it was saved"),
    "card.json not JSON": (_card("{not json"), gt.CARD, "not a readable JSON card"),
    "card.json a list": (_card("[1, 2]"), gt.CARD, "not a JSON object"),
    "card.json without models": (_card(json.dumps({"generator": "cgan"})), gt.CARD, "does not describe"),
    "card.json without histories": (
        _card(json.dumps({key: value for key, value in GENERATOR_CARD.items() if key != "histories"})),
        gt.CARD,
        "lacks histories",
    ),
}


def test_a_saved_card_pins_its_weights_and_loads_back(tmp_path):
    folder = saved_generator(tmp_path / "generator")
    card = json.loads((folder / gt.CARD).read_text())
    assert len(card["weights_sha256"]) == 64
    models, loaded = gt.load_saved(folder, CPU)
    assert set(models) == {"all"} and loaded["weights_sha256"] == card["weights_sha256"]


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_generator_dir_is_one_message_naming_the_file_and_synth(damage, tmp_path):
    spoil, name, problem = DAMAGES[damage]
    folder = saved_generator(tmp_path / "generator")
    spoil(folder)
    with pytest.raises(DamagedCheckpoint) as caught:
        gt.load_saved(folder, CPU)
    message = str(caught.value)
    assert str(folder / name) in message and problem in message and "\n" not in message
    assert f"re-run `medaugbench synth --out {folder}`" in message
    assert not (tmp_path / "unpickled").exists()  # the pickle was refused, never run


def test_quality_with_a_damaged_generator_is_one_line(cli, tmp_path):
    require_medmnist("breastmnist")
    folder = saved_generator(tmp_path / "generator")
    _truncated(folder)
    result = cli("quality", "--dataset", "breastmnist", "--generator", str(folder))
    assert "medaugbench synth" in one_line_error(result)


@pytest.mark.parametrize(
    "damage", ["safetensors header cut short", "a pickle named .safetensors", "card.json not JSON"]
)
def test_a_damaged_cache_entry_is_retrained_saying_so(damage, tmp_path, monkeypatch, capsys):
    require_medmnist("breastmnist")
    data = load_dataset("breastmnist", DataOptions(per_class_cap=8))
    context = StrategyContext(dataset=data, device=CPU, seed=0, work_dir=tmp_path / "cache", progress=False)
    strategy = create(
        "strategy", "cgan", generator_params={"base_channels": 4}, quality_extractor=None, class_fidelity=False
    )
    trained = []

    def train_models(self, context, jobs, plan):
        trained.append(plan)
        model = create("generator", "cgan", spec=ImageSpec(1, 28, 2), base_channels=4)
        return {ALL: model}, json.loads(json.dumps(GENERATOR_CARD))

    monkeypatch.setattr(type(strategy), "train_models", train_models)
    _, card = strategy.fitted(context)
    DAMAGES[damage][0](Path(card["saved_to"]))
    _, again = strategy.fitted(context)
    assert len(trained) == 2 and again["saved_to"] == card["saved_to"]
    err = capsys.readouterr().err
    assert f"Note: the cached generator is damaged: {card['saved_to']}/" in err and "; retraining it" in err
    _, reused = strategy.fitted(context)
    assert len(trained) == 2 and reused["reused_from"] == card["saved_to"]


# -- plugins that fail to import -----------------------------------------------------------------------------------
BROKEN = """
raise RuntimeError("this plugin is broken")
"""
WORKING = """
from benchmark import hookimpl


@hookimpl
def register_strategies(register):
    register("still_here", lambda: None, "a working third-party plugin")
"""


def install_broken_and_working(tmp_path, monkeypatch) -> None:
    install_plugin(tmp_path, monkeypatch, "medaugbench-broken", "medaugbench_broken", BROKEN)
    make_distribution(tmp_path, "medaugbench-working", "medaugbench_working", WORKING)
    monkeypatch.setenv(registry.LOAD_PLUGINS_ENV, "medaugbench-broken,medaugbench-working")
    registry.reset()


def test_a_plugin_that_fails_to_import_is_named_and_skipped(tmp_path, monkeypatch, capsys):
    install_broken_and_working(tmp_path, monkeypatch)
    assert "still_here" in registry.entries("strategy") and "none" in registry.entries("strategy")
    (failed,) = registry.failed_plugins()
    assert (failed.plugin, failed.distribution) == ("medaugbench_broken", "medaugbench-broken 0.1")
    assert failed.error == "RuntimeError: this plugin is broken"
    err = capsys.readouterr().err
    assert "Note: plugin medaugbench_broken (medaugbench-broken 0.1) failed to import" in err
    assert "MEDAUGBENCH_DISABLE_PLUGINS=medaugbench-broken" in err
    with pytest.raises(MedAugBenchError, match="medaugbench_broken .* failed to import: RuntimeError"):
        registry.get_entry("strategy", "from_the_broken_plugin")


def test_plugins_list_shows_a_failed_plugin_and_other_commands_go_on(cli, tmp_path, monkeypatch):
    install_broken_and_working(tmp_path, monkeypatch)
    listed = cli("plugins", "list")
    assert listed.exit_code == 0 and "FAILED to import" in listed.stdout and "medaugbench_broken" in listed.stdout
    assert "still_here" in listed.stdout and "Note: plugin medaugbench_broken" in listed.stderr
    registry.reset()  # a fresh process: every command says it again
    shown = cli("plugins", "show", "strategy", "still_here")
    assert shown.exit_code == 0 and "failed to import" in shown.stderr


def test_disable_plugins_leaves_a_distribution_out(cli, tmp_path, monkeypatch, capsys):
    install_broken_and_working(tmp_path, monkeypatch)
    monkeypatch.setenv(registry.DISABLE_PLUGINS_ENV, "medaugbench_broken")  # any spelling of the name
    registry.reset()
    assert "still_here" in registry.entries("strategy") and registry.failed_plugins() == []
    assert "failed to import" not in capsys.readouterr().err


# -- image input ---------------------------------------------------------------------------------------------------
def small_data(multilabel: bool = False) -> LoadedDataset:
    task = TaskSpec("multilabel", ("x", "y", "z"), channels=1) if multilabel else TASK
    images = torch.zeros(6, 1, 28, 28, dtype=torch.uint8)
    labels = torch.zeros(6, 3, dtype=torch.long) if multilabel else torch.tensor([0, 1] * 3)
    split = Split(images, labels)
    return LoadedDataset("tiny", task, split, split, split, source_size=28, image_size=28)


@pytest.mark.parametrize(
    ("labels", "multilabel"),
    [(np.zeros(7, dtype=np.int64), False), (np.zeros((10, 2), dtype=np.int64), True), (np.zeros(3), False)],
    ids=["10 images, 7 labels", "multi-label rows too narrow", "3 labels"],
)
def test_an_image_set_whose_labels_do_not_fit_is_one_message(labels, multilabel, tmp_path):
    path = tmp_path / "fake.npz"
    np.savez(path, images=np.zeros((10, 28, 28), dtype=np.uint8), labels=labels)
    with pytest.raises(MedAugBenchError, match=r"has 10 images but labels of shape .*one per image"):
        load_image_set(path, small_data(multilabel))


def test_quality_with_10_images_and_7_labels_is_one_line(cli, tmp_path):
    require_medmnist("breastmnist")
    path = tmp_path / "fake.npz"
    np.savez(path, images=np.zeros((10, 28, 28), dtype=np.uint8), labels=np.zeros(7, dtype=np.int64))
    assert "has 10 images but labels" in one_line_error(
        cli("quality", "--dataset", "breastmnist", "--images", str(path))
    )


def test_a_cache_folder_that_is_a_file_is_one_message(cli, tmp_path, monkeypatch):
    require_medmnist("breastmnist")
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("")
    monkeypatch.setenv("MEDAUGBENCH_CACHE_DIR", str(blocker))
    with pytest.raises(MedAugBenchError, match="is a file, not a folder; point MEDAUGBENCH_CACHE_DIR at a folder"):
        cache_dir()
    result = cli("train", "--dataset", "breastmnist", "--steps", "1")
    assert "MEDAUGBENCH_CACHE_DIR" in one_line_error(result)


def image_folder(root: Path, bad: bool = True) -> Path:
    """Two classes of six distinct 28-px PNGs, plus (with `bad`) a text file named .png in class a."""
    for index in range(12):
        path = root / "ab"[index % 2] / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((28, 28), index * 20, dtype=np.uint8)).save(path)
    if bad:
        (root / "a" / "broken.png").write_text("not a PNG")
    return root


def test_skip_bad_is_a_dataset_option_for_grids_and_is_checked(tmp_path):
    root = image_folder(tmp_path / "xrays")
    with pytest.raises(MedAugBenchError, match=r"--skip-bad \(in a grid: skip_bad = true in the dataset's params\)"):
        ImageFolderSource(root=root).load(DataOptions())
    loaded = ImageFolderSource(root=root, skip_bad=True).load(DataOptions())
    assert loaded.provenance["files"] == 12 and len(loaded.provenance["skipped"]) == 1
    with pytest.raises(MedAugBenchError, match="skip_bad must be true or false, got 'yes'"):
        ImageFolderSource(root=root, skip_bad="yes")


def test_train_takes_skip_bad(cli, tmp_path):
    root = image_folder(tmp_path / "xrays")
    assert "--skip-bad" in one_line_error(cli("train", "--dataset", str(root), "--steps", "1"))
    result = cli("train", "--dataset", str(root), "--steps", "2", "--eval-every", "2", "--skip-bad")
    assert result.exit_code == 0, result.output


def test_train_passes_skip_bad_only_to_datasets_that_read_files():
    from benchmark.cli.train import takes_skip_bad

    assert takes_skip_bad("imagefolder") and not takes_skip_bad("breastmnist")


def test_an_image_set_folder_takes_skip_bad(tmp_path):
    root = image_folder(tmp_path / "fakes")
    with pytest.raises(MedAugBenchError, match="1 of 13 files could not be read"):
        load_image_set(root, small_data())
    loaded = load_image_set(root, small_data(), skip_bad=True)
    assert len(loaded) == 12 and sorted(loaded.labels.tolist()) == [0] * 6 + [1] * 6


def test_a_latin1_csv_is_one_message(tmp_path):
    image_folder(tmp_path / "images", bad=False)
    csv = tmp_path / "labels.csv"
    csv.write_bytes("path,label\nimages/a/0.png,b\u00e9nin\n".encode("latin-1"))
    with pytest.raises(MedAugBenchError, match=r"is not UTF-8 text \(byte 0xe9 .*save it as UTF-8"):
        scan_csv(csv)
