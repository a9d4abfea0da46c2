"""The GX suite: what it checks, and that each failure is named with its numbers."""

from __future__ import annotations

import pandas as pd
import pytest

from components.config import load_params
from components.data.validate import (
    as_gx_types,
    build_expectations,
    check_report,
    label_classes,
    validate_frame,
)
from components.errors import DataValidationError
from tests.conftest import ROOT, intent_slice

PARAMS = load_params(ROOT / "params.yaml").use_cases["intent"].validate


def test_suite_covers_columns_types_ranges_sets_nulls_label_and_rows():
    kinds = {type(e).__name__ for e in build_expectations(PARAMS)}
    assert kinds >= {
        "ExpectTableRowCountToBeBetween", "ExpectColumnToExist", "ExpectColumnValuesToBeInTypeList",
        "ExpectColumnValuesToNotBeNull", "ExpectColumnValuesToBeBetween", "ExpectColumnValuesToBeInSet",
        "ExpectColumnDistinctValuesToContainSet", "ExpectColumnMeanToBeBetween",
    }
    assert label_classes(PARAMS) == [False, True]


def test_good_slice_passes():
    assert validate_frame("intent", intent_slice(800), PARAMS).success


@pytest.mark.parametrize(
    ("corrupt", "named"),
    [
        (lambda f: f.assign(Month="Smarch"), "expect_column_values_to_be_in_set(column=Month"),
        (lambda f: f.assign(ExitRates=f["ExitRates"].where(f.index % 2 == 0)), "expect_column_values_to_not_be_null(column=ExitRates"),
        (lambda f: f.head(100), "expect_table_row_count_to_be_between"),
        (lambda f: f.assign(Revenue=True), "expect_column_mean_to_be_between(column=Revenue"),
    ],
)
def test_each_failure_is_named(corrupt, named):
    report = validate_frame("intent", corrupt(intent_slice(800)), PARAMS)
    with pytest.raises(DataValidationError) as failure:
        check_report(report)
    assert named in str(failure.value)
    assert failure.value.failures == report.failures


def test_pandas3_text_columns_are_handed_to_gx_as_string_dtype():
    frame = pd.DataFrame({"a": ["x"], "b": [1]})
    converted = as_gx_types(frame)
    assert str(converted["a"].dtype) == "string"
    assert frame["a"].dtype != converted["a"].dtype  # input not mutated
