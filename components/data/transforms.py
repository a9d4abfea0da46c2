"""Declarative feature transforms (``data.transforms``): fitted in the data step, stored with the
snapshot, applied by one ``FittedTransforms.apply`` offline and to serving rows (``online=True``:
rows are never dropped). pandas is imported inside functions, so config users stay light."""

from __future__ import annotations

import ast
import functools
import logging
import operator
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, cast, get_args

from pydantic import AfterValidator, Field, model_validator

from components.config import Section, parse_section
from components.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

STATE_FORMAT = 1
TIME_UNITS_S = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0}
BOOL_TEXTS = {"true": True, "t": True, "yes": True, "y": True, "1": True,
              "false": False, "f": False, "no": False, "n": False, "0": False}
# operators are nodes of their own, so Pow, Not, Call... are refused; x / 0 is NaN, not inf
EXPRESSION_NODES = (ast.BinOp, ast.UnaryOp, ast.Name, ast.Load, ast.Constant,
                    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.UAdd, ast.USub)
ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Div: lambda a, b: a / b.where(b != 0)}
Key = tuple[str | None, ...]


@dataclass(frozen=True)
class _Step:
    """Where a transform runs, and its checks: messages name columns and counts, never values."""

    label: str
    use_case: str
    online: bool

    def fail(self, message: str) -> DataValidationError:
        return DataValidationError(self.use_case, [f"{self.label}: {message}"])

    def require(self, frame: pd.DataFrame, columns: Sequence[str]) -> None:
        if missing := [c for c in columns if c not in frame.columns]:
            raise self.fail(f"column(s) {', '.join(map(repr, missing))} missing (the frame has "
                            f"{len(frame.columns)} columns); send them, or fix the transform in params.yaml")

    def check(self, bad: Any, total: int, column: str, what: str) -> None:
        if int(bad):
            raise self.fail(f"{int(bad)} of {total} values of column {column!r} are not {what}; "
                            "fix the data or the transform")

    def numbers(self, frame: pd.DataFrame, column: str, what: str = "numbers") -> pd.Series:
        import pandas as pd
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series):  # bools too
            return series.astype("float64")
        numbers = pd.to_numeric(series, errors="coerce").astype("float64")
        self.check((numbers.isna() & series.notna()).sum(), len(series), column, what)
        return numbers

    def times(self, frame: pd.DataFrame, column: str) -> pd.Series:
        import pandas as pd
        if not pd.api.types.is_datetime64_any_dtype(frame[column]):
            raise self.fail(f"column {column!r} is {frame[column].dtype}, not a timestamp; parse it first with parse_time")
        return frame[column]


class _Op(Section):
    """A transform: the columns it needs (online too) and writes, by field; ``run(frame, step, table)``."""

    READS: ClassVar[tuple[str, ...]] = ()
    WRITES: ClassVar[tuple[str, ...]] = ()

    def _named(self, fields: tuple[str, ...]) -> tuple[str, ...]:
        values = [getattr(self, f) for f in fields]
        return tuple(c for v in values for c in ([v] if isinstance(v, str) else v or ()))

    def reads(self) -> tuple[str, ...]:
        return self._named(self.READS)

    def writes(self) -> tuple[str, ...]:
        return self._named(self.WRITES)


class Rename(_Op):
    op: Literal["rename"] = "rename"
    columns: dict[str, str] = Field(min_length=1)
    READS = ("columns",)

    def writes(self) -> tuple[str, ...]:
        return tuple(self.columns.values())

    def run(self, frame: pd.DataFrame, step: _Step, table: Any) -> pd.DataFrame:
        if clashes := [new for new in self.columns.values() if new in frame.columns and new not in self.columns]:
            raise step.fail(f"new name(s) {', '.join(map(repr, clashes))} already exist; drop them first")
        return frame.rename(columns=self.columns)


class Cast(_Op):
    """int and bool give nullable columns (Int64, boolean); nulls stay null."""

    op: Literal["cast"] = "cast"
    column: str
    to: Literal["int", "float", "str", "bool"]
    READS = ("column",)

    def run(self, frame: pd.DataFrame, step: _Step, table: Any) -> pd.DataFrame:
        series = frame[self.column]
        if self.to == "str":
            result = series.astype("str")
        elif self.to == "bool":
            result = series.map(lambda v: BOOL_TEXTS.get(_key_text(v).lower()), na_action="ignore").astype("boolean")
            step.check((result.isna() & series.notna()).sum(), len(series), self.column, "booleans (true/false, 1/0)")
        else:
            result = step.numbers(frame, self.column)
            if self.to == "int":
                step.check((result % 1 > 0).sum(), len(series), self.column, "whole numbers")
                result = result.astype("Int64")
        return frame.assign(**{self.column: result})


