"""Validate a snapshot with a Great Expectations 1.x suite; the only module that uses GX."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from numbers import Number
from pathlib import Path
from typing import Any

import pandas as pd

from components.config import ValidateParams
from components.errors import ConfigError, DataValidationError

logger = logging.getLogger(__name__)

# what a GX result may show: counts and percentages (never ``partial_unexpected_list`` and the like)
SAFE_RESULT_KEYS = ("element_count", "unexpected_count", "unexpected_percent", "missing_count", "missing_percent")
# expectations whose string ``observed_value`` is a dtype name, not a row value
DTYPE_OBSERVING = frozenset({"expect_column_values_to_be_in_type_list", "expect_column_values_to_be_of_type"})
LIKELY_DELIMITERS = (";", "\t", "|", ",")

# GX names pandas' nullable dtypes (what data.transforms produce) by their class: Int64Dtype, ...
TYPE_LISTS = {
    "int": ["int64", "int32", "Int64", "Int32", "Int64Dtype", "Int32Dtype"],
    "float": ["float64", "float32", "Float64", "int64", "int32", "Int64", "Float64Dtype", "Int64Dtype"],
    "str": ["StringDtype", "object", "str", "string"],
    "bool": ["bool", "boolean", "BooleanDtype"],
}


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of a suite: every expectation with its numbers, and where Data Docs are.

    Each check says whether the expectation held (``success``) and, when Great Expectations
    itself raised while evaluating it, the exception type and message (``error``); ``result``
    holds counts and statistics only, never row values. ``hints`` say what probably went wrong
    before any expectation (e.g. a wrong delimiter).
    """

    use_case: str
    success: bool
    checks: tuple[dict[str, Any], ...]
    docs_path: str | None
    hints: tuple[str, ...] = ()

    @property
    def errors(self) -> list[str]:
        """Expectations GX could not evaluate: ``<expectation> on <column>: <type>: <message>``."""
        return [f"{c['expectation']} on {_target(c)}: {c['error']}" for c in self.checks if c.get("error")]

    @property
    def failures(self) -> list[str]:
        """The hints, then each failed expectation, then one line for those GX could not evaluate."""
        failed = [c for c in self.checks if not c["success"] and not c.get("error")]
        missing = [str(c["kwargs"]["column"]) for c in failed if c["expectation"] == "expect_column_to_exist"]
        lines = [c["summary"] for c in failed if len(missing) < 2 or c["expectation"] != "expect_column_to_exist"]
        if len(missing) > 1:
            lines.insert(0, f"expect_column_to_exist: {len(missing)} columns are missing from the data: "
                            f"{_name_some(missing)}")
        errored = [c for c in self.checks if c.get("error")]
        return [*self.hints, *lines, *([_describe_errors(errored, self.checks)] if errored else [])]

    @property
    def statistics(self) -> dict[str, int]:
        passed = sum(c["success"] for c in self.checks)
        errors = sum(bool(c.get("error")) for c in self.checks)
        return {"evaluated": len(self.checks), "passed": passed, "failed": len(self.checks) - passed - errors,
                "errors": errors}


def _target(check: dict[str, Any]) -> str:
    kwargs = check["kwargs"]
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_list" in kwargs:
        return ", ".join(map(str, kwargs["column_list"]))
    return "the table"


def _name_some(names: list[str], shown: int = 10) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _describe_errors(errored: list[dict[str, Any]], checks: tuple[dict[str, Any], ...], shown: int = 10) -> str:
    # a missing column makes every other expectation on it raise; one phrase says so
    missing = {c["kwargs"]["column"] for c in checks
               if c["expectation"] == "expect_column_to_exist" and not c["success"] and not c.get("error")}
    on_missing = [c for c in errored if c["kwargs"].get("column") in missing]
    parts = [f"{c['expectation']} on {_target(c)}: {c['error']}" for c in errored if c not in on_missing]
    if on_missing:
        columns = list(dict.fromkeys(str(c["kwargs"]["column"]) for c in on_missing))
        parts.insert(0, f"{len(on_missing)} on columns missing from the data ({_name_some(columns, shown)})")
    more = f"; and {len(parts) - shown} more (see the validation table or Data Docs)" if len(parts) > shown else ""
    return (f"Great Expectations could not evaluate {len(errored)} expectation(s) (errors inside GX, not "
            f"failed checks): {'; '.join(parts[:shown])}{more}")


