"""Validate a snapshot with a Great Expectations 1.x suite; the only module that uses GX."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.config import ValidateParams
from components.errors import DataValidationError

logger = logging.getLogger(__name__)

TYPE_LISTS = {
    "int": ["int64", "int32", "Int64", "Int32"],
    "float": ["float64", "float32", "Float64", "int64", "int32", "Int64"],
    "str": ["StringDtype", "object", "str", "string"],
    "bool": ["bool", "boolean"],
}


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of a suite: every expectation with its numbers, and where Data Docs are."""

    use_case: str
    success: bool
    checks: tuple[dict[str, Any], ...]
    docs_path: str | None

    @property
    def failures(self) -> list[str]:
        return [c["summary"] for c in self.checks if not c["success"]]

    @property
    def statistics(self) -> dict[str, int]:
        passed = sum(c["success"] for c in self.checks)
        return {"evaluated": len(self.checks), "passed": passed, "failed": len(self.checks) - passed}


def label_classes(params: ValidateParams) -> list[Any]:
    """The label values that must all be present: explicit ``allowed``, or both binary values."""
    rule = params.columns.get(params.label)
    if rule is None:
        return []
    if rule.allowed:
        return list(rule.allowed)
    if rule.type == "bool":
        return [False, True]
    if rule.type == "int" and rule.min is not None and rule.max is not None:
        return list(range(int(rule.min), int(rule.max) + 1))
    return []


def build_expectations(params: ValidateParams) -> list[Any]:
    """The GX expectations for a use case, built from its ``validate`` section of params.yaml."""
    import great_expectations as gx

    e = gx.expectations
    expectations: list[Any] = [e.ExpectTableRowCountToBeBetween(min_value=params.min_rows)]
    for column, rule in params.columns.items():
        expectations.append(e.ExpectColumnToExist(column=column))
        expectations.append(
            e.ExpectColumnValuesToBeInTypeList(column=column, type_list=TYPE_LISTS[rule.type])
        )
        allowed_nulls = params.max_null_fraction if rule.max_null_fraction is None else rule.max_null_fraction
        expectations.append(e.ExpectColumnValuesToNotBeNull(column=column, mostly=1.0 - allowed_nulls))
        if rule.min is not None or rule.max is not None:
            expectations.append(
                e.ExpectColumnValuesToBeBetween(column=column, min_value=rule.min, max_value=rule.max)
            )
        if rule.allowed is not None and column != params.label:
            expectations.append(e.ExpectColumnValuesToBeInSet(column=column, value_set=list(rule.allowed)))
        if rule.min_length is not None or rule.max_length is not None:
            expectations.append(
                e.ExpectColumnValueLengthsToBeBetween(
                    column=column, min_value=rule.min_length, max_value=rule.max_length
                )
            )
    if params.unique_together:
        expectations.append(e.ExpectCompoundColumnsToBeUnique(column_list=list(params.unique_together)))
    classes = label_classes(params)
    if classes:
        expectations.append(
            e.ExpectColumnDistinctValuesToContainSet(column=params.label, value_set=classes)
        )
    if len(classes) == 2:
        expectations.append(
            e.ExpectColumnMeanToBeBetween(
                column=params.label,
                min_value=params.min_label_fraction,
                max_value=1.0 - params.min_label_fraction,
            )
        )
    return expectations


def _summarize(result: Any) -> dict[str, Any]:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    numbers = {
        k: result.result[k]
        for k in ("observed_value", "unexpected_count", "unexpected_percent", "partial_unexpected_list")
        if k in result.result
    }
    if result.exception_info and result.exception_info.get("raised_exception"):
        numbers["error"] = result.exception_info.get("exception_message")
    shown = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    observed = ", ".join(f"{k}={_short(v)}" for k, v in numbers.items())
    return {
        "expectation": config.type,
        "kwargs": _jsonable(kwargs),
        "success": bool(result.success),
        "result": _jsonable(numbers),
        "summary": f"{config.type}({shown}): {observed or 'failed'}",
    }


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def as_gx_types(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text columns use the nullable ``string`` dtype.

    GX 1.24 does not recognise pandas 3's default ``str`` dtype by any type name, so
    ``expect_column_values_to_be_in_type_list`` would fail every text column.
    """
    text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c].dtype) and frame[c].dtype != object]
    return frame.astype({c: "string" for c in text}) if text else frame


def validate_frame(
    use_case: str, frame: pd.DataFrame, params: ValidateParams, docs_dir: Path | None = None
) -> ValidationReport:
    """Run the use case's suite on ``frame``; writes Data Docs (HTML) under ``docs_dir``."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas(f"{use_case}_source")
        .add_dataframe_asset(f"{use_case}_snapshot")
        .add_batch_definition_whole_dataframe("whole_snapshot")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=f"{use_case}_suite"))
    for expectation in build_expectations(params):
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{use_case}_validation", data=batch_definition, suite=suite)
    )
    actions: list[gx.checkpoint.ValidationAction] = []
    docs_path = None
    if docs_dir is not None:
        site = docs_dir / use_case
        context.add_data_docs_site(
            site_name=f"{use_case}_docs",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        actions.append(gx.checkpoint.UpdateDataDocsAction(name="data_docs"))
        docs_path = str(site / "index.html")
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(name=f"{use_case}_checkpoint", validation_definitions=[definition], actions=actions)
    )
    outcome = checkpoint.run(batch_parameters={"dataframe": as_gx_types(frame)})
    results = [r for run in outcome.run_results.values() for r in run.results]
    checks = tuple(_summarize(r) for r in results)
    report = ValidationReport(use_case, bool(outcome.success), checks, docs_path)
    logger.info("validation of %s: %s", use_case, report.statistics)
    return report


def check_report(report: ValidationReport) -> ValidationReport:
    """Raise DataValidationError naming each failed expectation; return the report otherwise."""
    if not report.success:
        raise DataValidationError(report.use_case, report.failures, report.docs_path)
    return report
