"""The gate and the promotion decision, as tables."""

from __future__ import annotations

import math
import types

import pytest

from components.config import GateParams
from components.evaluation.compare import PairedComparison
from components.release.promotion import decide_promotion

# the point rule (gate.compare: point) with the baseline check advisory: the old gate, still selectable
GATE = GateParams(primary_metric="roc_auc", min_delta=0.005, floors=types.MappingProxyType({"roc_auc": 0.9, "pr_auc": 0.6}),
                  compare="point", baseline_policy="advisory")
PAIRED = GateParams(primary_metric="roc_auc", min_delta=0.001, floors={"roc_auc": 0.5}, baseline_margin=0.01,
                    slice_floors={"roc_auc": 0.5}, max_slice_drop=0.05, min_slice_rows=50)


def compared(delta: float, low: float, high: float, a: float = 0.93) -> PairedComparison:
    return PairedComparison("roc_auc", 2000, a, a - delta, delta, low, high, 0.01 if low > 0 else 0.4, 200)


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
                     "slice.VisitorType:Returning_Visitor.roc_auc": False, "beats_baseline": False, "beats_champion": True}
    assert not decision.promote


def test_slice_check_names_are_valid_mlflow_tag_keys():
    from mlflow.utils.validation import _validate_tag_name

    from components.release.promotion import slice_check_name

    for value in ("[10, 100)", "<10", ">=500", "7-12 words", "Nov"):
        _validate_tag_name(f"gate.{slice_check_name('Amount_bucket', value, 'roc_auc')}")



@pytest.mark.parametrize(
    ("champion", "baseline", "promote", "failed"),
    [
        # first version: no champion; the model ties its peer (interval spans 0, above -margin)
        (None, compared(0.002, -0.008, 0.012), True, []),
        # clearly worse than its peer: never promoted (non_inferior), even as the first version
        (None, compared(-0.03, -0.045, -0.015), False, ["beats_baseline"]),
        # tied with the peer within the margin's reach, but the interval dips below -margin
        (None, compared(-0.004, -0.014, 0.006), False, ["beats_baseline"]),
        # beats the champion: the lower bound of the paired interval exceeds min_delta
        (compared(0.02, 0.008, 0.031), compared(0.0, -0.005, 0.005), True, []),
        # a point estimate above champion + min_delta, but inside the noise: not promoted
        (compared(0.006, -0.004, 0.016), compared(0.0, -0.005, 0.005), False, ["beats_champion"]),
        # lower bound exactly min_delta does not exceed it
        (compared(0.01, 0.001, 0.02), compared(0.0, -0.005, 0.005), False, ["beats_champion"]),
        # an undefined interval (too few usable resamples) never passes
        (compared(0.02, math.nan, math.nan), compared(0.0, -0.005, 0.005), False, ["beats_champion"]),
    ],
)
def test_paired_gate(champion, baseline, promote, failed):
    version = "3" if champion is not None else None
    decision = decide_promotion("intent", "4", {"roc_auc": 0.93}, PAIRED, version, {"roc_auc": 0.91} if version else None,
                                champion_comparison=champion, baseline_comparison=baseline, baseline_name="lightgbm")
    assert decision.promote is promote
    assert [c.name for c in decision.checks if not c.passed] == failed


def test_paired_gate_without_a_comparison_fails_safe_and_says_why():
    decision = decide_promotion("intent", "4", {"roc_auc": 0.95}, PAIRED, "3", {"roc_auc": 0.9},
                                "only 40 test rows the champion never trained on", baseline_comparison=compared(0.0, -0.005, 0.005))
    check = {c.name: c for c in decision.checks}["beats_champion"]
    assert not check.passed
    assert "only 40 test rows" in check.detail


@pytest.mark.parametrize(("policy", "interval", "passed"), [
    ("non_inferior", (-0.009, 0.01), True), ("non_inferior", (-0.011, 0.01), False),
    ("superior", (0.001, 0.02), True), ("superior", (-0.001, 0.02), False),
    ("advisory", (-0.2, -0.1), True),
])
def test_baseline_policies(policy, interval, passed):
    gate = PAIRED.model_copy(update={"baseline_policy": policy})
    decision = decide_promotion("intent", "1", {"roc_auc": 0.93}, gate, None, None,
                                baseline_comparison=compared(sum(interval) / 2, *interval))
    check = {c.name: c for c in decision.checks}["beats_baseline"]
    assert check.passed is passed
    assert " baseline" in check.detail  # the peer's default name when none is given
    assert ("significantly worse" in check.detail) is (interval[1] < 0)