class ParseTime(_Op):
    """Text in ``format`` (strftime; default ISO 8601) or epoch numbers in ``unit`` -> UTC-naive datetime."""

    op: Literal["parse_time"] = "parse_time"
    column: str
    format: str | None = None
    unit: Literal["s", "ms"] | None = None
    output: str | None = None
    READS = ("column",)

    @model_validator(mode="after")
    def _one_source(self) -> ParseTime:
        if self.format is not None and self.unit is not None:
            raise ValueError("give either format (text timestamps) or unit (epoch numbers), not both")
        return self

    def writes(self) -> tuple[str, ...]:
        return (self.output or self.column,)

    def run(self, frame: pd.DataFrame, step: _Step, table: Any) -> pd.DataFrame:
        import pandas as pd
        series = frame[self.column]  # datetimes pass through (naive ones taken as UTC)
        if self.unit is not None:
            numbers = step.numbers(frame, self.column, f"epoch numbers in unit {self.unit!r}")
            parsed = pd.to_datetime(numbers, unit=self.unit, utc=True, errors="coerce")
        else:
            fmt = self.format or "ISO8601"
            parsed = pd.to_datetime(series, format=fmt, utc=True, errors="coerce")
            step.check((parsed.isna() & series.notna()).sum(), len(series), self.column, f"timestamps in format {fmt!r}")
        return frame.assign(**{self.writes()[0]: parsed.dt.tz_convert(None).astype("datetime64[us]")})


class TimeDiff(_Op):
    """``end - start`` in ``unit`` as a float (NaN where either is null)."""

    op: Literal["time_diff"] = "time_diff"
    start: str
    end: str
    output: str
    unit: Literal["seconds", "minutes", "hours", "days"] = "seconds"
    READS, WRITES = ("start", "end"), ("output",)

    def run(self, frame: pd.DataFrame, step: _Step, table: Any) -> pd.DataFrame:
        seconds = (step.times(frame, self.end) - step.times(frame, self.start)).dt.total_seconds()
        return frame.assign(**{self.output: (seconds / TIME_UNITS_S[self.unit]).astype("float64")})


class TimePart(_Op):
    """One nullable Int64 column ``<prefix or column>_<part>`` per part (weekday: Monday is 0)."""

    op: Literal["time_part"] = "time_part"
    column: str
    parts: tuple[Literal["year", "month", "day", "hour", "minute", "weekday", "day_of_year"], ...] = Field(min_length=1)
    prefix: str | None = None
    READS = ("column",)

    def writes(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix or self.column}_{part}" for part in self.parts)

    def run(self, frame: pd.DataFrame, step: _Step, table: Any) -> pd.DataFrame:
        times = step.times(frame, self.column).dt  # weekday is day_of_week in pandas (Monday is 0)
        values = (getattr(times, "day_of_week" if p == "weekday" else p).astype("Int64") for p in self.parts)
        return frame.assign(**dict(zip(self.writes(), values, strict=True)))


class CountBy(_Op):
    """Per row, how many fitted rows (or distinct values of ``distinct``) share its key; unseen: 0."""

    op: Literal["count_by"] = "count_by"
    keys: tuple[str, ...] = Field(min_length=1)
    output: str
    distinct: str | None = None
    READS, WRITES = ("keys",), ("output",)

    def fit(self, frame: pd.DataFrame, step: _Step) -> dict[Key, int]:
        step.require(frame, [self.distinct] if self.distinct else [])
        keys = _row_keys(frame, self.keys)
        if self.distinct is None:
            return dict(Counter(keys))
        pairs = set(zip(keys, _row_keys(frame, (self.distinct,)), strict=True))
        distinct = Counter(key for key, (value,) in pairs if value is not None)
        return {key: distinct.get(key, 0) for key in dict.fromkeys(keys)}  # all-null keys count 0

    def run(self, frame: pd.DataFrame, step: _Step, table: Mapping[Key, int] | None) -> pd.DataFrame:
        import pandas as pd
        if table is None:
            raise step.fail("has no fitted count table; fit the transforms (fit_transforms) before applying them")
        counts = [table.get(key, 0) for key in _row_keys(frame, self.keys)]
        return frame.assign(**{self.output: pd.Series(counts, index=frame.index, dtype="int64")})


