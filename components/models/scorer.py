"""Score raw rows with a Keras model through one traced ``tf.function`` (no ``predict`` per call).

Raw rows become tensors in one place, ``input_arrays``, at training, evaluation and serving time,
and that is where nulls (None, NaN, ``pd.NA``) get their one meaning per input dtype:

- ``float`` inputs keep NaN: the model imputes it inside (``layers.FillMissing``);
- ``string`` inputs get the empty string: a text model scores it as an empty text and a
  categorical lookup maps it to ``MISSING_TOKEN`` inside the model (``layers.BlankAsMissing``);
- ``int`` inputs (category ids) get ``MISSING_ID``, a vocabulary entry of its own when the
  training column had nulls (otherwise it falls into the out-of-vocabulary slot).

A model may declare an input optional (``keras.Input(..., optional=True)``): rows may leave it
out, and an absent optional input is a null of its dtype. A layer may also check the raw values
of the inputs it reads (``RowCheck``): the server answers 422, batch scoring rejects the row and
the pyfunc raises, naming the row and the input, before any of them reaches the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from components.errors import InputSchemaError

# the vocabulary entry of a null (or blank) categorical value
MISSING_TOKEN = "__missing__"
# the category id a null takes in an integer-coded categorical input (no real id is this small)
MISSING_ID = int(np.iinfo(np.int64).min)


def input_spec(model) -> dict[str, str]:
    """The model's named inputs and their dtypes, in the model's order."""
    return {t.name: t.dtype for t in model.inputs}


def optional_inputs(model) -> frozenset[str]:
    """The inputs the model declares optional (``keras.Input(..., optional=True)``): a row may
    leave them out (the model then gets a null of the input's dtype)."""
    import keras

    return frozenset(layer.name for layer in model.layers
                     if isinstance(layer, keras.layers.InputLayer) and getattr(layer, "optional", False))


@runtime_checkable
class RowCheck(Protocol):
    """A layer that checks the raw values of the inputs it reads, before the model runs."""

    def input_problems(self, columns: Mapping[str, np.ndarray]) -> list[tuple[int, str, str]]:
        """(row, input name, what is wrong) per bad value of ``columns`` (input name -> one raw
        value per row; an input the rows leave out is absent); never quotes a value."""
        ...


def row_checks(model) -> tuple[RowCheck, ...]:
    """The layers of ``model`` that check raw input values (``RowCheck``), in model order."""
    return tuple(layer for layer in model.layers if isinstance(layer, RowCheck))


def input_problems(checks: tuple[RowCheck, ...], columns: Mapping[str, np.ndarray]) -> list[tuple[int, str, str]]:
    """Every check's problems with ``columns``, by row."""
    return sorted(problem for check in checks for problem in check.input_problems(columns))


def as_strings(values) -> np.ndarray:
    """Raw values as strings; a null is the empty string (never the literal ``'nan'``/``'None'``)."""
    values = np.asarray(values)
    strings = values.astype(str)
    if values.dtype.kind in "fOM":
        missing = pd.isna(values)
        if missing.any():
            strings = np.where(missing, "", strings)
    return strings


def as_categories(values) -> np.ndarray:
    """Raw categorical values as strings; a null or blank value is ``MISSING_TOKEN`` (as in the model)."""
    strings = as_strings(values)
    return np.where(np.char.strip(strings) == "", MISSING_TOKEN, strings)


def as_numbers(values, name: str) -> np.ndarray:
    """Raw values as float64 with nulls as NaN.

    Raises:
        InputSchemaError: a value is neither a number nor null (the message names the column only).
    """
    values = np.asarray(values)
    if values.dtype.kind in "fiub":
        return values.astype("float64")
    flat = pd.Series(values.reshape(-1), dtype=object)
    missing = flat.isna().to_numpy()
    numbers = np.full(len(flat), np.nan)
    try:
        numbers[~missing] = pd.to_numeric(flat[~missing]).astype("float64")
    except (TypeError, ValueError):
        raise InputSchemaError(f"input column {name!r} must hold numbers or nulls") from None
    return numbers.reshape(values.shape)


def as_ids(values, name: str) -> np.ndarray:
    """Raw category ids as int64 with nulls as ``MISSING_ID``.

    Raises:
        InputSchemaError: a value is not a whole number or null.
    """
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        return values.astype("int64")
    numbers = as_numbers(values, name)
    missing = np.isnan(numbers)
    if not np.all(numbers[~missing] == np.floor(numbers[~missing])):
        raise InputSchemaError(f"input column {name!r} must hold whole numbers (category ids) or nulls")
    ids = np.full(numbers.shape, MISSING_ID, dtype="int64")
    ids[~missing] = numbers[~missing].astype("int64")
    return ids


def input_arrays(spec: dict[str, str], rows: pd.DataFrame | dict,
                 optional: frozenset[str] = frozenset()) -> dict[str, np.ndarray]:
    """Raw rows (a DataFrame or a dict of arrays) as the model's named (rows, 1) NumPy inputs; an
    ``optional`` input the rows leave out is all nulls."""
    arrays = {}
    count = None
    for name, dtype in spec.items():
        if name not in rows:
            if name not in optional:
                required = [n for n in spec if n not in optional]
                raise InputSchemaError(f"input column {name!r} is missing; the model needs {required}"
                                       + (f" (optional: {sorted(optional)})" if optional else ""))
            if count is None:
                count = len(rows) if isinstance(rows, pd.DataFrame) else len(np.asarray(next(
                    (rows[n] for n in spec if n in rows), [])).reshape(-1))
            values = np.full(count, None, dtype=object)
        else:
            values = rows[name]
        if dtype == "string":
            converted = as_strings(values)
        elif dtype.startswith("float"):
            converted = as_numbers(values, name).astype(dtype)
        elif dtype.startswith(("int", "uint")):
            converted = as_ids(values, name).astype(dtype)
        else:
            converted = np.asarray(values)
        arrays[name] = converted.reshape(-1, 1)
    return arrays


def rows_to_tensors(spec: dict[str, str], rows: pd.DataFrame | dict, optional: frozenset[str] = frozenset()) -> dict:
    """Convert raw rows (a DataFrame or a dict of arrays) into (rows, 1) input tensors."""
    import tensorflow as tf

    return {name: tf.convert_to_tensor(values, dtype=spec[name])
            for name, values in input_arrays(spec, rows, optional).items()}


def call_model(model, inputs: dict):
    """Call a Keras model on named input tensors; a model built on one bare ``Input`` (not a dict
    of inputs) takes that tensor itself, as Keras expects its input structure to match."""
    if len(inputs) == 1 and not isinstance(model.input, dict):
        return model(next(iter(inputs.values())), training=False)
    return model(inputs, training=False)


class RowScorer:
    """Wraps a Keras model with named inputs; ``score(rows)`` returns one probability per row.

    ``transforms`` (a use case's fitted ``data.transforms``) turn raw rows into the model's
    features in ``predict``, the pyfunc entry point that receives raw rows; ``score`` and
    ``score_outputs`` take rows that already hold the features (the snapshot's splits)."""

    def __init__(self, model, transforms=None) -> None:
        import tensorflow as tf

        self.model = model
        self.transforms = transforms
        self.spec = input_spec(model)
        self.optional = optional_inputs(model)
        self.checks = row_checks(model)
        signature = {
            name: tf.TensorSpec(shape=(None, 1), dtype=dtype, name=name)
            for name, dtype in self.spec.items()
        }
        self._call = tf.function(lambda inputs: call_model(model, inputs), input_signature=[signature])

    def score_outputs(self, rows: pd.DataFrame | dict, batch_size: int = 8192) -> dict[str, np.ndarray]:
        """Every model output for ``rows`` as NumPy arrays (a single output is named ``output``)."""
        if not isinstance(rows, pd.DataFrame):
            return as_numpy_outputs(self._call(rows_to_tensors(self.spec, rows, self.optional)))
        parts = [
            as_numpy_outputs(self._call(rows_to_tensors(self.spec, rows.iloc[start : start + batch_size], self.optional)))
            for start in range(0, len(rows), batch_size)
        ]
        if not parts:
            return {}
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def score(self, rows: pd.DataFrame | dict, batch_size: int = 8192) -> np.ndarray:
        """Probabilities of a single-output model, shape (n,)."""
        outputs = self.score_outputs(rows, batch_size)
        return outputs["output"].reshape(-1) if outputs else np.zeros(0, dtype="float32")

    def check_rows(self, rows: pd.DataFrame | dict) -> None:
        """InputSchemaError naming the rows (0-based) and inputs whose values the model's checks refuse."""
        if not self.checks:
            return
        columns = {name: np.asarray(rows[name]).reshape(-1) for name in self.spec if name in rows}
        problems = input_problems(self.checks, columns)
        if problems:
            shown = "; ".join(f"row {row} {name}: {why}" for row, name, why in problems[:5])
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise InputSchemaError(f"{len(problems)} row(s) cannot be scored: {shown}{more}")

    def get_raw_model(self):
        """The Keras model (``mlflow.pyfunc.PyFuncModel.get_raw_model()`` returns it)."""
        return self.model

    def predict(self, data, params=None):  # noqa: ARG002 - the pyfunc loader-module contract
        """MLflow pyfunc entry point: raw rows in; probabilities, or a frame of named outputs, out."""
        if self.transforms is not None:  # MLflow hands over a frame, or a dict of (rows, 1) arrays
            frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(
                {name: np.asarray(values).reshape(-1) for name, values in data.items()})
            data = self.transforms.apply(frame, online=True)
        self.check_rows(data)
        outputs = self.score_outputs(data)
        if set(outputs) == {"output"}:
            return outputs["output"].reshape(-1)
        columns = {}
        for name, values in outputs.items():
            if values.dtype.kind in "SO":
                values = values.astype(str)
            columns[name] = values.reshape(-1) if values.ndim == 1 or values.shape[1] == 1 else list(values)
        return pd.DataFrame(columns)


def as_numpy_outputs(result) -> dict[str, np.ndarray]:
    if isinstance(result, dict):
        return {name: tensor_to_numpy(value) for name, value in result.items()}
    return {"output": tensor_to_numpy(result)}


def tensor_to_numpy(tensor) -> np.ndarray:
    values = tensor.numpy()
    return np.char.decode(values.astype(bytes), "utf-8") if values.dtype.kind in "SO" else values
