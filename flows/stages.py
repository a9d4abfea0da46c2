"""The two DVC stages (``dvc repro``): the same components the flow runs, without Prefect."""

from __future__ import annotations

import logging

from components.config import load_params, load_settings
from components.data.ingest import derive, read_snapshot, read_source, write_snapshot
from components.data.validate import check_report, validate_frame
from components.evaluation.report import write_metrics_json
from components.tasks.base import train_from_snapshot
from components.use_cases import get_use_case

logger = logging.getLogger(__name__)


def run_snapshot_stage(name: str) -> str:
    """Ingest and validate a use case's source, write ``data/snapshots/<name>/``."""
    settings = load_settings()
    params = load_params(settings.params_path)
    config = get_use_case(name, params).configure(params)
    frame, source = read_source(name, config.params.data, settings)
    frame = derive(name, frame, config.transforms)
    check_report(validate_frame(name, frame, config.params.validate, settings.path(params.common.data_docs_dir),
                                delimiter=config.params.data.delimiter))
    snapshot = write_snapshot(name, frame, source, settings.path(params.common.snapshot_dir),
                              params.common.snapshot_row_group_rows)
    return str(snapshot.path)


def run_train_stage(name: str) -> str:
    """Train and evaluate on the snapshot; write ``reports/<name>/metrics.json`` and plots."""
    settings = load_settings()
    params = load_params(settings.params_path)
    use_case = get_use_case(name, params)
    config = use_case.configure(params)
    snapshot = read_snapshot(name, settings.path(params.common.snapshot_dir))
    trained = train_from_snapshot(use_case, config, snapshot.frame, snapshot.path)
    reports = settings.path(params.common.reports_dir) / name
    evaluation = use_case.task.evaluate(use_case, config, trained, reports / "plots")
    return str(write_metrics_json(evaluation, reports / "metrics.json"))