def label_classes(params: ValidateParams) -> list[Any]:
    """The label values that must all be present: explicit ``allowed``, or both binary values."""
    rule = params.columns.get(params.label) if params.label else None
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
        if rule.type not in TYPE_LISTS:  # ColumnRule's Literal and TYPE_LISTS list the same types
            raise ConfigError(f"validate.columns.{column}.type: unknown type {rule.type!r}; "
                              f"use one of {', '.join(TYPE_LISTS)}")
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
        if rule.allowed is not None:  # the label too: a value outside the set must not train a new class
            expectations.append(e.ExpectColumnValuesToBeInSet(column=column, value_set=list(rule.allowed)))
        if rule.min_length is not None or rule.max_length is not None:
            expectations.append(
                e.ExpectColumnValueLengthsToBeBetween(
                    column=column, min_value=rule.min_length, max_value=rule.max_length
                )
            )
    if params.unique_together:
        expectations.append(e.ExpectCompoundColumnsToBeUnique(column_list=list(params.unique_together)))
    label, classes = params.label, label_classes(params)
    if label is None or not classes:
        return expectations
    expectations.append(e.ExpectColumnDistinctValuesToContainSet(column=label, value_set=classes))
    label_rule = params.columns.get(label)
    if len(classes) == 2 and label_rule is not None and label_rule.type == "str":
        # text labels (yes/no): each class on at least min_label_fraction of the rows
        expectations += [e.ExpectColumnValuesToBeInSet(column=label, value_set=[value], mostly=params.min_label_fraction)
                         for value in classes if params.min_label_fraction > 0]
    elif len(classes) == 2:
        expectations.append(e.ExpectColumnMeanToBeBetween(
            column=label, min_value=params.min_label_fraction, max_value=1.0 - params.min_label_fraction))
    return expectations


def _summarize(result: Any, names: Collection[str] = ()) -> dict[str, Any]:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    numbers = _safe_numbers(config.type, result.result or {})
    error = _gx_error(result.exception_info or {}, names)
    shown = ", ".join(f"{k}={_settings(v)}" for k, v in kwargs.items())
    observed = ", ".join(f"{k}={_short(v)}" for k, v in numbers.items())
    outcome = f"Great Expectations raised {error}" if error else observed or "failed"
    if not error and not result.success and _is_allowed_set(config.type, kwargs):
        outcome = _outside_allowed(str(kwargs["column"]), len(kwargs["value_set"]), numbers)
    return {
        "expectation": config.type,
        "kwargs": _jsonable(kwargs),
        "success": bool(result.success) and error is None,
        "result": _jsonable(numbers),
        "error": error,
        "summary": f"{config.type}({shown}): {outcome}",
    }


def _settings(value: Any, shown: int = 12) -> str:
    # a long value set (77 intents) is named by its size: the rule is in params.yaml
    if isinstance(value, list | tuple) and len(value) > shown:
        return f"<{len(value)} values>"
    return str(value)


def _is_allowed_set(expectation: str, kwargs: dict[str, Any]) -> bool:
    # a rule's ``allowed`` set; the per-class label shares (``mostly``) are another check
    return expectation == "expect_column_values_to_be_in_set" and kwargs.get("mostly") in (None, 1, 1.0)


def _outside_allowed(column: str, allowed: int, numbers: dict[str, Any]) -> str:
    count = numbers.get("unexpected_count")
    rows = f"{count} row(s) have" if count is not None else "some rows have"
    return (f"{rows} a {column!r} value outside the {allowed} allowed values (rule validate.columns.{column}"
            f".allowed); if it is a new category, add it to that list in params.yaml, else fix or drop those rows")


def _is_statistic(value: Any) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool)


def _safe_numbers(expectation: str, result: dict[str, Any]) -> dict[str, Any]:
    """The counts and statistics of a GX result; never its lists of (unexpected) values."""
    numbers = {k: result[k] for k in SAFE_RESULT_KEYS if _is_statistic(result.get(k))}
    observed = result.get("observed_value")
    # a mean or a row count is a statistic; a dtype name describes the schema; anything else
    # (distinct values, a min/max string) may be a row value
    if _is_statistic(observed) or (expectation in DTYPE_OBSERVING and isinstance(observed, str)):
        numbers["observed_value"] = observed
    return numbers


def _gx_error(info: dict[str, Any], names: Collection[str]) -> str | None:
    """``<type>: <message>`` of the exception GX raised evaluating an expectation, or None.

    GX 1.x gives either one ``{raised_exception, exception_message, exception_traceback}`` or
    one such dict per metric it could not compute.
    """
    infos = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for item in infos:
        if str(item.get("raised_exception")) == "True":
            message = _scrub(str(item.get("exception_message") or ""), names)
            return f"{_exception_type(str(item.get('exception_traceback') or ''))}: {message}"
    return None


