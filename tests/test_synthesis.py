"""Synthesis-policy arithmetic on real label counts, and label vectors for multi-label data."""

from __future__ import annotations

import pytest
import torch

from benchmark.data.dataset import Split, load_dataset
from benchmark.data.task import TaskSpec
from benchmark.errors import MedAugBenchError
from benchmark.generate.synthesis import SynthesisPolicy, conditioning, label_rows, plan_counts
from tests.helpers import require_medmnist


@pytest.fixture(scope="module")
def pneumonia():
    require_medmnist("pneumoniamnist")
    return load_dataset("pneumoniamnist")


@pytest.fixture(scope="module")
def retina():
    require_medmnist("retinamnist")
    return load_dataset("retinamnist")


def test_balance_fills_the_deficit_times_r(pneumonia, retina):
    # PneumoniaMNIST train: 1214 normal, 3494 pneumonia (seed Algorithm 2: (max − count) × r)
    counts = pneumonia.train.class_counts(pneumonia.task)
    assert SynthesisPolicy("balance", ratio=1.0).plan(counts, pneumonia.task) == [2280, 0]
    assert SynthesisPolicy("balance", ratio=0.5).plan(counts, pneumonia.task) == [1140, 0]
    # RetinaMNIST train: 486, 128, 206, 194, 66
    counts = retina.train.class_counts(retina.task)
    assert SynthesisPolicy("balance").plan(counts, retina.task) == [0, 358, 280, 292, 420]


def test_plan_counts_applies_the_policy_to_the_real_labels(pneumonia):
    """The one plan function: what generative strategies synthesise and `oversample` repeats."""
    assert plan_counts(pneumonia.train.labels, pneumonia.task, SynthesisPolicy("balance")) == [2280, 0]
    task = TaskSpec("multilabel", ("a", "b", "c"), 1)
    labels = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 0]], dtype=torch.float32)
    assert plan_counts(labels, task, SynthesisPolicy("multiply", multiplier=2)) == [8, 2, 2]


def test_multiply_fixed_and_synthetic_only(pneumonia):
    counts = pneumonia.train.class_counts(pneumonia.task)
    assert SynthesisPolicy("multiply", multiplier=0.5).plan(counts, pneumonia.task) == [607, 1747]
    # the balancing paper: +400 synthetic normal images
    assert SynthesisPolicy("fixed", counts={"normal": 400}).plan(counts, pneumonia.task) == [400, 0]
    assert SynthesisPolicy("fixed", counts={"1": 10}).plan(counts, pneumonia.task) == [0, 10]
    only = SynthesisPolicy("synthetic_only")
    assert only.plan(counts, pneumonia.task) == [1214, 3494] and only.replaces_real


def test_multilabel_minority_is_defined_per_label():
    task = TaskSpec("multilabel", ("a", "b", "c"), 1)
    labels = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 0]], dtype=torch.float32)
    counts = Split(torch.zeros(5, 1, 4, 4, dtype=torch.uint8), labels).class_counts(task)
    assert counts == [4, 1, 1]
    assert SynthesisPolicy("balance").plan(counts, task) == [0, 3, 3]
    rows = label_rows(
        Split(torch.zeros(5, 1, 4, 4, dtype=torch.uint8), labels), task, 1, 6, torch.Generator().manual_seed(0)
    )
    assert rows.shape == (6, 3) and (rows[:, 1] == 1).all()  # conditioned on real rows positive for label b
    assert torch.equal(rows, torch.tensor([[1.0, 1.0, 0.0]]).expand(6, 3))
    assert torch.equal(conditioning(rows, task), rows)


def test_single_label_conditioning_is_one_hot():
    task = TaskSpec("multiclass", ("x", "y", "z"), 1)
    assert conditioning(torch.tensor([2, 0]), task).tolist() == [[0, 0, 1], [1, 0, 0]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kind="oversample"), "unknown synthesis policy"),
        (dict(kind="fixed"), "needs per-class counts"),
        (dict(kind="balance", ratio=-1), "non-negative"),
    ],
)
def test_bad_policies(kwargs, message):
    with pytest.raises(MedAugBenchError, match=message):
        SynthesisPolicy(**kwargs)


