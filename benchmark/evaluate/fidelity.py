"""Class fidelity of synthetic images: does a classifier trained only on the cell's real training images call a
synthetic "malignant" image malignant? Beside it, the same classifier's recall on real held-out images of that class
and its chance rate, so that a generator whose images are no more recognisable than real images of other classes is
flagged (`unrecognisable_reasons`) before anyone trains on them. CAS (Ravuri & Vinyals 2019) on request.

Fidelity judges class identity, not realism: a classifier may call noise "normal" (it must call it something), so a
set can pass here and still be far from real images; the FID-to-floor check of `unrecognisable_reasons` covers that.

Both classifiers use the classifier loop's pieces (backbone registry, batch sampler, loss, prediction) with a small
fixed recipe and no checkpoint selection, on the cell's training subset only: `fit` to train, `held` (held out of the
same subset) to measure; never validation or test images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import binom

from benchmark.data.dataset import Split
from benchmark.data.sampling import BatchSampler, stream_generator, stream_seed
from benchmark.data.task import TaskSpec
from benchmark.errors import MedAugBenchError
from benchmark.registry import create
from benchmark.train.config import TrainConfig
from benchmark.train.flops import isolated_rng
from benchmark.train.loop import loss_fn, normalize, predict, targets_for
from benchmark.train.metrics import classification_metrics, predicted_labels

BACKBONE = "simple_cnn"
LR = 1e-3  # Adam, constant
STEPS = 100  # 13 epochs of 500 images, 3 of 2,000 (batch 64)
BATCH_SIZE = 64
LEVEL = 0.01  # one-sided binomial test: a class's fidelity must exceed its chance rate at this level
MIN_TEST_IMAGES = 20  # fewer synthetic images of a class leave it untested: too few for the test to find anything
# A synthetic set whose class-matched FID is more than this many times its in-distribution floor is flagged. In the
# published results with a measured floor, generators whose samples resemble their class scored 4.3× (quick, DCGAN),
# 6.8× (quick, cGAN) and 4.9× (quality-check, VAE) their floor; the quick preset's DDPM, noise with faint structure,
# scored 27×, and its VAE, blurry near-identical outlines, 51×. 10× lies between the two groups.
DEFAULT_MAX_FID_RATIO = 10.0
MULTILABEL_NOTE = (
    "multi-label: per label, the fraction of the synthetic images made for that label that the classifier scores "
    "positive for it at 0.5; recall and chance are the same rule on real held-out images with and without the label"
)
SINGLE_LABEL_NOTE = (
    "the fraction of each class's synthetic images whose predicted class (MedMNIST's decision rule) is that class; "
    "recall is the same on real held-out images of the class, chance the rate at which real held-out images of the "
    "other classes are assigned to it"
)


@dataclass(frozen=True)
class ClassFidelity:
    """One class (or label): its synthetic images and the fraction assigned to it (None without images), the real
    held-out images of it and the classifier's recall on them, the held-out images of other classes and the add-one
    (Laplace) estimate of how often they are assigned to it (`chance`), and the one-sided binomial p-value of the
    fidelity under that chance rate (None: fewer than MIN_TEST_IMAGES synthetic images, untested)."""

    synthetic: int
    fidelity: float | None
    held: int
    recall: float | None
    others: int
    chance: float
    p_value: float | None


@dataclass(frozen=True)
class Overall:
    """All synthetic images together: the fraction assigned to their intended class, and the classifier's recall and
    chance rate on real held-out images weighted by the synthetic images' classes (what real images would score).
    `independent`: the fidelity expected if the assigned class ignored the intended one (sum over classes of the
    share made for c × the share assigned c), with the one-sided binomial p-value of the fidelity under it; None for
    a multi-label task or synthetic images of one class (nothing to compare), or below MIN_TEST_IMAGES images."""

    synthetic: int
    fidelity: float | None
    recall: float | None
    chance: float | None
    independent: float | None = None
    p_value: float | None = None


@dataclass(frozen=True)
class Classifier:
    """The classifier that judged the images: backbone, Adam steps at a constant rate, batch, seed and its training
    images. Its loss weighs the classes to equal priors, so that a minority class is not called rarely by design."""

    backbone: str
    steps: int
    batch_size: int
    lr: float
    seed: int
    trained_on: int


@dataclass(frozen=True)
class CasReport:
    """Classification accuracy score: a classifier trained on the synthetic images only, tested on real held-out
    images; the classes it had no synthetic image of are named."""

    classifier: Classifier
    tested_on: int
    balanced_accuracy: float
    auc: float | None
    classes_without_images: tuple[str, ...]


@dataclass(frozen=True)
class FidelityReport:
    """Class fidelity of one synthetic set (see `class_fidelity`) per class and overall, the classifier that judged
    it, what fidelity means for this task (`definition`), the tests' level and minimum count, and CAS when asked."""

    per_class: dict[str, ClassFidelity]
    overall: Overall
    classifier: Classifier
    definition: str
    level: float
    min_test_images: int
    cas: CasReport | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def class_fidelity(
    fit: Split,
    held: Split,
    synthetic: Split,
    task: TaskSpec,
    seed: int,
    device: torch.device,
    cas: bool = False,
) -> FidelityReport:
    """The class fidelity of `synthetic`, judged by a classifier trained on `fit` alone (real training images of the
    cell) and measured beside its recall and chance rate on `held` (real images of the cell's training subset held
    out of `fit`; never validation or test). Single-label: an image counts for its class when the classifier
    predicts that class. Multi-label (e.g. ChestMNIST): per label, the fraction of synthetic images made for that
    label that the classifier scores positive for it at 0.5. `cas`: also train on `synthetic` alone and test on
    `held` (CAS). Deterministic for a seed on one device."""
    for name, split in (("fit", fit), ("held", held), ("synthetic", synthetic)):
        if len(split) == 0:
            raise MedAugBenchError(
                f"class fidelity got no {name} images; pass the real training images it learns from (fit), real "
                "training images held out of them (held) and the synthetic images to judge"
            )
    judge = _train(fit, task, seed, device)
    held_assigned = _assigned(_scores(judge, held, task, device), task)
    synthetic_assigned = _assigned(_scores(judge, synthetic, task, device), task)
    held_members, synthetic_members = _members(held.labels, task), _members(synthetic.labels, task)
    per_class = {
        label: _class_fidelity(synthetic_assigned, synthetic_members, held_assigned, held_members, c)
        for c, label in enumerate(task.labels)
    }
    return FidelityReport(
        per_class=per_class,
        overall=_overall(per_class, _conditioning(synthetic_assigned, synthetic_members, task)),
        classifier=_describe(fit, seed),
        definition=MULTILABEL_NOTE if task.multilabel else SINGLE_LABEL_NOTE,
        level=LEVEL,
        min_test_images=MIN_TEST_IMAGES,
        cas=_cas(synthetic, held, task, seed, device) if cas else None,
    )


