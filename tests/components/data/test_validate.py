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


def test_data_docs_show_this_validation(tmp_path):
    # when a slice is validated with a Data Docs folder
    report = validate_frame("intent", intent_slice(300), PARAMS, tmp_path)
    # then the use case's site has its index and this validation's page (the only site built)
    assert report.docs_path == str(tmp_path / "intent" / "index.html")
    assert (tmp_path / "intent" / "index.html").is_file()
    pages = list((tmp_path / "intent" / "validations").rglob("*.html"))
    assert len(pages) == 1
    assert "intent_suite" in pages[0].read_text(encoding="utf-8")


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


SUPPORT = load_params(ROOT / "params.yaml").use_cases["support"]
NEW_INTENT = "Zq7SecretIntent"  # a label value from the data: it must not reach any message


def test_a_label_outside_its_allowed_classes_fails_and_says_how_many_rows_not_which_value():
    # given the real Banking77 data, which passes its suite, with a 78th intent on 3 rows
    from components.config import load_settings
    from components.data.ingest import read_source

    frame, _ = read_source("support", SUPPORT.data, load_settings(env={}, repo_root=ROOT))
    assert validate_frame("support", frame, SUPPORT.validate).success
    frame.loc[frame.index[:3], "category"] = NEW_INTENT

    # when it is validated, then nothing may train: the suite fails on the label's allowed set
    report = validate_frame("support", frame, SUPPORT.validate)
    with pytest.raises(DataValidationError) as failure:
        check_report(report)
    message = str(failure.value)
    assert "3 row(s) have a 'category' value outside the 77 allowed values" in message
    assert "validate.columns.category.allowed" in message
    assert "value_set=<77 values>" in message  # the rule is named by its size, not spelt out
    assert NEW_INTENT not in message
    assert NEW_INTENT not in str(report.checks)


def test_an_unknown_column_type_is_a_config_error_naming_the_key_and_the_types():
    from typing import get_args

    from components.config import ColumnRule, ValidateParams, parse_section
    from components.data.validate import TYPE_LISTS
    from components.errors import ConfigError

    # the types params.yaml may name are the ones the suite knows
    assert set(get_args(ColumnRule.model_fields["type"].annotation)) == set(TYPE_LISTS)
    raw = {"min_rows": 1, "max_null_fraction": 0.0, "min_label_fraction": 0.0, "columns": {"a": {"type": "string"}}}
    with pytest.raises(ConfigError, match=r"validate\.columns\.a\.type: input should be 'int', 'float', 'str' or 'bool'"):
        parse_section(ValidateParams, raw, "validate")
    # a rule built in code without validation gets the same kind of error, not a KeyError
    rules = ValidateParams(min_rows=1, max_null_fraction=0.0, min_label_fraction=0.0,
                           columns={"a": ColumnRule.model_construct(type="decimal")})
    with pytest.raises(ConfigError, match="validate.columns.a.type: unknown type 'decimal'; use one of int, float"):
        build_expectations(rules)
