"""The serving benchmark's request bodies and reply parsing for its peers (benchmarks/peers/protocol.py)."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.peers.protocol import (
    flatten,
    max_gap,
    mlserver_model_settings,
    reply_predictions,
    v2_request,
)


def test_v2_request_numeric_row_is_one_1x1_tensor_per_column_in_signature_order():
    # given a signature of a float and an int column
    columns = {"PageValues": "float32", "Region": "int64"}

    # when one row becomes a V2 request
    body = v2_request(columns, {"Region": 3, "PageValues": 12.5})

    # then each column is a (1, 1) tensor of its V2 datatype, and the signature decides the decoding
    assert body == {"inputs": [
        {"name": "PageValues", "shape": [1, 1], "datatype": "FP32", "data": [12.5]},
        {"name": "Region", "shape": [1, 1], "datatype": "INT64", "data": [3]},
    ]}


def test_v2_request_with_a_string_column_is_a_pandas_request():
    body = v2_request({"text": "string", "n": "int64"}, {"text": "where is my card?", "n": 1})

    assert body["parameters"] == {"content_type": "pd"}
    assert body["inputs"][0] == {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["where is my card?"]}
    assert body["inputs"][1]["shape"] == [1]


@pytest.mark.parametrize(("columns", "row", "named"), [
    ({"a": "float32"}, {"b": 1.0}, "'a'"),
    ({"a": "complex64"}, {"a": 1.0}, "'a'"),
])
def test_v2_request_refuses_a_missing_column_or_an_unknown_dtype_naming_the_column(columns, row, named):
    with pytest.raises(ValueError, match=named):
        v2_request(columns, row)


def test_mlserver_model_settings_turn_on_adaptive_batching_in_seconds():
    settings = mlserver_model_settings("intent", "/models/intent", 4, 2.0, parallel_workers=0)

    assert settings == {"name": "intent", "implementation": "mlserver_mlflow.MLflowRuntime", "max_batch_size": 4,
                        "max_batch_time": 0.002, "parameters": {"uri": "/models/intent"}, "parallel_workers": 0}
    assert "parallel_workers" not in mlserver_model_settings("intent", "/m", 1, 0.0)


def test_mlserver_model_settings_refuse_an_empty_batch():
    with pytest.raises(ValueError, match="max_batch_size"):
        mlserver_model_settings("intent", "/m", 0, 2.0)


def test_reply_predictions_read_each_servers_reply_alike():
    # given the same two-output prediction as each server answers it
    funnel = {"use_case": "recommend", "model_version": "1", "predictions": [{"items": [3, 1], "scores": [0.5, 0.25]}]}
    mlflow = {"predictions": [{"scores": [0.5, 0.25], "items": [3, 1]}]}
    mlserver = {"model_name": "recommend", "outputs": [
        {"name": "scores", "shape": [1, 1], "datatype": "BYTES", "parameters": {"content_type": "pd_json"},
         "data": [json.dumps([0.5, 0.25])]},
        {"name": "items", "shape": [1, 1], "datatype": "BYTES", "parameters": {"content_type": "pd_json"},
         "data": ["[3, 1]"]},
    ]}
    bentoml = [{"items": [3, 1], "scores": [0.5, 0.25]}]

    # then every reply flattens to the same values, outputs in name order
    expected = [3, 1, 0.5, 0.25]
    for server, reply in [("funnel", funnel), ("mlflow", mlflow), ("mlserver", mlserver), ("bentoml", bentoml)]:
        assert reply_predictions(server, reply) == expected, server


def test_reply_predictions_of_a_v2_tensor_output():
    reply = {"outputs": [{"name": "output-1", "shape": [1], "datatype": "FP32", "data": [0.125]}]}

    assert reply_predictions("mlserver", reply) == [0.125]


@pytest.mark.parametrize(("server", "reply", "says"), [
    ("funnel", {"error": "the rows do not match"}, "'predictions'"),
    ("mlserver", {"error": "boom"}, "'outputs'"),
    ("mlserver", {"outputs": []}, "'outputs'"),
    ("torchserve", {}, "unknown server"),
])
def test_reply_predictions_say_what_a_reply_lacks(server, reply, says):
    with pytest.raises(ValueError, match=says):
        reply_predictions(server, reply)


def test_flatten_and_max_gap():
    assert flatten({"b": [[1, 2]], "a": 0}) == [0, 1, 2]
    assert max_gap([0.5, "x"], [0.5000001, "x"]) == pytest.approx(1e-7)
    assert max_gap([1.0], [1.0, 2.0]) == math.inf
    assert max_gap(["x"], ["y"]) == math.inf
    assert max_gap([], []) == 0.0