def _train(train: Split, task: TaskSpec, seed: int, device: torch.device) -> torch.nn.Module:
    """The recipe trained on `train`: initial weights from the seed's `init` stream, batches from its `real_order`
    stream, STEPS class-balanced Adam steps; the final weights (nothing is selected)."""
    with isolated_rng(device):
        torch.manual_seed(stream_seed(seed, "init"))
        model = create(
            "backbone",
            BACKBONE,
            in_chans=task.channels,
            num_classes=task.num_outputs,
            image_size=train.images.shape[-1],
            pretrained=False,
        ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    images, targets = train.images.to(device), targets_for(train.labels, task).to(device)
    weights = _balancing_weights(train, task).to(device)
    batches = BatchSampler(len(train), BATCH_SIZE, stream_generator(seed, "real_order", device))
    model.train()
    for _ in range(STEPS):
        index = batches.next()
        loss = loss_fn(model(normalize(images[index].float().div(255))), targets[index], task, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


def _balancing_weights(split: Split, task: TaskSpec) -> torch.Tensor:
    """Loss weights to equal priors: class c weighs n / (classes present × n_c); a multi-label task's label c weighs
    its positives by negatives / positives. A class without images keeps weight 1 (it has no loss term)."""
    counts = torch.tensor(split.class_counts(task), dtype=torch.float32)
    present = counts > 0
    if task.multilabel:
        return torch.where(present, (len(split) - counts) / counts.clamp(min=1), 1.0)
    return torch.where(present, len(split) / (int(present.sum()) * counts.clamp(min=1)), 1.0)


def _scores(model: torch.nn.Module, split: Split, task: TaskSpec, device: torch.device) -> np.ndarray:
    """The model's class (softmax) or label (sigmoid) probabilities for a split's images."""
    return predict(model, split.images.to(device), task, TrainConfig(amp=False, channels_last=False), device)


def _describe(train: Split, seed: int) -> Classifier:
    """What the trained classifier was: its recipe and how many images it learnt from."""
    return Classifier(BACKBONE, STEPS, BATCH_SIZE, LR, seed, len(train))


def _assigned(scores: np.ndarray, task: TaskSpec) -> np.ndarray:
    """(N, K) booleans: which class (one per image) or which labels (any number) the classifier assigns."""
    predicted = predicted_labels(task.kind, scores)
    return predicted.astype(bool) if task.multilabel else np.eye(task.num_outputs, dtype=bool)[predicted]


def _members(labels: torch.Tensor, task: TaskSpec) -> np.ndarray:
    """(N, K) booleans: the class each image was made for (or is of), or its positive labels."""
    if task.multilabel:
        return labels.numpy() > 0.5
    return np.eye(task.num_outputs, dtype=bool)[labels.numpy()]


def _class_fidelity(
    synthetic_assigned: np.ndarray,
    synthetic_members: np.ndarray,
    held_assigned: np.ndarray,
    held_members: np.ndarray,
    c: int,
) -> ClassFidelity:
    """Class `c`'s fidelity, recall, add-one chance rate and the binomial p-value of its fidelity under that rate."""
    made, held, others = synthetic_members[:, c], held_members[:, c], ~held_members[:, c]
    hits = int(synthetic_assigned[made, c].sum())
    false_positives = int(held_assigned[others, c].sum())
    chance = (false_positives + 1) / (int(others.sum()) + 2)
    n = int(made.sum())
    return ClassFidelity(
        synthetic=n,
        fidelity=hits / n if n else None,
        held=int(held.sum()),
        recall=float(held_assigned[held, c].mean()) if held.any() else None,
        others=int(others.sum()),
        chance=chance,
        p_value=float(binom.sf(hits - 1, n, chance)) if n >= MIN_TEST_IMAGES else None,
    )


def _conditioning(assigned: np.ndarray, members: np.ndarray, task: TaskSpec) -> tuple[float | None, float | None]:
    """The fidelity expected if assignments ignored the intended class, and the binomial p-value of the observed
    fidelity under it: a generator whose class conditioning has no visible effect (e.g. noise for every class, split
    between classes) is not above it. (None, None) where it cannot be judged (see `Overall`)."""
    if task.multilabel or (members.sum(axis=0) > 0).sum() < 2 or len(members) < MIN_TEST_IMAGES:
        return None, None
    independent = float((members.mean(axis=0) * assigned.mean(axis=0)).sum())
    hits = int((assigned & members).sum())
    return independent, float(binom.sf(hits - 1, len(members), independent))


def _overall(per_class: dict[str, ClassFidelity], conditioning: tuple[float | None, float | None]) -> Overall:
    """The classes pooled by their synthetic counts (recall over the classes with held-out images), with the
    conditioning test."""
    made = [c for c in per_class.values() if c.synthetic]
    total = sum(c.synthetic for c in made)
    with_recall = [c for c in made if c.recall is not None]
    weight = sum(c.synthetic for c in with_recall)
    return Overall(
        synthetic=total,
        fidelity=sum(c.fidelity * c.synthetic for c in made) / total if total else None,
        recall=sum(c.recall * c.synthetic for c in with_recall) / weight if weight else None,
        chance=sum(c.chance * c.synthetic for c in made) / total if total else None,
        independent=conditioning[0],
        p_value=conditioning[1],
    )


def _cas(synthetic: Split, held: Split, task: TaskSpec, seed: int, device: torch.device) -> CasReport:
    """The recipe trained on the synthetic images alone, scored on the real held-out images."""
    model = _train(synthetic, task, seed, device)
    test = classification_metrics(task, held.labels.numpy(), _scores(model, held, task, device))
    counts = synthetic.class_counts(task)
    return CasReport(
        classifier=_describe(synthetic, seed),
        tested_on=len(held),
        balanced_accuracy=test.balanced_accuracy,
        auc=test.auc,
        classes_without_images=tuple(label for label, n in zip(task.labels, counts) if n == 0),
    )


def unrecognisable_reasons(fidelity: FidelityReport | None, quality: dict | None, max_fid_ratio: float) -> list[str]:
    """One plain sentence per reason not to train on a synthetic set: a class whose fidelity is not above its chance
    rate (one-sided binomial test at the report's level, classes with at least its minimum of images), or a
    class-matched FID (`QualityReport.to_dict()`, overall and per class) above `max_fid_ratio` × its
    in-distribution floor (no floor measured: not judged). Empty: nothing found."""
    reasons = [] if fidelity is None else _fidelity_reasons(fidelity)
    return reasons + ([] if quality is None else _quality_reasons(quality, max_fid_ratio))


def _fidelity_reasons(report: FidelityReport) -> list[str]:
    """A sentence when the classes assigned do not depend on the classes intended, and one per tested class whose
    fidelity the binomial test does not place above chance."""
    overall, level = report.overall, report.level
    reasons = []
    if overall.p_value is not None and overall.p_value >= level:
        reasons.append(
            f"the synthetic images are assigned their intended class {100 * overall.fidelity:.1f} % of the time, not "
            f"above the {100 * overall.independent:.1f} % expected if the class they were made for did not matter "
            f"(one-sided binomial p = {overall.p_value:.3g}, level {level:g}): the class conditioning has no visible "
            "effect"
        )
    return reasons + [
        f"class {label!r}: {round(c.fidelity * c.synthetic)} of {c.synthetic} synthetic images "
        f"({100 * c.fidelity:.1f} %) are classified as {label!r}, not above the {100 * c.chance:.1f} % chance rate of "
        f"real images of other classes (one-sided binomial p = {c.p_value:.3g}, level {level:g}); real held-out "
        f"{label!r} images reach {_percent(c.recall)}: the synthetic images are not recognisably {label!r}"
        for label, c in report.per_class.items()
        if c.p_value is not None and c.p_value >= level
    ]


def _quality_reasons(quality: dict, max_fid_ratio: float) -> list[str]:
    """A sentence for the class-matched block, and for each class when several were scored, whose FID exceeds
    `max_fid_ratio` × its floor."""
    blocks = {"the synthetic images": quality.get("matched")}
    per_class = {
        label: b for label, b in (quality.get("per_class") or {}).items() if _fid(b, "fake_vs_real") is not None
    }
    if len(per_class) > 1:
        blocks |= {f"class {label!r}": block for label, block in per_class.items()}
    reasons = []
    for name, block in blocks.items():
        fid, floor = _fid(block, "fake_vs_real"), _fid(block, "floor")
        if fid is not None and floor is not None and floor > 0 and fid > max_fid_ratio * floor:
            reasons.append(
                f"{name}: FID {fid:.1f} is {fid / floor:.1f}× the in-distribution floor {floor:.1f} (real held-out "
                f"images against the same reference; limit {max_fid_ratio:g}×): far from real images"
            )
    return reasons


def _fid(block: dict | None, scores: str) -> float | None:
    """The FID of one part (`fake_vs_real` or `floor`) of a quality block, None where it was not measured."""
    part = (block or {}).get(scores) or {}
    return part.get("fid")


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"
