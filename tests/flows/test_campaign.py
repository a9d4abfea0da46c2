"""The uplift use case through the real retraining flow: ``models:/campaign@champion`` and
``funnel serve`` return pCTR, pCVR, pCTCVR and uplift per customer, and the release review speaks
e-mails and conversions (a slice of the MineThatData e-mail test from the data mirror)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import MIRROR, needs_mirror

HILLSTROM = MIRROR / "hillstrom" / "hillstrom.csv"
OUTPUTS = ("pctr", "pcvr", "pctcvr", "uplift", "visit_uplift")
pytestmark = [pytest.mark.integration, needs_mirror]


def write_slice(folder: Path, rows: int) -> str:
    """The first ``rows`` customers of the e-mail test where the use case reads them; their sha256."""
    from components.data.ingest import sha256_file

    folder.mkdir(parents=True, exist_ok=True)
    pd.read_csv(HILLSTROM).head(rows).to_csv(folder / HILLSTROM.name, index=False)
    return sha256_file(folder / HILLSTROM.name)


def test_campaign_champion_scores_raw_customers_and_the_review_speaks_e_mails(project):
    import mlflow

    from flows.retrain import retrain
    from tests.flows.test_answers import post_to_server

    # given 8,000 customers (about 70 conversions) of the e-mail test in the project
    overrides = {
        "use_cases.campaign.data.files": {HILLSTROM.name: write_slice(project / "data" / "campaign", 8000)},
        "use_cases.campaign.train.max_epochs": 3,
        "use_cases.campaign.evaluate.baseline_max_iter": 50,
        "common.bootstrap_rounds": 40,
        # a few epochs on a slice need not match the peer or the floors: the mechanics are tested here
        "use_cases.campaign.gate.floors": {"visit_roc_auc": 0.5},
        "use_cases.campaign.gate.baseline_policy": "advisory",
    }
    # when the flow trains the first version
    result = retrain("campaign", overrides)
    # then it is champion, and the registered model scores raw customers in any arm
    assert result["champion_version"] == "1"
    customers = pd.read_csv(HILLSTROM).iloc[8000:8004].drop(columns=["visit", "conversion", "spend"]).reset_index(drop=True)
    scored = mlflow.pyfunc.load_model("models:/campaign@champion").predict(customers)
    assert set(OUTPUTS) <= set(scored.columns)
    assert ((scored["pctcvr"] <= scored["pctr"] + 1e-6) & scored["pcvr"].between(0, 1)).all()
    assert (scored["pctcvr"] - scored["pctr"] * scored["pcvr"]).abs().max() < 1e-5
    # the uplift is that of the customer, whatever arm the row names
    assert scored["uplift"].tolist() == pytest.approx(
        mlflow.pyfunc.load_model("models:/campaign@champion").predict(customers.assign(segment="No E-Mail"))["uplift"].tolist(),
        abs=1e-6)
    metrics = json.loads((project / "reports" / "campaign" / "metrics.json").read_text())
    assert metrics["baseline"]["name"] == "gradient_boosting_per_target"
    assert {"visit_roc_auc", "ctcvr_roc_auc", "cvr_roc_auc", "auuc", "conversions_per_1000_top_30pct"} <= set(metrics["model"])
    assert metrics["baseline_comparison"]["metric"] == "ctcvr_roc_auc"
    assert metrics["model"]["visit_roc_auc"] > 0.5
    # and the review says what e-mailing by uplift yields, in e-mails and conversions
    review = (project / "reports" / "campaign" / "review-v1.md").read_text()
    assert "extra conversions per 1,000 e-mails" in review
    card = (project / "reports" / "campaign" / "model-card-v1.md").read_text()
    assert "## In business terms" in card
    assert "extra conversions per 1,000 e-mails" in card
    assert (project / "reports" / "campaign" / "plots" / "qini.png").is_file()
    # funnel serve returns the same four numbers per customer at /predict/campaign
    status, body = post_to_server("/predict/campaign", {"rows": customers.head(1).to_dict(orient="records")},
                                  use_cases=("campaign",))
    assert status == 200
    served = body["predictions"][0]
    for name in OUTPUTS:
        assert served[name] == pytest.approx(float(scored[name].iloc[0]), abs=1e-5)
