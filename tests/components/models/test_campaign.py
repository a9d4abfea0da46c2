"""The ESMM campaign model on a real slice of the e-mail test: shapes, pCTCVR = pCTR x pCVR,
uplift independent of the row's arm, an unknown arm still scores, and a saved model loads back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import MIRROR, needs_mirror

pytestmark = needs_mirror


@pytest.fixture(scope="module")
def fitted():
    from components.models.campaign import (
        CampaignFeatures,
        CampaignTrain,
        build_campaign_model,
        outcome_labels,
    )
    from components.training.fit import fit_model

    frame = pd.read_csv(MIRROR / "hillstrom" / "hillstrom.csv").head(4000)
    features = CampaignFeatures(numeric=("recency", "history", "mens", "womens", "newbie"),
                                categorical=("zip_code", "channel"), arm="segment", control_arm="No E-Mail",
                                treatment_arms=("Mens E-Mail", "Womens E-Mail"), visit="visit", conversion="conversion")
    params = CampaignTrain(embedding_dim=3, tower_units=(16,), dropout=0.0, learning_rate=0.005, batch_size=256,
                           max_epochs=2, early_stopping_patience=1, validation_fraction=0.2)
    training, serving = build_campaign_model(frame.iloc[:3000], features, params, 7)
    fit = fit_model(training, frame.iloc[:3000], frame.iloc[3000:], outcome_labels(features), 256, 2, 1, 7)
    return serving, fit, frame.iloc[3000:].reset_index(drop=True)


def test_the_model_trains_and_its_conversion_is_visit_times_conversion_given_visit(fitted):
    from components.models.scorer import RowScorer

    serving, fit, rows = fitted
    assert np.all(np.isfinite(fit.history["loss"]))
    out = RowScorer(serving).score_outputs(rows)
    assert {k: v.shape for k, v in out.items()} == {k: (len(rows), 1) for k in ("pctr", "pcvr", "pctcvr", "uplift", "visit_uplift")}
    np.testing.assert_allclose(out["pctcvr"], out["pctr"] * out["pcvr"], atol=1e-6)
    # more visits than the base rate among the top-scored: better than a constant
    top = np.argsort(-out["pctr"].reshape(-1))[: len(rows) // 5]
    assert rows["visit"].to_numpy()[top].mean() > rows["visit"].mean()


def test_uplift_is_the_customers_whatever_arm_the_row_names_and_an_unknown_arm_scores(fitted):
    from components.models.scorer import RowScorer

    serving, _, rows = fitted
    scorer = RowScorer(serving)
    mine = scorer.score_outputs(rows.head(50))
    control = scorer.score_outputs(rows.head(50).assign(segment="No E-Mail"))
    unknown = scorer.score_outputs(rows.head(50).assign(segment="SMS"))
    np.testing.assert_allclose(mine["uplift"], control["uplift"], atol=1e-6)
    np.testing.assert_allclose(mine["uplift"], unknown["uplift"], atol=1e-6)
    assert np.all(np.isfinite(unknown["pctcvr"]))


def test_a_saved_campaign_model_loads_with_its_layers(fitted, tmp_path):
    import keras

    from components.models import register_layers
    from components.models.scorer import RowScorer

    serving, _, rows = fitted
    serving.save(tmp_path / "campaign.keras")
    register_layers()
    loaded = keras.saving.load_model(tmp_path / "campaign.keras")
    np.testing.assert_allclose(RowScorer(loaded).score_outputs(rows.head(20))["uplift"],
                               RowScorer(serving).score_outputs(rows.head(20))["uplift"], atol=1e-6)
