"""The binary task trained and evaluated from a snapshot stream (train.streaming) on real frappe rows."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from components.config import load_params
from components.data.ingest import write_snapshot
from components.data.splits import split_use_case
from components.errors import ConfigError
from components.models.ctr import StreamingParams
from components.tasks.base import train_from_snapshot
from components.use_cases import get_use_case
from tests.conftest import ROOT, frappe_slice, needs_mirror

STREAMING = {"use_cases.ctr.train.max_epochs": 1, "use_cases.ctr.train.streaming.enabled": True,
             "use_cases.ctr.train.streaming.batch_rows": 400, "use_cases.ctr.train.streaming.peer_sample_rows": 1000,
             "use_cases.ctr.train.count_bins": 65536, "common.bootstrap_rounds": 50}


@needs_mirror
def test_ctr_trains_from_the_stream_and_evaluates_like_in_memory(tmp_path):
    # given real frappe rows in a snapshot of 500-row groups, read 400 rows at a time
    use_case = get_use_case("ctr")
    config = use_case.configure(load_params(ROOT / "params.yaml", STREAMING))
    frame = frappe_slice(3000).reset_index(drop=True)
    snapshot = write_snapshot("ctr", frame, "test", tmp_path, row_group_rows=500)
    # when the task trains from the stream and evaluates it
    trained = train_from_snapshot(use_case, config, frame, snapshot.path)
    streamed = use_case.task.evaluate(use_case, config, trained, tmp_path / "plots")
    # then it learnt, every metric the task names is there, and the peer's sample is on record
    splits = split_use_case(pd.read_parquet(snapshot.path), config)
    assert trained.stream is not None
    assert trained.splits.test.empty
    assert streamed.test_rows == splits.sizes["test"]
    assert use_case.task.metric_names(config.evaluate) <= set(streamed.metrics)
    assert set(streamed.baseline_metrics) == set(streamed.metrics)
    assert streamed.metrics["roc_auc"] > 0.7  # one epoch on ~2,100 rows; a trivial scorer gets 0.5
    assert {s["slice"] for s in streamed.slices} == set(config.features.slices)
    assert set(streamed.intervals)
    assert streamed.baseline_comparison is not None
    assert "seeded sample of 1000 of the" in streamed.baseline_note
    assert streamed.as_json()["baseline"]["note"] == streamed.baseline_note
    # and the same model evaluated on the in-memory test split gives the same model metrics and slices
    in_memory = use_case.task.evaluate(use_case, config, replace(trained, splits=splits, stream=None), tmp_path / "memory")
    for name, value in in_memory.metrics.items():
        assert streamed.metrics[name] == pytest.approx(value, abs=1e-6), name
    assert [(s["slice"], s["value"], s["rows"]) for s in streamed.slices] == [
        (s["slice"], s["value"], s["rows"]) for s in in_memory.slices]
    assert in_memory.baseline_note == ""


def test_a_train_section_that_cannot_stream_refuses_the_setting(tmp_path):
    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["use_cases"]["intent"].setdefault("train", {})["streaming"] = {"enabled": True}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"(?s)use_cases.intent.train.*streaming"):
        get_use_case("intent").configure(load_params(tmp_path / "params.yaml"))


@needs_mirror
@pytest.mark.parametrize(("name", "says"), [
    ("intent", "model builder 'tabular' cannot build from a stream"),
    ("recommend", "a ranking task cannot train from a stream"),
])
def test_streaming_where_the_builder_or_task_cannot_stream_is_refused(tmp_path, name, says):
    """The guards behind the typed setting (a ctr-style train section on another builder or task)."""
    use_case = get_use_case(name)
    config = use_case.configure(load_params(ROOT / "params.yaml"))
    config = replace(config, train=config.train.model_copy(update={"streaming": StreamingParams(enabled=True)}))
    frame = frappe_slice(200)
    path = write_snapshot(name, frame, "test", tmp_path).path
    with pytest.raises(ConfigError, match=says):
        train_from_snapshot(use_case, config, frame, path)
