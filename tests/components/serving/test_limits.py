"""Serving's safety limits on the real app: API keys, body and string limits, and readiness
against the real registry (MLflow on a temporary SQLite database)."""

from __future__ import annotations

import http.client
import json
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from components.serving.app import BackgroundServer, build_app, describe_auth, parse_api_keys
from components.serving.metrics import ServingMetrics
from components.serving.schema import InputField, ServingError
from components.serving.store import ModelStore, ServeParams, build_served_model
from tests.components.serving.conftest import FIELDS, ROW, signature_of

SPEC = {"amount": "float32", "visits": "int64", "month": "string"}


def serve_toy(keras_model, params: ServeParams, use_case: str = "toy") -> ModelStore:
    """A store serving the small real Keras model as ``use_case`` v7, its model calls counted."""
    store = ModelStore(None, [use_case], params, ServingMetrics())
    store.put(build_served_model(use_case, "7", "run", keras_model, FIELDS, signature_of(SPEC), 0.5, store.executor,
                                 max_batch_rows=16, observe_batch=store.metrics.batch_rows.labels(use_case).observe))
    return store


def model_calls(store: ModelStore, use_case: str) -> float:
    """How many micro-batches went to the model (the batcher observes each one before scoring it)."""
    return store.metrics.registry.get_sample_value("funnel_serving_batch_rows_count", {"use_case": use_case}) or 0.0


def requests_with_status(store: ModelStore, use_case: str, status: int) -> float:
    labels = {"use_case": use_case, "status": str(status)}
    return store.metrics.registry.get_sample_value("funnel_serving_requests_total", labels) or 0.0


# --- API keys ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keyed(keras_model):
    """The real app with two keys (the old one and the one replacing it), in-process."""
    from starlette.testclient import TestClient

    store = serve_toy(keras_model, ServeParams())
    with TestClient(build_app(store, parse_api_keys("old-key, new-key"))) as client:
        yield client, store
    store.close()


@pytest.mark.parametrize(
    ("headers", "status", "fragment"),
    [
        ({}, 401, "needs an API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"),
        ({"Authorization": "Bearer not-a-key"}, 401, "the API key sent is not valid"),
        ({"X-API-Key": "not-a-key"}, 401, "the API key sent is not valid"),
        ({"Authorization": "Basic b2xkLWtleQ=="}, 401, "needs an API key"),  # only the bearer scheme counts
        ({"Authorization": "Bearer old-key"}, 200, None),
        ({"Authorization": "bearer new-key"}, 200, None),  # the scheme is case-insensitive
        ({"X-API-Key": "new-key"}, 200, None),
        ({"X-API-Key": "wrong", "Authorization": "Bearer old-key"}, 200, None),
    ],
)
def test_predict_needs_one_of_the_keys(keyed, headers, status, fragment):
    client, store = keyed
    # given the app with keys, when a client posts a valid row with these headers
    calls = model_calls(store, "toy")
    answer = client.post("/predict/toy", json={"rows": [ROW]}, headers=headers)
    # then only a current key scores; a refusal says what to send, never echoes a key, skips the model
    assert answer.status_code == status
    if status == 401:
        assert fragment in answer.json()["error"]
        assert "not-a-key" not in answer.text
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert model_calls(store, "toy") == calls
    else:
        assert answer.json()["model_version"] == "7"
        assert model_calls(store, "toy") == calls + 1


def test_a_refused_key_is_counted_and_an_unknown_use_case_is_not_revealed(keyed):
    client, store = keyed
    before = requests_with_status(store, "toy", 401)
    assert client.post("/predict/toy", json={"rows": [ROW]}).status_code == 401
    assert requests_with_status(store, "toy", 401) == before + 1
    # without a key, a client cannot tell which use cases exist
    assert client.post("/predict/secret", json={"rows": [ROW]}).status_code == 401


def test_probes_stay_open_and_the_spec_needs_a_key(keyed):
    client, _ = keyed
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/openapi.json").status_code == 401
    spec = client.get("/openapi.json", headers={"X-API-Key": "old-key"}).json()
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "api_key"}
    assert spec["paths"]["/predict/toy"]["post"]["security"] == [{"bearer": []}, {"api_key": []}]
    assert "401" in spec["paths"]["/predict/toy"]["post"]["responses"]


def test_rotation_drops_the_old_key(keras_model):
    from starlette.testclient import TestClient

    # given the keys rotated: the old one removed from the variable and the server restarted
    store = serve_toy(keras_model, ServeParams())
    try:
        with TestClient(build_app(store, parse_api_keys("new-key"))) as client:
            old = client.post("/predict/toy", json={"rows": [ROW]}, headers={"Authorization": "Bearer old-key"})
            new = client.post("/predict/toy", json={"rows": [ROW]}, headers={"Authorization": "Bearer new-key"})
    finally:
        store.close()
    assert (old.status_code, new.status_code) == (401, 200)


