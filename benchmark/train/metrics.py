"""Classification metrics for every task kind (MedMNIST-compatible ACC/AUC): one split's as `SplitMetrics`, a run's
(the selected checkpoint on val, then test) as the versioned `RunMetrics` record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from benchmark.data.task import TaskSpec
from benchmark.data.versioned import Versioned

PRIMARY_METRIC = "auc"
THRESHOLD = 0.5


@dataclass
class SplitMetrics:
    """Every metric the benchmark reports for one set of predictions; undefined values (e.g. the AUC of an absent
    class) are None. Aggregates are the positive class's for binary tasks and macro means otherwise."""

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
    task: TaskSpec, y_true: np.ndarray, y_score: np.ndarray, threshold: float = THRESHOLD
) -> SplitMetrics:
    """All metrics the benchmark reports for one set of predictions (see `SplitMetrics`)."""
    y_true, y_score = _validate(task, np.asarray(y_true), np.asarray(y_score, dtype=float))
    if task.multilabel:
        return _multilabel(y_true, y_score, threshold)
    return _single_label(task, y_true, y_score, threshold)


def _single_label(task: TaskSpec, y_true: np.ndarray, y_score: np.ndarray, threshold: float) -> SplitMetrics:
    """Binary, multi-class and ordinal tasks: y_true holds class indices, y_score softmax probabilities."""
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
    pick = (lambda v: float(v[1])) if binary else (lambda v: float(np.mean(v)))
    return SplitMetrics(
        n=int(len(y_true)),
        accuracy=float(np.mean(y_pred == y_true)),
        # sklearn's balanced accuracy: mean recall over the classes present in y_true.
        balanced_accuracy=float(np.mean(recall[present])),
        precision=pick(precision),
        recall=pick(recall),
        specificity=pick(specificity),
        f1=pick(f1),
        auc=auc_per_class[1] if binary else _mean_or_none(auc_per_class),
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
