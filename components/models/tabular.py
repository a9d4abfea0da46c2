"""A Keras MLP for tabular rows; preprocessing (log, scaling, lookups) lives inside the model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class TabularFeatures:
    numeric: tuple[str, ...]
    log_scaled: tuple[str, ...]
    categorical: tuple[str, ...]
    slices: tuple[str, ...]
    positive_indicators: tuple[str, ...] = ()
    binned: tuple[str, ...] = ()
    numeric_bins: int = 0


@dataclass(frozen=True)
class TabularTrain:
    hidden_units: tuple[int, ...]
    dropout: float
    learning_rate: float
    batch_size: int
    max_epochs: int
    early_stopping_patience: int
    validation_fraction: float
    embedding_dim: int = 0
    towers: int = 1
    l2: float = 0.0
    batch_norm: bool = False
    wide: bool = False
    label_smoothing: float = 0.0
    lr_schedule: str = "constant"
    weight_decay: float = 0.0
    activation: str = "relu"


def input_kind(series: pd.Series) -> str:
    """How a raw column enters the model: ``float``, ``int`` (category ids) or ``string``."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    return "string"


def quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Distinct quantile edges of ``values`` (at most ``bins + 1``; ties collapse)."""
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    return edges.astype("float32")


def piecewise_linear(value, edges: np.ndarray):
    """Piecewise-linear encoding: one [0, 1] ramp per quantile bin, built from plain keras.ops."""
    import keras

    low = edges[:-1].reshape(1, -1)
    width = np.maximum(np.diff(edges), 1e-6).reshape(1, -1)
    return keras.ops.clip((value - low) / width, 0.0, 1.0)


def build_tabular_classifier(
    train: pd.DataFrame, features: TabularFeatures, params: TabularTrain, seed: int
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
            # an explicit "x > 0" flag: PageValues is zero for most non-buyers
            encoded.append(keras.ops.cast(keras.ops.greater(inputs[column], 0.0), "float32"))
        if features.numeric_bins > 0 and column in features.binned:
            raw_values = train[column].astype("float64").to_numpy()
            if column in features.log_scaled:
                raw_values = np.log1p(np.maximum(raw_values, 0.0))
            edges = quantile_edges(raw_values, features.numeric_bins)
            if len(edges) > 2:
                encoded.append(piecewise_linear(value, edges))
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
            vocabulary = sorted(int(v) for v in train[column].unique())
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
            dim = min(params.embedding_dim, size)
            vectors = keras.layers.Embedding(
                size, dim, embeddings_regularizer=regularizer, name=f"{column}_embedding"
            )(ids)
            encoded.append(keras.layers.Flatten(name=f"{column}_flat")(vectors))
        else:
            encoded.append(ids)
    joined = keras.layers.Concatenate(name="features")(encoded)
    logits = []
    for t in range(params.towers):
        hidden = joined
        prefix = f"t{t}_" if params.towers > 1 else ""
        for i, units in enumerate(params.hidden_units):
            hidden = keras.layers.Dense(
                units, kernel_regularizer=regularizer, use_bias=not params.batch_norm,
                name=f"{prefix}dense_{i}",
            )(hidden)
            if params.batch_norm:
                hidden = keras.layers.BatchNormalization(name=f"{prefix}bn_{i}")(hidden)
            hidden = keras.layers.Activation(params.activation, name=f"{prefix}act_{i}")(hidden)
            hidden = keras.layers.Dropout(
                params.dropout, seed=seed + 100 * t + i, name=f"{prefix}dropout_{i}"
            )(hidden)
        if params.wide:
            hidden = keras.layers.Concatenate(name=f"{prefix}wide_deep")([hidden, joined])
        logits.append(
            keras.layers.Dense(1, kernel_regularizer=regularizer, name=f"{prefix}logit")(hidden)
        )
    if len(logits) > 1:
        # average the towers' probabilities: an ensemble inside one model
        probs = [keras.layers.Activation("sigmoid", name=f"t{t}_probability")(x) for t, x in enumerate(logits)]
        output = keras.layers.Average(name="probability")(probs)
    else:
        output = keras.layers.Activation("sigmoid", name="probability")(logits[0])
    model = keras.Model(inputs=inputs, outputs=output, name="tabular_classifier")
    learning_rate = params.learning_rate
    if params.lr_schedule == "cosine":
        steps = math.ceil(len(train) / params.batch_size) * params.max_epochs
        learning_rate = keras.optimizers.schedules.CosineDecay(
            params.learning_rate, decay_steps=steps, alpha=0.05
        )
    elif params.lr_schedule != "constant":
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {params.lr_schedule!r}")
    if params.weight_decay > 0:
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=params.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.BinaryCrossentropy(
            label_smoothing=params.label_smoothing, name="binary_crossentropy"
        ),
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
