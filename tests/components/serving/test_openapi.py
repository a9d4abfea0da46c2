"""Serving's OpenAPI spec of the served models."""

from __future__ import annotations

from components.serving.openapi import build_openapi
from components.serving.store import ServeParams


def test_openapi_lists_one_predict_path_per_served_model():
    assert set(build_openapi({}, ServeParams())["paths"]) == {"/health", "/ready", "/metrics"}
