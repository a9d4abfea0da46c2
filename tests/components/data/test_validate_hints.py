"""Validation output a user can act on: a wrong-delimiter hint, GX's own errors apart from failed
expectations, and counts and statistics only (never row values) in failures and artifact rows."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from components.config import ColumnRule, ValidateParams, load_params
from components.data.validate import artifact_rows, check_report, delimiter_hint, validate_frame
from components.errors import DataValidationError
from tests.conftest import ROOT, intent_slice

PARAMS = load_params(ROOT / "params.yaml").use_cases["intent"].validate


def read_with_comma(frame: pd.DataFrame, written_with: str) -> pd.DataFrame:
    """``frame`` written with ``written_with`` and read back with ``,`` (a wrong data.delimiter)."""
    return pd.read_csv(io.StringIO(frame.to_csv(sep=written_with, index=False)), sep=",")


@pytest.mark.parametrize("written_with", [";", "\t", "|"])
def test_a_file_read_with_the_wrong_delimiter_gets_one_hint_first(written_with):
    # given the real intent data written with another delimiter, read with ","
    frame = read_with_comma(intent_slice(800), written_with)
    assert frame.shape[1] == 1

    # when it is validated
    report = validate_frame("intent", frame, PARAMS, delimiter=",")

    # then the first failure says what to change, and check_report raises with it first
    first = report.failures[0]
    assert "single column" in first
    assert "data.delimiter in params.yaml (read with ',')" in first
    assert repr(written_with) in first
    assert sum("data.delimiter" in f for f in report.failures) == 1
    with pytest.raises(DataValidationError) as failure:
        check_report(report)
    assert failure.value.failures[0] == first
    # the missing columns are one line, not one per column
    assert sum(f.startswith("expect_column_to_exist") for f in report.failures) == 1


def test_the_right_delimiter_gets_no_hint():
    report = validate_frame("intent", intent_slice(800), PARAMS, delimiter=",")
    assert report.success
    assert report.hints == ()
    assert report.statistics["errors"] == 0


def test_a_header_that_names_no_schema_column_is_not_shown_it_may_be_a_row():
    # given a header-less ";" file read with ",": its "header" is the first row
    params = ValidateParams(label="label", min_rows=1, max_null_fraction=0.0, min_label_fraction=0.1,
                            columns={"text": ColumnRule(type="str"), "label": ColumnRule(type="int")})
    hint = delimiter_hint(pd.DataFrame(columns=["Zq7 great phone;1"]), params, ",")
    assert hint is not None
    assert "Zq7" not in hint
    assert "check data.delimiter in params.yaml (read with ',')" in hint
    assert "';'-separated" in hint
    assert "'text;label'" in delimiter_hint(pd.DataFrame(columns=["text;label"]), params, ",")


RULES_2 = {"text": ColumnRule(type="str"), "label": ColumnRule(type="int", min=0, max=1)}
RULES_1 = {"text": ColumnRule(type="str")}


@pytest.mark.parametrize(
    ("columns", "rules", "delimiter", "hinted"),
    [
        (["text;label"], RULES_2, ",", True),      # several rules, one column
        (["a|b"], RULES_1, ",", True),             # one rule, but the header holds a delimiter
        (["review"], RULES_2, ",", True),          # several rules, one unknown column
        (["review"], RULES_1, ",", False),         # one rule, one plain column: a wrong name, not a delimiter
        (["text"], RULES_2, ",", False),           # the one column is a known one
        (["text", "label"], RULES_2, ",", False),  # parsed into columns
        (["a,b"], RULES_1, ",", False),            # the delimiter used is not a hint that it is wrong
    ],
)
def test_when_a_delimiter_hint_is_given(columns, rules, delimiter, hinted):
    params = ValidateParams(label="label", min_rows=1, max_null_fraction=0.0, min_label_fraction=0.1, columns=rules)
    hint = delimiter_hint(pd.DataFrame(columns=columns), params, delimiter)
    assert (hint is not None) == hinted


def test_gx_errors_are_reported_apart_from_failed_expectations():
    # given text in a numeric column: its type check fails, and GX raises on its range check
    frame = intent_slice(800).assign(ExitRates="not a number")

    report = validate_frame("intent", frame, PARAMS)

    assert report.errors == [
        "expect_column_values_to_be_between on ExitRates: TypeError: Column values, min_value, and "
        "max_value must either be None or of the same type."
    ]
    assert report.statistics["errors"] == 1
    assert report.statistics["failed"] == 1
    failed, gx_errors = report.failures
    assert failed.startswith("expect_column_values_to_be_in_type_list(column=ExitRates")
    assert gx_errors.startswith("Great Expectations could not evaluate 1 expectation(s)")
    assert "expect_column_values_to_be_between on ExitRates: TypeError" in gx_errors
    rows = {(r["expectation"], r["column"]): r for r in artifact_rows(report)}
    assert rows[("expect_column_values_to_be_between", "ExitRates")]["observed"].startswith("GX error: TypeError")


SECRET = "Zq7SecretMonth"


def test_no_row_value_reaches_failures_errors_checks_or_artifact_rows():
    # given distinctive values in a set-checked column, a length-checked column and a numeric one
    frame = intent_slice(800).assign(Month=SECRET, VisitorType=SECRET + "Visitor", BounceRates=SECRET + "Rate")

    report = validate_frame("intent", frame, PARAMS)
    rows = artifact_rows(report)

    assert not report.success
    shown = " ".join([*report.failures, *report.errors, str(report.checks), str(rows)])
    assert SECRET not in shown
    # ... while the counts and column names are there
    month = next(r for r in rows if (r["expectation"], r["column"]) == ("expect_column_values_to_be_in_set", "Month"))
    assert "unexpected_count=800" in month["observed"]
    assert "unexpected_percent=100.0" in month["observed"]
    assert set(rows[0]) == {"expectation", "column", "success", "observed"}


def test_artifact_rows_show_statistics_and_dtypes_but_never_value_lists():
    frame = intent_slice(800).assign(Revenue=True)  # the label mean fails; distinct values are a list
    rows = {(r["expectation"], r["column"]): r for r in artifact_rows(validate_frame("intent", frame, PARAMS))}

    assert rows[("expect_table_row_count_to_be_between", "")]["observed"] == "observed_value=800"
    assert rows[("expect_column_mean_to_be_between", "Revenue")]["observed"] == "observed_value=1.0"
    assert rows[("expect_column_values_to_be_in_type_list", "Revenue")]["observed"] == "observed_value=bool"
    assert "True" not in rows[("expect_column_distinct_values_to_contain_set", "Revenue")]["observed"]


def test_a_gx_error_message_keeps_column_names_and_drops_other_quoted_text():
    from components.data.validate import _gx_error

    traceback = ("Traceback (most recent call last):\nValueError: could not convert string to float: 'Zq7'\n\n"
                 "The above exception was the direct cause of the following exception:\n\n"
                 "great_expectations.exceptions.exceptions.MetricResolutionError: could not convert\n")
    info = {"MetricConfigurationID(metric_name='column.mean')": {
        "raised_exception": True, "exception_traceback": traceback,
        "exception_message": "column \"ExitRates\": could not convert string to float: 'Zq7'"}}

    assert _gx_error(info, {"ExitRates"}) == "ValueError: column \"ExitRates\": could not convert string to float: '…'"
    assert _gx_error({"raised_exception": False, "exception_message": None}, {"ExitRates"}) is None


def test_nullable_dtypes_from_transforms_pass_their_type_rules():
    import pandas as pd

    from components.config import ColumnRule, ValidateParams
    from components.data.validate import validate_frame

    frame = pd.DataFrame({"hour": pd.array([1, 2, None] * 100, dtype="Int64"),
                          "share": pd.array([0.5, None, 1.5] * 100, dtype="Float64"),
                          "flag": pd.array([True, False, None] * 100, dtype="boolean")})
    rules = {"hour": ColumnRule(type="int"), "share": ColumnRule(type="float"), "flag": ColumnRule(type="bool")}
    report = validate_frame("t", frame, ValidateParams(min_rows=1, max_null_fraction=0.5, min_label_fraction=0,
                                                       columns=rules))
    assert report.success, report.failures
