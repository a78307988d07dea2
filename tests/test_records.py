"""Typed, versioned records: every record round-trips through its JSON form with its schema number, records written
before schemas (the published results) are upgraded in memory, and any other schema is one message naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.data.dataset import DatasetSummary, LoadedDataset, Split
from benchmark.data.task import TaskSpec
from benchmark.errors import MedAugBenchError
from benchmark.grid.store import OK, SCHEMA, CellRecord, load_records, read_record, record_path, write_record
from benchmark.train.metrics import RunMetrics
from benchmark.train.record import ComputeReport, QualityReport, RunRecord, StrategyReport, upgrade_run_record_v1
from tests.fake_results import TASKS, fake_result

RESULTS = Path(__file__).resolve().parent.parent / "results"
CELL = {"dataset": "pneumoniamnist", "strategy": "cgan", "seed": 0}


def generative_result() -> dict:
    """A cgan run's record in its JSON form, with generator facts and a quality report."""
    task, labels = TASKS["pneumoniamnist"], np.array([0, 1] * 10)
    scores = np.stack([1 - labels * 0.8, labels * 0.8], axis=1)
    return fake_result(task, "pneumoniamnist", "cgan", labels, scores, np.random.default_rng(0))


def write_raw(root: Path, cell_id: str, result: dict, schema: str = SCHEMA) -> Path:
    """A cell record file written as given, past CellRecord's own checks."""
    path = record_path(root, cell_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"schema": schema, "cell_id": cell_id, "status": OK, "cell": CELL, "config": {}} | {"result": result}
        )
    )
    return path


def test_a_run_record_round_trips_through_its_json_form():
    data = generative_result()
    record = RunRecord.from_dict(data)
    assert record.to_dict() == data and RunRecord.from_dict(json.loads(json.dumps(data))) == record
    assert isinstance(record.strategy.quality, QualityReport) and record.dataset.task == TASKS["pneumoniamnist"]
    assert record.metrics.test.auc == data["metrics"]["test"]["auc"]
    assert record.strategy.quality.matched.floor.fid == data["strategy"]["quality"]["matched"]["floor"]["fid"]


def test_every_record_writes_its_schema_number():
    data = generative_result()
    assert data["schema"] == RunRecord.SCHEMA == 2
    assert data["metrics"]["schema"] == RunMetrics.SCHEMA == 1
    assert data["dataset"]["schema"] == DatasetSummary.SCHEMA == 1
    assert data["strategy"]["schema"] == StrategyReport.SCHEMA == 1
    assert data["strategy"]["quality"]["schema"] == QualityReport.SCHEMA == 3
    assert "schema" not in data["metrics"]["test"]  # a split's metrics are part of the metrics record
    assert set(data["code"]) == {"medaugbench", "git_commit", "git_dirty"}


def test_the_strategy_report_keeps_its_facts_beside_name_and_params():
    quality = generative_result()["strategy"]["quality"]
    facts = {"generator": {"generator": "cgan"}, "synthesis": {"generated": 20}, "compute": {"phases": {}}}
    report = StrategyReport.of("cgan", {"policy": "balance"}, facts | {"quality": quality})
    assert report.facts == {"generator": {"generator": "cgan"}, "synthesis": {"generated": 20}}  # compute: apart
    assert report.quality == QualityReport.from_dict(quality)
    data = report.to_dict()
    assert data["generator"] == {"generator": "cgan"} and data["name"] == "cgan" and data["quality"] == quality
    assert StrategyReport.from_dict(data) == report
    assert "quality" not in StrategyReport.of("none", {}, {}).to_dict()
    with pytest.raises(MedAugBenchError, match=r"strategy 'odd' reports \['name'\].*rename them"):
        StrategyReport.of("odd", {}, {"name": "other"})


