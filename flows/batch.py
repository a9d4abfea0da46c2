"""Batch scoring flow: score a file with a use case's @champion (rejects kept apart, with reasons)."""

from __future__ import annotations

import inspect
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact

from components.config import load_params, load_settings
from components.serving.batch import load_batch_model, score_file


@flow(name="batch-score", flow_run_name="batch-score-{use_case}")
def batch_score(use_case: str, input_path: str, output_path: str | None = None) -> dict:
    """Score every row of ``input_path`` with ``<use_case>@champion`` (raw rows go through the model's
    transforms first); write scores (with the model version and the input's md5) next to it or to
    ``output_path``, rejected rows to ``*.rejects.csv``."""
    logger = get_run_logger()
    settings = load_settings()
    params = load_params(settings.params_path)
    version, scorer, transforms = load_batch_model(settings, use_case, params.common.champion_alias)
    source = Path(input_path).resolve()
    target = Path(output_path).resolve() if output_path else source.with_name(f"{source.stem}.scored.csv")
    progress_id = create_progress_artifact(progress=0.0, description=f"{use_case} v{version}: scoring {source.name}")
    assert not inspect.isawaitable(progress_id)  # a sync flow gets Prefect's sync API: the id itself

    def progress(done: int, total: int) -> None:
        update_progress_artifact(progress_id, progress=100.0 * done / max(total, 1))
        logger.info("%s: %d / %d rows", source.name, done, total)

    result = score_file(scorer, version, source, target, params.common.batch_chunk_rows, progress, transforms)
    summary = {
        "use_case": use_case, "model_version": version, "input": str(source), "input_md5": result.input_md5,
        "output": str(result.output_path), "rejects": str(result.rejects_path),
        "rows_scored": result.rows_scored, "rows_rejected": result.rows_rejected,
        "rows_per_second": round(result.rows_per_second, 1),
    }
    create_table_artifact(key=f"{use_case}-batch-score", table=[summary], description=f"{use_case} batch scoring")
    return summary
