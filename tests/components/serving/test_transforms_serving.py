"""Serving and batch scoring of a model trained with data.transforms: raw rows in, the same
``FittedTransforms.apply`` as the data step, scores equal to the offline-transformed rows."""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from components.data.ingest import value_kind
from components.data.transforms import fit_transforms, input_columns, parse_transforms
from components.errors import DataValidationError
from components.serving.schema import InputField, RequestError, parse_rows
from components.serving.store import ServeParams, build_served_model
from components.serving.transforms import request_fields
from tests.components.serving.conftest import signature_of

RAW = pd.DataFrame({
    "ordered_at": ["2026-01-05T08:15:00", "2026-01-05T08:40:00", "2026-01-06T21:05:00",
                   "2026-01-07T13:30:00", None, "2026-01-08T23:59:00"],
    "device": ["ios", "ios", "android", "web", "ios", "android"],
    "amount": [12.5, 3.0, 40.0, 7.25, 1.0, 18.0],
})
TRANSFORMS = [
    {"op": "parse_time", "column": "ordered_at"},
    {"op": "time_part", "column": "ordered_at", "parts": ["hour"]},
    {"op": "count_by", "keys": ["device"], "output": "device_count"},
]
SPEC = {"ordered_at_hour": "float32", "device_count": "int64", "amount": "float32", "device": "string"}
MODEL_FIELDS = tuple(InputField(name, dtype) for name, dtype in SPEC.items())
ROW = {"ordered_at": "2026-01-09T10:00:00", "device": "ios", "amount": 2.0}


@pytest.fixture(scope="module")
def fitted():
    return fit_transforms(RAW, parse_transforms(TRANSFORMS, "test"), use_case="orders")


@pytest.fixture(scope="module")
def state(fitted):
    """The transforms state the data step stores and the registered model carries."""
    return {"fitted": fitted.to_dict(), "inputs": {c: value_kind(RAW[c]) for c in input_columns(fitted)}}


@pytest.fixture(scope="module")
def keras_model():
    """A small real model on the derived features (hour, device count) plus two inputs sent as they are."""
    import keras

    from components.models.layers import FillMissing

    inputs = {name: keras.Input((1,), name=name, dtype=dtype) for name, dtype in SPEC.items()}
    device = keras.layers.StringLookup(vocabulary=["ios", "android"], output_mode="one_hot")(inputs["device"])
    features = keras.layers.Concatenate()([
        FillMissing([12.0])(inputs["ordered_at_hour"]), keras.ops.cast(inputs["device_count"], "float32"),
        inputs["amount"], device,
    ])
    dense = keras.layers.Dense(1, activation="sigmoid")
    model = keras.Model(inputs, dense(features))
    dense.set_weights([np.array([[0.1], [0.5], [0.02], [0.3], [-0.2], [0.4]], "float32"), np.array([-1.5], "float32")])
    return model


@pytest.fixture(scope="module")
def served(keras_model, fitted, state):
    executor = ThreadPoolExecutor(1)
    model = build_served_model("orders", "3", "run", keras_model, MODEL_FIELDS, signature_of(SPEC), 0.5,
                               executor, max_batch_rows=64,
                               transforms=(fitted, state["inputs"]))
    yield model
    executor.shutdown()


@pytest.fixture(scope="module")
def client(served):
    from starlette.testclient import TestClient

    from components.serving.app import build_app
    from components.serving.metrics import ServingMetrics
    from components.serving.store import ModelStore

    store = ModelStore(None, ["orders"], ServeParams(), ServingMetrics())
    store.put(served)
    with TestClient(build_app(store)) as test_client:
        yield test_client
    store.close()


def offline_scores(keras_model, fitted, frame: pd.DataFrame) -> np.ndarray:
    from components.models.scorer import RowScorer

    return RowScorer(keras_model).score(fitted.apply(frame))


def records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


# --- the request fields -------------------------------------------------------------------------

def test_request_fields_are_the_raw_columns_then_the_inputs_sent_as_they_are(fitted, state):
    assert state["inputs"] == {"ordered_at": "str", "device": "str"}
    assert request_fields(fitted, state["inputs"], MODEL_FIELDS) == (
        InputField("ordered_at", "string", nullable=True), InputField("device", "string", nullable=True),
        InputField("amount", "float32"),
    )


