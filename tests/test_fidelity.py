"""Class fidelity: recognisable synthetic images score like real ones and far above chance, noise is flagged, an FID
far beyond its floor is flagged, the report is deterministic, and the leaderboard and report show both."""

from __future__ import annotations

import pytest
import torch

from benchmark.data.dataset import Split
from benchmark.data.task import TaskSpec
from benchmark.evaluate import fidelity
from benchmark.evaluate.fidelity import DEFAULT_MAX_FID_RATIO, class_fidelity, unrecognisable_reasons
from benchmark.publish.fmt import FLAG_MARK
from benchmark.publish.leaderboard import build_leaderboard
from benchmark.publish.report import render_report
from tests.fake_results import TASKS, add_fidelity, fake_quality, make_fake_results

TASK = TaskSpec(kind="binary", labels=("left", "right"), channels=1)
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def few_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Separable classes need few steps; the tests stay fast."""
    monkeypatch.setattr(fidelity, "STEPS", 40)


def halves(n: int, seed: int) -> Split:
    """Class 0 bright on the left half, class 1 on the right, over dark noise: classes any CNN tells apart."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = torch.randint(0, 60, (n, 1, 28, 28), generator=generator)
    for index, label in enumerate(labels.tolist()):
        images[index, :, :, 14 * label : 14 * label + 14] += 150
    return Split(images.to(torch.uint8), labels)


