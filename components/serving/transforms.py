"""Raw request rows through a model's fitted ``data.transforms`` into its Keras inputs.

One code path with training: the rows become a DataFrame, ``FittedTransforms.apply(online=True)``
derives the features, and ``components.models.scorer.input_arrays`` turns them into the model's
inputs (nulls included) exactly as it does for the snapshot the model was trained on.
pandas is imported here only: a model without transforms never comes this way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from components.data.ingest import RAW_DTYPES, untransformed
from components.errors import DataValidationError
from components.serving.schema import InputField, RequestError, ServingError, group_fields
from components.serving.scorer import CompiledScorer

if TYPE_CHECKING:
    import pandas as pd

    from components.data.transforms import FittedTransforms


def request_fields(fitted: FittedTransforms, inputs: Mapping[str, str],
                   model_fields: tuple[InputField, ...]) -> tuple[InputField, ...]:
    """What a request sends to a model with transforms: the raw columns the transforms read, typed
    as the training data held them and nullable (the transforms and the model give a null its
    meaning, as at training time), then the model inputs sent as they are, checked as ever.

    Raises ServingError when a raw column has a type family serving does not know.
    """
    from components.data.transforms import input_columns

    unknown = {name: kind for name, kind in inputs.items() if kind not in RAW_DTYPES}
    if unknown:
        raise ServingError(f"raw inputs {unknown} have types the server cannot take (known: {sorted(RAW_DTYPES)}); "
                           "re-register the model with `funnel retrain`")
    sent = set(untransformed(fitted, [f.name for f in model_fields])) - set(inputs)
    # in the order the transforms read them (a stored state's mapping comes back sorted)
    order = {name: index for index, name in enumerate(input_columns(fitted))}
    raw = [InputField(name, RAW_DTYPES[inputs[name]], nullable=True)
           for name in sorted(inputs, key=lambda name: order.get(name, len(order)))]
    return (*raw, *(f for f in model_fields if f.name in sent))


def rows_frame(fields: tuple[InputField, ...], packed: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Packed request rows as the DataFrame the transforms take, one column per field.

    Numbers are float64 (a null is NaN); whole numbers and booleans keep their dtype unless a null
    needs the nullable one (Int64, boolean); texts are objects with None for a null.
    """
    import pandas as pd

    columns = {}
    for dtype, names in group_fields(fields).items():
        matrix = packed[dtype]
        for index, name in enumerate(names):
            columns[name] = _column(matrix[:, index], dtype)
    return pd.DataFrame({f.name: columns[f.name] for f in fields})


def _column(values: np.ndarray, dtype: str) -> pd.Series:
    import pandas as pd

    if dtype == "string":
        return pd.Series(values, dtype=object)
    if dtype.startswith("float"):
        return pd.Series(values, dtype="float64")
    whole = "bool" if dtype == "bool" else "int64"
    if not pd.isna(values).any():
        return pd.Series(values.astype(whole))
    return pd.Series(values, dtype="boolean" if dtype == "bool" else "Int64")


def pack_features(scorer: CompiledScorer, features: pd.DataFrame) -> dict[str, np.ndarray]:
    """Derived feature rows as the compiled scorer's packed inputs (through ``input_arrays``)."""
    from components.models.scorer import input_arrays

    arrays = input_arrays({f.name: f.dtype for f in scorer.fields}, features)
    packed = {}
    for dtype, names in scorer.groups.items():
        matrix = np.concatenate([arrays[name] for name in names], axis=1)
        packed[dtype] = matrix.astype(object) if dtype == "string" else matrix
    return packed


class TransformScorer:
    """Scores packed raw rows: transforms them (online), then calls the compiled Keras scorer.

    A micro-batch is transformed in one ``apply``; rows the transforms refuse are a RequestError
    (422) naming the step, column and count (the batcher then scores each request alone, so only
    the request that sent them gets it).
    """

    def __init__(self, scorer: CompiledScorer, fitted: FittedTransforms, fields: tuple[InputField, ...]) -> None:
        self.scorer = scorer
        self.fitted = fitted
        self.fields = fields

    def transform(self, packed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model's packed inputs for packed raw rows; RequestError (422) when the transforms refuse them."""
        try:
            features = self.fitted.apply(rows_frame(self.fields, packed), online=True)
        except DataValidationError as exc:
            raise RequestError(422, "the rows do not pass the model's transforms", tuple(exc.failures)) from None
        return pack_features(self.scorer, features)

    def __call__(self, packed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.scorer(self.transform(packed))