def _exception_type(traceback: str) -> str:
    # the first exception line of a chained traceback is the cause (e.g. a TypeError that GX
    # re-raised as MetricResolutionError)
    for line in traceback.splitlines():
        found = re.match(r"([A-Za-z_][\w.]*(?:Error|Exception|Warning|Exit|Interrupt))(?::|$)", line)
        if found:
            return found.group(1).rsplit(".", 1)[-1]
    return "error"


def _scrub(message: str, names: Collection[str]) -> str:
    """The message with quoted text other than column names replaced (it may be a row value)."""
    def keep_names(match: re.Match) -> str:
        return match.group(0) if match.group(2) in names else f"{match.group(1)}…{match.group(1)}"

    cleaned = re.sub(r"(['\"])(.*?)\1", keep_names, message.removeprefix("Error: ").strip())
    return _short(cleaned)


def delimiter_hint(frame: pd.DataFrame, params: ValidateParams, delimiter: str | None = None) -> str | None:
    """Why a frame probably came from a file read with the wrong delimiter, or None.

    One parsed column where the rules name several (or whose header holds a likely delimiter)
    means every field of a line landed in one; the header is named, never a row.
    """
    if len(frame.columns) != 1:
        return None
    name = str(frame.columns[0])
    if not params.columns or name in params.columns:
        return None
    inside = [d for d in LIKELY_DELIMITERS if d in name and d != delimiter]
    if len(params.columns) < 2 and not inside:
        return None
    # a file without a header line has a row where the header should be: show the header only
    # when it names a schema column
    fields = [f.strip().strip("'\"") for f in name.split(inside[0])] if inside else [name]
    header = name if len(name) <= 60 else name[:57] + "..."
    shown = f" {header!r}" if set(fields) & set(params.columns) else " (its header names no schema column)"
    read = f" (read with {delimiter!r})" if delimiter is not None else ""
    guess = f"; the header holds {inside[0]!r}, so the file is probably {inside[0]!r}-separated" if inside else ""
    return (f"the file was read as a single column{shown} but the schema names {len(params.columns)} "
            f"columns — check data.delimiter in params.yaml{read}{guess}")


def artifact_rows(report: ValidationReport) -> list[dict[str, Any]]:
    """One row per expectation for a table artifact: expectation, column, success and what was
    observed (counts, percentages and statistics; GX's own error when it raised), never row values."""
    rows = []
    for check in report.checks:
        observed = ", ".join(f"{k}={_short(v)}" for k, v in check["result"].items())
        if check.get("error"):
            observed = f"GX error: {check['error']}"
        column = _target(check) if {"column", "column_list"} & set(check["kwargs"]) else ""
        rows.append({"expectation": check["expectation"], "column": column,
                     "success": check["success"], "observed": observed})
    return rows


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
    use_case: str, frame: pd.DataFrame, params: ValidateParams, docs_dir: Path | None = None,
    *, delimiter: str | None = None,
) -> ValidationReport:
    """Run the use case's suite on ``frame``; writes Data Docs (HTML) under ``docs_dir``.

    ``delimiter`` is the one the file was read with (``data.delimiter``), named in the hint
    when the frame looks read with the wrong one.
    """
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
    # the whole suite in one store write (suite.add_expectation re-serialises the stored suite on
    # every call: quadratic in the number of expectations, ~7 s of intent's 73)
    suite = context.suites.add(gx.ExpectationSuite(name=f"{use_case}_suite", expectations=build_expectations(params)))
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
        # this site only: an ephemeral context also has GX's default site (in a temporary folder),
        # which the action would build as well, the same pages again where nobody looks
        actions.append(gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[f"{use_case}_docs"]))
        docs_path = str(site / "index.html")
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(name=f"{use_case}_checkpoint", validation_definitions=[definition], actions=actions)
    )
    outcome = checkpoint.run(batch_parameters={"dataframe": as_gx_types(frame)})
    results = [r for run in outcome.run_results.values() for r in run.results]
    names = {str(c) for c in frame.columns} | set(params.columns)
    checks = tuple(_summarize(r, names) for r in results)
    hint = delimiter_hint(frame, params, delimiter)
    report = ValidationReport(use_case, bool(outcome.success) and hint is None, checks, docs_path,
                              (hint,) if hint else ())
    logger.info("validation of %s: %s", use_case, report.statistics)
    if hint:
        logger.warning(hint)
    return report


def check_report(report: ValidationReport) -> ValidationReport:
    """Raise DataValidationError naming the hints, each failed expectation and those GX could
    not evaluate (apart); return the report otherwise."""
    if not report.success:
        raise DataValidationError(report.use_case, report.failures, report.docs_path)
    return report
