"""Off-policy estimators: limit cases, unbiasedness on simulated logs with known click rates,
the logged policy's distribution from its logs, and the interval against a fixed estimate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.evaluation.policy import (
    LoggedFeedback,
    against_fixed,
    context_free_distribution,
    effective_sample_size,
    estimate_all,
    estimate_ctr,
    ground_truth_metrics,
    logged_ctr,
    relative_error,
)


def simulated_logs(rows: int, seed: int = 0):
    """Uniform-random logs over 4 items with known click rates; the target shows item 3 (the best)."""
    rng = np.random.default_rng(seed)
    rates = np.array([0.01, 0.02, 0.03, 0.08])
    items = rng.integers(0, 4, rows)
    clicks = (rng.random(rows) < rates[items]).astype(float)
    target = (items == 3).astype(float)
    return rates, items, clicks, target


def test_each_estimator_of_the_logging_policy_itself_is_its_ctr():
    # given logs and a target policy identical to the logging one (uniform over 4 items)
    _, _, clicks, _ = simulated_logs(2000)
    quarter = np.full(len(clicks), 0.25)
    feedback = LoggedFeedback(clicks, quarter, quarter, np.zeros(len(clicks)), np.zeros(len(clicks)))
    # then IPW, SNIPW and DR (with any click model) all return its on-policy CTR
    for value in estimate_all(feedback).values():
        assert value == pytest.approx(logged_ctr(clicks))
    assert effective_sample_size(feedback) == pytest.approx(len(clicks))


@pytest.mark.parametrize("estimator", ["ipw", "snipw", "dr"])
def test_estimators_recover_a_better_policy_s_true_ctr_from_random_logs(estimator):
    # given 40,000 uniform-random impressions and a policy that always shows the 8% item
    rates, items, clicks, target = simulated_logs(40_000)
    # a deliberately wrong click model: DR must still be unbiased through its correction term
    model = np.full(4, 0.02)
    feedback = LoggedFeedback(clicks, np.full(len(clicks), 0.25), target, model[items], np.full(len(clicks), model[3]))
    # then the estimate is near 0.08, well above the logged CTR (the mean rate, 0.035)
    assert estimate_ctr(estimator, feedback) == pytest.approx(rates[3], abs=0.01)
    assert logged_ctr(clicks) == pytest.approx(rates.mean(), abs=0.005)


def test_dr_with_a_perfect_click_model_and_no_overlap_is_the_direct_method():
    # given a target that never shows the logged item (weights 0), DR is its model's expectation
    clicks = np.array([0.0, 1.0, 0.0])
    feedback = LoggedFeedback(clicks, np.full(3, 0.5), np.zeros(3), np.full(3, 0.3), np.full(3, 0.07))
    assert estimate_ctr("dr", feedback) == pytest.approx(0.07)
    assert estimate_ctr("ipw", feedback) == 0.0
    # and SNIPW has nothing to normalise by: undefined, never a number that could pass a gate
    assert np.isnan(estimate_ctr("snipw", feedback))


def test_feedback_refuses_zero_propensities_and_unknown_estimators():
    with pytest.raises(ValueError, match="propensity"):
        LoggedFeedback(np.zeros(2), np.array([0.5, 0.0]), np.zeros(2), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="one value per impression"):
        LoggedFeedback(np.zeros(2), np.ones(3), np.zeros(2), np.zeros(2), np.zeros(2))
    feedback = LoggedFeedback(np.zeros(2), np.ones(2), np.zeros(2), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="unknown off-policy estimator"):
        estimate_ctr("direct", feedback)


@pytest.mark.parametrize(("method", "expected"), [
    # item 0 chosen twice (p 0.2, 0.6), item 1 once (p 0.4) in position 1; item 1 once in position 2
    ("frequency", [[2 / 3, 1 / 3, 0.0], [0.0, 1.0, 0.0]]),
    ("mean_propensity", [[0.4 / 0.8, 0.4 / 0.8, 0.0], [0.0, 1.0, 0.0]]),
])
def test_a_context_free_policy_s_distribution_from_its_logs(method, expected):
    logs = pd.DataFrame({"position": [1, 1, 1, 2], "item_id": [10, 10, 11, 11], "p": [0.2, 0.6, 0.4, 0.9]})
    table = context_free_distribution(logs, "position", "item_id", "p", 2, [10, 11, 12], method)
    assert table == pytest.approx(np.array(expected))
    assert table.sum(axis=1) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="frequency, mean_propensity"):
        context_free_distribution(logs, "position", "item_id", "p", 2, [10, 11, 12], "posterior")


@pytest.mark.parametrize(("estimate", "truth", "error"), [
    (0.005, 0.004, 0.25), (0.003, 0.004, 0.25), (0.004, 0.004, 0.0), (0.004, 0.0, float("nan")),
    (float("nan"), 0.004, float("nan")),
])
def test_relative_error(estimate, truth, error):
    assert relative_error(estimate, truth) == pytest.approx(error, nan_ok=True)


def test_ground_truth_metrics_name_each_estimate_and_its_error():
    _, _, clicks, target = simulated_logs(4000)
    feedback = LoggedFeedback(clicks, np.full(len(clicks), 0.25), target, np.zeros(len(clicks)), np.zeros(len(clicks)))
    metrics = ground_truth_metrics(feedback, 0.08, "ground_truth")
    assert metrics["ground_truth_on_policy_ctr"] == 0.08
    assert metrics["ground_truth_rel_error_ipw"] == pytest.approx(abs(metrics["ground_truth_ctr_ipw"] - 0.08) / 0.08)
    assert set(metrics) == {"ground_truth_on_policy_ctr", *(f"ground_truth_{k}_{e}" for k in ("ctr", "rel_error")
                                                            for e in ("ipw", "snipw", "dr"))}


def test_the_interval_against_a_fixed_estimate_is_the_estimate_s_interval_shifted():
    # given a policy estimated near 0.08 on 4,000 impressions
    _, _, clicks, target = simulated_logs(4000)
    feedback = LoggedFeedback(clicks, np.full(len(clicks), 0.25), target, np.zeros(len(clicks)), np.zeros(len(clicks)))
    # when it is compared with a champion's recorded 0.03, it is clearly above it
    above = against_fixed("ctr_ipw", "ipw", feedback, 0.03, 200, 0)
    assert above.b == 0.03
    assert above.low > 0
    assert above.verdict() == "better"
    # and against its own estimate it is tied: the lower bound is below 0, so a gate refuses it
    tied = against_fixed("ctr_ipw", "ipw", feedback, above.a, 200, 0)
    assert tied.low < 0 < tied.high
    assert tied.low == pytest.approx(above.low + 0.03 - above.a)
