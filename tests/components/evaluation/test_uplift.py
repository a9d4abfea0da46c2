"""Qini curve, AUUC and the campaign metrics: limit cases, a failure path, the names the gate may use."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from components.evaluation.campaign import Outcomes, compute_campaign_metrics, metric_names, rank_auc
from components.evaluation.uplift import effect_in_top, qini_curve, treatment_effect, uplift_areas
from components.tasks.uplift import PEER_PREFIX, UPLIFT, UpliftEvaluate


def persuadables(rows: int = 3000, seed: int = 3):
    """Half the rows respond only when treated (effect 0.4), the other half never: (outcome, treated, effect)."""
    rng = np.random.default_rng(seed)
    treated = rng.random(rows) < 0.6
    effect = np.where(np.arange(rows) % 2 == 0, 0.4, 0.0)
    outcome = (treated & (rng.random(rows) < effect)).astype(int)
    return outcome, treated, effect


def test_the_qini_curve_ends_at_the_average_effect_and_ranks_by_the_true_effect_first():
    outcome, treated, effect = persuadables()
    share, extra = qini_curve(outcome, treated, effect)
    assert (share[0], share[-1], extra[0]) == (0, 1, 0)
    assert extra[-1] == pytest.approx(treatment_effect(outcome, treated), abs=1e-12)
    best, worst = uplift_areas(outcome, treated, effect), uplift_areas(outcome, treated, -effect)
    # ATE 0.2: the perfect curve reaches it at 50% (area 0.15), the diagonal has area 0.1
    assert best["qini"] == pytest.approx(0.05, abs=0.01)
    assert worst["qini"] == pytest.approx(-0.05, abs=0.01)
    assert best["auuc"] - best["qini"] == pytest.approx(extra[-1] / 2)


def test_the_effect_in_the_top_share_is_that_of_the_responders_and_of_everyone_at_100_percent():
    outcome, treated, effect = persuadables()
    assert effect_in_top(outcome, treated, effect, 0.5) == pytest.approx(0.4, abs=0.05)
    assert effect_in_top(outcome, treated, effect, 1.0) == pytest.approx(treatment_effect(outcome, treated))


def test_uplift_needs_both_arms():
    outcome, treated, effect = persuadables()
    with pytest.raises(ValueError, match="treated and control"):
        uplift_areas(outcome, np.ones_like(treated), effect)
    assert np.isnan(treatment_effect(outcome, np.zeros_like(treated)))


def test_rank_auc_is_sklearns_roc_auc_with_ties_and_refuses_one_class():
    rng = np.random.default_rng(0)
    y, scores = rng.integers(0, 2, 400), np.round(rng.random(400), 1)
    assert rank_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert rank_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    with pytest.raises(ValueError, match="both classes"):
        rank_auc(np.zeros(5), np.arange(5))


def test_the_task_names_exactly_the_metrics_it_computes():
    outcome, treated, effect = persuadables()
    visit = np.maximum(outcome, (np.arange(len(outcome)) % 3 == 0).astype(int))
    outcomes = Outcomes(visit, outcome, treated)
    scores = {"pctr": effect + 0.1, "pcvr": effect, "pctcvr": effect / 2, "uplift": effect, "visit_uplift": effect}
    computed = compute_campaign_metrics(outcomes, scores, (0.3, 0.5))
    assert set(computed) == metric_names((0.3, 0.5))
    evaluate = UpliftEvaluate(test_fraction=0.2, target_fractions=(0.3, 0.5), compared_metrics=("auuc",))
    assert UPLIFT.metric_names(evaluate) == set(computed) | {PEER_PREFIX + "auuc"}
    # only: one metric on a subset of rows, as the bootstrap asks
    rows = np.arange(0, len(outcome), 2)
    assert set(compute_campaign_metrics(outcomes, scores, (0.3,), rows, only=["cvr_roc_auc"])) == {"cvr_roc_auc"}
