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
