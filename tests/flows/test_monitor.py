"""The drift flow on the real engines: quiet on the champion's own data, retrains once on a shift."""

from __future__ import annotations

import pytest

from tests.conftest import FAST, intent_slice

pytestmark = pytest.mark.integration


def test_drift_flow_is_quiet_then_retrains_once_per_window(project):
    from components.config import load_settings
    from components.monitoring.monitor import LAST_RETRAIN_TAG
    from components.release.registry import model_tags
    from flows.monitor import drift
    from flows.retrain import retrain

    retrain("intent", FAST)
    quiet = drift("intent", overrides=FAST)
    assert quiet["drifted"] is False
    assert quiet["retrain"] == "not needed"

    # the feed changes: sessions now carry much higher page values, all in November
    shifted = intent_slice().assign(Month="Nov")
    shifted["PageValues"] = (shifted["PageValues"] * 3 + 20).clip(upper=900)  # still valid data
    shifted.to_csv(project / "data" / "intent" / "online_shoppers_intention.csv", index=False)
    strict = {**FAST, "use_cases.intent.gate.floors": {"roc_auc": 0.999, "pr_auc": 0.999}}
    loud = drift("intent", overrides=strict)
    assert loud["drifted"] is True
    assert any("PageValues" in r for r in loud["reasons"])
    # the retrain ran and the gate still decided (here: too strict to promote; v1 keeps serving)
    assert loud["retrain"].startswith("ran, not promoted: intent v2 did not pass")
    assert LAST_RETRAIN_TAG in model_tags(load_settings(), "intent")

    # within the window the persisting drift does not retrain again
    again = drift("intent", overrides=strict)
    assert again["drifted"] is True
    assert again["retrain"].startswith("skipped: a drift-triggered retrain already ran")

    # with the scheduled deployment registered (`funnel schedule serve`), drift starts it with
    # run_deployment instead of retraining in-process
    from prefect import get_client

    from components.config import load_params
    from flows.schedules import deployments

    deployment = next(d for d in deployments(load_params(load_settings().params_path), ["intent"]))
    deployment_id = deployment.apply()
    window_over = {**strict, "use_cases.intent.monitor.min_hours_between_retrains": 0}
    triggered = drift("intent", overrides=window_over)
    assert triggered["retrain"].startswith("triggered deployment retrain/intent: flow run ")
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    started = [r for r in runs if r.deployment_id == deployment_id]
    assert len(started) == 1
    assert started[0].parameters["use_case"] == "intent"