def test_raw_fields_take_nulls_and_their_types_while_the_other_fields_refuse_nulls_as_ever():
    fields = (InputField("seen_at", "float64", nullable=True), InputField("vip", "bool", nullable=True),
              InputField("amount", "float32"))
    packed, rows = parse_rows(fields, {"rows": [{"seen_at": 1.7e12, "vip": None, "amount": 1.0},
                                                {"seen_at": None, "vip": True, "amount": 2.0}]}, 10)
    assert rows == 2
    assert packed["float64"][:, 0].tolist() == [1.7e12, None]  # kept exact, as objects next to a null
    assert packed["bool"][:, 0].tolist() == [None, True]
    with pytest.raises(RequestError) as caught:
        parse_rows(fields, {"rows": [{"seen_at": "soon", "vip": 1, "amount": None}]}, 10)
    assert caught.value.details == ("rows[0].seen_at: expected a number, got a string",
                                    "rows[0].vip: expected a boolean, got an integer",
                                    "rows[0].amount: expected a number, got null")


# --- HTTP serving -------------------------------------------------------------------------------

def test_a_raw_row_scores_as_its_offline_transformed_features(client, keras_model, fitted):
    answer = client.post("/predict/orders", json={"rows": records(RAW)})
    assert answer.status_code == 200, answer.text
    online = [p["probability"] for p in answer.json()["predictions"]]
    np.testing.assert_allclose(online, offline_scores(keras_model, fitted, RAW), rtol=1e-6)
    assert len(set(np.round(online, 6))) > 3  # the features move the score: the comparison means something


def test_an_unseen_device_counts_zero(client, keras_model):
    answer = client.post("/predict/orders", json={"rows": [{**ROW, "device": "tv"}]})
    assert answer.status_code == 200, answer.text
    features = {"ordered_at_hour": np.array([[10.0]], "float32"), "device_count": np.array([[0]], "int64"),
                "amount": np.array([[2.0]], "float32"), "device": np.array([["tv"]])}
    expected = float(np.asarray(keras_model(features)).reshape(-1)[0])
    assert answer.json()["predictions"][0]["probability"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ({"ordered_at": ROW["ordered_at"], "amount": 1.0}, "rows[0]: missing field(s) ['device']"),
        ({**ROW, "device": 3}, "rows[0].device: expected a string, got an integer"),
        ({**ROW, "amount": None}, "rows[0].amount: expected a number, got null"),
        ({**ROW, "ordered_at": "next tuesday"}, "1 of 1 values of column 'ordered_at' are not timestamps"),
    ],
)
def test_a_raw_row_the_model_cannot_take_gets_a_422_naming_the_field(client, row, fragment):
    answer = client.post("/predict/orders", json={"rows": [row]})
    assert answer.status_code == 422
    body = answer.json()
    assert fragment in body["error"] + " ".join(body.get("details", []))
    assert "next tuesday" not in answer.text  # messages name columns and counts, never values


def test_a_request_the_transforms_refuse_does_not_fail_the_requests_batched_with_it(served):
    from components.serving.batching import MicroBatcher

    good, _ = parse_rows(served.fields, {"rows": [ROW]}, 10)
    bad, _ = parse_rows(served.fields, {"rows": [{**ROW, "ordered_at": "soon"}]}, 10)
    batches: list[int] = []

    async def both(batcher):
        return await asyncio.gather(batcher.submit(good, 1), batcher.submit(bad, 1), return_exceptions=True)

    with ThreadPoolExecutor(1) as executor:
        scored, refused = asyncio.run(both(MicroBatcher(served.scorer, executor, 64, batches.append)))
    assert batches == [2]  # one call for both, then each alone
    assert scored["output"].shape == (1, 1)
    assert isinstance(refused, RequestError)
    assert refused.status == 422


def test_the_openapi_spec_shows_the_raw_fields(served):
    from components.serving.openapi import build_openapi

    row = build_openapi({"orders": served}, ServeParams())["components"]["schemas"]["orders_row"]
    assert row["required"] == ["ordered_at", "device", "amount"]
    assert row["properties"]["ordered_at"] == {"type": "string", "maxLength": 10_000, "nullable": True}
    assert row["properties"]["amount"]["type"] == "number"
    assert "nullable" not in row["properties"]["amount"]


def test_a_model_without_transforms_keeps_its_keras_fields(keras_model):
    with ThreadPoolExecutor(1) as executor:
        plain = build_served_model("orders", "1", "run", keras_model, MODEL_FIELDS, signature_of(SPEC), 0.5,
                                   executor, max_batch_rows=8)
    assert plain.fields == MODEL_FIELDS
    assert not any(f.nullable for f in plain.fields)


# --- from the registry: the model's metadata decides -------------------------------------------

@pytest.fixture
def settings(tmp_path):
    import mlflow

    from components.config import Settings

    previous = mlflow.get_tracking_uri()
    yield Settings(repo_root=tmp_path, tracking_uri=f"sqlite:///{tmp_path / 'db.sqlite'}", artifact_location=None,
                   data_mirror=None, dvc_remote="", params_path=tmp_path / "params.yaml")
    mlflow.set_tracking_uri(previous)
    mlflow.set_registry_uri(previous)