class FillNull(_Op):
    op: Literal["fill_null"] = "fill_null"
    column: str
    value: bool | int | float | str
    READS = ("column",)

    def run(self, frame: pd.DataFrame, step: _Step, table: Any) -> pd.DataFrame:
        filled = frame[self.column].fillna(self.value)
        # a request column that was all null arrives as objects; give it the dtype of its values
        return frame.assign(**{self.column: filled.infer_objects() if filled.dtype == object else filled})


class DropNull(_Op):
    """Drops rows with a null in any of ``columns`` (index reset) offline; online does nothing."""

    op: Literal["drop_null"] = "drop_null"
    columns: tuple[str, ...] = Field(min_length=1)

    def run(self, frame: pd.DataFrame, step: _Step, table: Any) -> pd.DataFrame:
        if step.online:
            return frame  # a served row is answered, never dropped
        step.require(frame, self.columns)
        kept = frame.dropna(subset=list(self.columns)).reset_index(drop=True)
        logger.info("%s: dropped %d of %d rows", step.label, len(frame) - len(kept), len(frame))
        return kept


class Arithmetic(_Op):
    """``output`` = a float expression of columns (Python identifiers) and numbers with + - * / and ()."""

    op: Literal["arithmetic"] = "arithmetic"
    output: str
    expression: Annotated[str, AfterValidator(lambda e: parse_expression(e) and e)]  # refuses unsafe ones
    WRITES = ("output",)

    def reads(self) -> tuple[str, ...]:
        names = (n.id for n in ast.walk(parse_expression(self.expression)) if isinstance(n, ast.Name))
        return tuple(dict.fromkeys(names))

    def run(self, frame: pd.DataFrame, step: _Step, table: Any) -> pd.DataFrame:
        import pandas as pd

        def evaluate(node: ast.expr) -> pd.Series:
            if isinstance(node, ast.Constant):
                return pd.Series(float(cast(float, node.value)), index=frame.index, dtype="float64")
            if isinstance(node, ast.Name):
                return step.numbers(frame, node.id)
            if isinstance(node, ast.UnaryOp):
                return -evaluate(node.operand) if isinstance(node.op, ast.USub) else evaluate(node.operand)
            assert isinstance(node, ast.BinOp)  # parse_expression lets nothing else through
            return ARITHMETIC[type(node.op)](evaluate(node.left), evaluate(node.right))

        return frame.assign(**{self.output: evaluate(parse_expression(self.expression))})


class Drop(_Op):
    """Removes columns; offline a missing one is an error (a typo), online it is skipped (not sent)."""

    op: Literal["drop"] = "drop"
    columns: tuple[str, ...] = Field(min_length=1)

    def run(self, frame: pd.DataFrame, step: _Step, table: Any) -> pd.DataFrame:
        step.require(frame, () if step.online else self.columns)
        return frame.drop(columns=[c for c in self.columns if c in frame.columns])


Transform = Annotated[Rename | Cast | ParseTime | TimeDiff | TimePart | CountBy | FillNull | DropNull | Arithmetic
                      | Drop, Field(discriminator="op")]
OPS: dict[str, type[_Op]] = {m.model_fields["op"].default: m for m in get_args(get_args(Transform)[0])}


@functools.lru_cache(maxsize=256)
def parse_expression(expression: str) -> ast.expr:
    """The tree of an expression of column names, numbers, + - * / and (); ValueError otherwise (never eval'd)."""
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise ValueError("expression is not valid arithmetic") from None
    for node in ast.walk(tree):
        if not isinstance(node, EXPRESSION_NODES) or (isinstance(node, ast.Constant) and type(node.value) not in (int, float)):
            raise ValueError(f"expression may use only column names, numbers, + - * / and parentheses; "
                             f"found {type(node).__name__}")
    return tree


def parse_transforms(raw: Sequence[Mapping[str, Any]], where: str) -> tuple[Transform, ...]:
    """Validate ``data.transforms``; a ConfigError names the key path (``<where>[2].column``) or lists the ops."""
    if isinstance(raw, str | bytes | Mapping) or not isinstance(raw, Sequence):
        raise ConfigError(f"{where}: expected a list of transforms, got {type(raw).__name__}")
    transforms: list[Any] = []
    for index, item in enumerate(raw):
        op = item.get("op") if isinstance(item, Mapping) else None
        if isinstance(item, Mapping) and op not in OPS:
            problem = "missing required key" if op is None else f"unknown op {op!r}"
            raise ConfigError(f"{where}[{index}].op: {problem}; known ops: {', '.join(OPS)}")
        transforms.append(parse_section(OPS.get(str(op), _Op), item, f"{where}[{index}]"))
    return tuple(transforms)


