"""The uplift task's checks and sentences: a split without an arm or conversions fails with counts."""

from __future__ import annotations

import pandas as pd
import pytest

from components.data.splits import Splits
from components.errors import DataValidationError
from components.evaluation.report import Evaluation
from components.models.campaign import CampaignFeatures
from components.tasks.uplift import UPLIFT, as_score_arrays, check_campaign_splits

FEATURES = CampaignFeatures(numeric=("recency",), categorical=(), arm="segment", control_arm="No E-Mail",
                            treatment_arms=("Mens E-Mail",), visit="visit", conversion="conversion")


def side(arms: list[str], conversions: int) -> pd.DataFrame:
    return pd.DataFrame({"segment": arms, "recency": 1, "visit": 1,
                         "conversion": [1] * conversions + [0] * (len(arms) - conversions)})


def test_a_split_without_the_control_arm_or_with_too_few_conversions_fails_naming_counts_only():
    both = side(["No E-Mail", "Mens E-Mail"] * 5, 6)
    splits = Splits(both, side(["Mens E-Mail"] * 10, 6), side(["No E-Mail", "Mens E-Mail"] * 5, 2))
    with pytest.raises(DataValidationError) as failed:
        check_campaign_splits(splits, FEATURES, 5, "campaign")
    message = str(failed.value)
    assert "validation split (10 rows) lacks 1 of the 2 arms" in message
    assert "test split has 2 conversions" in message
    assert "No E-Mail" not in message  # counts and column names, never values
    check_campaign_splits(Splits(both, both, both), FEATURES, 5, "campaign")


def test_a_misspelt_compared_metric_is_a_config_error_naming_the_known_ones():
    from components.config import parse_section
    from components.errors import ConfigError
    from components.tasks.uplift import UpliftEvaluate

    with pytest.raises(ConfigError, match=r"compared_metrics \['auc'\] are not campaign metrics; known: .*'auuc'"):
        parse_section(UpliftEvaluate, {"test_fraction": 0.2, "target_fractions": [0.3], "compared_metrics": ["auc"]},
                      "params.use_cases.campaign.evaluate")


def test_a_model_without_the_campaign_outputs_is_refused():
    with pytest.raises(ValueError, match="campaign outputs"):
        as_score_arrays(pd.DataFrame({"output": [0.1]}))


def test_the_business_sentence_counts_extra_conversions_per_thousand_e_mails():
    evaluation = Evaluation(
        metrics={"conversions_per_1000_top_30pct": 9.5, "conversions_per_1000_random": 4.2, "cvr_roc_auc": 0.6,
                 "vs_peer_cvr_roc_auc": 0.05, "ctcvr_roc_auc": 0.65, "visit_roc_auc": 0.64},
        baseline_name="gradient_boosting_per_target",
        baseline_metrics={"conversions_per_1000_top_30pct": 3.0, "cvr_roc_auc": 0.55, "ctcvr_roc_auc": 0.6,
                          "visit_roc_auc": 0.63},
        champion_version=None, champion_metrics=None, champion_error=None, slices=[], plots=[],
        threshold=float("nan"), test_rows=100,
        intervals={"conversions_per_1000_top_30pct": (1.0, 18.0), "vs_peer_cvr_roc_auc": (-0.01, 0.11)})
    sentences = UPLIFT.business_sentences(evaluation, {"rows": "customers", "treated": "e-mails", "positives": "conversions"})
    assert sentences[0].startswith("Sending e-mails to the top 30% of customers by predicted uplift yields +9.5 extra "
                                   "conversions per 1,000 e-mails (95% CI +1.0 to +18.0), vs +4.2 for sending them at random")
    assert "fitted on visitors only (Δ +0.050, 95% CI -0.010 to +0.110)" in sentences[1]