def noise(n: int, seed: int) -> Split:
    """Uniform noise 'made for' both classes in turn."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 28, 28), generator=generator, dtype=torch.uint8)
    return Split(images, torch.arange(n) % 2)


@pytest.mark.slow
def test_recognisable_images_score_like_real_ones_and_far_above_chance() -> None:
    report = class_fidelity(halves(200, 0), halves(80, 1), halves(100, 2), TASK, seed=0, device=CPU)
    for c in report.per_class.values():
        assert c.fidelity == pytest.approx(c.recall, abs=0.1)
        assert c.fidelity > c.chance + 0.5 and c.p_value < report.level
    assert report.overall.synthetic == 100 and report.overall.fidelity > 0.9 and report.overall.p_value < report.level
    assert report.classifier.trained_on == 200 and report.classifier.steps == 40
    assert unrecognisable_reasons(report, None, DEFAULT_MAX_FID_RATIO) == []


def test_pure_noise_is_flagged() -> None:
    report = class_fidelity(halves(200, 0), halves(80, 1), noise(100, 2), TASK, seed=0, device=CPU)
    assert report.overall.independent == pytest.approx(0.5, abs=0.01) and report.overall.p_value > report.level
    reasons = unrecognisable_reasons(report, None, DEFAULT_MAX_FID_RATIO)
    assert reasons[0].endswith("the class conditioning has no visible effect")


@pytest.mark.slow
def test_a_class_whose_images_look_like_another_is_flagged() -> None:
    left = halves(200, 2).subset(torch.arange(0, 200, 2))
    mislabelled = Split(left.images, torch.arange(100) % 2)  # half of them "made for" right
    report = class_fidelity(halves(200, 0), halves(80, 1), mislabelled, TASK, seed=0, device=CPU)
    reasons = unrecognisable_reasons(report, None, DEFAULT_MAX_FID_RATIO)
    assert report.per_class["right"].fidelity < 0.1 and report.per_class["left"].p_value < report.level
    class_reasons = [reason for reason in reasons if reason.startswith("class ")]
    assert len(class_reasons) == 1 and class_reasons[0].startswith("class 'right'")


@pytest.mark.slow
def test_too_few_images_of_a_class_are_not_tested() -> None:
    report = class_fidelity(halves(200, 0), halves(80, 1), noise(10, 2), TASK, seed=0, device=CPU)
    assert all(c.p_value is None for c in report.per_class.values())
    assert unrecognisable_reasons(report, None, DEFAULT_MAX_FID_RATIO) == []


@pytest.mark.slow
def test_cas_trains_on_synthetic_only_and_names_missing_classes() -> None:
    only_left = halves(100, 2).subset(torch.arange(0, 100, 2))
    report = class_fidelity(halves(200, 0), halves(80, 1), only_left, TASK, seed=0, device=CPU, cas=True)
    assert report.cas is not None and report.cas.classifier.trained_on == 50 and report.cas.tested_on == 80
    assert report.cas.classes_without_images == ("right",)
    assert report.per_class["right"].synthetic == 0 and report.per_class["right"].fidelity is None
    assert report.to_dict()["cas"]["classes_without_images"] == ("right",)


@pytest.mark.slow
def test_the_report_is_deterministic_under_a_seed() -> None:
    def run(seed: int) -> dict:
        return class_fidelity(halves(100, 0), halves(40, 1), noise(60, 2), TASK, seed, CPU).to_dict()

    assert run(3) == run(3)


@pytest.mark.slow
def test_multilabel_fidelity_counts_positive_labels() -> None:
    task = TaskSpec(kind="multilabel", labels=("left", "right"), channels=1)

    def multi(split: Split) -> Split:
        return Split(split.images, torch.nn.functional.one_hot(split.labels, 2).float())

    report = class_fidelity(multi(halves(200, 0)), multi(halves(80, 1)), multi(halves(100, 2)), task, 0, CPU)
    assert "multi-label" in report.definition
    assert all(c.synthetic == 50 and c.fidelity > c.chance + 0.5 for c in report.per_class.values())


def test_an_fid_far_beyond_its_floor_is_flagged_and_one_near_it_is_not() -> None:
    task = TASKS["pneumoniamnist"]
    far = fake_quality(task, [100, 0], fid=12 * 9.9, floor=9.9)
    near = fake_quality(task, [100, 0], fid=4 * 9.9, floor=9.9)
    (reason,) = unrecognisable_reasons(None, far, DEFAULT_MAX_FID_RATIO)
    assert "12.0× the in-distribution floor 9.9" in reason
    assert unrecognisable_reasons(None, near, DEFAULT_MAX_FID_RATIO) == []
    assert len(unrecognisable_reasons(None, near, max_fid_ratio=3)) == 1
    assert unrecognisable_reasons(None, far | {"matched": far["matched"] | {"floor": None}}, 10) == []


def test_every_class_of_a_quality_report_is_judged() -> None:
    task = TASKS["pneumoniamnist"]
    both = fake_quality(task, [100, 100], fid=50, floor=10)
    both["per_class"]["pneumonia"]["fake_vs_real"]["fid"] = 500
    reasons = unrecognisable_reasons(None, both, DEFAULT_MAX_FID_RATIO)
    assert len(reasons) == 1 and reasons[0].startswith("class 'pneumonia'")


def test_the_leaderboard_and_report_show_fidelity_and_flags(tmp_path) -> None:
    strategies = ("none", "cgan", "dcgan")
    records = make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=strategies, seeds=(0, 1))
    add_fidelity(tmp_path, records, flagged=("dcgan",))
    board = build_leaderboard(tmp_path)
    quality = board.quality.set_index("strategy")
    assert quality.at["cgan", "fidelity_mean"] == pytest.approx(0.8) and quality.at["cgan", "n_flagged"] == 0
    assert quality.at["dcgan", "n_flagged"] == 2 and quality.at["dcgan", "fidelity_real_mean"] == pytest.approx(0.85)
    long = board.long.set_index("strategy")
    assert long.loc["dcgan", "flags"].str.contains("not recognisably").all()
    assert long.loc["none", "flags"].isna().all()
    assert "| Fidelity (%) |" in board.markdown
    assert "80.0 ± 0.0 (real 85.0; chance 5.0)" in board.markdown
    assert f"{FLAG_MARK} 2" in board.markdown and "**Flagged synthetic sets:**" in board.markdown
    assert board.markdown.count(f"- {FLAG_MARK} dcgan") == 2
    html = render_report(board, board.records, {}, {})
    assert "Fidelity % (real; chance)" in html and "Flagged synthetic sets" in html
    assert html.count(f"<li>{FLAG_MARK} dcgan") == 2


def test_records_without_fidelity_show_a_dash(tmp_path) -> None:
    make_fake_results(tmp_path, datasets=("pneumoniamnist",), strategies=("none", "cgan"), seeds=(0, 1))
    board = build_leaderboard(tmp_path)
    quality = board.markdown.split("### Generator quality")[1]
    row = next(line for line in quality.splitlines() if line.startswith("| cgan |"))
    assert row.split(" | ")[-3] == "–" and "Flagged synthetic sets" not in board.markdown
