"""Serving: request validation, the compiled path, micro-batching and the HTTP answers (in-process)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from components.serving.app import (
    FLOAT32_MAX,
    INT64_MAX,
    CompiledScorer,
    InputField,
    MicroBatcher,
    ModelStore,
    RequestError,
    ServeParams,
    ServingError,
    ServingMetrics,
    build_app,
    build_openapi,
    build_served_model,
    pack_frame,
    parse_rows,
    read_fields,
)

FIELDS = (InputField("amount", "float32"), InputField("visits", "int64"), InputField("month", "string"))
ROW = {"amount": 12.5, "visits": 3, "month": "Feb"}


def test_parse_rows_packs_one_matrix_per_dtype():
    packed, rows = parse_rows(FIELDS, {"rows": [ROW, {**ROW, "visits": 4.0}]}, max_rows=10)
    assert rows == 2
    assert packed["float32"].dtype == np.float32
    assert packed["float32"].shape == (2, 1)
    assert packed["int64"][:, 0].tolist() == [3, 4]  # 4.0 is an integer in JSON
    assert packed["string"][:, 0].tolist() == ["Feb", "Feb"]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ([ROW], 'must be a JSON object {"rows"'),
        ({"rows": ROW}, 'must be a JSON object {"rows"'),
        ({"rows": []}, "'rows' is empty"),
        ({"rows": [ROW], "extra": 1}, "unknown top-level key(s) ['extra']"),
        ({"rows": [ROW] * 4}, "4 rows in one request; the limit is 3"),
        ({"rows": [{"amount": 1.0, "visits": 1}]}, "rows[0]: missing field(s) ['month']"),
        ({"rows": [{**ROW, "colour": "red"}]}, "rows[0]: unknown field(s) ['colour']"),
        ({"rows": [ROW, "x"]}, "rows[1]: expected an object"),
        ({"rows": [{**ROW, "month": 2}]}, "rows[0].month: expected a string, got an integer"),
        ({"rows": [{**ROW, "visits": 1.5}]}, "rows[0].visits: expected an integer, got a number"),
        ({"rows": [{**ROW, "visits": INT64_MAX + 1}]}, "outside the int64 range"),
        # orjson parses an integer literal below the int64 range as a float; it must not wrap to -2**63
        ({"rows": [{**ROW, "visits": -9.223372036854776e18}]}, "rows[0].visits: expected an integer, got a number"),
        ({"rows": [{**ROW, "amount": "12"}]}, "rows[0].amount: expected a number, got a string"),
        ({"rows": [{**ROW, "amount": True}]}, "expected a number, got a boolean"),
        ({"rows": [{**ROW, "amount": None}]}, "expected a number, got null"),
        ({"rows": [{**ROW, "amount": FLOAT32_MAX * 2}]}, "outside the float32 range"),
    ],
)
def test_parse_rows_refuses_bad_input_with_a_422_that_names_the_problem(payload, fragment):
    with pytest.raises(RequestError) as caught:
        parse_rows(FIELDS, payload, max_rows=3)
    assert caught.value.status == 422
    assert fragment in str(caught.value.as_json())


def test_parse_rows_reports_every_bad_field_of_every_row_up_to_a_limit():
    bad = {"amount": "x", "visits": "y", "month": 1}
    with pytest.raises(RequestError) as caught:
        parse_rows(FIELDS, {"rows": [bad] * 50}, max_rows=100)
    assert len(caught.value.details) == 20
    assert caught.value.details[:3] == (
        "rows[0].amount: expected a number, got a string",
        "rows[0].visits: expected an integer, got a string",
        "rows[0].month: expected a string, got an integer",
    )


def test_parse_rows_accepts_the_limits_of_the_tensor_types():
    row = {"amount": FLOAT32_MAX, "visits": -(2**63), "month": ""}
    packed, _ = parse_rows(FIELDS, {"rows": [row]}, max_rows=1)
    assert np.isfinite(packed["float32"]).all()
    assert packed["int64"][0, 0] == -(2**63)


def test_serve_params_refuse_impossible_settings():
    with pytest.raises(ServingError, match="poll_interval_s"):
        ServeParams(poll_interval_s=0)


# --- a small real Keras model with a float, an int and a string input ---------------------------

@pytest.fixture(scope="module")
def keras_model():
    import keras

    amount = keras.Input((1,), name="amount", dtype="float32")
    visits = keras.Input((1,), name="visits", dtype="int64")
    month = keras.Input((1,), name="month", dtype="string")
    month_id = keras.layers.StringLookup(vocabulary=["Jan", "Feb", "Mar"])(month)
    features = keras.layers.Concatenate()([
        amount, keras.ops.cast(visits, "float32"), keras.layers.Flatten()(keras.layers.Embedding(4, 2)(month_id)),
    ])
    probability = keras.layers.Dense(1, activation="sigmoid")(features)
    return keras.Model({"amount": amount, "visits": visits, "month": month}, probability)


def signature_of(names_and_types: dict[str, str]):
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    numpy_types = {"float32": np.dtype("float32"), "int64": np.dtype("int64"), "string": np.dtype(str)}
    return ModelSignature(
        inputs=Schema([TensorSpec(numpy_types[t], (-1, 1), n) for n, t in names_and_types.items()]),
        outputs=Schema([TensorSpec(np.dtype("float32"), (-1,), "probability")]),
    )


def test_read_fields_refuses_a_signature_that_disagrees_with_the_model():
    spec = {"amount": "float32", "visits": "int64", "month": "string"}
    assert read_fields(signature_of(spec), spec) == FIELDS
    with pytest.raises(ServingError, match="re-register the model"):
        read_fields(signature_of({"amount": "float32"}), spec)


def test_compiled_path_scores_like_the_row_scorer(keras_model):
    from components.models.scorer import RowScorer

    frame = pd.DataFrame({"amount": [0.5, -2.0, 7.0], "visits": [1, 0, 12], "month": ["Feb", "Dec", "Jan"]})
    expected = RowScorer(keras_model).score(frame)
    scorer = CompiledScorer(keras_model, FIELDS)
    got = scorer.score_packed(pack_frame(FIELDS, frame), batch_size=2)["output"].reshape(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_compiled_path_takes_the_flat_call_only_when_it_matches_the_public_call(keras_model, monkeypatch):
    frame = pd.DataFrame({"amount": [0.5, -2.0], "visits": [1, 12], "month": ["Feb", "Dec"]})
    scorer = CompiledScorer(keras_model, FIELDS)
    assert scorer._fast is not None  # this TensorFlow has the flat call
    packed = pack_frame(FIELDS, frame)
    np.testing.assert_array_equal(scorer(packed)["output"], scorer._public_call(packed).numpy())
    # a TensorFlow whose flat call answers differently, or fails, is not trusted. The public call
    # passes the captured inputs by keyword, the fast path positionally: only the latter is broken
    original = type(scorer._function)._call_flat

    def answers_otherwise(self, args, *positional, **keywords):
        out = original(self, args, *positional, **keywords)
        return out * 0 + 7 if positional else out

    def fails(self, args, *positional, **keywords):
        if positional:
            raise TypeError("changed in this TensorFlow")
        return original(self, args, *positional, **keywords)

    for broken in (answers_otherwise, fails):
        monkeypatch.setattr(type(scorer._function), "_call_flat", broken)
        fallback = CompiledScorer(keras_model, FIELDS)
        assert fallback._fast is None
        np.testing.assert_array_equal(fallback(packed)["output"], scorer(packed)["output"])


def test_micro_batcher_waits_for_the_recent_concurrency_but_never_for_a_lone_client():
    calls = []

    def score(packed):
        calls.append(len(packed["float32"]))
        return {"output": packed["float32"]}

    part = {"float32": np.zeros((1, 1), dtype="float32")}

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(score, executor, max_batch_rows=64, max_wait_ms=200)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await batcher.submit(part, 1)  # a lone client: no batch of more than one seen yet
            lone = loop.time() - started
            await asyncio.gather(*(batcher.submit(part, 1) for _ in range(3)))  # three together
            calls.clear()

            async def late(delay: float):
                await asyncio.sleep(delay)
                return await batcher.submit(part, 1)

            started = loop.time()
            # three clients again, but one arrives 20 ms late: the batch waits for it
            await asyncio.gather(late(0), late(0), late(0.02))
            together = loop.time() - started
            return lone, together

    lone, together = asyncio.run(scenario())
    assert lone < 0.1
    assert calls == [3]
    assert together < 0.15  # woken by the third arrival, not by the 200 ms deadline


def test_micro_batcher_joins_queued_requests_and_gives_each_its_rows():
    calls = []

    def score(packed):
        calls.append(len(packed["float32"]))
        return {"output": packed["float32"] * 2}

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(score, executor, max_batch_rows=5)
            parts = [{"float32": np.full((n, 1), float(n), dtype="float32")} for n in (1, 2, 3)]
            return await asyncio.gather(*(batcher.submit(p, len(p["float32"])) for p in parts))

    answers = asyncio.run(scenario())
    assert [a["output"][:, 0].tolist() for a in answers] == [[2.0], [4.0, 4.0], [6.0, 6.0, 6.0]]
    assert calls == [3, 3]  # 1 + 2 rows fit under max_batch_rows=5; the 3-row request goes next


def test_micro_batcher_hands_a_scoring_failure_to_every_request_of_the_batch():
    def score(packed):
        raise ValueError("broken model")

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(score, executor, max_batch_rows=5)
            part = {"float32": np.zeros((1, 1), dtype="float32")}
            return await asyncio.gather(batcher.submit(part, 1), batcher.submit(part, 1), return_exceptions=True)

    assert [str(a) for a in asyncio.run(scenario())] == ["broken model", "broken model"]


# --- the HTTP app, in-process -------------------------------------------------------------------

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


def test_openapi_lists_one_predict_path_per_served_model():
    assert set(build_openapi({}, ServeParams())["paths"]) == {"/health", "/ready", "/metrics"}
