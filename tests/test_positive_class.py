"""Binary metrics follow the positive class a dataset card names: BreastMNIST's is malignant (label 0), so its
sensitivity is the recall of malignant tissue, not of benign tissue; tables say which class recall is of, also for
records written before the card named it."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from medmnist import INFO

from benchmark import registry
from benchmark.data.cards import cards_dir, load_card
from benchmark.data.labels import safe_label
from benchmark.data.task import TaskSpec
from benchmark.publish.leaderboard import write_leaderboard
from benchmark.publish.report import write_report
from benchmark.train.metrics import classification_metrics
from tests.fake_results import make_fake_results
from tests.helpers import require_medmnist


def test_breastmnist_positive_class_is_malignant_label_0():
    task = registry.create("dataset", "breastmnist").task
    assert task.positive == 0 and task.labels[task.positive] == "malignant"
    assert registry.create("dataset", "pneumoniamnist").task.labels[1] == "pneumonia"
    assert registry.create("dataset", "pneumoniamnist").task.positive == 1


def test_breastmnist_sensitivity_is_the_recall_of_malignant():
    task = registry.create("dataset", "breastmnist").task
    # 4 malignant (label 0), all found; 6 benign (label 1), 3 of them called malignant
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    p_benign = np.array([0.1, 0.2, 0.3, 0.4, 0.9, 0.8, 0.7, 0.3, 0.2, 0.45])
    m = classification_metrics(task, y_true, np.stack([1 - p_benign, p_benign], axis=1))
    assert m.recall == 1.0 == m.recall_per_class[0]  # sensitivity: every malignant case found
    assert m.specificity == pytest.approx(0.5) == m.recall_per_class[1]  # half the benign ones cleared
    assert m.precision == pytest.approx(4 / 7)  # of 7 called malignant, 4 are
    # AUC keeps its orientation: the malignant score ranks malignant cases first, as label 1's score ranks label 1
    assert m.auc == m.auc_per_class[0] == pytest.approx(m.auc_per_class[1]) == pytest.approx(20 / 24)


@pytest.mark.parametrize("name", sorted(p.stem for p in cards_dir().glob("*mnist.md")))
def test_every_binary_card_names_a_positive_class_among_its_labels(name):
    info = INFO[name]
    if info["task"] != "binary-class":
        assert not load_card(name).positive_class, f"{name} is not binary; its metrics are macro means"
        return
    assert load_card(name).positive_class in info["label"].values()


def test_a_positive_class_that_is_not_a_label_is_refused():
    with pytest.raises(ValueError, match="positive class 'tumour' is not one of the labels"):
        TaskSpec.from_medmnist(INFO["breastmnist"], "tumour")


def test_datasets_show_names_the_positive_class(cli):
    require_medmnist("breastmnist")
    result = cli("datasets", "show", "breastmnist")
    assert result.exit_code == 0, result.output
    assert "Positive class: 0 (malignant)" in result.output


def _set_positive(results: Path, positive: int | None, strategy: str | None = None) -> None:
    """Rewrite fabricated records' task: `positive` given, or left out as in records written before dataset cards
    named a positive class (which took label 1); only `strategy`'s records when given."""
    for path in sorted((results / "records").glob("*.json")):
        record = json.loads(path.read_text())
        if strategy is not None and record["cell"]["strategy"] != strategy:
            continue
        task = record["result"]["dataset"]["task"]
        task.pop("positive", None)
        if positive is not None:
            task["positive"] = positive
        path.write_text(json.dumps(record))


@pytest.mark.parametrize(
    "positive, named",
    [(None, "'normal, benign' (label 1)"), pytest.param(0, "'malignant' (label 0)", marks=pytest.mark.slow)],
    ids=["old records: label 1", "records after the card: malignant"],
)
def test_breastmnist_tables_say_which_class_recall_is_of(tmp_path, positive, named):
    """Old BreastMNIST records (no positive class: label 1, benign) and new ones (malignant) give the same columns;
    the long and dataset CSVs, leaderboard.md and the HTML report name the class whose recall "recall" is."""
    make_fake_results(tmp_path, datasets=("breastmnist",), strategies=("none", "geometric"), seeds=(0, 1))
    _set_positive(tmp_path, positive)
    board = write_leaderboard(tmp_path)
    long = pd.read_csv(tmp_path / "leaderboard" / "long.csv")
    wide = pd.read_csv(tmp_path / "leaderboard" / f"{safe_label('breastmnist', set())}.csv")
    assert set(long["positive_class"]) == set(wide["positive_class"]) == {named}
    sentence = f"Recall (sensitivity) is the recall of {named}; specificity is the other class's recall"
    assert sentence in board.markdown
    assert html.escape(sentence) in write_report(tmp_path).read_text(encoding="utf-8")


def test_tables_mixing_old_and_new_breastmnist_records_say_so(tmp_path):
    make_fake_results(tmp_path, datasets=("breastmnist",), strategies=("none", "geometric"), seeds=(0, 1))
    _set_positive(tmp_path, 0, strategy="geometric")
    _set_positive(tmp_path, None, strategy="none")
    board = write_leaderboard(tmp_path)
    assert (
        "Recall (sensitivity) is of a different class in different records ('malignant' (label 0); 'normal, benign' "
        "(label 1))" in board.markdown
    )


def test_multiclass_tables_name_no_positive_class(tmp_path):
    make_fake_results(tmp_path, datasets=("retinamnist",), strategies=("none",), seeds=(0, 1))
    board = write_leaderboard(tmp_path)
    assert board.long["positive_class"].isna().all() and "Recall (sensitivity)" not in board.markdown
