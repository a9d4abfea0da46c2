"""Serving's request schema: input fields and row validation (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from components.serving.schema import (
    FLOAT32_MAX,
    INT64_MAX,
    RequestError,
    ServingError,
    parse_rows,
    read_fields,
)
from tests.components.serving.conftest import FIELDS, ROW, signature_of


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


def test_read_fields_refuses_a_signature_that_disagrees_with_the_model():
    spec = {"amount": "float32", "visits": "int64", "month": "string"}
    assert read_fields(signature_of(spec), spec) == FIELDS
    with pytest.raises(ServingError, match="re-register the model"):
        read_fields(signature_of({"amount": "float32"}), spec)