def register(settings, keras_model, use_case: str, metadata: dict) -> None:
    import mlflow
    from mlflow.models import Model

    from components.release import registry

    client = registry.connect(settings)
    experiment = registry.ensure_experiment(client, use_case, str(settings.repo_root / "artifacts"))
    with mlflow.start_run(experiment_id=experiment):
        Model.log(artifact_path=None, name="model", flavor=sys.modules["components.release.registry"],
                  registered_model_name=use_case, keras_model=keras_model, signature=signature_of(SPEC),
                  metadata=metadata)
    client.set_registered_model_alias(use_case, "champion", "1")


def test_the_store_and_batch_scoring_take_the_transforms_of_the_registered_model(settings, keras_model, state,
                                                                                 tmp_path):
    from components.release import registry
    from components.serving.batch import load_batch_model
    from components.serving.store import load_served_model

    register(settings, keras_model, "orders", {registry.TRANSFORMS_KEY: state})
    register(settings, keras_model, "plain", {})
    with ThreadPoolExecutor(1) as executor:
        orders = load_served_model(settings, "orders", ServeParams(), executor)
        plain = load_served_model(settings, "plain", ServeParams(), executor)
    assert [f.name for f in orders.fields] == ["ordered_at", "device", "amount"]
    assert sorted(plain.fields, key=str) == sorted(MODEL_FIELDS, key=str)  # the Keras inputs, as before
    packed, _ = parse_rows(orders.fields, {"rows": records(RAW)}, 10)
    np.testing.assert_allclose(orders.scorer(packed)["output"].reshape(-1),
                               offline_scores(keras_model, registry.model_transforms(
                                   registry.load_version_model("orders", "1"))[0], RAW), rtol=1e-6)
    assert load_batch_model(settings, "orders", "champion")[2] is not None
    assert load_batch_model(settings, "plain", "champion")[2] is None


# --- batch scoring ------------------------------------------------------------------------------

def test_a_raw_file_scores_as_its_offline_transformed_features(tmp_path, keras_model, fitted):
    from components.models.scorer import RowScorer
    from components.serving.batch import REASON, score_file

    given = pd.concat([RAW, pd.DataFrame({"ordered_at": ["soon", "2026-02-01T07:00:00", "2026-02-02T09:00:00"],
                                          "device": ["ios", "tv", "web"], "amount": [1.0, 2.0, None]})],
                      ignore_index=True)
    source, target = tmp_path / "orders.csv", tmp_path / "orders.scored.csv"
    given.to_csv(source, index=False)
    result = score_file(RowScorer(keras_model), "3", source, target, chunk_rows=4, transforms=fitted)

    scored, rejects = pd.read_csv(target), pd.read_csv(result.rejects_path)
    kept = given.drop(index=[6, 8])  # a timestamp the transforms refuse, an amount left empty
    assert (result.rows_scored, result.rows_rejected) == (7, 2)
    assert scored[["ordered_at", "device"]].fillna("").values.tolist() == kept[["ordered_at", "device"]].fillna(
        "").values.tolist()  # the raw rows come back, the null timestamp scored (imputed) as online
    np.testing.assert_allclose(scored["score"], offline_scores(keras_model, fitted, kept), rtol=1e-6)
    assert rejects["ordered_at"].tolist() == ["soon", "2026-02-02T09:00:00"]
    assert "column 'ordered_at' are not timestamps" in rejects[REASON][0]
    assert rejects[REASON][1] == "amount is empty"


def test_a_file_without_a_raw_column_is_refused_as_a_whole(tmp_path, keras_model, fitted):
    from components.models.scorer import RowScorer
    from components.serving.batch import score_file

    source = tmp_path / "orders.csv"
    RAW.drop(columns=["ordered_at"]).to_csv(source, index=False)
    with pytest.raises(DataValidationError, match=r"columns \['ordered_at'\] are missing"):
        score_file(RowScorer(keras_model), "3", source, tmp_path / "out.csv", chunk_rows=4, transforms=fitted)


def test_only_the_rows_the_transforms_refuse_leave_a_chunk(fitted):
    from components.serving.batch import REASON, transform_rows

    frame = pd.DataFrame({"ordered_at": ["2026-01-05T08:15:00"] * 9, "device": ["ios"] * 9})
    frame.loc[[2, 7], "ordered_at"] = "not a time"
    features, refused = transform_rows(fitted, frame)
    assert features.index.tolist() == [0, 1, 3, 4, 5, 6, 8]
    assert features["ordered_at_hour"].tolist() == [8] * 7
    assert refused.index.tolist() == [2, 7]
    assert refused[REASON].str.contains("'ordered_at'").all()
