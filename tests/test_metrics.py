"""Metrics: hand-computed cases per task kind, ECE, undefined values, and agreement with MedMNIST's evaluator."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
from medmnist import INFO, Evaluator
from medmnist.evaluator import getACC, getAUC
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from benchmark.data.dataset import DataOptions, Split, load_dataset
from benchmark.data.task import TaskSpec
from benchmark.train.config import Budget, TrainConfig
from benchmark.train.loop import train
from benchmark.train.metrics import (
    RunMetrics,
    classification_metrics,
    expected_calibration_error,
    fit_prior_adjustment,
)
from tests.helpers import require_medmnist

DATA_DIR = Path(os.environ.get("MEDAUGBENCH_DATA_DIR") or "/work/shared/data/medmnist")
BINARY = TaskSpec("binary", ("neg", "pos"), 1)
THREE_CLASS = TaskSpec("multiclass", ("a", "b", "c"), 1)
THREE_LABEL = TaskSpec("multilabel", ("x", "y", "z"), 1)


def test_binary_hand_computed():
    p1 = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.4, 0.7])
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    # pred (p1 > 0.5) = 1 1 0 1 0 0 0 1  ->  TP=2 (0,1), FN=1 (2), FP=2 (3,7), TN=3 (4,5,6)
    m = classification_metrics(BINARY, y, np.stack([1 - p1, p1], axis=1))
    assert m["n"] == 8
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(3 / 5)
    assert m["f1"] == pytest.approx(4 / 7)  # 2 * 1/2 * 2/3 / (1/2 + 2/3)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 5) / 2)
    # positive scores {.9,.8,.3} vs negatives {.6,.2,.1,.4,.7}: 5 + 5 + 2 of 15 pairs ranked right
    assert m["auc"] == pytest.approx(12 / 15)
    assert m["confusion_matrix"] == [[3, 2], [1, 2]]
    # class 0 seen as positive: precision TN/(TN+FN)=3/4, recall 3/5, specificity = recall of class 1
    assert m["precision_per_class"] == pytest.approx([3 / 4, 1 / 2])
    assert m["recall_per_class"] == pytest.approx([3 / 5, 2 / 3])
    assert m["specificity_per_class"] == pytest.approx([2 / 3, 3 / 5])
    assert m["f1_per_class"] == pytest.approx([2 / 3, 4 / 7])


def test_multiclass_hand_computed():
    y = np.array([0, 0, 1, 1, 2, 2])
    score = np.array(
        [
            [0.7, 0.2, 0.1],  # pred 0, right
            [0.3, 0.6, 0.1],  # pred 1, wrong
            [0.1, 0.8, 0.1],  # pred 1, right
            [0.2, 0.3, 0.5],  # pred 2, wrong
            [0.1, 0.1, 0.8],  # pred 2, right
            [0.2, 0.5, 0.3],  # pred 1, wrong
        ]
    )
    m = classification_metrics(THREE_CLASS, y, score)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [0, 1, 1]]
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["precision_per_class"] == pytest.approx([1, 1 / 3, 1 / 2])
    assert m["precision"] == pytest.approx(11 / 18)
    assert m["recall"] == pytest.approx(1 / 2)
    assert m["balanced_accuracy"] == pytest.approx(1 / 2)
    assert m["f1_per_class"] == pytest.approx([2 / 3, 2 / 5, 1 / 2])
    assert m["f1"] == pytest.approx(47 / 90)
    # FP per class 0, 2, 1 out of 4 negatives each
    assert m["specificity_per_class"] == pytest.approx([1, 1 / 2, 3 / 4])
    assert m["specificity"] == pytest.approx(3 / 4)
    # one-vs-rest: class 0 separates perfectly, class 1 ranks 6 of 8 pairs, class 2 ranks 7 of 8
    assert m["auc_per_class"] == pytest.approx([1, 6 / 8, 7 / 8])
    assert m["auc"] == pytest.approx(0.875)
    assert m["auc"] == pytest.approx(roc_auc_score(y, score, multi_class="ovr", average="macro"), abs=1e-12)


def test_multilabel_hand_computed():
    y = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 0]])
    score = np.array([[0.9, 0.2, 0.6], [0.4, 0.7, 0.3], [0.6, 0.4, 0.2], [0.3, 0.6, 0.1]])
    # pred = [[1,0,1],[0,1,0],[1,0,0],[0,1,0]]
    # label 0: TP2 TN2;  label 1: TP1 FN1 FP1 TN1;  label 2: TP1 FN1 TN2
    m = classification_metrics(THREE_LABEL, y, score)
    assert m["confusion_matrix"] == [[[2, 0], [0, 2]], [[1, 1], [1, 1]], [[2, 0], [1, 1]]]
    assert m["accuracy"] == pytest.approx((1 + 1 / 2 + 3 / 4) / 3)
    assert m["precision"] == pytest.approx(5 / 6)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(5 / 6)
    assert m["f1"] == pytest.approx(13 / 18)  # (1 + 1/2 + 2/3) / 3
    assert m["balanced_accuracy"] == pytest.approx((1 + 1 / 2 + 3 / 4) / 3)
    assert m["auc_per_class"] == pytest.approx([1, 3 / 4, 1])
    assert m["auc"] == pytest.approx(11 / 12)
    # label 1 ranks pos .7, neg .6, pos .4 -> AP (1 + 2/3) / 2; labels 0 and 2 rank positives first
    assert m["average_precision"] == pytest.approx((1 + 5 / 6 + 1) / 3)


def test_ece_perfectly_calibrated_is_zero():
    conf = np.array([0.8] * 5 + [0.3] * 10)
    correct = np.array([1, 1, 1, 1, 0] + [1, 1, 1] + [0] * 7)
    assert expected_calibration_error(conf, correct) == pytest.approx(0, abs=1e-12)


def test_ece_overconfident_hand_computed():
    # bin ~0.95: 4 samples, 2 right -> gap 0.45; bin ~0.55: 6 samples, 3 right -> gap 0.05
    conf = np.array([0.95] * 4 + [0.55] * 6)
    correct = np.array([1, 1, 0, 0] + [1, 1, 1, 0, 0, 0])
    assert expected_calibration_error(conf, correct) == pytest.approx((4 * 0.45 + 6 * 0.05) / 10)


def test_ece_edges_and_task_routing():
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([1, 0])) == pytest.approx(0, abs=1e-12)
    # single-label: max prob 0.9 on 2 samples, one right -> |0.5 - 0.9|
    m = classification_metrics(BINARY, np.array([0, 1]), np.array([[0.9, 0.1], [0.9, 0.1]]))
    assert m["ece"] == pytest.approx(0.4)
    # multi-label: every probability vs its 0/1 truth; 0.25 on 4 entries with one positive is calibrated
    m = classification_metrics(TaskSpec("multilabel", ("x", "y"), 1), np.array([[1, 0], [0, 0]]), np.full((2, 2), 0.25))
    assert m["ece"] == pytest.approx(0, abs=1e-12)


def test_undefined_values_are_none_and_json_safe():
    # class 2 never occurs in y_true: its one-vs-rest AUC is undefined
    y = np.array([0, 1, 0, 1])
    score = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
    m = classification_metrics(THREE_CLASS, y, score)
    assert m["auc"] is None and m["auc_per_class"][2] is None
    # class 0: positives {.6,.3} vs negatives {.2,.5} -> 3 of 4 pairs; class 1 separates perfectly
    assert m["auc_per_class"][:2] == pytest.approx([3 / 4, 1])
    assert m["recall_per_class"][2] == 0 and m["precision_per_class"][2] == 0
    json.dumps(dataclasses.asdict(m), allow_nan=False)
    # a label with no positives: AUC and average precision undefined
    ml = classification_metrics(THREE_LABEL, np.array([[1, 0, 0], [0, 1, 0]]), np.full((2, 3), 0.4))
    assert ml["auc"] is None and ml["average_precision"] is None
    json.dumps(dataclasses.asdict(ml), allow_nan=False)
    assert all(type(v) in (int, float, list, type(None)) for v in dataclasses.asdict(m).values())
    assert m.average_precision is None  # defined for multi-label tasks only


def test_metrics_are_read_by_name_or_attribute():
    m = classification_metrics(BINARY, np.array([0, 1]), np.array([[0.8, 0.2], [0.3, 0.7]]))
    assert m["auc"] == m.auc == 1.0 and m.get("accuracy") == 1.0 and m.get("no such metric") is None
    with pytest.raises(KeyError):
        m["no such metric"]


@pytest.mark.parametrize(
    ("task", "y_true", "y_score", "message"),
    [
        (BINARY, np.zeros(4, int), np.full((4, 3), 0.3), r"y_score must have shape \(N, 2\)"),
        (BINARY, np.zeros(3, int), np.full((4, 2), 0.5), r"y_true must have shape \(4,\)"),
        (THREE_CLASS, np.array([0, 3]), np.full((2, 3), 0.3), "y_true values must lie in"),
        (THREE_LABEL, np.zeros(2, int), np.full((2, 3), 0.3), r"y_true must have shape \(2, 3\)"),
        (THREE_LABEL, np.zeros((0, 3), int), np.zeros((0, 3)), "zero samples"),
    ],
)
def test_invalid_inputs_raise(task, y_true, y_score, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(task, y_true, y_score)


def _pooled(images: np.ndarray) -> np.ndarray:
    """4x4 average-pooled pixels in [0, 1]: few enough features for a logistic regression to fit in well under a
    second."""
    x = images.reshape(len(images), 28, 28, -1) / 255.0
    return x.reshape(len(x), 7, 4, 7, 4, -1).mean(axis=(2, 4)).reshape(len(x), -1)


@pytest.mark.parametrize("flag", ["pneumoniamnist", "retinamnist"])
def test_agrees_with_medmnist_evaluator(flag):
    path = DATA_DIR / f"{flag}.npz"
    if not path.is_file():
        pytest.skip(f"MedMNIST file {path} not found (set MEDAUGBENCH_DATA_DIR to the folder of .npz files)")
    with np.load(path) as data:
        x_train, y_train = data["train_images"], data["train_labels"].ravel()
        x_test, y_test = data["test_images"], data["test_labels"].ravel()
    model = LogisticRegression(max_iter=500).fit(_pooled(x_train), y_train)
    y_score = model.predict_proba(_pooled(x_test))

    expected = Evaluator(flag, "test", size=28, root=str(DATA_DIR)).evaluate(y_score)
    m = classification_metrics(TaskSpec.from_medmnist(INFO[flag]), y_test, y_score)
    assert 0.5 < m["auc"] < 1  # realistic, non-trivial predictions
    assert m["accuracy"] == pytest.approx(expected.ACC, abs=1e-9)
    assert m["auc"] == pytest.approx(expected.AUC, abs=1e-9)


def test_multilabel_agrees_with_medmnist_functions():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 5)) < 0.3).astype(int)
    score = np.clip(0.35 * y + rng.random((200, 5)) * 0.7, 0, 1)
    m = classification_metrics(TaskSpec("multilabel", tuple("abcde"), 1), y, score)
    assert m["accuracy"] == pytest.approx(getACC(y, score, "multi-label, binary-class"), abs=1e-9)
    assert m["auc"] == pytest.approx(getAUC(y, score, "multi-label, binary-class"), abs=1e-9)


def test_calibrated_accuracy_is_the_uniform_prior_decision_fitted_on_validation():
    """Validation scores already calibrated (mean p1 = positive frequency 1/4) fit no bias, so the offsets are
    -log(prior) and a test image is called positive when p1 > 1/4: the decision at a uniform prior."""
    val_y, val_p1 = np.array([0, 0, 0, 1]), np.array([0.1, 0.2, 0.3, 0.4])
    adjustment = fit_prior_adjustment(BINARY, val_y, np.stack([1 - val_p1, val_p1], axis=1))
    assert adjustment.offsets == pytest.approx([-np.log(0.75), -np.log(0.25)], abs=1e-5)
    test_p1 = np.array([0.2, 0.3, 0.45, 0.6, 0.1])
    test, test_y = np.stack([1 - test_p1, test_p1], axis=1), np.array([0, 1, 1, 1, 0])
    m = classification_metrics(BINARY, test_y, test, adjustment=adjustment)
    assert m.accuracy == pytest.approx(3 / 5)  # p1 > 0.5: 0 0 0 1 0
    assert m.accuracy_calibrated == pytest.approx(5 / 5)  # p1 > 0.25: 0 1 1 1 0
    assert m.calibration_offsets == list(adjustment.offsets)  # recorded, so the decisions can be re-derived
    assert classification_metrics(BINARY, test_y, test).accuracy_calibrated is None  # nothing fitted: undefined


def test_prior_adjustment_of_calibrated_multiclass_and_multilabel_scores_is_minus_log_prior():
    """Rows whose mean probability equals each class's (label's) validation frequency need no bias."""
    y = np.array([0, 0, 0, 1, 2, 2])
    score = np.array(
        [[0.8, 0.1, 0.1], [0.7, 0.1, 0.2], [0.6, 0.2, 0.2], [0.4, 0.3, 0.3], [0.3, 0.1, 0.6], [0.2, 0.2, 0.6]]
    )
    assert score.mean(axis=0) == pytest.approx([3 / 6, 1 / 6, 2 / 6])
    adjustment = fit_prior_adjustment(THREE_CLASS, y, score)
    expected = -np.log([3 / 6, 1 / 6, 2 / 6])
    assert np.array(adjustment.offsets) - adjustment.offsets[0] == pytest.approx(expected - expected[0], abs=1e-4)
    labels = np.array([[1, 0, 1], [0, 0, 1], [0, 1, 1], [0, 0, 0]])
    probs = np.array([[0.4, 0.1, 0.9], [0.2, 0.3, 0.6], [0.3, 0.3, 0.8], [0.1, 0.3, 0.7]])  # means 1/4, 1/4, 3/4
    offsets = fit_prior_adjustment(THREE_LABEL, labels, probs).offsets
    assert offsets == pytest.approx([np.log(3), np.log(3), -np.log(3)], abs=1e-4)  # -logit(prior)
    assert fit_prior_adjustment(THREE_CLASS, np.array([0, 0, 1]), score[:3]) is None  # class 2 absent: no prior


def test_old_metrics_without_calibrated_accuracy_read_fine():
    m = classification_metrics(BINARY, np.array([0, 1]), np.array([[0.8, 0.2], [0.3, 0.7]]))
    old = {k: v for k, v in dataclasses.asdict(m).items() if k not in ("accuracy_calibrated", "calibration_offsets")}
    read = RunMetrics.from_dict({"val": old, "test": old}).test
    assert read.accuracy_calibrated is None and read.calibration_offsets is None


def test_the_loop_fits_calibration_on_validation_only(tmp_path):
    """Flipping every test label flips every test decision's correctness and nothing else: test accuracy and
    calibrated accuracy become 1 minus themselves, which a calibration fitted on test labels would not give."""
    require_medmnist("breastmnist")
    config = TrainConfig(dataset="breastmnist", budget=Budget(steps=6), eval_every=3, batch_size=32)
    data = load_dataset("breastmnist", DataOptions(data_dir=DATA_DIR))
    flipped = dataclasses.replace(data, test=Split(data.test.images, 1 - data.test.labels))
    original, other = (train(config, progress=False, data=d).metrics for d in (data, flipped))
    assert original.val == other.val and original.val.accuracy_calibrated is not None
    assert other.test.accuracy == pytest.approx(1 - original.test.accuracy)
    assert other.test.accuracy_calibrated == pytest.approx(1 - original.test.accuracy_calibrated)
