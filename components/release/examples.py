"""The input example logged with a registered model: synthetic, made from the validation rules and
the model's input types, because real rows may be personal data."""

from __future__ import annotations

from typing import Any

import pandas as pd


def synthetic_example(keras_model, rules, rows: int = 2) -> pd.DataFrame:
    """An input example made from the validation rules (allowed values, ranges) and the model's
    input types, never from real rows (they may be personal data)."""
    columns: dict[str, list[Any]] = {}
    for tensor in keras_model.inputs:
        rule = rules.get(tensor.name)
        if rule is not None and rule.allowed:
            value: Any = rule.allowed[0]
        elif tensor.dtype == "string":
            value = "example"
        elif rule is not None and rule.min is not None and rule.max is not None:
            value = (rule.min + rule.max) / 2
        else:
            value = rule.min if rule is not None and rule.min is not None else 0
        if tensor.dtype == "string":
            value = str(value)
        elif tensor.dtype.startswith("int"):
            value = int(value)
        else:
            value = float(value)
        columns[tensor.name] = [value] * rows
    return pd.DataFrame(columns)
