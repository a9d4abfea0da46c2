"""The slot-policy use case through the real retraining flow: ``models:/slots@champion`` and
``funnel serve`` fill three positions for a user's features; the release review says in words
when the off-policy evidence is not enough, and the gate then promotes nothing (slices of the
Open Bandit logs from the data mirror)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from components.errors import GateFailedError
from tests.conftest import MIRROR, needs_mirror
from tests.flows.test_answers import post_to_server

OPEN_BANDIT = MIRROR / "open_bandit"
LOGS = {"random/all/all.csv": 2000, "bts/all/all.csv": 1000}
ITEMS = "random/all/item_context.csv"
USER = ["user_feature_0", "user_feature_1", "user_feature_2", "user_feature_3"]
pytestmark = [pytest.mark.integration, needs_mirror]


def write_slices(folder: Path) -> dict[str, str]:
    """The first rows of each policy's log and the whole item table where the use case reads
    them; their sha256 by file."""
    from components.data.ingest import sha256_file

    for name, rows in LOGS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        pd.read_csv(OPEN_BANDIT / name, index_col=0).head(rows).to_csv(folder / name)
    (folder / ITEMS).write_bytes((OPEN_BANDIT / ITEMS).read_bytes())
    return {name: sha256_file(folder / name) for name in (*LOGS, ITEMS)}


def test_slots_champion_fills_three_positions_and_weak_evidence_promotes_nothing(project):
    import mlflow

    from flows.retrain import retrain

    # given slices of the random and BTS logs, a few epochs, and the baseline check advisory
    files = write_slices(project / "data" / "slots")
    overrides = {"use_cases.slots.data.files": files, "use_cases.slots.train.max_epochs": 1,
                 "use_cases.slots.gate.floors": {"ctr_snipw": 0.0}, "use_cases.slots.gate.baseline_policy": "advisory"}
    # when the flow trains the first version
    first = retrain("slots", overrides)
    # then it is champion, and it fills positions 1-3 with items, click rates and probabilities
    assert first["champion_version"] == "1"
    model = mlflow.pyfunc.load_model("models:/slots@champion")
    users = pd.read_csv(project / "data" / "slots" / "random/all/all.csv", index_col=0)[USER].head(2)
    answer = model.predict(users)
    assert {"items", "scores", "probabilities"} <= set(answer.columns)
    items = set(pd.read_csv(OPEN_BANDIT / ITEMS)["item_id"])
    assert len(answer["items"].iloc[0]) == 3
    assert set(answer["items"].iloc[0]) <= items
    assert all(0 < p <= 1 for p in answer["probabilities"].iloc[0])
    metrics = json.loads((project / "reports" / "slots" / "metrics.json").read_text())
    assert metrics["model"]["impressions"] == metrics["test_rows"] > 0
    assert metrics["model"]["ground_truth_impressions"] == LOGS["bts/all/all.csv"]
    assert {"ctr_ipw", "ctr_snipw", "ctr_dr"} <= set(metrics["intervals"])
    assert metrics["baseline"]["name"] == "the logged random policy"
    # funnel serve answers it at /predict/slots with the policy version
    status, body = post_to_server("/predict/slots", {"rows": [users.iloc[0].to_dict()]}, ("slots",))
    assert status == 200
    assert body["model_version"] == "1"
    served = body["predictions"][0]
    assert len(served["items"]) == len(served["scores"]) == len(served["probabilities"]) == 3

    # when the same data is retrained under the gate of params.yaml (the estimate's interval must
    # clear the logged policy's CTR, and the champion's estimate)
    with pytest.raises(GateFailedError) as failed:
        retrain("slots", {"use_cases.slots.data.files": files, "use_cases.slots.train.max_epochs": 1})
    # then nothing is promoted, and the review says why in words, with the ground-truth check
    assert "beats_baseline" in str(failed.value)
    assert str(mlflow.MlflowClient().get_model_version_by_alias("slots", "champion").version) == "1"
    review = (project / "reports" / "slots" / "review-v2.md").read_text()
    assert "Not enough evidence" in review
    assert "relative error" in review
    assert "position" in review
    # no user's feature value reaches the committed metrics or the review
    hashes = set(users.to_numpy().ravel())
    text = (project / "reports" / "slots" / "metrics.json").read_text() + review
    assert not [value for value in hashes if value in text]

