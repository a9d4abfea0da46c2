"""The next-item use case through the real retraining flow: ``models:/sessions@champion`` and
``funnel serve`` (``POST /predict/sessions``) return the next 20 items of a visit's clicks so far,
and an identical retrain is compared with the champion on the test steps it never trained on
(a slice of the YooChoose click files from the data mirror)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import MIRROR, needs_mirror

FILES = ("yoochoose-clicks-100k_train_full.txt", "yoochoose-clicks-100k_test.txt")
pytestmark = [pytest.mark.integration, needs_mirror]


def write_click_slice(folder: Path, items: int = 200, share: float = 0.15, seed: int = 7) -> dict[str, str]:
    """The clicks on the ``items`` most clicked items, in a random ``share`` of the sessions with
    two or more of them, from both click files, where the use case reads them; their sha256 by file.
    (A small catalogue: a model learns it in a few epochs, so the test is quick.)"""
    from components.data.ingest import sha256_file

    folder.mkdir(parents=True, exist_ok=True)
    logs = {name: pd.read_csv(MIRROR / "yoochoose_clicks_100k" / name, sep="\t", dtype={"Time": str}) for name in FILES}
    popular = pd.concat(logs.values())["ItemId"].value_counts().index[:items]
    rng = np.random.default_rng(seed)
    for name, clicks in logs.items():
        clicks = clicks[clicks["ItemId"].isin(popular)]
        sizes = clicks["SessionId"].value_counts()
        sessions = sizes.index[sizes >= 2].to_numpy()
        kept = rng.choice(sessions, int(len(sessions) * share), replace=False)
        clicks[clicks["SessionId"].isin(kept)].to_csv(folder / name, sep="\t", index=False)
    return {name: sha256_file(folder / name) for name in FILES}


def test_sessions_champion_returns_next_items_and_an_identical_retrain_is_refused(project):
    import mlflow

    from components.errors import GateFailedError
    from flows.retrain import retrain
    from tests.flows.test_answers import post_to_server

    # given a slice of the click log and a small, quick model
    overrides = {
        "use_cases.sessions.data.files": write_click_slice(project / "data" / "sessions"),
        "use_cases.sessions.train.embedding_dim": 32,
        "use_cases.sessions.train.max_epochs": 3,
        "use_cases.sessions.train.batch_size": 64,
        "use_cases.sessions.train.learning_rate": 0.02,
        "use_cases.sessions.train.early_stopping_patience": 8,
        # a small slice tests the mechanics; quality is the full-data benchmark's
        "use_cases.sessions.gate.floors": {"mrr_at_20": 0.01},
        "use_cases.sessions.gate.slice_floors": {},
        "use_cases.sessions.gate.baseline_policy": "advisory",
    }
    # when the flow trains the first version
    first = retrain("sessions", overrides)
    # then it is champion: raw prefixes get 20 item ids with decreasing scores; an unknown item is
    # skipped, and a visit without a known click gets the popular list
    assert first["champion_version"] == "1"
    clicks = pd.read_csv(project / "data" / "sessions" / FILES[0], sep="\t")
    known = clicks["ItemId"].value_counts().index[:2].astype(str).tolist()
    model = mlflow.pyfunc.load_model("models:/sessions@champion")
    answer = model.predict(pd.DataFrame({"items": [" ".join(known), f"{' '.join(known)} 1", "", "1"]}))
    assert {"items", "scores"} <= set(answer.columns)
    assert len(answer["items"].iloc[0]) == 20
    assert np.all(np.diff(np.asarray(answer["scores"].iloc[0])) <= 0)
    assert list(answer["items"].iloc[1]) == list(answer["items"].iloc[0])
    assert list(answer["items"].iloc[3]) == list(answer["items"].iloc[2])
    assert answer["items"].iloc[2][0] == known[0]  # the most clicked item leads the popular list
    # and the evaluation holds every metric, the peers and the slices, counts and labels only
    metrics = json.loads((project / "reports" / "sessions" / "metrics.json").read_text())
    assert {"recall_at_20", "mrr_at_20", "recall_at_10", "hit_rate", "coverage", "popularity_bias",
            "peer_v_sknn_recall_at_20"} <= set(metrics["model"])
    assert metrics["baseline"]["name"] in ("transitions", "sequential rules", "v-sknn")
    assert metrics["model"]["mrr_at_20"] > metrics["model"]["peer_popularity_mrr_at_20"]
    assert {row["slice"] for row in metrics["slices"]} == {"prefix_length", "session_length", "target_item"}
    review = (project / "reports" / "sessions" / "review-v1.md").read_text()
    assert "The right next product is among the 20 shown in" in review
    # funnel serve answers POST /predict/sessions as the pyfunc does
    # (the clicks may come out of order with their unix times: scored in time order)
    rows = [{"items": " ".join(known)}, {"items": " ".join(reversed(known)), "times": "1396861871 1396861869.5"}]
    status, body = post_to_server("/predict/sessions", {"rows": rows}, ("sessions",))
    assert status == 200
    assert [p["items"] for p in body["predictions"]] == [list(answer["items"].iloc[0])] * 2
    # when the same data is retrained, the challenger ties the champion on the test steps: refused
    with pytest.raises(GateFailedError) as failed:
        retrain("sessions", overrides)
    assert "champion v1" in str(failed.value)
