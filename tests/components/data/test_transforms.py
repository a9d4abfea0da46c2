"""Declarative transforms: parsing from params, each op, fitted count tables, the JSON state, and the
one code path: a served raw row gets exactly the features its snapshot row has."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from components.data.transforms import (
    Arithmetic,
    CountBy,
    FittedTransforms,
    ParseTime,
    fit_transforms,
    input_columns,
    output_columns,
    parse_transforms,
)
from components.errors import ConfigError, DataValidationError

ROOT = Path(__file__).resolve().parents[3]
WHERE = "params.use_cases.shop.data.transforms"

# a snapshot as the data step reads it from CSV: ids are ints, timestamps are text
ORDERS_CSV = """order_id,ordered_at,shipped_at,user_id,device,price,quantity,discount
1,2024-03-04 10:15:00,2024-03-05 12:15:00,7,dev-a,2.5,2,
2,2024-03-05 23:30:00,2024-03-06 01:30:00,7,dev-a,3.0,1,1.0
3,2024-03-09 08:00:00,2024-03-12 08:00:00,8,dev-a,4.0,3,0.5
4,2024-04-01 00:00:00,,9,dev-b,10.0,0,
5,2024-04-02 18:45:00,2024-04-02 20:00:00,8,dev-c,1.25,4,0.0
"""
SHOP = [
    {"op": "parse_time", "column": "ordered_at"},
    {"op": "parse_time", "column": "shipped_at", "format": "%Y-%m-%d %H:%M:%S"},
    {"op": "time_diff", "start": "ordered_at", "end": "shipped_at", "output": "ship_hours", "unit": "hours"},
    {"op": "time_part", "column": "ordered_at", "parts": ["hour", "weekday", "month"], "prefix": "order"},
    {"op": "count_by", "keys": ["user_id"], "output": "user_orders"},
    {"op": "count_by", "keys": ["device"], "output": "device_users", "distinct": "user_id"},
    {"op": "fill_null", "column": "discount", "value": 0.0},
    {"op": "arithmetic", "output": "total", "expression": "price * quantity - discount"},
    {"op": "drop", "columns": ["ordered_at", "shipped_at"]},
]
FEATURES = ["ship_hours", "order_hour", "order_weekday", "order_month", "user_orders", "device_users", "total"]


def orders() -> pd.DataFrame:
    return pd.read_csv(io.StringIO(ORDERS_CSV))


def fit(raw: list[dict], frame: pd.DataFrame) -> FittedTransforms:
    return fit_transforms(frame, parse_transforms(raw, WHERE), use_case="shop")


def request_rows(rows: list[dict]) -> pd.DataFrame:
    """Rows as serving decodes a JSON request body: Python ints, floats, strings and None."""
    return pd.DataFrame(json.loads(json.dumps(rows)))


def apply_error(fitted: FittedTransforms, frame: pd.DataFrame, *, online: bool = False) -> str:
    with pytest.raises(DataValidationError) as caught:
        fitted.apply(frame, online=online)
    return str(caught.value)


def assert_quotes_none_of(message: str, values: list[str]) -> None:
    quoted = [v for v in values if v in message]
    assert not quoted, f"the message quotes data values {quoted}"


# --- parsing params -------------------------------------------------------------------------------


def test_params_parse_into_typed_transforms():
    transforms = parse_transforms(SHOP, WHERE)
    assert [t.op for t in transforms] == [step["op"] for step in SHOP]
    assert isinstance(transforms[0], ParseTime)
    assert transforms[0].format is None
    assert isinstance(transforms[5], CountBy)
    assert transforms[5].distinct == "user_id"


def test_a_misspelt_key_names_its_full_path():
    raw = [{"op": "rename", "columns": {"a": "b"}}, {"op": "drop", "columns": ["x"]},
           {"op": "cast", "colum": "price", "to": "float"}]
    with pytest.raises(ConfigError) as caught:
        parse_transforms(raw, WHERE)
    message = str(caught.value)
    assert f"{WHERE}[2].colum: unknown key" in message
    assert f"{WHERE}[2].column: missing required key" in message


def test_an_unknown_op_lists_the_known_ops():
    with pytest.raises(ConfigError, match=r"transforms\[0\]\.op: unknown op 'explode'") as caught:
        parse_transforms([{"op": "explode", "column": "a"}], WHERE)
    for op in ("rename", "cast", "parse_time", "time_diff", "time_part", "count_by", "fill_null",
               "drop_null", "arithmetic", "drop"):
        assert op in str(caught.value)


def test_a_transform_without_op_is_refused():
    with pytest.raises(ConfigError, match=r"transforms\[0\]\.op: missing required key; known ops"):
        parse_transforms([{"column": "a"}], WHERE)


@pytest.mark.parametrize(
    ("expression", "found"),
    [("__import__('os')", "Call"), ("price.real", "Attribute"), ("price ** 2", "Pow"), ("'a' + price", "Constant"),
     ("not price", "Not"), ("price +", "not valid arithmetic"), ("[price]", "List")],
)
def test_an_unsafe_or_broken_expression_is_refused_at_its_path(expression, found):
    with pytest.raises(ConfigError, match=r"transforms\[1\]\.expression") as caught:
        parse_transforms([{"op": "drop", "columns": ["a"]}, {"op": "arithmetic", "output": "x", "expression": expression}],
                         WHERE)
    assert found.lower() in str(caught.value).lower()


@pytest.mark.parametrize(
    ("item", "problem"),
    [({"op": "parse_time", "column": "t", "format": "%Y", "unit": "s"}, "either format"),
     ({"op": "time_diff", "start": "a", "end": "b", "output": "d", "unit": "weeks"}, "unit"),
     ({"op": "time_part", "column": "t", "parts": ["fortnight"]}, "parts.0"),
     ({"op": "cast", "column": "a", "to": "decimal"}, ".to"),
     ({"op": "count_by", "keys": [], "output": "n"}, ".keys")],
)
def test_bad_values_are_config_errors(item, problem):
    with pytest.raises(ConfigError, match=r"transforms\[0\]") as caught:
        parse_transforms([item], WHERE)
    assert problem in str(caught.value)


@pytest.mark.parametrize("raw", [{"op": "drop"}, "drop", None])
def test_transforms_must_be_a_list(raw):
    with pytest.raises(ConfigError, match="expected a list of transforms"):
        parse_transforms(raw, WHERE)


def test_a_transform_that_is_not_a_mapping_is_refused():
    with pytest.raises(ConfigError, match=r"transforms\[0\]: expected a mapping"):
        parse_transforms(["drop"], WHERE)


# --- each op --------------------------------------------------------------------------------------


def test_rename_renames_and_refuses_to_duplicate_a_column():
    frame = pd.DataFrame({"a": [1], "b": [2]})
    assert list(fit([{"op": "rename", "columns": {"a": "alpha"}}], frame).apply(frame).columns) == ["alpha", "b"]
    swapped = fit([{"op": "rename", "columns": {"a": "b", "b": "a"}}], frame).apply(frame)
    assert swapped.to_dict("list") == {"b": [1], "a": [2]}
    with pytest.raises(DataValidationError, match="new name\\(s\\) 'b' already exist"):
        fit([{"op": "rename", "columns": {"a": "b"}}], frame)


@pytest.mark.parametrize(
    ("to", "values", "expected", "dtype"),
    [("int", ["1", "2", None], [1, 2, pd.NA], "Int64"),
     ("int", [1.0, 2.0, float("nan")], [1, 2, pd.NA], "Int64"),
     ("float", ["1.5", "2", None], [1.5, 2.0, float("nan")], "float64"),
     ("str", [1, 22, 333], ["1", "22", "333"], "str"),
     ("bool", ["yes", "False", None], [True, False, pd.NA], "boolean"),
     ("bool", [1.0, 0.0, float("nan")], [True, False, pd.NA], "boolean"),
     ("bool", [True, False, True], [True, False, True], "boolean")],
)
def test_cast(to, values, expected, dtype):
    frame = pd.DataFrame({"a": values})
    out = fit([{"op": "cast", "column": "a", "to": to}], frame).apply(frame)
    assert str(out["a"].dtype) == dtype
    pd.testing.assert_series_equal(out["a"], pd.Series(expected, name="a", dtype=dtype))


@pytest.mark.parametrize(
    ("to", "values", "what"),
    [("int", ["1", "2.5", "3"], "whole numbers"), ("float", ["1", "CONFIDENTIAL-77", "3"], "numbers"),
     ("bool", ["yes", "CONFIDENTIAL-77", "no"], "booleans")],
)
def test_a_bad_cast_counts_the_values_without_quoting_them(to, values, what):
    frame = pd.DataFrame({"a": values})
    message = apply_error(FittedTransforms(parse_transforms([{"op": "cast", "column": "a", "to": to}], WHERE)), frame)
    assert f"transforms[0] cast: 1 of 3 values of column 'a' are not {what}" in message
    assert_quotes_none_of(message, ["CONFIDENTIAL", "2.5"])


def test_parse_time_reads_text_epochs_and_offsets_as_utc_naive():
    frame = pd.DataFrame({
        "iso": ["2024-03-05T10:00:00+02:00", "2024-03-05 10:00:00", None],
        "day": ["05/03/2024", "06/03/2024", "07/03/2024"],
        "epoch_s": [0, 86400, 1_700_000_000],
        "epoch_ms": [0, 1500, None],
    })
    raw = [{"op": "parse_time", "column": "iso"},
           {"op": "parse_time", "column": "day", "format": "%d/%m/%Y", "output": "day_parsed"},
           {"op": "parse_time", "column": "epoch_s", "unit": "s"},
           {"op": "parse_time", "column": "epoch_ms", "unit": "ms"}]
    out = fit(raw, frame).apply(frame)
    assert out["iso"].tolist()[:2] == [pd.Timestamp("2024-03-05 08:00:00"), pd.Timestamp("2024-03-05 10:00:00")]
    assert pd.isna(out["iso"].iloc[2])
    assert out["day"].tolist() == frame["day"].tolist()  # output given: the text column stays
    assert out["day_parsed"].tolist() == [pd.Timestamp(f"2024-03-0{d}") for d in (5, 6, 7)]
    assert out["epoch_s"].tolist() == [pd.Timestamp("1970-01-01"), pd.Timestamp("1970-01-02"),
                                       pd.Timestamp("2023-11-14 22:13:20")]
    assert out["epoch_ms"].iloc[1] == pd.Timestamp("1970-01-01 00:00:01.500")
    for column in ("iso", "day_parsed", "epoch_s", "epoch_ms"):
        assert out[column].dtype == "datetime64[us]"


def test_parse_time_passes_datetimes_through():
    frame = pd.DataFrame({"t": pd.to_datetime(["2024-03-05 10:00"]).tz_localize("Europe/Paris")})
    out = fit([{"op": "parse_time", "column": "t"}], frame).apply(frame)
    assert out["t"].tolist() == [pd.Timestamp("2024-03-05 09:00")]


def test_unparseable_timestamps_are_counted_never_quoted():
    frame = pd.DataFrame({"ordered_at": ["2024-03-05", "05/03/2024 CONFIDENTIAL", "2024-03-07", "yesterday"]})
    transforms = parse_transforms([{"op": "parse_time", "column": "ordered_at", "format": "%Y-%m-%d"}], WHERE)
    message = apply_error(FittedTransforms(transforms, use_case="shop"), frame)
    assert ("transforms[0] parse_time: 2 of 4 values of column 'ordered_at' are not timestamps in format "
            "'%Y-%m-%d'; fix the data or the transform") in message
    assert "'shop'" in message
    assert_quotes_none_of(message, ["CONFIDENTIAL", "yesterday", "2024-03-0"])


def test_epochs_that_are_not_numbers_are_counted():
    frame = pd.DataFrame({"t": ["1700000000", "soon-CONFIDENTIAL"]})
    message = apply_error(FittedTransforms(parse_transforms([{"op": "parse_time", "column": "t", "unit": "s"}], WHERE)),
                          frame)
    assert "1 of 2 values of column 't' are not epoch numbers in unit 's'" in message
    assert "CONFIDENTIAL" not in message


@pytest.mark.parametrize(("unit", "expected"), [("seconds", 5400.0), ("minutes", 90.0), ("hours", 1.5), ("days", 1.5 / 24)])
def test_time_diff_in_each_unit(unit, expected):
    frame = pd.DataFrame({"a": ["2024-03-05 10:00", None], "b": ["2024-03-05 11:30", "2024-03-05 11:30"]})
    raw = [{"op": "parse_time", "column": "a"}, {"op": "parse_time", "column": "b"},
           {"op": "time_diff", "start": "a", "end": "b", "output": "d", "unit": unit}]
    out = fit(raw, frame).apply(frame)
    assert out["d"].dtype == "float64"
    assert out["d"].iloc[0] == pytest.approx(expected)
    assert math.isnan(out["d"].iloc[1])


def test_time_diff_on_text_says_to_parse_first():
    frame = pd.DataFrame({"a": ["2024-03-05"], "b": ["2024-03-06"]})
    transforms = parse_transforms([{"op": "time_diff", "start": "a", "end": "b", "output": "d"}], WHERE)
    message = apply_error(FittedTransforms(transforms), frame)
    assert "column 'b' is str, not a timestamp; parse it first with parse_time" in message
    assert "2024" not in message


def test_time_part_gives_nullable_int_columns():
    frame = pd.DataFrame({"t": ["2024-03-10 23:59:00", None]})  # a Sunday
    raw = [{"op": "parse_time", "column": "t"},
           {"op": "time_part", "column": "t", "parts": ["year", "month", "day", "hour", "minute", "weekday", "day_of_year"]}]
    out = fit(raw, frame).apply(frame)
    assert out.iloc[0].drop("t").to_dict() == {"t_year": 2024, "t_month": 3, "t_day": 10, "t_hour": 23,
                                                "t_minute": 59, "t_weekday": 6, "t_day_of_year": 70}
    assert all(out[c].dtype == "Int64" for c in out.columns if c != "t")
    assert out.iloc[1].drop("t").isna().all()


def test_count_by_counts_rows_and_distinct_values_per_key():
    frame = orders()
    out = fit([{"op": "count_by", "keys": ["user_id"], "output": "n"},
               {"op": "count_by", "keys": ["device"], "output": "users", "distinct": "user_id"},
               {"op": "count_by", "keys": ["user_id", "device"], "output": "pair"}], frame).apply(frame)
    assert out["n"].tolist() == [2, 2, 2, 1, 2]
    assert out["users"].tolist() == [2, 2, 2, 1, 1]  # dev-a is used by users 7 and 8
    assert out["pair"].tolist() == [2, 2, 1, 1, 1]
    assert out["n"].dtype == "int64"


def test_count_by_looks_unseen_keys_up_as_zero_and_matches_keys_across_types():
    fitted = fit([{"op": "count_by", "keys": ["user_id", "device"], "output": "n"}], orders())
    served = fitted.apply(request_rows([{"user_id": "7", "device": "dev-a"}, {"user_id": 7, "device": "dev-a"},
                                        {"user_id": 7.0, "device": "dev-a"}, {"user_id": 999, "device": "dev-a"},
                                        {"user_id": None, "device": "dev-a"}]), online=True)
    assert served["n"].tolist() == [2, 2, 2, 0, 0]


def test_count_by_keys_of_a_float_column_match_ints():
    # an id column with a missing value reads from CSV as float (7.0); a request sends 7
    frame = pd.DataFrame({"user_id": [7.0, 7.0, None, 8.0]})
    fitted = fit([{"op": "count_by", "keys": ["user_id"], "output": "n"}], frame)
    assert fitted.apply(frame)["n"].tolist() == [2, 2, 1, 1]  # null is a key of its own
    assert fitted.apply(request_rows([{"user_id": 7}, {"user_id": None}]), online=True)["n"].tolist() == [2, 1]


def test_count_by_with_distinct_needs_only_the_keys_online():
    fitted = fit([{"op": "count_by", "keys": ["device"], "output": "users", "distinct": "user_id"}], orders())
    assert input_columns(fitted) == ["device"]
    assert fitted.apply(request_rows([{"device": "dev-a"}]), online=True)["users"].tolist() == [2]


def test_an_unfitted_count_by_says_to_fit_first():
    transforms = parse_transforms([{"op": "count_by", "keys": ["user_id"], "output": "n"}], WHERE)
    assert "fit the transforms (fit_transforms)" in apply_error(FittedTransforms(transforms), orders())


def test_fill_null_fills_only_nulls():
    frame = pd.DataFrame({"discount": [None, 1.5], "channel": ["web", None]})
    out = fit([{"op": "fill_null", "column": "discount", "value": 0},
               {"op": "fill_null", "column": "channel", "value": "unknown"}], frame).apply(frame)
    assert out["discount"].tolist() == [0.0, 1.5]
    assert out["channel"].tolist() == ["web", "unknown"]


def test_drop_null_drops_rows_offline_and_nothing_online():
    frame = orders()
    fitted = fit([{"op": "drop_null", "columns": ["shipped_at", "discount"]}], frame)
    offline = fitted.apply(frame)
    assert offline["order_id"].tolist() == [2, 3, 5]
    assert offline.index.tolist() == [0, 1, 2]
    online = fitted.apply(frame, online=True)
    pd.testing.assert_frame_equal(online, frame)
    assert input_columns(fitted) == []  # a request need not send them


@pytest.mark.parametrize(
    ("expression", "expected"),
    [("price * quantity", [6.0, 0.0, 0.0]), ("price + quantity * 2", [7.0, 2.0, 4.0]),
     ("(price + quantity) * 2", [10.0, 4.0, 4.0]), ("-price + 1", [-2.0, -1.0, 1.0]),
     ("price / quantity", [1.5, math.nan, 0.0]), ("quantity / 0", [math.nan, math.nan, math.nan]),
     ("1.5 * 2", [3.0, 3.0, 3.0]), ("price - +quantity", [1.0, 2.0, -2.0])],
)
def test_arithmetic(expression, expected):
    frame = pd.DataFrame({"price": [3, 2, 0], "quantity": [2, 0, 2]})
    out = fit([{"op": "arithmetic", "output": "x", "expression": expression}], frame).apply(frame)
    assert out["x"].dtype == "float64"
    pd.testing.assert_series_equal(out["x"], pd.Series(expected, name="x"))


def test_arithmetic_on_text_counts_the_values_that_are_not_numbers():
    frame = pd.DataFrame({"price": ["3", "CONFIDENTIAL-9", "1"], "quantity": [1, 2, 3]})
    message = apply_error(FittedTransforms((Arithmetic(output="x", expression="price * quantity"),)), frame)
    assert "transforms[0] arithmetic: 1 of 3 values of column 'price' are not numbers" in message
    assert "CONFIDENTIAL" not in message


def test_arithmetic_reads_numbers_sent_as_text():
    frame = pd.DataFrame({"price": ["3.5", None]})
    out = FittedTransforms((Arithmetic(output="x", expression="price * 2"),)).apply(frame)
    assert out["x"].iloc[0] == 7.0
    assert math.isnan(out["x"].iloc[1])


def test_drop_requires_the_columns_offline_but_not_online():
    frame = pd.DataFrame({"a": [1], "b": [2]})
    fitted = fit([{"op": "drop", "columns": ["b"]}], frame)
    assert list(fitted.apply(frame).columns) == ["a"]
    assert list(fitted.apply(frame[["a"]], online=True).columns) == ["a"]
    assert "column(s) 'b' missing" in apply_error(fitted, frame[["a"]])


def test_a_missing_column_is_named_with_its_step():
    fitted = fit(SHOP, orders())
    message = apply_error(fitted, orders().drop(columns=["device", "price"]), online=True)
    assert "transforms[5] count_by: column(s) 'device' missing" in message


# --- the chain, its columns and the one code path ------------------------------------------------


def test_the_chain_derives_features_and_drops_raw_timestamps():
    frame = orders()
    out = fit(SHOP, frame).apply(frame)
    assert list(out.columns) == ["order_id", "user_id", "device", "price", "quantity", "discount", *FEATURES]
    assert out["ship_hours"].tolist()[:3] == [26.0, 2.0, 72.0]
    assert math.isnan(out["ship_hours"].iloc[3])
    assert out["order_hour"].tolist() == [10, 23, 8, 0, 18]
    assert out["order_weekday"].tolist() == [0, 1, 5, 0, 1]
    assert out["order_month"].tolist() == [3, 3, 3, 4, 4]
    assert out["total"].tolist() == [5.0, 2.0, 11.5, 0.0, 5.0]


def test_apply_never_mutates_its_input():
    frame = orders()
    before = frame.copy()
    fitted = fit(SHOP, frame)
    fitted.apply(frame)
    fitted.apply(frame, online=True)
    pd.testing.assert_frame_equal(frame, before)


def test_input_and_output_columns():
    transforms = parse_transforms(SHOP, WHERE)
    assert input_columns(transforms) == ["ordered_at", "shipped_at", "user_id", "device", "discount", "price", "quantity"]
    assert output_columns(transforms) == FEATURES
    renamed = parse_transforms([{"op": "rename", "columns": {"qty": "quantity"}},
                                {"op": "arithmetic", "output": "double", "expression": "quantity * 2"}], WHERE)
    assert input_columns(renamed) == ["qty"]
    assert output_columns(renamed) == ["quantity", "double"]


@pytest.mark.parametrize("order_id", [1, 2, 3, 4, 5])
def test_a_served_row_gets_the_features_of_its_snapshot_row(order_id):
    frame = orders()
    fitted = fit(SHOP, frame)
    offline = fitted.apply(frame)
    # the request sends only the raw inputs, as JSON: ids as ints, timestamps as strings, nulls as null
    raw_row = frame.loc[frame["order_id"] == order_id, input_columns(fitted)].iloc[0]
    row = {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in raw_row.items()}
    online = fitted.apply(request_rows([row]), online=True)
    expected = offline.loc[offline["order_id"] == order_id, FEATURES].reset_index(drop=True)
    pd.testing.assert_frame_equal(online[FEATURES], expected)


def test_a_served_batch_after_a_json_round_trip_of_the_state_equals_the_snapshot():
    frame = orders()
    fitted = fit(SHOP, frame)
    stored = FittedTransforms.from_dict(json.loads(json.dumps(fitted.to_dict())))
    rows = [{"ordered_at": "2024-03-05 23:30:00", "shipped_at": "2024-03-06 01:30:00", "user_id": "7",
             "device": "dev-a", "price": 3, "quantity": 1, "discount": 1},
            {"ordered_at": "2024-04-01 00:00:00", "shipped_at": None, "user_id": 9, "device": "dev-b",
             "price": 10, "quantity": 0, "discount": None}]
    online = stored.apply(request_rows(rows), online=True)
    expected = fitted.apply(frame).loc[[1, 3], FEATURES].reset_index(drop=True)
    pd.testing.assert_frame_equal(online[FEATURES], expected)


def test_the_state_round_trips_through_json():
    frame = orders()
    fitted = fit([*SHOP, {"op": "count_by", "keys": ["user_id", "device"], "output": "pair"}], frame)
    state = json.loads(json.dumps(fitted.to_dict()))
    restored = FittedTransforms.from_dict(state)
    assert restored == fitted
    assert restored.to_dict() == state
    assert sorted(state["counts"]["9"]) == [["7", "dev-a", 2], ["8", "dev-a", 1], ["8", "dev-c", 1], ["9", "dev-b", 1]]
    pd.testing.assert_frame_equal(restored.apply(frame), fitted.apply(frame))


def test_a_state_of_another_format_is_refused():
    state = fit(SHOP, orders()).to_dict() | {"format": 99}
    with pytest.raises(ConfigError, match="format 99 is not 1; refit them"):
        FittedTransforms.from_dict(state)


def test_importing_the_module_does_not_import_pandas():
    code = "import sys, components.data.transforms; sys.exit('pandas' in sys.modules or 'numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0
