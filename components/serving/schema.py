"""The request schema of a served model: input fields, row validation and packing (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.errors import FunnelError

FLOAT32_MAX = float(np.finfo(np.float32).max)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# JSON Schema type of each tensor dtype a funnel signature uses
JSON_TYPES = {"float32": "number", "int64": "integer", "int32": "integer", "string": "string"}
# dtype of each raw column kind a model with data.transforms takes (components.data.ingest.value_kind);
# float64 keeps an epoch timestamp exact until the transforms have read it
FIELD_JSON_TYPES = JSON_TYPES | {"float64": "number", "bool": "boolean"}
MAX_REPORTED_ERRORS = 20
# a client's key names are quoted in an error at most this long, and at most this many of them
MAX_QUOTED_NAME_CHARS = 64
MAX_QUOTED_NAMES = 10


class ServingError(FunnelError):
    """A model cannot be served (no champion, or a signature the server cannot read)."""


class RequestError(FunnelError):
    """A request the server refuses; ``status`` is the 4xx answer and ``details`` say why."""

    def __init__(self, status: int, message: str, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details

    def as_json(self) -> dict[str, Any]:
        return {"error": self.message, **({"details": list(self.details)} if self.details else {})}


@dataclass(frozen=True)
class InputField:
    name: str
    dtype: str  # the tensor dtype fed to the model (float32 | int64 | int32 | string) or a RAW_DTYPES value
    nullable: bool = False  # the raw columns of a model with transforms: null is a missing value
    # a row may leave it out (or send null): the model gets ``absent_value(dtype)``
    optional: bool = False

    @property
    def json_type(self) -> str:
        return FIELD_JSON_TYPES[self.dtype]


def absent_value(dtype: str) -> Any:
    """What an optional input left out of a row reaches the model as: its dtype's null, as
    ``components.models.scorer.input_arrays`` gives it (the empty string, NaN, ``MISSING_ID``)."""
    from components.models.scorer import MISSING_ID

    return "" if dtype == "string" else float("nan") if dtype.startswith("float") else MISSING_ID


def read_fields(signature, spec: Mapping[str, str], optional: frozenset[str] = frozenset()) -> tuple[InputField, ...]:
    """The input fields of a model: names from its MLflow signature, dtypes from the Keras inputs,
    ``optional`` the inputs the Keras model declares optional (the signature must agree).

    Raises ServingError when the signature and the model disagree or a dtype is not servable.
    """
    named = [s.name for s in signature.inputs.inputs] if signature is not None else []
    if sorted(named) != sorted(spec):
        raise ServingError(
            f"the model signature names {sorted(named)} but the Keras model takes {sorted(spec)}; "
            "re-register the model with `funnel retrain` so both agree"
        )
    # a tensor signature has no optional inputs (MLflow's TensorSpec is always required)
    required = {s.name for s in signature.inputs.inputs if getattr(s, "required", True)}
    if required != set(spec) - optional:
        raise ServingError(
            f"the model signature requires {sorted(required)} but the Keras model requires "
            f"{sorted(set(spec) - optional)}; re-register the model with `funnel retrain` so both agree"
        )
    return keras_fields(spec, optional)


def keras_fields(spec: Mapping[str, str], optional: frozenset[str] = frozenset()) -> tuple[InputField, ...]:
    """The input fields of the Keras model's inputs; ServingError when a dtype is not servable."""
    unknown = {name: dtype for name, dtype in spec.items() if dtype not in JSON_TYPES}
    if unknown:
        raise ServingError(f"inputs {unknown} have dtypes the server cannot take (known: {sorted(JSON_TYPES)})")
    return tuple(InputField(name, dtype, optional=name in optional) for name, dtype in spec.items())


def group_fields(fields: tuple[InputField, ...]) -> dict[str, tuple[str, ...]]:
    """Input names grouped by dtype, in model order: one packed matrix per dtype goes to the model."""
    groups: dict[str, list[str]] = {}
    for f in fields:
        groups.setdefault(f.dtype, []).append(f.name)
    return {dtype: tuple(names) for dtype, names in groups.items()}


def _check_value(value: Any, json_type: str, dtype: str, max_string_chars: int | None = None) -> str | None:
    """Why ``value`` does not fit ``json_type`` (as ``dtype``), or None when it does."""
    kind = type(value)
    if json_type == "string":
        if kind is not str:
            return f"expected a string, got {_describe(value)}"
        if max_string_chars is not None and len(value) > max_string_chars:
            return (f"a string of {len(value)} characters; the limit is {max_string_chars} "
                    "(common.serving.max_string_chars)")
        return None
    if json_type == "boolean":
        return None if kind is bool else f"expected a boolean, got {_describe(value)}"
    if json_type == "integer":
        # 3.0 is an integer in JSON; past 2**53 a float is not exact (an out-of-range literal parses to one)
        if kind is float and value.is_integer() and abs(value) <= 2**53:
            value, kind = int(value), int
        if kind is not int:
            return f"expected an integer, got {_describe(value)}"
        return None if INT64_MIN <= value <= INT64_MAX else f"integer {value} is outside the int64 range"
    if kind is not int and kind is not float:
        return f"expected a number, got {_describe(value)}"
    return None if dtype == "float64" or abs(value) <= FLOAT32_MAX else f"number {value} is outside the float32 range"


def _describe(value: Any) -> str:
    names = {bool: "a boolean", type(None): "null", str: "a string", list: "an array", dict: "an object",
             int: "an integer", float: "a number"}
    return names.get(type(value), type(value).__name__)


