"""Classification metrics for every task kind (MedMNIST-compatible ACC/AUC): one split's as `SplitMetrics`, a run's
(the selected checkpoint on val, then test) as the versioned `RunMetrics` record.

`accuracy` depends on the label prior a classifier was trained at (a strategy that rebalances classes moves its
decision threshold); balanced accuracy weighs the classes equally but keeps that threshold. AUC has none, and
`accuracy_calibrated` sets it the same way for every classifier: decisions at a uniform prior, with the classifier's
own prior fitted on validation (`fit_prior_adjustment`), never on the split it scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from benchmark.data.task import TaskSpec
from benchmark.data.versioned import Versioned

PRIMARY_METRIC = "auc"
THRESHOLD = 0.5
EPS = 1e-12  # probabilities are clipped to [EPS, 1 - EPS] before taking logs


@dataclass
class SplitMetrics:
    """Every metric the benchmark reports for one set of predictions; undefined values (e.g. the AUC of an absent
    class) are None. Aggregates are the positive class's (`TaskSpec.positive`) for binary tasks and macro means
    otherwise: recall is the sensitivity, specificity the recall of the other class."""

    n: int
    accuracy: float
    balanced_accuracy: float
    precision: float
    recall: float
    specificity: float
    f1: float
    auc: float | None
    ece: float
    precision_per_class: list[float]
    recall_per_class: list[float]
    specificity_per_class: list[float]
    f1_per_class: list[float]
    auc_per_class: list[float | None]
    confusion_matrix: list  # (K, K) for single-label tasks; (L, 2, 2), one per label, for multi-label ones
    average_precision: float | None = None  # macro average precision of multi-label tasks; None for the others
    accuracy_calibrated: float | None = None  # accuracy at a uniform prior fitted on validation (PriorAdjustment)
    calibration_offsets: list[float] | None = None  # the PriorAdjustment's offsets, to re-derive its decisions

    def __getitem__(self, name: str) -> object:
        """A metric by name (`metrics["auc"]`), for code that picks metrics by name."""
        if name not in self.__dataclass_fields__:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: object = None) -> object:
        return getattr(self, name) if name in self.__dataclass_fields__ else default


@dataclass
class RunMetrics(Versioned):
    """A run's metrics: the selected checkpoint's on the validation split (what selected it) and on test."""

    SCHEMA: ClassVar[int] = 1
    NAME: ClassVar[str] = "metrics record"

    val: SplitMetrics
    test: SplitMetrics


def predicted_labels(kind: str, y_score: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """MedMNIST's decision rule (its getACC): the positive probability above `threshold` for a binary task, each
    label's probability above it for a multi-label task, the argmax otherwise."""
    if kind == "binary":
        return (y_score[:, 1] > threshold).astype(int)
    return (y_score > threshold).astype(int) if kind == "multilabel" else y_score.argmax(axis=1)


@dataclass(frozen=True)
class PriorAdjustment:
    """Offsets added to log-probabilities (single-label: one per class) or to logits (multi-label: one per label)
    that turn the classifier's decisions into decisions at a uniform prior: b - log(prior), where b is the additive
    bias that maximises the validation likelihood (so it captures the prior the classifier effectively learnt,
    synthetic or oversampled images included) and prior is the validation class (label) frequency."""

    offsets: tuple[float, ...]

    def predict(self, multilabel: bool, y_score: np.ndarray) -> np.ndarray:
        """Adjusted decisions: argmax of log p + offsets, or per label logit(p) + offset > 0."""
        from scipy.special import logit  # scipy and sklearn are imported where used: records are read without them

        p = np.clip(y_score, EPS, 1.0 - EPS)
        if multilabel:
            return (logit(p) + np.asarray(self.offsets) > 0).astype(int)
        return (np.log(p) + np.asarray(self.offsets)).argmax(axis=1)


