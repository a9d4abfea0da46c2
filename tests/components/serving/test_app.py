"""Serving's HTTP answers, in-process: predictions, JSON 4xx, health, readiness, metrics, OpenAPI."""

from __future__ import annotations

import pytest

from components.serving.app import build_app
from components.serving.metrics import ServingMetrics
from components.serving.store import ModelStore, ServeParams, build_served_model
from tests.components.serving.conftest import FIELDS, ROW, signature_of


@pytest.fixture(scope="module")
def client(keras_model):
    from starlette.testclient import TestClient

    store = ModelStore(None, ["toy"], ServeParams(max_rows=3, max_body_bytes=2000), ServingMetrics())
    spec = {"amount": "float32", "visits": "int64", "month": "string"}
    store.put(build_served_model("toy", "7", "run", keras_model, FIELDS, signature_of(spec), 0.4,
                                 store.executor, max_batch_rows=16))
    with TestClient(build_app(store)) as test_client:
        yield test_client
    store.close()


def test_app_answers_rows_with_the_served_version(client):
    answer = client.post("/predict/toy", json={"rows": [ROW, {**ROW, "month": "unseen"}]})
    assert answer.status_code == 200
    body = answer.json()
    assert body["model_version"] == "7"
    assert answer.headers["x-model-version"] == "7"
    assert body["decision_threshold"] == pytest.approx(0.4)
    assert [set(p) for p in body["predictions"]] == [{"probability"}, {"probability"}]
    assert all(0 <= p["probability"] <= 1 for p in body["predictions"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("post", "/predict/toy", b"{not json", 400, "not valid JSON"),
        ("post", "/predict/toy", b'{"rows": [{"amount": 1}]}', 422, "missing field(s) ['month', 'visits']"),
        ("post", "/predict/toy", b'{"rows": [' + b"{}," * 3 + b"{}]}", 422, "limit is 3"),
        ("post", "/predict/toy", b" " * 2001, 413, "limit is 2000"),
        ("post", "/predict/other", b"{}", 404, "unknown use case 'other'; this server serves ['toy']"),
        ("get", "/predict/toy", None, 405, "GET is not allowed"),
        ("get", "/nowhere", None, 404, "no such endpoint /nowhere"),
    ],
)
def test_app_answers_bad_requests_with_a_json_4xx(client, method, path, body, status, fragment):
    answer = client.request(method.upper(), path, content=body)
    assert answer.status_code == status
    assert fragment in answer.json()["error"] + " ".join(answer.json().get("details", []))


def test_app_exposes_health_readiness_metrics_and_its_openapi(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"ready": True, "versions": {"toy": "7"}}
    client.post("/predict/toy", json={"rows": [ROW]})
    metrics = client.get("/metrics").text
    assert 'funnel_serving_requests_total{status="200",use_case="toy"}' in metrics
    assert 'funnel_serving_model_version{use_case="toy"} 7.0' in metrics
    spec = client.get("/openapi.json").json()
    row = spec["components"]["schemas"]["toy_row"]
    assert row["required"] == ["amount", "visits", "month"]
    assert {name: s["type"] for name, s in row["properties"].items()} == {
        "amount": "number", "visits": "integer", "month": "string"}
    assert spec["components"]["schemas"]["toy_request"]["properties"]["rows"]["maxItems"] == 3


@pytest.mark.parametrize(("threads", "expected"), [(1, (1, 1)), (0, (0, 0))])
def test_tf_threads_reach_tensorflow_in_a_fresh_worker(threads, expected):
    """common.serving.tf_threads sets both TensorFlow pools before the first op (0 leaves TensorFlow's
    default, which it reports as 0); run in a new process, as a serving worker starts."""
    import subprocess
    import sys

    code = (
        "from components.serving.app import limit_tf_threads\n"
        f"limit_tf_threads({threads})\n"
        "import tensorflow as tf\n"
        "tf.constant(1.0) + 1.0\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads(), "
        "tf.config.threading.get_inter_op_parallelism_threads())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert tuple(int(n) for n in done.stdout.split()[-2:]) == expected