def _trace(fitted_or_transforms: FittedTransforms | Sequence[Transform]) -> tuple[list[str], list[str]]:
    inputs: dict[str, None] = {}
    produced: dict[str, None] = {}
    steps = fitted_or_transforms.transforms if isinstance(fitted_or_transforms, FittedTransforms) else fitted_or_transforms
    for t in steps:
        inputs |= dict.fromkeys(c for c in t.reads() if c not in produced)
        gone = t.reads() if isinstance(t, Rename) else t.columns if isinstance(t, Drop) else ()
        produced = {c: None for c in produced if c not in gone} | dict.fromkeys(t.writes())
    return list(inputs), list(produced)


def input_columns(fitted_or_transforms: FittedTransforms | Sequence[Transform]) -> list[str]:
    """The raw columns the transforms read and do not produce themselves: what a request must send."""
    return _trace(fitted_or_transforms)[0]


def output_columns(fitted_or_transforms: FittedTransforms | Sequence[Transform]) -> list[str]:
    """The columns the transforms produce that are still there at the end (the derived features)."""
    return _trace(fitted_or_transforms)[1]


def _key_text(value: Any) -> str:
    """One spelling per value: ids read as ints (or floats, with nulls) from CSV match JSON strings."""
    import numpy as np
    return str(int(value)) if isinstance(value, float | np.floating) and value.is_integer() else str(value)


def _row_keys(frame: pd.DataFrame, keys: Sequence[str]) -> list[Key]:
    """Each row's key as texts (None for a null), spelling each distinct value once."""
    import numpy as np
    import pandas as pd
    columns = []
    for key in keys:
        codes, uniques = pd.factorize(frame[key], use_na_sentinel=True)  # a null's code -1 picks the None
        columns.append(np.array([_key_text(v) for v in uniques] + [None], dtype=object)[codes].tolist())
    return list(zip(*columns, strict=True))


@dataclass(frozen=True)
class FittedTransforms:
    """Transforms plus what they learned at fit time (count tables by step index)."""

    transforms: tuple[Transform, ...]
    counts: Mapping[int, Mapping[Key, int]] = field(default_factory=dict)
    use_case: str = "transforms"

    def apply(self, frame: pd.DataFrame, *, online: bool = False) -> pd.DataFrame:
        """The transformed copy of ``frame`` (never mutated); DataValidationError names the step and column."""
        return self._run(frame, online)

    def _run(self, frame: pd.DataFrame, online: bool, learn: dict[int, Any] | None = None) -> pd.DataFrame:
        out = frame.copy(deep=False)
        for index, t in enumerate(self.transforms):
            step = _Step(f"transforms[{index}] {t.op}", self.use_case, online)
            step.require(out, t.reads())
            if learn is not None and isinstance(t, CountBy):
                learn[index] = t.fit(out, step)  # learn is self.counts: run() below looks the table up
            out = t.run(out, step, self.counts.get(index))
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready state: the transforms as in params.yaml, count tables as [key..., count] rows."""
        counts = {str(i): [[*key, n] for key, n in table.items()] for i, table in self.counts.items()}
        transforms = [t.model_dump(mode="json") for t in self.transforms]
        return {"format": STATE_FORMAT, "use_case": self.use_case, "transforms": transforms, "counts": counts}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> FittedTransforms:
        """The inverse of ``to_dict``; ConfigError when the state is not one it wrote."""
        if state.get("format") != STATE_FORMAT:
            raise ConfigError(f"fitted transforms: format {state.get('format')!r} is not {STATE_FORMAT}; refit them")
        transforms = parse_transforms(state.get("transforms", ()), "fitted transforms.transforms")
        counts = {int(i): {tuple(row[:-1]): int(row[-1]) for row in rows} for i, rows in state.get("counts", {}).items()}
        return cls(transforms, counts, str(state.get("use_case", "transforms")))


def fit_transforms(frame: pd.DataFrame, transforms: Sequence[Transform], *, use_case: str = "transforms") -> FittedTransforms:
    """The transforms with each ``count_by`` table learnt from ``frame`` as the steps before it leave it."""
    counts: dict[int, Any] = {}
    FittedTransforms(tuple(transforms), counts, use_case)._run(frame, online=False, learn=counts)
    logger.info("fitted %d transform(s) on %d rows (%d count table(s))", len(transforms), len(frame), len(counts))
    return FittedTransforms(tuple(transforms), counts, use_case)
