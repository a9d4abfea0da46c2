"""Shared by the serving tests: three input fields, a row of them and a small real Keras model."""

from __future__ import annotations

import numpy as np
import pytest

from components.serving.schema import InputField

FIELDS = (InputField("amount", "float32"), InputField("visits", "int64"), InputField("month", "string"))
ROW = {"amount": 12.5, "visits": 3, "month": "Feb"}


# --- a small real Keras model with a float, an int and a string input ---------------------------

@pytest.fixture(scope="module")
def keras_model():
    import keras

    amount = keras.Input((1,), name="amount", dtype="float32")
    visits = keras.Input((1,), name="visits", dtype="int64")
    month = keras.Input((1,), name="month", dtype="string")
    month_id = keras.layers.StringLookup(vocabulary=["Jan", "Feb", "Mar"])(month)
    features = keras.layers.Concatenate()([
        amount, keras.ops.cast(visits, "float32"), keras.layers.Flatten()(keras.layers.Embedding(4, 2)(month_id)),
    ])
    probability = keras.layers.Dense(1, activation="sigmoid")(features)
    return keras.Model({"amount": amount, "visits": visits, "month": month}, probability)


def signature_of(names_and_types: dict[str, str]):
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    numpy_types = {"float32": np.dtype("float32"), "int64": np.dtype("int64"), "string": np.dtype(str)}
    return ModelSignature(
        inputs=Schema([TensorSpec(numpy_types[t], (-1, 1), n) for n, t in names_and_types.items()]),
        outputs=Schema([TensorSpec(np.dtype("float32"), (-1,), "probability")]),
    )
