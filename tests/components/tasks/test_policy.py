"""The policy task kind: what it splits, and how the review words the off-policy evidence."""

from __future__ import annotations

import pandas as pd
import pytest

from components.config import load_params
from components.evaluation.compare import PairedComparison
from components.evaluation.report import Evaluation
from components.tasks import get_task
from components.use_cases import get_use_case
from tests.conftest import ROOT

METRICS = {"impressions": 5000.0, "clicks": 19.0, "logged_ctr": 0.0038, "effective_impressions": 4200.0,
           "min_effective_impressions": 500.0,
           "ctr_ipw": 0.0036, "ctr_snipw": 0.0037, "ctr_dr": 0.0036, "ground_truth_on_policy_ctr": 0.0042,
           "ground_truth_impressions": 10000.0,
           **{f"ground_truth_ctr_{e}": 0.004 for e in ("ipw", "snipw", "dr")},
           **{f"ground_truth_rel_error_{e}": 0.05 for e in ("ipw", "snipw", "dr")}}


def evaluation(low: float, high: float, **metrics: float) -> Evaluation:
    peer = PairedComparison("ctr_snipw", 5000, 0.0037, 0.0038, -0.0001, low, high, 0.5, 200)
    return Evaluation(metrics={**METRICS, **metrics}, baseline_name="the logged random policy", baseline_metrics={}, champion_version=None,
                      champion_metrics=None, champion_error=None, slices=[], plots=[], threshold=float("nan"),
                      test_rows=5000, intervals={"ctr_snipw": (0.002, 0.005)}, baseline_comparison=peer)


@pytest.mark.parametrize(("low", "high", "verdict"), [
    (-0.0007, 0.0003, "Not enough evidence that the new policy gets more clicks"),
    (-0.0009, -0.0001, "Not enough evidence that the new policy gets more clicks"),
    (0.0002, 0.0009, "There is evidence that the new policy gets more clicks"),
])
def test_the_review_says_in_words_whether_the_evidence_is_enough(low, high, verdict):
    sentences = get_task("policy").business_sentences(evaluation(low, high), {"rows": "impressions", "positives": "clicks"})
    text = " ".join(sentences)
    assert verdict in text
    assert ("Nothing should be promoted" in text) == (low <= 0)
    # impressions and clicks, per 1,000 impressions, and each estimator's error on the ground truth
    assert "5,000 held-out impressions" in text
    assert "3.80 clicks per 1,000 impressions" in text
    assert "relative error 0.05" in text
    assert "barely overlap" not in text


def test_the_review_warns_when_the_logs_barely_overlap_a_deterministic_policy():
    # given a top-items policy that agrees with the random logs on 64 impressions only
    sentences = get_task("policy").business_sentences(evaluation(-0.0055, -0.0022, effective_impressions=64.0), {})
    text = " ".join(sentences)
    assert "barely overlap this policy: its estimate rests on 64 effective impressions, fewer than 500" in text
    assert "Not enough evidence" in text


def test_the_split_holds_out_random_impressions_and_keeps_every_ground_truth_row_for_the_test():
    params = load_params(ROOT / "params.yaml")
    use_case = get_use_case("slots", params)
    config = use_case.configure(params)
    frame = pd.DataFrame({"impression_id": [f"{p}:{i}" for p in ("random", "bts") for i in range(400)],
                          "policy": ["random"] * 400 + ["bts"] * 400, "click": 0})
    splits = use_case.task.split(frame, config)
    assert set(splits.train["policy"]) == set(splits.validation["policy"]) == {"random"}
    assert (splits.test["policy"] == "bts").sum() == 400
    held_out = (splits.test["policy"] == "random").sum()
    assert 120 < held_out < 280  # test_fraction 0.5 of the random rows, by row hash
    assert len(splits.train) + len(splits.validation) + held_out == 400
