"""The OpenAPI 3.0 spec of the served models: one predict path per use case, rows typed by its signature."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.serving.schema import field_schema
from components.serving.store import ServedModel, ServeParams

SECURITY_SCHEMES = {"bearer": {"type": "http", "scheme": "bearer"},
                    "api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}


def _json_content(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def build_openapi(models: Mapping[str, ServedModel], params: ServeParams, authenticated: bool = False) -> dict[str, Any]:
    """OpenAPI 3.0 for the served models: one predict path per use case, rows typed by its signature.

    ``authenticated``: the predict paths need an API key (bearer token or ``X-API-Key`` header)."""
    error = {"$ref": "#/components/schemas/Error"}
    schemas: dict[str, Any] = {"Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "string"}, "details": {"type": "array", "items": {"type": "string"}}},
    }}
    paths: dict[str, Any] = {
        "/health": {"get": {"operationId": "health", "summary": "Liveness: the process answers",
                            "responses": {"200": _json_content({"type": "object"}, "alive")}}},
        "/ready": {"get": {"operationId": "ready",
                           "summary": "Readiness: every use case has a model loaded and serves its current "
                                      f"@{params.alias}, or has failed fewer than {params.max_failed_reloads} "
                                      "reloads in a row",
                           "responses": {"200": _json_content({"type": "object"}, "ready"),
                                         "503": _json_content({"type": "object"},
                                                              "not ready: 'reasons' says why, per use case")}}},
        "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics",
                             "responses": {"200": {"description": "metrics",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    }
    for use_case, model in sorted(models.items()):
        schemas[f"{use_case}_row"] = {
            "type": "object", "additionalProperties": False, "required": [f.name for f in model.fields if not f.optional],
            "properties": {f.name: field_schema(f, params.max_string_chars) for f in model.fields},
        }
        schemas[f"{use_case}_request"] = {
            "type": "object", "additionalProperties": False, "required": ["rows"],
            "properties": {"rows": {"type": "array", "minItems": 1, "maxItems": params.max_rows,
                                    "items": {"$ref": f"#/components/schemas/{use_case}_row"}}},
        }
        schemas[f"{use_case}_response"] = {
            "type": "object", "required": ["use_case", "model_version", "predictions"],
            "properties": {"use_case": {"type": "string"}, "model_version": {"type": "string"},
                           "decision_threshold": {"type": "number"},
                           "predictions": {"type": "array", "items": {"type": "object"}}},
        }
        paths[f"/predict/{use_case}"] = {"post": {
            "operationId": f"predict_{use_case}",
            "summary": f"Score raw rows with {use_case}@{params.alias} (v{model.version} now)",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{use_case}_request"}}}},
            "responses": {
                "200": _json_content({"$ref": f"#/components/schemas/{use_case}_response"}, "one prediction per row"),
                "400": _json_content(error, "the body is not JSON"),
                "413": _json_content(error, f"the body is larger than {params.max_body_bytes} bytes"),
                "422": _json_content(error, "the rows do not match the model signature (a string is at most "
                                            f"{params.max_string_chars} characters)"),
                **({"401": _json_content(error, "no API key, or one that is not valid")} if authenticated else {}),
            },
            **({"security": [{"bearer": []}, {"api_key": []}]} if authenticated else {}),
        }}
    return {"openapi": "3.0.3",
            "info": {"title": "funnel serving", "version": "1",
                     "description": "Raw rows in, predictions of each use case's @champion out."},
            "paths": paths, "components": {"schemas": schemas, **({"securitySchemes": SECURITY_SCHEMES} if authenticated else {})}}