def test_without_keys_no_header_is_needed(keras_model):
    from starlette.testclient import TestClient

    store = serve_toy(keras_model, ServeParams())
    try:
        with TestClient(build_app(store, parse_api_keys(None))) as client:
            assert client.post("/predict/toy", json={"rows": [ROW]}).status_code == 200
            assert client.post("/predict/toy", json={"rows": [ROW]},
                               headers={"Authorization": "Bearer anything"}).status_code == 200
            assert "securitySchemes" not in client.get("/openapi.json").json()["components"]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("value", "keys"),
    [(None, ()), ("one", (b"one",)), (" old , new ,", (b"old", b"new"))],
)
def test_parse_api_keys_reads_a_comma_separated_list(value, keys):
    assert parse_api_keys(value) == keys


@pytest.mark.parametrize("value", ["", " ", " , "])
def test_a_set_but_empty_key_variable_is_refused_not_taken_as_auth_off(value):
    with pytest.raises(ServingError, match="FUNNEL_SERVE_API_KEY is set but holds no key"):
        parse_api_keys(value)


def test_the_auth_line_says_off_or_how_many_keys_never_a_key():
    assert describe_auth(()).startswith("auth off")
    on = describe_auth(parse_api_keys("s3cret-a,s3cret-b"))
    assert on.startswith("auth on")
    assert "2 key(s)" in on
    assert "s3cret" not in on


# --- body and string limits, over HTTP on the real server ---------------------------------------

@pytest.fixture(scope="module")
def text_model():
    """A small real Keras text model (raw text in, a probability out), as sentiment and support."""
    import keras
    import numpy as np

    text = keras.Input((1,), name="text", dtype="string")
    vectorize = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=16)
    vectorize.adapt(np.array(["my card was declined", "where is my refund", "great film", "bad service"]))
    tokens = keras.layers.Reshape((16,))(vectorize(text))
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 4)(tokens))
    return keras.Model({"text": text}, keras.layers.Dense(1, activation="sigmoid")(pooled))


@pytest.fixture(scope="module")
def text_server(text_model):
    """The real app on uvicorn with the shipped default limits, serving the text model as ``support``."""
    store = ModelStore(None, ["support"], ServeParams(), ServingMetrics())
    fields = (InputField("text", "string"),)
    store.put(build_served_model("support", "3", "run", text_model, fields, signature_of({"text": "string"}), 0.5,
                                 store.executor, max_batch_rows=16,
                                 observe_batch=store.metrics.batch_rows.labels("support").observe))
    try:
        with BackgroundServer(build_app(store)) as server:
            yield server.url, store
    finally:
        store.close()


def post(url: str, body, headers: dict[str, str] | None = None, encode_chunked: bool = False) -> tuple[int, dict]:
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=30)
    try:
        connection.request("POST", "/predict/support", body, {"Content-Type": "application/json", **(headers or {})},
                           encode_chunked=encode_chunked)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def test_the_shipped_defaults_match_params_yaml():
    from components.config import load_params
    from tests.conftest import ROOT

    serving = load_params(ROOT / "params.yaml").common.serving
    defaults = ServeParams()
    assert (serving.max_body_bytes, serving.max_string_chars, serving.max_failed_reloads) == (
        defaults.max_body_bytes, defaults.max_string_chars, defaults.max_failed_reloads)


