"""Score raw rows with a Keras model through one traced ``tf.function`` (no ``predict`` per call)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def input_spec(model) -> dict[str, str]:
    """The model's named inputs and their dtypes, in the model's order."""
    return {t.name: t.dtype for t in model.inputs}


def rows_to_tensors(spec: dict[str, str], rows: pd.DataFrame | dict) -> dict:
    """Convert raw rows (a DataFrame or a dict of arrays) into (rows, 1) input tensors."""
    import tensorflow as tf

    tensors = {}
    for name, dtype in spec.items():
        if name not in rows:
            raise KeyError(f"input column {name!r} is missing; the model needs {list(spec)}")
        values = np.asarray(rows[name])
        if dtype == "string":
            values = values.astype(str)
        tensors[name] = tf.reshape(tf.convert_to_tensor(values, dtype=dtype), (-1, 1))
    return tensors


class RowScorer:
    """Wraps a Keras model with named inputs; ``score(rows)`` returns one probability per row."""

    def __init__(self, model) -> None:
        import tensorflow as tf

        self.model = model
        self.spec = input_spec(model)
        signature = {
            name: tf.TensorSpec(shape=(None, 1), dtype=dtype, name=name)
            for name, dtype in self.spec.items()
        }
        self._call = tf.function(
            lambda inputs: model(inputs, training=False), input_signature=[signature]
        )

    def score(self, rows: pd.DataFrame | dict, batch_size: int = 8192) -> np.ndarray:
        """Probabilities for ``rows``, shape (n,)."""
        if not isinstance(rows, pd.DataFrame):
            return self._call(rows_to_tensors(self.spec, rows)).numpy().reshape(-1)
        parts = [
            self._call(rows_to_tensors(self.spec, rows.iloc[start : start + batch_size]))
            .numpy()
            .reshape(-1)
            for start in range(0, len(rows), batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype="float32")

    def predict(self, data, params=None):  # noqa: ARG002 - the pyfunc loader-module contract
        """MLflow pyfunc entry point: raw rows in, probabilities out."""
        return self.score(data)
