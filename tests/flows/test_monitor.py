"""The drift flow on the real engines: quiet on the champion's own data, retrains once on a shift."""

from __future__ import annotations

import pytest

from tests.conftest import FAST, intent_slice

pytestmark = pytest.mark.integration


def test_drift_flow_is_quiet_then_retrains_once_per_window(project):
    from components.config import load_settings
    from components.monitor import LAST_RETRAIN_TAG
    from components.registry import model_tags
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