def test_fixed_policy_with_an_unknown_class(pneumonia):
    with pytest.raises(MedAugBenchError, match="not a class of this dataset"):
        SynthesisPolicy("fixed", counts={"covid": 5}).plan([1, 2], pneumonia.task)


# -- the synthesis stage (benchmark/synthesis) ------------------------------------------------------------------------
def test_a_generator_budget_is_one_kind_and_an_explicit_2000_steps_is_never_dropped():
    from benchmark.synthesis.config import DEFAULT_STEPS, generator_budget

    assert generator_budget(None, None, None).steps == DEFAULT_STEPS
    assert generator_budget(None, 5.0, None).kind == "seconds"
    with pytest.raises(MedAugBenchError, match=r"one budget, not generator_steps=2000, generator_seconds=5.0"):
        generator_budget(2000, 5.0, None)


def test_model_keys_are_named_by_class_and_old_group_names_are_still_read():
    from benchmark.synthesis.keys import ALL, ModelKey, keyed

    labels = ("malignant", "normal, benign")
    assert ModelKey(0).name(labels) == "malignant" and ALL.name(labels) == "all"
    assert keyed({"group_1": 1, "malignant": 0, "all": 2}, labels) == {ModelKey(1): 1, ModelKey(0): 0, ALL: 2}
    with pytest.raises(MedAugBenchError, match="'group_7', which is neither 'all' nor a class"):
        ModelKey.parse("group_7", labels)


class Guided:
    """A stand-in for a model with guidance weights: its score is lowest at weight 2."""

    def __init__(self) -> None:
        self.weight = 0.0

    def guidance_candidates(self) -> tuple[float, ...]:
        return (0.0, 1.0, 2.0, 4.0)

    def set_guidance(self, weight: float) -> None:
        self.weight = weight


def test_the_guidance_weight_is_the_one_the_holdout_score_prefers_and_its_time_is_selection_time():
    from benchmark.generate.loop import FitHistory
    from benchmark.synthesis.pipeline import choose_guidance, guided_scores

    model, history = Guided(), FitHistory()
    record = choose_guidance(model, lambda m: abs(m.weight - 2.0), history, torch.device("cpu"))
    assert record["chosen"] == model.weight == 2.0 and [w for w, _ in record["curve"]] == [0.0, 1.0, 2.0, 4.0]
    assert history.selection_seconds > 0 and guided_scores(model) == 4


def flagging_strategy(monkeypatch, on_unrecognisable: str):
    """A cgan strategy whose class fidelity is faked to flag one reason (the fidelity classifier is tested in
    tests/test_fidelity.py)."""
    from benchmark.synthesis import quality

    found = {"fidelity": {"per_class": {}}, "flags": ["class 'malignant': not recognisably malignant"]}
    monkeypatch.setattr(quality, "fidelity_of", lambda *args: found)
    from benchmark import create

    return create("strategy", "cgan", quality_extractor=None, on_unrecognisable=on_unrecognisable)


def test_an_unrecognisable_synthetic_set_is_flagged_by_default_and_refused_when_asked(monkeypatch, capsys):
    from benchmark import StrategyContext
    from benchmark.data.dataset import DataOptions
    from benchmark.generate.loop import GeneratorFailure

    require_medmnist("breastmnist")
    data = load_dataset("breastmnist", DataOptions(per_class_cap=10))
    context = StrategyContext(dataset=data, device=torch.device("cpu"), seed=0, progress=False)
    synthetic = data.train.subset(torch.arange(4))
    flagged = flagging_strategy(monkeypatch, "flag")
    flagged.assess(context, synthetic)
    assert flagged.report()["flags"] == ["class 'malignant': not recognisably malignant"]
    assert "generator cgan: class 'malignant': not recognisably malignant" in capsys.readouterr().err
    with pytest.raises(GeneratorFailure, match=r"generator cgan: its samples are not recognisably .* not used"):
        flagging_strategy(monkeypatch, "refuse").assess(context, synthetic)


