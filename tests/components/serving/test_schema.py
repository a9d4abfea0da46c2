"""Serving's request schema: input fields and row validation (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from components.serving.schema import (
    FLOAT32_MAX,
    INT64_MAX,
    InputField,
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


def test_an_optional_field_may_be_left_out_or_null_and_reaches_the_model_as_its_absent_value():
    fields = (*FIELDS, InputField("times", "string", optional=True), InputField("weight", "float32", optional=True))
    rows = [ROW, {**ROW, "times": None, "weight": None}, {**ROW, "times": "1 2", "weight": 0.5}]
    packed, _ = parse_rows(fields, {"rows": rows}, max_rows=3)
    assert packed["string"][:, 1].tolist() == ["", "", "1 2"]
    assert np.isnan(packed["float32"][:2, 1]).all()
    assert packed["float32"][2, 1] == 0.5
    # a required field is still required, an unknown one still refused, an optional one still typed
    for row, fragment in [({"times": "1"}, "missing field(s) ['amount', 'month', 'visits']"),
                          ({**ROW, "when": 1}, "unknown field(s) ['when']; the model takes ['amount', 'month', "
                                               "'visits'] and optionally ['times', 'weight']"),
                          ({**ROW, "times": 3}, "rows[0].times: expected a string, got an integer")]:
        with pytest.raises(RequestError) as caught:
            parse_rows(fields, {"rows": [row]}, max_rows=3)
        assert fragment in " ".join(caught.value.details)


def test_read_fields_refuses_a_signature_whose_optional_inputs_disagree_with_the_model():
    spec = {"amount": "float32", "visits": "int64", "month": "string"}
    with pytest.raises(ServingError, match="requires"):
        read_fields(signature_of(spec), spec, frozenset({"month"}))  # a tensor signature requires every input


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


@pytest.mark.parametrize(("chars", "refused"), [(0, False), (10, False), (11, True), (4 * 1024 * 1024, True)])
def test_parse_rows_limits_each_string_by_its_length_never_quoting_it(chars, refused):
    payload = {"rows": [ROW, {**ROW, "month": "m" * chars}]}
    if not refused:
        packed, _ = parse_rows(FIELDS, payload, max_rows=3, max_string_chars=10)
        assert len(packed["string"][1, 0]) == chars
        return
    with pytest.raises(RequestError) as caught:
        parse_rows(FIELDS, payload, max_rows=3, max_string_chars=10)
    assert caught.value.status == 422
    assert caught.value.details == (
        f"rows[1].month: a string of {chars} characters; the limit is 10 (common.serving.max_string_chars)",)
    assert "mmm" not in str(caught.value.as_json())


def test_parse_rows_without_a_string_limit_takes_any_length():
    packed, _ = parse_rows(FIELDS, {"rows": [{**ROW, "month": "m" * 100_000}]}, max_rows=1)
    assert len(packed["string"][0, 0]) == 100_000


def test_unknown_key_names_are_quoted_cut_short_and_few():
    long_name = "a" * 5000  # sorts before the others
    row = {**ROW, long_name: 1, **{f"extra{i:02d}": 1 for i in range(12)}}
    with pytest.raises(RequestError) as caught:
        parse_rows(FIELDS, {"rows": [row]}, max_rows=1)
    (detail,) = caught.value.details
    assert "extra00" in detail
    assert "and 3 more" in detail
    assert f"{'a' * 64}... (5000 characters)" in detail
    assert "a" * 65 not in detail
    with pytest.raises(RequestError, match=r"\(5000 characters\)'\]; the body takes only 'rows'"):
        parse_rows(FIELDS, {"rows": [ROW], long_name: 1}, max_rows=1)
