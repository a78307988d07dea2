"""A results folder ships the feature-extractor weights its quality records used (safetensors + SHA-256 + card), so
its FIDs can be recomputed elsewhere; and the published `results/quality-check` FID is recomputed from its files."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from benchmark.cli.publish import ship_extractors
from benchmark.data.dataset import DataOptions, load_dataset
from benchmark.data.files import file_digest
from benchmark.evaluate.features import make_extractor
from benchmark.grid.store import load_records, record_path
from benchmark.registry import create
from benchmark.train.record import QualityReport
from benchmark.train.strategy import StrategyContext
from tests.fake_results import make_fake_results
from tests.helpers import REPO, require_medmnist

PUBLISHED = REPO / "results" / "quality-check"


def name_extractor(results_dir, cell_id: str, described: dict) -> None:
    """Make a record's quality report name `described` as its extractor."""
    path = record_path(results_dir, cell_id)
    record = json.loads(path.read_text())
    record["result"]["strategy"]["quality"]["extractor"] = described
    path.write_text(json.dumps(record))


@pytest.mark.slow
def test_publishing_ships_the_extractor_weights_the_records_used(tmp_path, cli):
    require_medmnist("breastmnist")
    data = load_dataset("breastmnist", DataOptions(per_class_cap=20))
    extractor = make_extractor("domain", data, steps=3)
    records = make_fake_results(tmp_path / "results", datasets=("breastmnist",), strategies=("none", "cgan"))
    generative = [r.cell_id for r in records if r.cell["strategy"] == "cgan"]
    for cell_id in generative:
        name_extractor(tmp_path / "results", cell_id, extractor.describe())

    result = cli("leaderboard", str(tmp_path / "results"))
    assert result.exit_code == 0, result.output
    (shipped,) = (tmp_path / "results" / "extractors").glob("*.safetensors")
    assert shipped.name == f"breastmnist-domain-{extractor.sha256[:12]}.safetensors"
    assert file_digest(shipped, "sha256") == extractor.sha256
    card = json.loads(shipped.with_suffix(".json").read_text())
    assert card["weights_sha256"] == extractor.sha256 and card["card"]["trained_on"]["images"] == 546
    loaded = make_extractor("domain", data, weights=str(shipped))
    assert torch.equal(loaded(data.val.images), extractor(data.val.images))

    # published again on a machine without the cache: the shipped copy stays; weights found nowhere are listed
    shutil.rmtree(extractor.weights.parent)
    name_extractor(tmp_path / "results", generative[0], extractor.describe() | {"weights_sha256": "f" * 64})
    assert ship_extractors(tmp_path / "results") == [shipped]
    result = cli("leaderboard", str(tmp_path / "results"))
    assert "not shipped" in result.output and "domain ffffffffffff" in " ".join(result.output.split())


def test_the_published_fid_is_recomputed_from_the_shipped_files():
    """results/quality-check: one BreastMNIST VAE cell. Its synthetic images are drawn again from the shipped
    generator and scored with the shipped domain extractor (nothing trained): the published FID comes back."""
    require_medmnist("breastmnist")
    (record,) = [r for r in load_records(PUBLISHED) if r.ok and r.result.strategy.quality is not None]
    run, published = record.result, record.result.strategy.quality
    (weights,) = (PUBLISHED / "extractors").glob("*.safetensors")
    assert file_digest(weights, "sha256") == published.extractor["weights_sha256"]
    config = run.config
    assert config["train_fraction"] == 1.0 and config.get("per_class_cap") is None
    data = load_dataset(config["dataset"], DataOptions(size=config["size"], image_size=config["image_size"]))
    params = run.strategy.params | {
        "generator_dir": str(PUBLISHED / "generator"),
        "quality_params": {"weights": str(weights)},
        "class_fidelity": False,  # this test recomputes the quality report only
    }
    strategy = create("strategy", run.strategy.name, **params)
    seed = config.get("generator_seed") if config.get("generator_seed") is not None else config["seed"]
    context = StrategyContext(dataset=data, device=torch.device("cpu"), seed=seed, progress=False)
    strategy.assess(context, strategy.synthesize(context))  # the quality step runs after synthesis
    recomputed = QualityReport.from_dict(strategy.report()["quality"])
    assert recomputed.extractor["weights_sha256"] == published.extractor["weights_sha256"]
    for block in ("fake_vs_real", "floor", "shift"):
        fid = getattr(recomputed.matched, block).fid
        assert fid == pytest.approx(getattr(published.matched, block).fid, rel=1e-6), block
