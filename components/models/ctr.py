"""A Keras CTR network: one embedding per field, a DCN-V2 cross network beside a deep MLP.

Raw fields go in (categorical fields as strings, optional numeric fields as floats with missing
values allowed, as in Criteo-style logs); vocabularies, missing-value handling and scaling live
inside the model, so the registered model scores raw log rows. A null (or blank) field is
``MISSING_TOKEN``, a vocabulary entry of its own when it is frequent enough in training; a null
count is the field's training median, with a 0/1 missing flag for every count field that had
nulls in training.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from components.config import FitSection, Section


class CtrFeatures(Section):
    categorical: tuple[str, ...]
    slices: tuple[str, ...]
    # integer count fields of Criteo-style logs (missing allowed): log1p-scaled; a null is the
    # training median, with a missing flag if the field had nulls in training
    numeric: tuple[str, ...] = ()
    # label-free co-occurrence counts from the training rows: each entry is a list of categorical
    # fields ("all_pairs" expands to every pair of them)
    count_crosses: tuple[Any, ...] = ()


class CtrTrain(FitSection):
    embedding_dim: int
    cross_layers: int
    hidden_units: tuple[int, ...]
    dropout: float
    embedding_l2: float
    learning_rate: float
    # categories seen fewer times than this in training share the out-of-vocabulary slot
    min_category_count: int = 1
    batch_norm: bool = True
    # size of the hashed table shared by all co-occurrence counts
    count_bins: int = 2097152
    early_stopping_monitor: str = "val_auc"
    # learning rate x this factor after each epoch without improvement (0: off)
    reduce_lr_factor: float = 0.1


def vocabulary(values: pd.Series, min_count: int) -> list[str]:
    """The categories of a field seen at least ``min_count`` times in training, most frequent
    first; nulls and blanks count as ``MISSING_TOKEN``."""
    from components.models.scorer import as_categories

    counts = pd.Series(as_categories(values)).value_counts()
    return [str(v) for v in counts[counts >= min_count].index]


def raw_counts(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """Count fields as a (rows, fields) float64 array, missing values as NaN."""
    from components.models.scorer import as_numbers

    return np.stack([as_numbers(frame[c], c) for c in columns], axis=1)


def log_counts(raw: np.ndarray) -> np.ndarray:
    """``log1p(max(x, 0))`` of count fields, as the model does inside (NaN stays NaN)."""
    return np.log1p(np.maximum(raw, 0.0))


def non_null_columns(features: CtrFeatures) -> list[str]:
    """Feature columns that must hold no nulls: none (a null field is a category of its own, a
    null count is imputed)."""
    return []


def expand_crosses(features: CtrFeatures) -> list[tuple[str, ...]]:
    """The field combinations to count: ``all_pairs`` expands to every pair of categorical fields."""
    crosses: list[tuple[str, ...]] = []
    for entry in features.count_crosses:
        if entry == "all_pairs":
            crosses += list(combinations(features.categorical, 2))
        else:
            crosses.append(tuple(entry) if isinstance(entry, list | tuple) else (entry,))
    unknown = {f for cross in crosses for f in cross} - set(features.categorical)
    if unknown:
        from components.errors import ConfigError

        raise ConfigError(f"features.count_crosses names fields that are not categorical: {sorted(unknown)}")
    return list(dict.fromkeys(crosses))


def build_ctr_model(train: pd.DataFrame, features: CtrFeatures, params: CtrTrain, seed: int, *, label: str = ""):
    """Embeddings per field -> [cross network (DCN-V2) | deep MLP] -> click probability."""
    import keras

    from components.models.layers import (
        BlankAsMissing,
        FillMissing,
        MissingIndicator,
        nan_medians,
        nan_normalization,
    )
    from components.models.scorer import as_categories

    keras.utils.set_random_seed(seed)
    regularizer = keras.regularizers.L2(params.embedding_l2) if params.embedding_l2 > 0 else None
    inputs, fields, vectors = {}, {}, []
    for column in features.categorical:
        inputs[column] = keras.Input(shape=(1,), name=column, dtype="string")
        fields[column] = BlankAsMissing(name=f"{column}_blank_as_missing")(inputs[column])
        lookup = keras.layers.StringLookup(
            vocabulary=vocabulary(train[column], params.min_category_count), name=f"{column}_lookup"
        )
        embedded = keras.layers.Embedding(
            lookup.vocabulary_size(), params.embedding_dim, embeddings_regularizer=regularizer,
            name=f"{column}_embedding",
        )(lookup(fields[column]))
        vectors.append(keras.layers.Flatten(name=f"{column}_vector")(embedded))
    if features.numeric:
        for column in features.numeric:
            inputs[column] = keras.Input(shape=(1,), name=column, dtype="float32")
        stacked = keras.layers.Concatenate(name="counts")([inputs[c] for c in features.numeric])
        raw = raw_counts(train, features.numeric)
        filled = FillMissing(nan_medians(raw), name="counts_fill")(stacked)
        logged = keras.ops.log1p(keras.ops.maximum(filled, 0.0))
        vectors.append(nan_normalization(log_counts(raw), name="scale")(logged))
        flagged = [i for i in range(raw.shape[1]) if np.isnan(raw[:, i]).any()]
        if flagged:
            vectors.append(MissingIndicator(flagged, name="counts_missing")(stacked))
    crosses = expand_crosses(features)
    if crosses:
        from components.models.layers import CooccurrenceCounts

        names = list(features.categorical)
        counter = CooccurrenceCounts([[names.index(f) for f in cross] for cross in crosses], params.count_bins, name="cooccurrence")
        counter.build(None)
        train_fields = [as_categories(train[f]).astype(object).reshape(-1, 1) for f in names]
        counter.adapt(train_fields)
        scale = keras.layers.Normalization(name="cooccurrence_scale")
        scale.adapt(np.asarray(counter(train_fields, training=True)))  # the leave-one-out counts training sees
        vectors.append(scale(counter([fields[f] for f in names])))
    x0 = keras.layers.Concatenate(name="fields")(vectors) if len(vectors) > 1 else vectors[0]

    crossed = x0
    for index in range(params.cross_layers):
        # DCN-V2: x_{l+1} = x0 * (W x_l + b) + x_l
        projected = keras.layers.Dense(x0.shape[-1], name=f"cross_{index}")(crossed)
        crossed = keras.layers.Add(name=f"cross_{index}_residual")([x0 * projected, crossed])

    deep = x0
    for index, units in enumerate(params.hidden_units):
        deep = keras.layers.Dense(units, name=f"deep_{index}")(deep)
        if params.batch_norm:
            deep = keras.layers.BatchNormalization(name=f"deep_{index}_norm")(deep)
        deep = keras.layers.Activation("relu", name=f"deep_{index}_relu")(deep)
        if params.dropout > 0:
            deep = keras.layers.Dropout(params.dropout, seed=seed, name=f"deep_{index}_dropout")(deep)

    parts = [p for p, used in ((crossed, params.cross_layers > 0), (deep, bool(params.hidden_units))) if used]
    joined = keras.layers.Concatenate(name="joined")(parts) if len(parts) > 1 else (parts[0] if parts else x0)
    output = keras.layers.Dense(1, activation="sigmoid", name="click")(joined)
    model = keras.Model(inputs=inputs, outputs=output, name="ctr_dcn_v2")
    model.compile(
        optimizer=keras.optimizers.Adam(params.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model