def test_on_unrecognisable_takes_flag_or_refuse():
    from benchmark import create

    with pytest.raises(MedAugBenchError, match="on_unrecognisable must be 'flag' or 'refuse', got 'warn'"):
        create("strategy", "cgan", on_unrecognisable="warn")


@pytest.mark.slow
def test_quality_is_scored_after_synthesis_never_inside_it(tmp_path, monkeypatch):
    """The quality step is evaluation: `synthesize` (timed as generator work) never runs it, `assess` does."""
    from benchmark import StrategyContext, create
    from benchmark.data.dataset import DataOptions
    from benchmark.synthesis import quality

    require_medmnist("breastmnist")
    data = load_dataset("breastmnist", DataOptions(per_class_cap=10))
    context = StrategyContext(dataset=data, device=torch.device("cpu"), seed=0, work_dir=tmp_path, progress=False)
    scored = []
    monkeypatch.setattr(quality, "quality_of", lambda *args: scored.append(args) or {"matched": None})
    tiny_ddpm = {"block_out_channels": [16, 16, 16], "attention": False, "sample_steps": 2}
    options = dict(generator_steps=2, generator_batch_size=4, select_points=0, class_fidelity=False, policy="multiply")
    strategy = create("strategy", "ddpm", generator_params=tiny_ddpm, **options)
    synthetic = strategy.synthesize(context)
    assert not scored and "quality" not in strategy.report()
    strategy.assess(context, synthetic)
    assert len(scored) == 1 and strategy.report()["quality"] == {"matched": None}


@pytest.mark.slow
def test_a_guided_sampler_is_counted_at_the_chosen_weight_and_budgeted_at_the_costliest(tmp_path, monkeypatch):
    """Guided DDPM sampling runs the denoiser on the label rows and the null rows: the compute record counts synthesis
    at the chosen weight's rate (not the unguided rate the model started with), the guidance scores at theirs, and a
    FLOP budget sets synthesis aside at the costliest weight."""
    from benchmark.data.dataset import DataOptions, load_dataset
    from benchmark.registry import create
    from benchmark.synthesis import compute
    from benchmark.train.strategy import StrategyContext
    from tests.helpers import require_medmnist

    require_medmnist("breastmnist")
    monkeypatch.setattr("benchmark.synthesis.pipeline.choose_guidance", guidance_fixed_at(2.0))
    data = load_dataset("breastmnist", DataOptions())  # 147 malignant / 399 benign: `balance` samples 252
    context = StrategyContext(dataset=data, device=torch.device("cpu"), seed=0, work_dir=tmp_path, progress=False)
    params = {"block_out_channels": [8, 8], "attention": False, "norm_num_groups": 4, "sample_steps": 2}
    strategy = create(
        "strategy", "ddpm", generator_steps=2, generator_batch_size=8, generator_params=params,
        quality_extractor=None, class_fidelity=False, select_points=1,
    )  # fmt: skip
    strategy.synthesize(context)
    report = strategy.report()
    cost = report["generator"]["costs"]["all"]
    rates = cost["sample_flops_by_guidance"]
    assert rates["2.0"] > rates["0.0"] and cost["sample_flops_per_image"] == rates["2.0"]
    synthesis = report["compute"]["synthesis"]
    assert synthesis["flops"] == synthesis["images"] * rates["2.0"]
    assert cost["guidance_flops"] > 0 and compute.largest_sample_flops(cost) == max(rates.values())


def guidance_fixed_at(weight: float):
    """`choose_guidance` that always keeps `weight` (the real choice is tested above)."""

    def choose(model, scorer, history, device) -> dict:
        model.set_guidance(weight)
        return {"rule": "fixed by the test", "curve": [[w, 0.0] for w in model.guidance_candidates()], "chosen": weight}

    return choose