def test_a_slice_may_not_fall_below_the_champions_by_more_than_max_slice_drop():
    slices = [{"slice": "Month", "value": "Nov", "rows": 400, "roc_auc": 0.80},
              {"slice": "Month", "value": "May", "rows": 300, "roc_auc": 0.70},
              {"slice": "Month", "value": "Feb", "rows": 20, "roc_auc": 0.10}]  # too small to gate
    champion_slices = [{"slice": "Month", "value": "Nov", "rows": 400, "roc_auc": 0.84},
                       {"slice": "Month", "value": "May", "rows": 300, "roc_auc": 0.80},
                       {"slice": "Month", "value": "Feb", "rows": 20, "roc_auc": 0.90}]
    decision = decide_promotion("intent", "4", {"roc_auc": 0.93}, PAIRED, "3", {"roc_auc": 0.9}, None, slices,
                                champion_comparison=compared(0.02, 0.01, 0.03), baseline_comparison=compared(0, -0.005, 0.005),
                                champion_slices=champion_slices)
    checks = {c.name: c.passed for c in decision.checks if c.name.startswith("slice_vs_champion.")}
    assert checks == {"slice_vs_champion.Month:Nov.roc_auc": True, "slice_vs_champion.Month:May.roc_auc": False}
    assert not decision.promote


def test_the_beats_champion_tag_carries_the_interval_and_p_value():
    decision = decide_promotion("intent", "4", {"roc_auc": 0.93}, PAIRED, "3", {"roc_auc": 0.91},
                                champion_comparison=compared(0.02, 0.008, 0.031), baseline_comparison=compared(0, -0.005, 0.005))
    tag = decision.as_tags()["gate.beats_champion"]
    assert tag.startswith("pass: vs champion v3: roc_auc 0.9300 vs 0.9100")
    assert "[95% CI +0.0080, +0.0310], p=0.010" in tag


@pytest.mark.parametrize(("policy", "needs_review"), [("review", True), ("floors", False)])
def test_a_schema_change_follows_on_schema_change(policy, needs_review):
    gate = PAIRED.model_copy(update={"on_schema_change": policy})
    change = "schema change: champion v3 takes 12 columns; the new data lacks 2: Month, Region"
    baseline = compared(0.0, -0.004, 0.004)
    decision = decide_promotion("intent", "4", {"roc_auc": 0.93}, gate, "3", None, change,
                                baseline_comparison=baseline, schema_change=change)
    assert decision.promote
    assert decision.needs_review is needs_review
    assert decision.schema_change == change
    assert decision.action == "promote (schema change)"
    assert decision.as_tags()["gate.schema_change"] == change
    assert policy in decision.as_tags()["gate.beats_champion"]
    # the floors and the baseline check still decide
    low = decide_promotion("intent", "4", {"roc_auc": 0.4}, gate, "3", None, change,
                           baseline_comparison=baseline, schema_change=change)
    assert not low.promote
    assert low.failed_checks[0].startswith("floor.roc_auc")
    worse = decide_promotion("intent", "4", {"roc_auc": 0.93}, gate, "3", None, change,
                             baseline_comparison=compared(-0.05, -0.07, -0.03), schema_change=change)
    assert not worse.promote
    assert any(c.startswith("beats_baseline") for c in worse.failed_checks)


def test_without_a_champion_a_schema_note_changes_nothing():
    decision = decide_promotion("intent", "1", {"roc_auc": 0.93}, PAIRED, None, None,
                                baseline_comparison=compared(0.0, -0.004, 0.004), schema_change="irrelevant")
    assert decision.promote
    assert not decision.needs_review
    assert decision.schema_change is None
    assert decision.action == "promote"


def test_schema_change_names_the_missing_columns_only():
    import numpy as np

    from components.evaluation.report import ChampionScorer
    from components.release.champion import schema_change

    champion = ChampionScorer("3", lambda rows: np.zeros(len(rows)), 0.5,
                              input_columns=("Month", "Region", "PageValues"))
    assert schema_change(champion, ["Month", "Region", "PageValues", "extra"]) is None
    line = schema_change(champion, ["month", "PageValues"])
    assert line == "schema change: champion v3 takes 3 columns; the new data lacks 2: Month, Region"
    assert schema_change(None, []) is None
    assert schema_change(ChampionScorer("3", lambda rows: rows, 0.5), []) is None  # inputs unknown
