"""Serving's model store, its settings and its readiness decision."""

from __future__ import annotations

import pytest

from components.serving.schema import ServingError
from components.serving.store import ServeParams, decide_readiness


@pytest.mark.parametrize(
    "bad",
    [{"poll_interval_s": 0}, {"max_rows": 0}, {"max_body_bytes": 0}, {"max_string_chars": 0},
     {"max_failed_reloads": 0}, {"max_batch_wait_ms": -1.0}],
)
def test_serve_params_refuse_impossible_settings(bad):
    with pytest.raises(ServingError, match=f"{next(iter(bad))}.* must be|max_failed_reloads >= 1"):
        ServeParams(**bad)


@pytest.mark.parametrize(
    ("served", "champions", "failed", "reason"),
    [
        ({"a": "1"}, {"a": "1"}, {}, None),  # serving the champion
        ({"a": "1"}, {"a": "2"}, {"a": 2}, None),  # the reload of v2 failed, under the limit
        ({"a": "1"}, {"a": "2"}, {"a": 3}, "serving v1 but @champion is v2: 3 reloads in a row failed"),
        ({"a": "1"}, {"a": "2"}, {"a": 7}, "serving v1 but @champion is v2: 7 reloads in a row failed"),
        ({"a": "2"}, {"a": "2"}, {"a": 5}, None),  # the champion is served: a stale count says nothing
        ({"a": "1"}, {}, {"a": 5}, None),  # the alias was never looked up
        ({}, {"a": "1"}, {}, "no model loaded yet"),
        ({}, {"a": "1"}, {"a": 2}, "no model loaded yet (2 loads failed; see the server log)"),
    ],
)
def test_readiness_needs_a_model_and_fewer_failed_reloads_than_the_limit(served, champions, failed, reason):
    readiness = decide_readiness(["a"], served, champions, failed, max_failed_reloads=3, alias="champion")
    assert readiness.versions == {"a": served.get("a")}
    assert readiness.ready is (reason is None)
    if reason is None:
        assert readiness.reasons == {}
    else:
        assert readiness.reasons["a"].startswith(reason)


def test_readiness_names_only_the_use_cases_that_are_not_ready():
    readiness = decide_readiness(["a", "b"], {"a": "1", "b": "4"}, {"a": "1", "b": "5"}, {"b": 1},
                                 max_failed_reloads=1, alias="champion")
    assert not readiness.ready
    assert list(readiness.reasons) == ["b"]
    assert "max_failed_reloads = 1" in readiness.reasons["b"]
