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
    """How a raw column enters the model: ``float``, ``int`` (category ids) or ``string``.

    Decided from the non-null values, so a null does not change a column's input: an integer
    column that pandas holds as float because of its nulls stays ``int``, booleans with nulls
    stay ``float``."""
    values = series.dropna()
    if pd.api.types.is_bool_dtype(series) or pd.api.types.infer_dtype(values, skipna=True) == "boolean":
        return "float"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        whole = len(values) > 0 and bool((values == np.floor(values)).all())
        return "int" if series.hasnans and whole else "float"
    return "int" if pd.api.types.infer_dtype(values, skipna=True) == "integer" else "string"


def non_null_columns(features: TabularFeatures) -> list[str]:
    """Feature columns that must hold no nulls: none (numeric nulls are imputed, categorical
    nulls are a vocabulary entry of their own)."""
    return []


def build_tabular_classifier(
    train: pd.DataFrame, features: TabularFeatures, params: TabularTrain, seed: int, *, label: str = ""
):
    """A binary classifier with one named input per raw column; vocabularies come from ``train``.

    Missing values are handled inside the model, so the registered model scores raw rows with
    nulls: a numeric (or boolean) null is replaced by the column's training median, and every
    column that had nulls in training also gets a 0/1 "was missing" feature (columns without
    nulls in training get none, so models of null-free data are unchanged). Scaling is fitted on
    the non-null values. A categorical null is ``MISSING_TOKEN`` (``MISSING_ID`` for integer
    codes), a vocabulary entry of its own when training had nulls, else the out-of-vocabulary slot.
    """
    import keras

    from components.models.layers import (
        BlankAsMissing,
        FillMissing,
        MissingIndicator,
        nan_medians,
        nan_normalization,
    )
    from components.models.scorer import MISSING_ID, MISSING_TOKEN, as_categories, as_ids, as_numbers

    keras.utils.set_random_seed(seed)
    regularizer = keras.regularizers.L2(params.l2) if params.l2 > 0 else None
    inputs = {}
    numeric_parts = []
    encoded = []

    def impute(column: str, values: np.ndarray):
        """The column's input with nulls at the training median, plus its missing flag if any."""
        inputs[column] = keras.Input(shape=(1,), name=column, dtype="float32")
        filled = FillMissing(nan_medians(values.reshape(-1, 1)), name=f"{column}_fill")(inputs[column])
        if np.isnan(values).any():
            encoded.append(MissingIndicator([0], name=f"{column}_missing")(inputs[column]))
        return filled

    raw = np.stack([as_numbers(train[c], c) for c in features.numeric], axis=1) if features.numeric else np.zeros((len(train), 0))
    for index, column in enumerate(features.numeric):
        filled = impute(column, raw[:, index])
        value = filled
        if column in features.log_scaled:
            value = keras.ops.log1p(keras.ops.maximum(value, 0.0))
        numeric_parts.append(value)
        if column in features.positive_indicators:
            # PageValues is zero for most non-buyers: make "> 0" a feature of its own
            flag = keras.ops.cast(keras.ops.greater(filled, 0.0), "float32")
            encoded.append(flag)
    if numeric_parts:
        stacked = keras.layers.Concatenate(name="numeric")(numeric_parts)
        logged = [c in features.log_scaled for c in features.numeric]
        raw[:, logged] = np.log1p(np.maximum(raw[:, logged], 0.0))
        encoded.append(nan_normalization(raw, name="scale")(stacked))
    for column in features.categorical:
        kind = input_kind(train[column])
        if kind == "float":
            encoded.append(impute(column, as_numbers(train[column], column)))
            continue
        mode = "int" if params.embedding_dim > 0 else "one_hot"
        if kind == "int":
            inputs[column] = keras.Input(shape=(1,), name=column, dtype="int64")
            codes = as_ids(train[column], column)
            known = sorted({int(v) for v in codes[codes != MISSING_ID]})
            lookup = keras.layers.IntegerLookup(
                vocabulary=known + ([MISSING_ID] if (codes == MISSING_ID).any() else []),
                output_mode=mode, name=f"{column}_lookup",
            )
            category = inputs[column]
        else:
            inputs[column] = keras.Input(shape=(1,), name=column, dtype="string")
            values = set(as_categories(train[column]))
            vocabulary = sorted(values - {MISSING_TOKEN}) + ([MISSING_TOKEN] if MISSING_TOKEN in values else [])
            lookup = keras.layers.StringLookup(
                vocabulary=vocabulary, output_mode=mode, name=f"{column}_lookup"
            )
            category = BlankAsMissing(name=f"{column}_blank_as_missing")(inputs[column])
        # one out-of-vocabulary slot: categories unseen in training still score
        ids = lookup(category)
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
    from components.models.scorer import input_arrays, input_spec

    return input_arrays(input_spec(model), frame)
