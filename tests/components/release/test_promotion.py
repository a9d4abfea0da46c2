"""The gate and the promotion decision, as tables."""

from __future__ import annotations

import math
import types

import pytest

from components.config import GateParams
from components.release.promotion import decide_promotion

GATE = GateParams(primary_metric="roc_auc", min_delta=0.005, floors=types.MappingProxyType({"roc_auc": 0.9, "pr_auc": 0.6}))


@pytest.mark.parametrize(
    ("metrics", "champion_version", "champion_metrics", "champion_error", "promote", "failed"),
    [
        # first version, floors hold -> champion
        ({"roc_auc": 0.93, "pr_auc": 0.7}, None, None, None, True, []),
        # first version below a floor -> not promoted
        ({"roc_auc": 0.89, "pr_auc": 0.7}, None, None, None, False, ["floor.roc_auc"]),
        ({"roc_auc": 0.93, "pr_auc": 0.5}, None, None, None, False, ["floor.pr_auc"]),
        # beats the champion by more than min_delta
        ({"roc_auc": 0.94, "pr_auc": 0.7}, "3", {"roc_auc": 0.93}, None, True, []),
        # exactly champion + min_delta passes (>=)
        ({"roc_auc": 0.935, "pr_auc": 0.7}, "3", {"roc_auc": 0.93}, None, True, []),
        # better but not by min_delta
        ({"roc_auc": 0.932, "pr_auc": 0.7}, "3", {"roc_auc": 0.93}, None, False, ["beats_champion"]),
        # worse than the champion
        ({"roc_auc": 0.91, "pr_auc": 0.7}, "3", {"roc_auc": 0.93}, None, False, ["beats_champion"]),
        # worse and below a floor: both checks reported
        ({"roc_auc": 0.5, "pr_auc": 0.2}, "3", {"roc_auc": 0.93}, None, False,
         ["floor.roc_auc", "floor.pr_auc", "beats_champion"]),
        # metric missing or NaN never passes
        ({"pr_auc": 0.7}, None, None, None, False, ["floor.roc_auc"]),
        ({"roc_auc": math.nan, "pr_auc": 0.7}, None, None, None, False, ["floor.roc_auc"]),
        # the champion could not be scored on this test split: fail safe
        ({"roc_auc": 0.95, "pr_auc": 0.7}, "3", None, "schema changed", False, ["beats_champion"]),
    ],
)
def test_decide_promotion(metrics, champion_version, champion_metrics, champion_error, promote, failed):
    # given metrics and the current champion, when the gate decides
    decision = decide_promotion("intent", "4", metrics, GATE, champion_version, champion_metrics, champion_error)
    # then it promotes exactly when every check passes, and names the failed ones
    assert decision.promote is promote
    assert [c.name for c in decision.checks if not c.passed] == failed
    assert decision.verdict == ("passed" if promote else "failed")


def test_decision_tags_carry_numbers():
    decision = decide_promotion("intent", "2", {"roc_auc": 0.91, "pr_auc": 0.7}, GATE, "1", {"roc_auc": 0.93}, None)
    tags = decision.as_tags()
    assert tags["gate.verdict"] == "failed"
    assert tags["gate.beats_champion"].startswith("FAIL: roc_auc 0.9100 < champion v1 0.9300")
    assert tags["gate.floor.roc_auc"] == "pass: roc_auc 0.9100 >= 0.9000"


def test_slice_floors_gate_large_slices_only():
    gate = GateParams(primary_metric="roc_auc", min_delta=0.0, floors={"roc_auc": 0.5},
                      slice_floors={"roc_auc": 0.8}, min_slice_rows=50)
    slices = [
        {"slice": "VisitorType", "value": "New_Visitor", "rows": 300, "roc_auc": 0.85},
        {"slice": "VisitorType", "value": "Returning_Visitor", "rows": 2000, "roc_auc": 0.75},
        {"slice": "VisitorType", "value": "Other", "rows": 12, "roc_auc": 0.2},  # too small to gate
        {"slice": "Month", "value": "Feb", "rows": 60, "roc_auc": math.nan},  # one class: undefined
    ]
    decision = decide_promotion("intent", "2", {"roc_auc": 0.9}, gate, None, None, None, slices)
    names = {c.name: c.passed for c in decision.checks}
    assert names == {"floor.roc_auc": True, "slice.VisitorType:New_Visitor.roc_auc": True,
                     "slice.VisitorType:Returning_Visitor.roc_auc": False, "beats_champion": True}
    assert not decision.promote


def test_slice_check_names_are_valid_mlflow_tag_keys():
    from mlflow.utils.validation import _validate_tag_name

    from components.release.promotion import slice_check_name

    for value in ("[10, 100)", "<10", ">=500", "7-12 words", "Nov"):
        _validate_tag_name(f"gate.{slice_check_name('Amount_bucket', value, 'roc_auc')}")
