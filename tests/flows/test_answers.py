"""The retrieval use case through the real retraining flow: ``models:/answers@champion`` and
``funnel serve`` answer raw text (StackFAQ slice from the data mirror)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import MIRROR, needs_mirror

STACKFAQ_XML = MIRROR / "stackfaq" / "stackExchange-FAQ.xml"
pytestmark = [pytest.mark.integration, needs_mirror]


def write_faq_slice(folder: Path, threads: int) -> str:
    """The first ``threads`` FAQ threads of StackFAQ as an XML file of the same shape; its sha256."""
    from components.data.ingest import sha256_file

    root = ElementTree.parse(STACKFAQ_XML).getroot()
    for pair in root.findall("qapair")[threads:]:
        root.remove(pair)
    folder.mkdir(parents=True, exist_ok=True)
    ElementTree.ElementTree(root).write(folder / STACKFAQ_XML.name, encoding="utf-8")
    return sha256_file(folder / STACKFAQ_XML.name)


def test_retrain_flow_leaves_a_champion_that_answers_raw_text(project, tmp_path, monkeypatch):
    import mlflow

    from flows.retrain import retrain

    monkeypatch.setenv("FUNNEL_EMBEDDING_CACHE", str(tmp_path / "embeddings"))
    sha = write_faq_slice(project / "data" / "answers" / "stackfaq", threads=40)
    overrides = {
        "use_cases.answers.data.files": {STACKFAQ_XML.name: sha},
        "use_cases.answers.validate.min_rows": 100,
        # a small slice tests the mechanics; quality is the full-data benchmark's
        "use_cases.answers.gate.floors": {"p_at_1": 0.7, "mrr": 0.7},
        "use_cases.answers.gate.slice_floors": {},
        "use_cases.answers.gate.baseline_policy": "advisory",
    }
    result = retrain("answers", overrides)
    assert result["champion_version"] == "1"
    model = mlflow.pyfunc.load_model("models:/answers@champion")
    answer = model.predict(pd.DataFrame({"text": ["how can I remove my facebook account", "zzzz qqqq"]}))
    assert {"answer_id", "answer", "confidence", "abstain", "answers", "scores"} <= set(answer.columns)
    assert len(answer) == 2
    assert len(answer["answers"].iloc[0]) == 5
    assert answer["answer_id"].iloc[0] == "faq002"  # "How do I delete my Facebook account?"
    assert not answer["abstain"].iloc[0]
    assert "facebook" in answer["answer"].iloc[0].lower()
    assert answer["confidence"].iloc[0] > answer["confidence"].iloc[1]
    metrics = json.loads((project / "reports" / "answers" / "metrics.json").read_text())
    assert metrics["model"]["p_at_1"] > metrics["baseline"]["p_at_1"]
    assert metrics["baseline"]["name"].startswith("tfidf_retrieval")
    # funnel serve answers it at /predict/answers, as the pyfunc does
    status, body = post_to_server("/predict/answers", {"rows": [{"text": "how can I remove my facebook account"}]})
    assert status == 200
    served = body["predictions"][0]
    assert served["answer_id"] == "faq002"
    assert served["answers"] == list(answer["answers"].iloc[0])
    assert served["abstain"] is False
    assert served["confidence"] == pytest.approx(float(answer["confidence"].iloc[0]), abs=1e-5)


def post_to_server(path: str, payload: dict, use_case: str = "answers") -> tuple[int, dict]:
    """POST ``payload`` to a funnel server serving the ``use_case`` champion of this project."""
    import http.client
    from urllib.parse import urlsplit

    from components.config import load_settings
    from components.serving.app import BackgroundServer, build_app, open_store
    from components.serving.store import ServeParams

    store = open_store(load_settings(), [use_case], ServeParams(poll_interval_s=60))
    try:
        with BackgroundServer(build_app(store)) as server:
            connection = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=30)
            try:
                connection.request("POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"})
                answer = connection.getresponse()
                return answer.status, json.loads(answer.read())
            finally:
                connection.close()
    finally:
        store.close()
