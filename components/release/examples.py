"""The input example logged with a registered model: synthetic, made from the validation rules and
the model's input types, because real rows may be personal data."""

from __future__ import annotations

from typing import Any

import pandas as pd


def synthetic_example(columns: dict[str, str], rules, transforms: dict | None = None, rows: int = 2) -> pd.DataFrame:
    """An input example for the request ``columns`` (name -> dtype, as the signature names them)
    made from the validation rules (allowed values, ranges) and types, never from real rows (they
    may be personal data); a column the transforms parse as a time gets a time they can parse."""
    from datetime import datetime

    from components.data.ingest import load_transforms
    from components.data.transforms import ParseTime

    fitted = load_transforms(transforms)
    times = {t.column: t for t in (fitted.transforms if fitted else ()) if isinstance(t, ParseTime)}
    example: dict[str, list[Any]] = {}
    for name, dtype in columns.items():
        rule = rules.get(name)
        value: Any
        if name in times:
            value = 946684800 if times[name].unit else datetime(2000, 1, 1).strftime(times[name].format or "%Y-%m-%dT%H:%M:%S")
        elif rule is not None and rule.allowed:
            value = rule.allowed[0]
        elif dtype == "string":
            value = "example"
        elif rule is not None and rule.min is not None and rule.max is not None:
            value = (rule.min + rule.max) / 2
        else:
            value = rule.min if rule is not None and rule.min is not None else 0
        if name in times:  # already what the transform parses
            pass
        elif dtype == "string":
            value = str(value)
        elif dtype == "bool":
            value = bool(value)
        elif dtype.startswith("int"):
            value = int(value)
        else:
            value = float(value)
        example[name] = [value] * rows
    return pd.DataFrame(example)


def check_example(use_case: str, keras_model, example: pd.DataFrame, transforms: dict | None = None) -> None:
    """Check the input example as serving takes it, on the in-memory model: the fitted transforms,
    the conversion to the model's input arrays and its row checks (what the pyfunc does before the
    Keras call).

    Raises:
        InputSchemaError: the example does not fit (names the columns, never values: it is synthetic anyway).
    """
    import numpy as np

    from components.data.ingest import load_transforms
    from components.errors import DataValidationError, InputSchemaError
    from components.models.scorer import input_arrays, input_problems, input_spec, optional_inputs, row_checks

    spec = input_spec(keras_model)
    try:
        fitted = load_transforms(transforms)
        rows = fitted.apply(example, online=True) if fitted is not None else example
        input_arrays(spec, rows, optional_inputs(keras_model))
    except (InputSchemaError, DataValidationError, ValueError, TypeError, KeyError) as exc:
        raise InputSchemaError(
            f"{use_case}: the synthetic input example (built from validate.columns) does not fit the model's "
            f"inputs ({type(exc).__name__}); fix the column rules in params.yaml or set common.input_example: off"
        ) from None
    problems = input_problems(row_checks(keras_model), {n: np.asarray(rows[n]).reshape(-1) for n in spec if n in rows})
    if problems:
        raise InputSchemaError(f"{use_case}: the synthetic input example fails the model's row checks on "
                               f"{sorted({name for _, name, _ in problems})}; fix validate.columns in params.yaml")