def fit_prior_adjustment(task: TaskSpec, y_true: np.ndarray, y_score: np.ndarray) -> PriorAdjustment | None:
    """The `PriorAdjustment` fitted on these (validation) predictions; None when a class (multi-label: a label's
    positives or negatives) is absent, since its prior cannot be fitted."""
    y_true, y_score = _validate(task, np.asarray(y_true), np.asarray(y_score, dtype=float))
    p = np.clip(y_score, EPS, 1.0 - EPS)
    if not task.multilabel:
        return _uniform_offsets(np.log(p), y_true, task.num_outputs)
    offsets = []
    for j in range(task.num_outputs):
        two_class = _uniform_offsets(np.log(np.stack([1.0 - p[:, j], p[:, j]], axis=1)), y_true[:, j], 2)
        if two_class is None:
            return None
        offsets.append(two_class.offsets[1] - two_class.offsets[0])
    return PriorAdjustment(tuple(offsets))


def _uniform_offsets(log_p: np.ndarray, y: np.ndarray, k: int) -> PriorAdjustment | None:
    """b - log(prior): b maximises sum log softmax(log_p + b)[y] (concave; the first class's b is fixed at 0)."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax, softmax

    counts = np.bincount(y, minlength=k)
    if (counts == 0).any():
        return None

    def loss(free: np.ndarray) -> tuple[float, np.ndarray]:
        shifted = log_p + np.concatenate([[0.0], free])
        nll = -log_softmax(shifted, axis=1)[np.arange(len(y)), y].sum()
        return nll, (softmax(shifted, axis=1).sum(axis=0) - counts)[1:]

    bias = np.concatenate([[0.0], minimize(loss, np.zeros(k - 1), jac=True, method="L-BFGS-B").x])
    return PriorAdjustment(tuple(float(v) for v in bias - np.log(counts / counts.sum())))


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECE: sample-weighted |accuracy - mean confidence| over equal-width bins (lo, hi] of confidence."""
    confidences = np.asarray(confidences, dtype=float).ravel()
    correct = np.asarray(correct, dtype=float).ravel()
    if confidences.shape != correct.shape or confidences.size == 0:
        raise ValueError(f"need equally many confidences and outcomes, got {confidences.size} and {correct.size}")
    bins = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], confidences, side="left")
    gap = np.bincount(bins, weights=correct - confidences, minlength=n_bins)
    return float(np.abs(gap).sum() / confidences.size)


def classification_metrics(
    task: TaskSpec,
    y_true: np.ndarray,
    y_score: np.ndarray,
    threshold: float = THRESHOLD,
    adjustment: PriorAdjustment | None = None,
) -> SplitMetrics:
    """All metrics the benchmark reports for one set of predictions (see `SplitMetrics`); `accuracy_calibrated` is
    the accuracy under `adjustment` (fitted on validation), None without one."""
    y_true, y_score = _validate(task, np.asarray(y_true), np.asarray(y_score, dtype=float))
    metrics = (
        _multilabel(y_true, y_score, threshold) if task.multilabel else _single_label(task, y_true, y_score, threshold)
    )
    if adjustment is not None:
        metrics.accuracy_calibrated = float(np.mean(adjustment.predict(task.multilabel, y_score) == y_true))
        metrics.calibration_offsets = list(adjustment.offsets)
    return metrics