def test_the_dataset_summary_states_the_data_a_run_used():
    task = TaskSpec("binary", ("a", "b"), 1)
    split = Split(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
    data = LoadedDataset("toy", task, split, split.subset(torch.arange(2)), split, 28, 8, {"file": "toy.npz"})
    summary = DatasetSummary.of(data, train_real=4, train_synthetic=6)
    assert (summary.val, summary.test, summary.image_size, summary.train_synthetic) == (2, 4, 8, 6)
    assert summary.to_dict()["task"] == {"kind": "binary", "labels": ["a", "b"], "channels": 1, "positive": 1}
    assert DatasetSummary.from_dict(summary.to_dict()) == summary


def test_a_record_without_a_schema_is_schema_1_and_upgraded_in_memory():
    data = generative_result()
    old = {k: v for k, v in data.items() if k not in ("schema", "code", "compute")}
    old["metrics"] = {k: v for k, v in data["metrics"].items() if k != "schema"}
    record = RunRecord.from_dict(old)
    assert record.code == {"medaugbench": None, "git_commit": None, "git_dirty": None}
    assert record.compute == ComputeReport() and record.compute.to_dict() == {}  # no compute counted then
    assert record.metrics == RunRecord.from_dict(data).metrics
    assert upgrade_run_record_v1(old) == old | {"code": record.code, "compute": {}}
    assert record.to_dict()["schema"] == 2  # written back in today's schema


@pytest.mark.parametrize(
    ("folder", "generative", "floor_measured"),
    [("quick", 6, True), ("cpu-balancing", 3, False), ("medmnist-resnet18", 0, False)],
)
def test_the_published_records_are_read(folder, generative, floor_measured):
    """Today's records and older ones (schema-2 quality scored test images: read as the shift, with no floor)."""
    records = load_records(RESULTS / folder)
    assert records and all(r.ok for r in records)
    assert all(r.result.metrics.test.n == r.result.dataset.test for r in records)
    scored = [r.result.strategy.quality for r in records if r.result.strategy.facts.get("generator")]
    assert len(scored) == generative and all(q.matched.shift is not None for q in scored)
    if floor_measured:
        assert all(q.matched.fake_vs_real.fid > q.matched.floor.fid < q.matched.shift.fid for q in scored)
    else:
        assert all(q.matched.floor is None for q in scored)


def test_a_record_of_a_future_schema_is_one_message(tmp_path):
    path = write_raw(tmp_path, "future", generative_result() | {"schema": 3})
    with pytest.raises(MedAugBenchError) as error:
        load_records(tmp_path)
    message = str(error.value)
    assert message.startswith(f"record {path}: the run record has schema 3; this medaugbench (")
    assert "reads schema 2: upgrade medaugbench, or re-run the cell with this version" in message


def test_a_part_of_a_future_schema_is_one_message_naming_the_part(tmp_path):
    result = generative_result()
    result["metrics"]["schema"] = 2
    path = write_raw(tmp_path, "part", result)
    with pytest.raises(MedAugBenchError, match=rf"record {path}: the metrics record has schema 2; .*reads schema 1"):
        read_record(path)


def test_an_older_schema_without_an_upgrade_is_one_message():
    quality = generative_result()["strategy"]["quality"] | {"schema": 1}
    with pytest.raises(
        MedAugBenchError, match="the quality report has schema 1; .* cannot upgrade it: re-run the cell"
    ):
        QualityReport.from_dict(quality)


def test_a_cell_record_of_another_layout_is_one_message_and_other_files_are_skipped(tmp_path):
    path = write_raw(tmp_path, "newer", generative_result(), schema="medaugbench.cell/2")
    with pytest.raises(MedAugBenchError, match=rf"record {path}: it has schema 'medaugbench.cell/2'"):
        read_record(path)
    other = record_path(tmp_path, "other")
    other.write_text(json.dumps({"schema": "something else"}))
    assert read_record(other) is None
    other.write_text("{half a reco")
    assert read_record(other) is None


def test_a_damaged_record_names_what_is_missing_or_unknown():
    data = generative_result()
    del data["dataset"]["train_real"]
    data["dataset"]["colour"] = "grey"
    with pytest.raises(MedAugBenchError, match=r"dataset summary lacks fields \['train_real'\] and has unknown "):
        RunRecord.from_dict(data)


def test_a_cell_record_holds_the_typed_run_record(tmp_path):
    data = generative_result()
    cell = CellRecord("c", OK, CELL, {}, result=data)
    assert isinstance(cell.result, RunRecord) and cell.to_dict()["result"] == data
    write_record(tmp_path, cell)
    assert read_record(record_path(tmp_path, "c")) == cell


def test_item_access_reads_the_json_form_for_code_not_yet_on_attributes():
    record = RunRecord.from_dict(generative_result())
    assert record["metrics"]["test"]["auc"] == record.metrics.test.auc
    assert record["dataset"]["task"]["kind"] == "binary" and record.strategy["name"] == "cgan"
    assert record.metrics["val"] == record.to_dict()["metrics"]["val"] and record.get("absent", 1) == 1
