"""Optional model inputs end to end on a small real next-item model: the served API, batch scoring
and the MLflow pyfunc take a visit's clicks with or without their times; with times the clicks are
scored in time order, and times that cannot order them are refused naming the row and field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.models.sessions import SessionFeatures, SessionsTrain, build_serving, build_session_model
from components.serving.schema import keras_fields
from tests.components.models.test_sessions import cyclic_log

FEATURES = SessionFeatures(session="s", item="i", time="t")
IN_ORDER, SHUFFLED, TIMES = "103 104 105", "105 103 104", "1396861870.5 1396861869 1396861870"
# a value the answers must never quote
SECRET_TIME = "17zz9q"


@pytest.fixture(scope="module")
def serving_model():
    """The registered form of an (untrained) GRU over the cyclic log: its answer depends on the
    order of the clicks, which is all these tests need."""
    params = SessionsTrain(architecture="gru", embedding_dim=8, max_length=4, dropout=0.0, learning_rate=0.01,
                           learning_rate_decay=1.0, batch_size=32, max_epochs=1, early_stopping_patience=1, top_k=5)
    network = build_session_model(cyclic_log(sessions=20), FEATURES, params, seed=3)
    return build_serving(network, FEATURES, params.top_k)


@pytest.fixture(scope="module")
def client(serving_model):
    from starlette.testclient import TestClient

    from components.models.scorer import input_spec, optional_inputs
    from components.serving.app import build_app
    from components.serving.metrics import ServingMetrics
    from components.serving.store import ModelStore, ServeParams, build_served_model

    store = ModelStore(None, ["sessions"], ServeParams(max_rows=5), ServingMetrics())
    fields = keras_fields(input_spec(serving_model), optional_inputs(serving_model))
    store.put(build_served_model("sessions", "1", "run", serving_model, fields, None, float("nan"), store.executor,
                                 max_batch_rows=16))
    with TestClient(build_app(store)) as test_client:
        yield test_client
    store.close()


def items_of(client, rows: list[dict]) -> list[list[str]]:
    answer = client.post("/predict/sessions", json={"rows": rows})
    assert answer.status_code == 200, answer.json()
    return [p["items"] for p in answer.json()["predictions"]]


def test_the_model_declares_times_optional_and_the_signature_agrees(serving_model):
    from components.models.scorer import optional_inputs
    from components.release.registry import build_signature
    from components.serving.schema import read_fields

    assert optional_inputs(serving_model) == {"times"}
    signature = build_signature(serving_model)
    assert {s.name: s.required for s in signature.inputs.inputs} == {"items": True, "times": False}
    fields = read_fields(signature, {"items": "string", "times": "string"}, frozenset({"times"}))
    assert [(f.name, f.optional) for f in fields] == [("items", False), ("times", True)]


def test_without_times_the_answer_is_unchanged_and_with_times_the_clicks_are_put_in_time_order(client):
    in_order, shuffled = items_of(client, [{"items": IN_ORDER}]), items_of(client, [{"items": SHUFFLED}])
    # given the same clicks in another order, the model answers otherwise (so the order matters)
    assert in_order != shuffled
    # when the shuffled clicks come with their times (or with null / empty times: the order sent)
    rows = [{"items": SHUFFLED, "times": TIMES}, {"items": SHUFFLED, "times": None},
            {"items": SHUFFLED, "times": ""}, {"items": IN_ORDER}]
    # then they are scored in time order; without times as they came
    assert items_of(client, rows) == [in_order[0], shuffled[0], shuffled[0], in_order[0]]


@pytest.mark.parametrize(("row", "detail"), [
    ({"items": IN_ORDER, "times": "1 2"}, "rows[1].times: 2 times for 3 item ids; send one time per item id"),
    ({"items": IN_ORDER, "times": f"1 {SECRET_TIME} 3"}, "rows[1].times: 1 of 3 times are not unix seconds"),
    ({"items": IN_ORDER, "times": "1 2 -3"}, "rows[1].times: 1 of 3 times are not unix seconds"),
    ({"items": IN_ORDER, "times": 1396861869}, "rows[1].times: expected a string, got an integer"),
    ({"items": IN_ORDER, "when": "1 2 3"}, "rows[1]: unknown field(s) ['when']; the model takes ['items'] and "
                                          "optionally ['times']"),
    ({"times": "1 2 3"}, "rows[1]: missing field(s) ['items']"),
])
def test_times_that_cannot_order_the_clicks_are_a_422_naming_the_row_and_field(client, row, detail):
    answer = client.post("/predict/sessions", json={"rows": [{"items": IN_ORDER, "times": "1 2 3"}, row]})
    assert answer.status_code == 422
    assert detail in " ".join(answer.json()["details"])
    assert SECRET_TIME not in answer.text


def test_the_openapi_schema_lists_times_as_optional(client):
    row = client.get("/openapi.json").json()["components"]["schemas"]["sessions_row"]
    assert row["required"] == ["items"]
    assert row["properties"]["times"] == {"type": "string", "maxLength": 10_000, "nullable": True}


def test_batch_scoring_orders_by_times_where_given_and_rejects_times_it_cannot_use(serving_model, tmp_path):
    from components.models.scorer import RowScorer
    from components.serving.batch import REASON, score_file

    scorer = RowScorer(serving_model)
    source = tmp_path / "visits.csv"
    pd.DataFrame({"visit": [1, 2, 3, 4], "items": [IN_ORDER, SHUFFLED, SHUFFLED, SHUFFLED],
                  "times": ["", TIMES, "1 2", None]}).to_csv(source, index=False)
    result = score_file(scorer, "1", source, tmp_path / "out.csv", chunk_rows=2)
    assert (result.rows_scored, result.rows_rejected) == (3, 1)
    scored = pd.read_csv(tmp_path / "out.csv")
    assert scored["visit"].tolist() == [1, 2, 4]
    assert scored["items"].iloc[0] == scored["items"].iloc[1] != scored["items"].iloc[2]
    rejects = pd.read_csv(tmp_path / "out.rejects.csv")
    assert rejects[REASON].tolist() == ["times: 2 times for 3 item ids; send one time per item id, in the same "
                                        "order, or no times"]
    # a file without the optional column scores every row as sent
    pd.DataFrame({"items": [IN_ORDER, SHUFFLED]}).to_csv(source, index=False)
    assert score_file(scorer, "1", source, tmp_path / "out.csv", chunk_rows=2).rows_scored == 2


def test_the_mlflow_pyfunc_takes_times_optionally_and_refuses_bad_ones(serving_model, tmp_path):
    import mlflow

    from components.errors import InputSchemaError
    from components.release.registry import build_signature, save_model

    save_model(serving_model, str(tmp_path / "model"), signature=build_signature(serving_model))
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    without = model.predict(pd.DataFrame({"items": [IN_ORDER, SHUFFLED]}))
    timed = model.predict(pd.DataFrame({"items": [SHUFFLED, SHUFFLED], "times": [TIMES, ""]}))
    assert list(timed["items"].iloc[0]) == list(without["items"].iloc[0])
    assert list(timed["items"].iloc[1]) == list(without["items"].iloc[1])
    with pytest.raises(InputSchemaError, match=r"1 row\(s\) cannot be scored: row 1 times: 1 of 3 times") as caught:
        model.predict(pd.DataFrame({"items": [IN_ORDER, IN_ORDER], "times": ["1 2 3", f"1 2 {SECRET_TIME}"]}))
    assert SECRET_TIME not in str(caught.value)
    assert np.all(np.diff(np.stack(without["scores"].to_numpy()), axis=1) <= 0)