def _single_label(task: TaskSpec, y_true: np.ndarray, y_score: np.ndarray, threshold: float) -> SplitMetrics:
    """Binary, multi-class and ordinal tasks: y_true holds class indices, y_score softmax probabilities."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    k = task.num_outputs
    binary = task.kind == "binary"
    y_pred = predicted_labels(task.kind, y_score, threshold)
    cm = confusion_matrix(y_true, y_pred, labels=range(k))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=range(k), average=None, zero_division=0
    )
    fp = cm.sum(axis=0) - np.diag(cm)
    specificity = _specificity(cm.sum() - cm.sum(axis=1) - fp, fp)
    auc_per_class = [_auc(y_true == c, y_score[:, c]) for c in range(k)]
    present = cm.sum(axis=1) > 0
    pick = (lambda v: float(v[task.positive])) if binary else (lambda v: float(np.mean(v)))
    return SplitMetrics(
        n=int(len(y_true)),
        accuracy=float(np.mean(y_pred == y_true)),
        # sklearn's balanced accuracy: mean recall over the classes present in y_true.
        balanced_accuracy=float(np.mean(recall[present])),
        precision=pick(precision),
        recall=pick(recall),
        specificity=pick(specificity),
        f1=pick(f1),
        auc=auc_per_class[task.positive] if binary else _mean_or_none(auc_per_class),
        ece=expected_calibration_error(y_score.max(axis=1), y_score.argmax(axis=1) == y_true),
        precision_per_class=_floats(precision),
        recall_per_class=_floats(recall),
        specificity_per_class=_floats(specificity),
        f1_per_class=_floats(f1),
        auc_per_class=auc_per_class,
        confusion_matrix=cm.astype(int).tolist(),
    )


def _multilabel(y_true: np.ndarray, y_score: np.ndarray, threshold: float) -> SplitMetrics:
    """Multi-label tasks: y_true and y_score are (N, L); each label is an independent binary problem."""
    from sklearn.metrics import average_precision_score, multilabel_confusion_matrix, precision_recall_fscore_support

    y_pred = predicted_labels("multilabel", y_score, threshold)
    mcm = multilabel_confusion_matrix(y_true, y_pred)
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    specificity = _specificity(mcm[:, 0, 0], mcm[:, 0, 1])
    auc_per_class = [_auc(y_true[:, j], y_score[:, j]) for j in range(y_true.shape[1])]
    has_positive = bool(y_true.sum(axis=0).all())
    return SplitMetrics(
        n=int(len(y_true)),
        # MedMNIST's getACC for multi-label: mean over labels of per-label accuracy at the threshold.
        accuracy=float(np.mean(y_pred == y_true)),
        balanced_accuracy=float(np.mean((recall + specificity) / 2)),
        precision=float(np.mean(precision)),
        recall=float(np.mean(recall)),
        specificity=float(np.mean(specificity)),
        f1=float(np.mean(f1)),
        auc=_mean_or_none(auc_per_class),
        average_precision=float(average_precision_score(y_true, y_score, average="macro")) if has_positive else None,
        ece=expected_calibration_error(y_score, y_true),
        precision_per_class=_floats(precision),
        recall_per_class=_floats(recall),
        specificity_per_class=_floats(specificity),
        f1_per_class=_floats(f1),
        auc_per_class=auc_per_class,
        confusion_matrix=mcm.astype(int).tolist(),
    )


def _validate(task: TaskSpec, y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes and label values against the task, so a mismatch fails loudly instead of scoring garbage."""
    k = task.num_outputs
    if y_score.ndim != 2 or y_score.shape[1] != k:
        raise ValueError(f"y_score must have shape (N, {k}) for this {task.kind} task, got {y_score.shape}")
    expected = (len(y_score), k) if task.multilabel else (len(y_score),)
    if y_true.shape != expected:
        raise ValueError(f"y_true must have shape {expected} to match y_score {y_score.shape}, got {y_true.shape}")
    if len(y_true) == 0:
        raise ValueError("cannot compute metrics on zero samples")
    allowed = (0, 1) if task.multilabel else range(k)
    if not np.isin(y_true, allowed).all():
        raise ValueError(f"y_true values must lie in {list(allowed)} for this {task.kind} task")
    return y_true.astype(int), y_score


def _auc(y_binary: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC of one binary problem, or None when y_binary holds only one class."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y_binary, score)) if len(np.unique(y_binary)) == 2 else None


def _specificity(tn: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """TN / (TN + FP) per class, 0 where there are no negatives (sklearn's zero_division=0 convention)."""
    negatives = tn + fp
    return np.divide(tn, negatives, out=np.zeros(len(tn)), where=negatives > 0)


def _mean_or_none(values: list[float | None]) -> float | None:
    """Macro mean, or None when any component is undefined (MedMNIST would raise; we never silently drop one)."""
    return None if any(v is None for v in values) else float(np.mean(values))


def _floats(values: np.ndarray) -> list[float]:
    """Plain python floats, so the result serialises to JSON."""
    return [float(v) for v in values]
