"""Score raw rows with a Keras model through one traced ``tf.function`` (no ``predict`` per call)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.errors import InputSchemaError


def input_spec(model) -> dict[str, str]:
    """The model's named inputs and their dtypes, in the model's order."""
    return {t.name: t.dtype for t in model.inputs}


def rows_to_tensors(spec: dict[str, str], rows: pd.DataFrame | dict) -> dict:
    """Convert raw rows (a DataFrame or a dict of arrays) into (rows, 1) input tensors."""
    import tensorflow as tf

    tensors = {}
    for name, dtype in spec.items():
        if name not in rows:
            raise InputSchemaError(f"input column {name!r} is missing; the model needs {list(spec)}")
        values = np.asarray(rows[name])
        if dtype == "string":
            values = values.astype(str)
        tensors[name] = tf.reshape(tf.convert_to_tensor(values, dtype=dtype), (-1, 1))
    return tensors


def call_model(model, inputs: dict):
    """Call a Keras model on named input tensors; a model built on one bare ``Input`` (not a dict
    of inputs) takes that tensor itself, as Keras expects its input structure to match."""
    if len(inputs) == 1 and not isinstance(model.input, dict):
        return model(next(iter(inputs.values())), training=False)
    return model(inputs, training=False)


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
        self._call = tf.function(lambda inputs: call_model(model, inputs), input_signature=[signature])

    def score_outputs(self, rows: pd.DataFrame | dict, batch_size: int = 8192) -> dict[str, np.ndarray]:
        """Every model output for ``rows`` as NumPy arrays (a single output is named ``output``)."""
        if not isinstance(rows, pd.DataFrame):
            return as_numpy_outputs(self._call(rows_to_tensors(self.spec, rows)))
        parts = [
            as_numpy_outputs(self._call(rows_to_tensors(self.spec, rows.iloc[start : start + batch_size])))
            for start in range(0, len(rows), batch_size)
        ]
        if not parts:
            return {}
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def score(self, rows: pd.DataFrame | dict, batch_size: int = 8192) -> np.ndarray:
        """Probabilities of a single-output model, shape (n,)."""
        outputs = self.score_outputs(rows, batch_size)
        return outputs["output"].reshape(-1) if outputs else np.zeros(0, dtype="float32")

    def get_raw_model(self):
        """The Keras model (``mlflow.pyfunc.PyFuncModel.get_raw_model()`` returns it)."""
        return self.model

    def predict(self, data, params=None):  # noqa: ARG002 - the pyfunc loader-module contract
        """MLflow pyfunc entry point: raw rows in; probabilities, or a frame of named outputs, out."""
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