def parse_rows(fields: tuple[InputField, ...], payload: Any, max_rows: int,
               max_string_chars: int | None = None) -> tuple[dict[str, np.ndarray], int]:
    """Validate ``{"rows": [...]}`` against the fields; return one (rows, k) matrix per dtype.

    Raises RequestError (422) listing every problem found (up to 20), with its row and field; a
    string longer than ``max_string_chars`` is one (its length is named, never its text).
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("rows"), list):
        raise RequestError(422, 'the body must be a JSON object {"rows": [{...}, ...]}')
    extra = sorted(set(payload) - {"rows"})
    rows = payload["rows"]
    if extra:
        raise RequestError(422, f"unknown top-level key(s) {_quote_names(extra)}; the body takes only 'rows'")
    if not rows:
        raise RequestError(422, "'rows' is empty; send at least one row")
    if len(rows) > max_rows:
        raise RequestError(422, f"{len(rows)} rows in one request; the limit is {max_rows}, split the request")
    names = {f.name for f in fields}
    required = {f.name for f in fields if not f.optional}
    absent = {f.name: absent_value(f.dtype) for f in fields if f.optional}
    groups = group_fields(fields)
    types = [(f.name, f.json_type, f.dtype, f.nullable) for f in fields]
    columns: dict[str, list[list[Any]]] = {dtype: [] for dtype in groups}
    errors: list[str] = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            errors.append(f"rows[{index}]: expected an object of column values, got {_describe(row)}")
            continue
        if row.keys() != names and not (required <= row.keys() <= names):
            errors += _key_errors(index, row, names, required)
            continue
        for name, json_type, dtype, nullable in types:
            value = row.get(name)
            if value is None and (nullable or name in absent):
                continue
            problem = _check_value(value, json_type, dtype, max_string_chars)
            if problem:
                errors.append(f"rows[{index}].{name}: {problem}")
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
        if not errors:
            if absent:  # an optional field left out, or null, is its absent value
                row = {**row, **{name: value for name, value in absent.items() if row.get(name) is None}}
            for dtype, group in groups.items():
                columns[dtype].append([row[name] for name in group])
    if errors:
        raise RequestError(422, "the rows do not match the model signature", tuple(errors[:MAX_REPORTED_ERRORS]))
    # a group holding a nullable field keeps its values as objects: None is not an int or a bool
    objects = {"string"} | {f.dtype for f in fields if f.nullable}
    packed = {
        dtype: np.array(values, dtype=object if dtype in objects else dtype).reshape(len(rows), len(groups[dtype]))
        for dtype, values in columns.items()
    }
    return packed, len(rows)


def _key_errors(index: int, row: dict, names: set[str], required: set[str] | None = None) -> list[str]:
    required = names if required is None else required
    missing, unknown = sorted(required - row.keys()), sorted(row.keys() - names)
    out = [f"rows[{index}]: missing field(s) {missing}"] if missing else []
    optional = sorted(names - required)
    takes = f"{sorted(required)}" + (f" and optionally {optional}" if optional else "")
    return out + ([f"rows[{index}]: unknown field(s) {_quote_names(unknown)}; the model takes {takes}"]
                  if unknown else [])


def _quote_names(names: list[str]) -> str:
    """Key names a client sent, as a list short enough for an error: long names and long lists cut."""
    cut = [n if len(n) <= MAX_QUOTED_NAME_CHARS else f"{n[:MAX_QUOTED_NAME_CHARS]}... ({len(n)} characters)"
           for n in names[:MAX_QUOTED_NAMES]]
    more = len(names) - MAX_QUOTED_NAMES
    return str(cut) + (f" and {more} more" if more > 0 else "")


def check_rows(fields: tuple[InputField, ...], packed: Mapping[str, np.ndarray], checks) -> None:
    """Run a model's value checks (``components.models.scorer.RowCheck``) on packed request rows;
    RequestError (422) naming each refused row and field (never its value)."""
    if not checks:
        return
    from components.models.scorer import input_problems

    columns = {name: packed[dtype][:, index] for dtype, names in group_fields(fields).items()
               for index, name in enumerate(names)}
    problems = input_problems(checks, columns)
    if problems:
        raise RequestError(422, "the rows do not match the model signature",
                           tuple(f"rows[{row}].{name}: {why}" for row, name, why in problems[:MAX_REPORTED_ERRORS]))


def pack_frame(fields: tuple[InputField, ...], frame) -> dict[str, np.ndarray]:
    """Raw rows of a DataFrame as one (rows, k) matrix per dtype (the batch-scoring path); an
    optional field the frame has no column for is its absent value."""
    packed = {}
    for dtype, names in group_fields(fields).items():
        optional = {f.name for f in fields if f.optional}
        values = np.stack([np.asarray(frame[name]) if name in frame or name not in optional
                           else np.full(len(frame), absent_value(dtype), dtype=object) for name in names], axis=1)
        packed[dtype] = values.astype(str).astype(object) if dtype == "string" else values.astype(dtype)
    return packed


def warm_up_rows(fields: tuple[InputField, ...], rows: int = 2) -> dict[str, np.ndarray]:
    """Neutral rows (0, 0.0, "", null where allowed) in packed form: the first call traces nothing
    at request time (a null passes every transform; an empty text may not parse as a timestamp)."""
    example = {f.name: None if f.nullable or f.optional else "" if f.dtype == "string" else 0 for f in fields}
    packed, _ = parse_rows(fields, {"rows": [example] * rows}, rows)
    return packed


def field_schema(f: InputField, max_string_chars: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": f.json_type}
    if f.json_type == "string" and max_string_chars is not None:
        schema["maxLength"] = max_string_chars
    if f.dtype == "float32":
        schema |= {"minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    elif f.json_type == "integer":
        schema |= {"format": "int64", "minimum": INT64_MIN, "maximum": INT64_MAX}
    return schema | ({"nullable": True} if f.nullable or f.optional else {})
