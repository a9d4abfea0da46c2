"""A Keras MLP for tabular rows; preprocessing (log, scaling, lookups) lives inside the model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.config import FitSection, Section


class TabularFeatures(Section):
    numeric: tuple[str, ...]
    log_scaled: tuple[str, ...]
    categorical: tuple[str, ...]
    slices: tuple[str, ...]
    # numeric columns that also get an explicit "value > 0" flag (e.g. PageValues)
    positive_indicators: tuple[str, ...] = ()


class TabularTrain(FitSection):
    hidden_units: tuple[int, ...]
    dropout: float
    learning_rate: float
    # 0: one-hot categoricals; > 0: a learned embedding of at most this size per categorical
    embedding_dim: int = 0
    l2: float = 0.0
    activation: str = "relu"


def input_kind(series: pd.Series) -> str:
    """How a raw column enters the model: ``float``, ``int`` (category ids) or ``string``."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    return "string"


def build_tabular_classifier(
    train: pd.DataFrame, features: TabularFeatures, params: TabularTrain, seed: int, *, label: str = ""
):
    """A binary classifier with one named input per raw column; vocabularies come from ``train``."""
    import keras

    keras.utils.set_random_seed(seed)
    regularizer = keras.regularizers.L2(params.l2) if params.l2 > 0 else None
    inputs = {}
    numeric_parts = []
    encoded = []
    for column in features.numeric:
        inputs[column] = keras.Input(shape=(1,), name=column, dtype="float32")
        value = inputs[column]
        if column in features.log_scaled:
            value = keras.ops.log1p(keras.ops.maximum(value, 0.0))
        numeric_parts.append(value)
        if column in features.positive_indicators:
            # PageValues is zero for most non-buyers: make "> 0" a feature of its own
            flag = keras.ops.cast(keras.ops.greater(inputs[column], 0.0), "float32")
            encoded.append(flag)
    if numeric_parts:
        stacked = keras.layers.Concatenate(name="numeric")(numeric_parts)
        raw = train[list(features.numeric)].astype("float64").to_numpy()
        logged = [c in features.log_scaled for c in features.numeric]
        raw[:, logged] = np.log1p(np.maximum(raw[:, logged], 0.0))
        normalizer = keras.layers.Normalization(name="scale")
        normalizer.adapt(raw.astype("float32"))
        encoded.append(normalizer(stacked))
    for column in features.categorical:
        kind = input_kind(train[column])
        if kind == "float":
            inputs[column] = keras.Input(shape=(1,), name=column, dtype="float32")
            encoded.append(inputs[column])
            continue
        mode = "int" if params.embedding_dim > 0 else "one_hot"
        if kind == "int":
            inputs[column] = keras.Input(shape=(1,), name=column, dtype="int64")
            vocabulary: list[int] | list[str] = sorted(int(v) for v in train[column].unique())
            lookup = keras.layers.IntegerLookup(
                vocabulary=vocabulary, output_mode=mode, name=f"{column}_lookup"
            )
        else:
            inputs[column] = keras.Input(shape=(1,), name=column, dtype="string")
            vocabulary = sorted(str(v) for v in train[column].unique())
            lookup = keras.layers.StringLookup(
                vocabulary=vocabulary, output_mode=mode, name=f"{column}_lookup"
            )
        # one out-of-vocabulary slot: categories unseen in training still score
        ids = lookup(inputs[column])
        if params.embedding_dim > 0:
            size = lookup.vocabulary_size()
            vectors = keras.layers.Embedding(
                size, min(params.embedding_dim, size), embeddings_regularizer=regularizer,
                name=f"{column}_embedding",
            )(ids)
            encoded.append(keras.layers.Flatten(name=f"{column}_vector")(vectors))
        else:
            encoded.append(ids)
    hidden = keras.layers.Concatenate(name="features")(encoded)
    for i, units in enumerate(params.hidden_units):
        hidden = keras.layers.Dense(
            units, activation=params.activation, kernel_regularizer=regularizer, name=f"dense_{i}"
        )(hidden)
        hidden = keras.layers.Dropout(params.dropout, seed=seed + i)(hidden)
    output = keras.layers.Dense(
        1, activation="sigmoid", kernel_regularizer=regularizer, name="probability"
    )(hidden)
    model = keras.Model(inputs=inputs, outputs=output, name="tabular_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(params.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


def frame_to_inputs(model, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Turn raw rows into the model's named inputs, each (rows, 1) in the input's dtype."""
    arrays = {}
    for tensor in model.inputs:
        name = tensor.name
        dtype = tensor.dtype
        values = frame[name]
        if dtype == "string":
            arrays[name] = values.astype(str).to_numpy(dtype=object).reshape(-1, 1)
        else:
            arrays[name] = values.to_numpy(dtype=dtype).reshape(-1, 1)
    return arrays