def test_a_4_mib_string_is_refused_with_413_and_never_reaches_the_model(text_server):
    url, store = text_server
    # given a 4 MiB text field (a valid row otherwise)
    body = json.dumps({"rows": [{"text": "refund " * (4 * 1024 * 1024 // 7)}]}).encode()
    calls = model_calls(store, "support")
    # when it is posted, then the declared length alone refuses it and the model never runs
    status, answer = post(url, body)
    assert status == 413
    assert f"the limit is {ServeParams().max_body_bytes}" in answer["error"]
    assert "refund" not in json.dumps(answer)
    assert model_calls(store, "support") == calls


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(text_server):
    url, store = text_server
    # given a client that declares 64 MiB and sends nothing: a server that read first would wait
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=10)
    try:
        connection.putrequest("POST", "/predict/support")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(64 * 1024 * 1024))
        connection.endheaders()
        answer = connection.getresponse()
        assert answer.status == 413
        assert "the body is 67108864 bytes" in json.loads(answer.read())["error"]
    finally:
        connection.close()


def test_a_chunked_body_is_capped_at_the_limit_as_it_is_read(text_server):
    url, store = text_server
    limit = ServeParams().max_body_bytes
    # given a body with no Content-Length, sent in chunks that add up to more than the limit
    piece = b" " * (256 * 1024)
    chunks = iter([b'{"rows": [{"text": "', *[piece] * (limit // len(piece) + 2), b'"}]}'])
    calls = model_calls(store, "support")
    status, answer = post(url, chunks, encode_chunked=True)
    assert status == 413
    assert f"larger than {limit} bytes" in answer["error"]
    assert model_calls(store, "support") == calls


@pytest.mark.parametrize("chars", [10_001, 200_000])
def test_a_string_over_max_string_chars_is_a_422_naming_the_field_and_the_limit(text_server, chars):
    url, store = text_server
    calls = model_calls(store, "support")
    status, answer = post(url, json.dumps({"rows": [{"text": "x" * chars}]}).encode())
    assert status == 422
    assert answer["details"] == [f"rows[0].text: a string of {chars} characters; the limit is 10000 "
                                 "(common.serving.max_string_chars)"]
    assert "xxxx" not in json.dumps(answer)
    assert model_calls(store, "support") == calls


def test_a_string_at_the_limit_is_scored(text_server):
    url, store = text_server
    calls = model_calls(store, "support")
    status, answer = post(url, json.dumps({"rows": [{"text": "refund " * 1428 + "card"}]}).encode())
    assert status == 200
    assert 0 <= answer["predictions"][0]["probability"] <= 1
    assert model_calls(store, "support") == calls + 1


# --- /ready against the real registry -----------------------------------------------------------

@pytest.fixture(scope="module")
def registry_settings(tmp_path_factory):
    """Settings of a throw-away MLflow (SQLite registry, artifacts in a folder)."""
    from components.config import Settings
    from tests.conftest import ROOT

    folder = tmp_path_factory.mktemp("registry")
    return Settings(repo_root=folder, tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
                    artifact_location=(folder / "artifacts").as_uri(), data_mirror=None,
                    dvc_remote=str(folder / "remote"), params_path=ROOT / "params.yaml")


def register_version(settings, keras_model, use_case: str) -> str:
    """Log ``keras_model`` with funnel's MLflow flavor and register it; its version number."""
    import mlflow
    from mlflow.models import Model

    from components.release import registry

    experiment_id = registry.ensure_experiment(registry.connect(settings), use_case, settings.artifact_location)
    with mlflow.start_run(experiment_id=experiment_id):
        info = Model.log(artifact_path=None, name="model", flavor=sys.modules["components.release.registry"],
                         registered_model_name=use_case, keras_model=keras_model,
                         signature=registry.build_signature(keras_model))
    return str(info.registered_model_version)


def artifact_folder(settings, use_case: str, version: str) -> Path:
    from components.release import registry

    uri = registry.connect(settings).get_model_version_download_uri(use_case, version)
    return Path(unquote(urlsplit(uri).path))


def ready(client) -> tuple[int, dict]:
    answer = client.get("/ready")
    return answer.status_code, answer.json()


def test_ready_is_503_after_n_failed_reloads_of_the_champion_and_200_once_one_succeeds(
        registry_settings, keras_model, tmp_path):
    from starlette.testclient import TestClient

    from components.release import registry

    # given v1 served as @champion, and a v2 whose artifacts are gone (a broken upload)
    settings = registry_settings
    assert register_version(settings, keras_model, "toy") == "1"
    assert register_version(settings, keras_model, "toy") == "2"
    broken, hidden = artifact_folder(settings, "toy", "2"), tmp_path / "hidden"
    shutil.move(broken, hidden)
    registry.set_alias(settings, "toy", "champion", "1")
    store = ModelStore(settings, ["toy"], ServeParams(max_failed_reloads=2), ServingMetrics())
    try:
        store.load_all()
        with TestClient(build_app(store)) as client:
            assert ready(client) == (200, {"ready": True, "versions": {"toy": "1"}})

            # when @champion moves to v2 and the reloads fail: ready until the limit, then 503
            registry.set_alias(settings, "toy", "champion", "2")
            store.refresh()
            assert ready(client)[0] == 200
            store.refresh()
            status, body = ready(client)
            assert status == 503
            assert body["versions"] == {"toy": "1"}
            assert body["reasons"]["toy"].startswith("serving v1 but @champion is v2: 2 reloads in a row failed")
            # v1 still answers: readiness takes the replica out, it does not stop scoring
            assert client.post("/predict/toy", json={"rows": [ROW]}).json()["model_version"] == "1"

            # then a rollback to the served version is ready again without a load
            registry.set_alias(settings, "toy", "champion", "1")
            store.refresh()
            assert ready(client) == (200, {"ready": True, "versions": {"toy": "1"}})

            # and after a new failure streak, a reload that succeeds (the artifacts are back) is ready
            registry.set_alias(settings, "toy", "champion", "2")
            store.refresh()
            store.refresh()
            assert ready(client)[0] == 503
            shutil.move(hidden, broken)
            store.refresh()
            assert ready(client) == (200, {"ready": True, "versions": {"toy": "2"}})
            failed = store.metrics.registry.get_sample_value(
                "funnel_serving_reloads_total", {"use_case": "toy", "outcome": "failed"})
            assert failed == 4
    finally:
        store.close()
