"""Drift monitoring flow: newest data vs the champion's training snapshot; retrain when it drifted."""

from __future__ import annotations

import inspect

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from components.config import load_params, load_settings
from components.data import versioning
from components.data.ingest import derive_like, read_source
from components.errors import DataValidationError, FunnelError, GateFailedError, ReviewError
from components.monitoring.monitor import (
    LAST_RETRAIN_TAG,
    detect_drift,
    drift_columns,
    retrain_allowed,
    utc_now,
)
from components.release import registry
from components.use_cases import get_use_case


def trigger_deployment(use_case: str, overrides: dict | None) -> str | None:
    """Start the use case's scheduled retrain deployment (``funnel schedule serve`` runs it) with
    ``run_deployment``; None when no such deployment exists, so the flow retrains in-process."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        started = run_deployment(f"retrain/{use_case}", parameters={"use_case": use_case, "overrides": overrides},
                                 timeout=0, as_subflow=True)
    except ObjectNotFound:
        return None
    assert not inspect.isawaitable(started)  # called from the sync drift flow: the FlowRun itself
    return f"triggered deployment retrain/{use_case}: flow run {started.id}"


@flow(name="drift", flow_run_name="drift-{use_case}")
def drift(use_case: str, retrain_on_drift: bool = True, overrides: dict | None = None) -> dict:
    """Compare the newest data with the champion's training snapshot (PSI per feature, label rate,
    champion score distribution); publish a table; on drift, retrain at most once per window."""
    logger = get_run_logger()
    settings = load_settings()
    params = load_params(settings.params_path, overrides)
    use_case_record = get_use_case(use_case, params)
    config = use_case_record.configure(params)
    alias = params.common.champion_alias
    champion = registry.get_alias_version(settings, use_case, alias)
    if champion is None:
        raise FunnelError(f"{use_case} has no @{alias} yet: nothing to compare against; run `funnel retrain {use_case}`")
    md5 = champion.tags.get("data_md5", "")
    reference = versioning.read_cached_snapshot(settings.repo_root, md5, settings.dvc_remote)
    if reference is None:
        raise FunnelError(f"the champion's training snapshot {md5} is neither in the DVC cache nor the remote; `dvc pull` it")
    raw, _ = read_source(use_case, config.params.data, settings)
    current = derive_like(reference, raw)  # the champion's transforms, as at serving time
    columns = drift_columns(list(config.params.validate.columns), config.label, config.params.split)
    _, scorer = registry.load_row_scorer(settings, use_case, alias)
    score = use_case_record.task.drift_score(scorer)
    report = detect_drift(reference, current, columns, config.label, config.params.monitor, score)
    create_table_artifact(
        key=f"{use_case}-drift", table=report.table(),
        description=f"{use_case}: newest data vs champion v{champion.version}'s snapshot {md5[:8]}; "
                    + ("DRIFT: " + "; ".join(report.reasons) if report.drifted else "no drift"),
    )
    summary = {"use_case": use_case, "champion_version": str(champion.version), "drifted": report.drifted,
               "reasons": report.reasons, "retrain": "not needed"}
    if not report.drifted or not retrain_on_drift:
        logger.info("%s: %s", use_case, "drift: " + "; ".join(report.reasons) if report.drifted else "no drift")
        return summary
    last = registry.model_tags(settings, use_case).get(LAST_RETRAIN_TAG)
    allowed, why = retrain_allowed(last, utc_now(), config.params.monitor.min_hours_between_retrains)
    if not allowed:
        logger.warning("%s drifted but %s: not retraining", use_case, why)
        return {**summary, "retrain": f"skipped: {why}"}
    registry.set_model_tag(settings, use_case, LAST_RETRAIN_TAG, utc_now().isoformat(timespec="seconds"))
    logger.info("%s drifted (%s): retraining; the gate still decides", use_case, "; ".join(report.reasons))
    deployed = trigger_deployment(use_case, overrides)
    if deployed is not None:
        return {**summary, "retrain": deployed}
    from flows.retrain import retrain

    try:
        result = retrain(use_case, overrides)
        return {**summary, "retrain": f"v{result['version']} promoted"}
    except (GateFailedError, ReviewError) as exc:
        return {**summary, "retrain": f"ran, not promoted: {str(exc).splitlines()[0]}"}
    except DataValidationError as exc:
        return {**summary, "retrain": f"refused, the new data failed validation: {str(exc).splitlines()[1].strip()}"}
