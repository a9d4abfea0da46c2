"""A Keras CTR network: one embedding per field, a DCN-V2 cross network beside a deep MLP.

Raw fields go in (categorical fields as strings, optional numeric fields as floats with missing
values allowed, as in Criteo-style logs); vocabularies, missing-value handling and scaling live
inside the model, so the registered model scores raw log rows. A null (or blank) field is
``MISSING_TOKEN``, a vocabulary entry of its own when it is frequent enough in training; a null
count is the field's training median, with a 0/1 missing flag for every count field that had
nulls in training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


class StreamingParams(Section):
    """``train.streaming``: train and evaluate from the snapshot read in batches of row groups
    (data larger than memory) instead of one in-memory frame."""

    enabled: bool = False
    # rows read (and split, counted, shuffled) at a time
    batch_rows: int = 65536
    # the same-run peer cannot stream: it trains on a seeded sample of this many training rows
    peer_sample_rows: int = 500000
    # count-field medians come from a seeded sample of this many training rows
    median_sample_rows: int = 100000


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
    streaming: StreamingParams = StreamingParams()


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


@dataclass(frozen=True)
class CtrStatistics:
    """What a CTR model learns from its training rows before fitting, gathered in passes over
    them (so the rows may arrive as a stream of batches): category counts per field, the count
    fields' medians (from a seeded sample), moments and null flags, the co-occurrence table and
    the moments of the leave-one-out co-occurrence features training sees."""

    rows: int
    category_counts: dict[str, dict[str, int]]
    medians: list[float]
    count_mean: np.ndarray
    count_variance: np.ndarray
    flagged: list[int]
    cooccurrence: np.ndarray | None
    cross_mean: np.ndarray | None
    cross_variance: np.ndarray | None

    def vocabulary(self, column: str, min_count: int) -> list[str]:
        """``vocabulary`` of a field from its counts (most frequent first, ties in order of first sight)."""
        counts = self.category_counts[column]
        ordered = sorted(counts, key=lambda value: -counts[value])  # stable: first sight breaks ties
        return [value for value in ordered if counts[value] >= min_count]


class Moments:
    """Per-column count, mean and (population) variance of float64 values, ignoring NaN,
    accumulated batch by batch (shifted by the first batch's means, for precision)."""

    def __init__(self, columns: int) -> None:
        self.count = np.zeros(columns)
        self.total = np.zeros(columns)
        self.squares = np.zeros(columns)
        self.shift: np.ndarray | None = None

    def add(self, values: np.ndarray) -> None:
        mask = np.isfinite(values)
        if self.shift is None:
            with np.errstate(all="ignore"):
                self.shift = np.where(mask.any(axis=0), np.nanmean(np.where(mask, values, np.nan), axis=0), 0.0)
        centred = np.where(mask, values - self.shift, 0.0)
        self.count += mask.sum(axis=0)
        self.total += centred.sum(axis=0)
        self.squares += (centred**2).sum(axis=0)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, variance); an all-null column gets mean 0, variance 1 (as ``nan_normalization``)."""
        shift = self.shift if self.shift is not None else np.zeros_like(self.count)
        n = np.maximum(self.count, 1)
        mean = self.total / n
        variance = np.maximum(self.squares / n - mean**2, 0.0)
        seen = self.count > 0
        return np.where(seen, mean + shift, 0.0), np.where(seen, variance, 1.0)


def count_statistics(batches: Callable[[], Iterable[pd.DataFrame]], features: CtrFeatures, params: CtrTrain,
                     seed: int, counter: Any = None, median_sample_rows: int = 100_000) -> CtrStatistics:
    """``CtrStatistics`` of the training rows ``batches()`` yields (called once per pass: two when
    ``counter``, the model's ``CooccurrenceCounts`` layer, is given, else one). Memory holds one
    batch, the count table and a sample of at most ``median_sample_rows`` count rows."""
    from components.models.layers import nan_medians
    from components.models.scorer import as_categories

    names = list(features.categorical)
    category_counts: dict[str, dict[str, int]] = {column: {} for column in names}
    numeric = Moments(len(features.numeric))
    nulls = np.zeros(len(features.numeric), dtype=bool)
    sample, sample_hashes = np.empty((0, len(features.numeric))), np.empty(0)
    table = np.zeros(counter.num_bins, dtype="float64") if counter is not None else None
    rows = 0
    draws = np.random.default_rng(seed)  # one draw per row in order, whatever the batch sizes
    for frame in batches():
        rows += len(frame)
        fields = {column: as_categories(frame[column]) for column in names}
        for column in names:
            merged = category_counts[column]
            for value, count in pd.Series(fields[column]).value_counts().items():
                merged[str(value)] = merged.get(str(value), 0) + int(count)
        if features.numeric:
            raw = raw_counts(frame, features.numeric)
            numeric.add(log_counts(raw))
            nulls |= np.isnan(raw).any(axis=0)
            # the median: the rows of a seeded sample (every row when there are fewer)
            hashes = draws.random(len(frame))
            sample, sample_hashes = np.concatenate([sample, raw]), np.concatenate([sample_hashes, hashes])
            if len(sample) > median_sample_rows:
                keep = np.argpartition(sample_hashes, median_sample_rows - 1)[:median_sample_rows]
                sample, sample_hashes = sample[keep], sample_hashes[keep]
        if table is not None:
            bins = counter.bins([fields[f].astype(object).reshape(-1, 1) for f in names]).numpy().reshape(-1)
            table += np.bincount(bins, minlength=counter.num_bins)
    cross_mean = cross_variance = None
    if counter is not None and table is not None:
        crosses = Moments(len(counter.crosses))
        for frame in batches():
            fields_in = [as_categories(frame[f]).astype(object).reshape(-1, 1) for f in names]
            counts = table[counter.bins(fields_in).numpy()]
            crosses.add(np.log1p(np.maximum(counts - 1.0, 0.0)))  # the leave-one-out counts training sees
        cross_mean, cross_variance = crosses.result()
    count_mean, count_variance = numeric.result()
    return CtrStatistics(
        rows=rows, category_counts=category_counts, medians=nan_medians(sample) if features.numeric else [],
        count_mean=count_mean, count_variance=count_variance, flagged=[int(i) for i in np.flatnonzero(nulls)],
        cooccurrence=table, cross_mean=cross_mean, cross_variance=cross_variance,
    )


def build_ctr_model(train: pd.DataFrame, features: CtrFeatures, params: CtrTrain, seed: int, *, label: str = ""):
    """Embeddings per field -> [cross network (DCN-V2) | deep MLP] -> click probability."""
    return build_ctr_model_from_batches(lambda: iter([train]), features, params, seed, median_sample_rows=max(len(train), 1))


def build_ctr_model_from_batches(batches: Callable[[], Iterable[pd.DataFrame]], features: CtrFeatures,
                                 params: CtrTrain, seed: int, *, label: str = "", median_sample_rows: int = 100_000):
    """``build_ctr_model`` from training rows that arrive in batches (``batches()`` starts a pass;
    two passes are made): nothing holds all rows."""
    import keras

    from components.models.layers import BlankAsMissing, CooccurrenceCounts, FillMissing, MissingIndicator

    keras.utils.set_random_seed(seed)
    crosses = expand_crosses(features)
    names = list(features.categorical)
    counter = None
    if crosses:
        counter = CooccurrenceCounts([[names.index(f) for f in cross] for cross in crosses], params.count_bins,
                                     name="cooccurrence")
        counter.build(None)
    stats = count_statistics(batches, features, params, seed, counter, median_sample_rows)
    regularizer = keras.regularizers.L2(params.embedding_l2) if params.embedding_l2 > 0 else None
    inputs, fields, vectors = {}, {}, []
    for column in features.categorical:
        inputs[column] = keras.Input(shape=(1,), name=column, dtype="string")
        fields[column] = BlankAsMissing(name=f"{column}_blank_as_missing")(inputs[column])
        lookup = keras.layers.StringLookup(
            vocabulary=stats.vocabulary(column, params.min_category_count), name=f"{column}_lookup"
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
        filled = FillMissing(stats.medians, name="counts_fill")(stacked)
        logged = keras.ops.log1p(keras.ops.maximum(filled, 0.0))
        vectors.append(keras.layers.Normalization(mean=stats.count_mean.astype("float32"),
                                                  variance=stats.count_variance.astype("float32"), name="scale")(logged))
        if stats.flagged:
            vectors.append(MissingIndicator(stats.flagged, name="counts_missing")(stacked))
    if counter is not None and stats.cooccurrence is not None and stats.cross_mean is not None:
        counter.table.assign(stats.cooccurrence.astype("float32"))
        scale = keras.layers.Normalization(mean=stats.cross_mean.astype("float32"),
                                           variance=np.asarray(stats.cross_variance).astype("float32"),
                                           name="cooccurrence_scale")
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
