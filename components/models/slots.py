"""A Keras click model of items in ad slots and the policy that fills the slots from it.

The click model scores a user (categorical features), an item (its id and features from the
item table) and a position; it learns from logged impressions of a uniform-random policy (every
item and position logged alike, so no logging bias). The served model takes only the user's
features: it scores every item in every position and its policy (``top`` or ``softmax``, see
``slot_layers.SlotPolicy``) returns the items for positions 1..n with their click rates and the
policy's probabilities. A third view of the same weights returns the policy's whole distribution
and the click rates, which off-policy evaluation reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from components.config import FitSection, Section


class SlotFeatures(Section):
    """Which columns say who saw what, where, under which logging policy, and whether they clicked."""

    user: tuple[str, ...]
    item: str
    item_categorical: tuple[str, ...] = ()
    item_numeric: tuple[str, ...] = ()
    position: str
    positions: int
    click: str
    propensity: str
    # the column naming each row's logging policy; the policy the click model learns from and the
    # new policy is evaluated on (uniform random), and the one whose on-policy CTR is the ground truth
    policy: str
    train_policy: str
    truth_policy: str = ""
    row_id: str


class SlotsTrain(FitSection):
    """The click model and the policy (``train`` of a policy use case)."""

    embedding_dim: int
    hidden_units: tuple[int, ...]
    dropout: float
    l2: float
    learning_rate: float
    # top: the best item per position, none twice; softmax: draw per position with exploration
    policy: Literal["top", "softmax"]
    temperature: float
    exploration: float


@dataclass(frozen=True)
class SlotModels:
    """Three views of one set of weights: the logged-row click model (trained), the served policy
    and the analysis model (the policy's distribution and click rates per position and item)."""

    training: Any
    serving: Any
    analysis: Any
    item_ids: tuple[int, ...]


def non_null_columns(features: SlotFeatures) -> list[str]:
    return [*features.user, features.item, features.position, features.click, features.propensity, features.policy]


def item_table(frame: pd.DataFrame, features: SlotFeatures) -> pd.DataFrame:
    """One row per item (sorted by id) with its features, from the logged rows."""
    columns = [features.item, *features.item_categorical, *features.item_numeric]
    return frame[columns].drop_duplicates(features.item).sort_values(features.item).reset_index(drop=True)


def item_positions(frame: pd.DataFrame, features: SlotFeatures, item_ids: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's (item index in the model's table, position index 0..n-1); an unknown item is -1."""
    index = {item: i for i, item in enumerate(item_ids)}
    items = np.array([index.get(int(v), -1) for v in frame[features.item].to_numpy()], dtype="int64")
    return items, frame[features.position].to_numpy(dtype="int64") - 1


def encode_items(items: pd.DataFrame, features: SlotFeatures) -> tuple[list[list[int]], list[int], list[list[float]]]:
    """The item table as integer codes per categorical feature (with their vocabulary sizes) and
    standardised numeric features."""
    codes, sizes = [], []
    for column in features.item_categorical:
        values = items[column].astype(str)
        vocabulary = {v: i for i, v in enumerate(sorted(values.unique()))}
        codes.append(values.map(vocabulary).to_numpy())
        sizes.append(len(vocabulary))
    numbers = items[list(features.item_numeric)].to_numpy(dtype="float64") if features.item_numeric else np.zeros((len(items), 0))
    if numbers.size:
        numbers = (numbers - numbers.mean(axis=0)) / np.where(numbers.std(axis=0) > 0, numbers.std(axis=0), 1.0)
    table = np.stack(codes, axis=1).tolist() if codes else [[] for _ in range(len(items))]
    return table, sizes, numbers.tolist()


def build_slot_models(frame: pd.DataFrame, features: SlotFeatures, params: SlotsTrain, seed: int, *,
                      label: str = "", items: pd.DataFrame | None = None) -> SlotModels:
    """The slot models for the users of ``frame`` (training rows) and the items of ``items``
    (default: those of ``frame``)."""
    import keras

    from components.models.ctr import vocabulary
    from components.models.slot_layers import SlotClickScores, SlotPolicy

    keras.utils.set_random_seed(seed)
    table = item_table(items if items is not None else frame, features)
    codes, sizes, numbers = encode_items(table, features)
    regularizer = keras.regularizers.L2(params.l2) if params.l2 > 0 else None
    inputs, vectors = {}, []
    for column in features.user:
        inputs[column] = keras.Input(shape=(1,), name=column, dtype="string")
        lookup = keras.layers.StringLookup(vocabulary=vocabulary(frame[column], 1), name=f"{column}_lookup")
        embedded = keras.layers.Embedding(lookup.vocabulary_size(), params.embedding_dim,
                                          embeddings_regularizer=regularizer, name=f"{column}_embedding")(lookup(inputs[column]))
        vectors.append(keras.layers.Flatten(name=f"{column}_vector")(embedded))
    hidden = keras.layers.Concatenate(name="user_fields")(vectors) if len(vectors) > 1 else vectors[0]
    for i, units in enumerate(params.hidden_units):
        hidden = keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer, name=f"user_hidden_{i}")(hidden)
        hidden = keras.layers.Dropout(params.dropout, name=f"user_dropout_{i}")(hidden)
    user = keras.layers.Dense(params.embedding_dim, kernel_regularizer=regularizer, name="user_vector")(hidden)
    scores = SlotClickScores(params.embedding_dim, features.positions, codes, sizes, numbers, name="click_scores")

    item_index = keras.Input(shape=(1,), name="item_index", dtype="int32")
    position_index = keras.Input(shape=(1,), name="position_index", dtype="int32")
    training = keras.Model(inputs={**inputs, "item_index": item_index, "position_index": position_index},
                           outputs=scores(user, item_index, position_index), name="slot_clicks")
    training.compile(optimizer=keras.optimizers.Adam(params.learning_rate),
                     loss=keras.losses.BinaryCrossentropy(from_logits=True),
                     metrics=[keras.metrics.AUC(name="auc", from_logits=True)])

    item_ids = tuple(int(v) for v in table[features.item])
    logits = scores(user)
    policy = SlotPolicy(list(item_ids), params.policy, params.temperature, params.exploration, name="slot_policy")
    shown, rates, probabilities, distribution = policy(logits)
    serving = keras.Model(inputs=inputs, outputs={"items": shown, "scores": rates, "probabilities": probabilities},
                          name="slots")
    analysis = keras.Model(inputs=inputs, outputs={"distribution": distribution, "click_rates": keras.ops.sigmoid(logits)},
                           name="slot_analysis")
    return SlotModels(training, serving, analysis, item_ids)


def training_rows(frame: pd.DataFrame, features: SlotFeatures, item_ids: tuple[int, ...]) -> pd.DataFrame:
    """The logged rows with the training model's item and position indices (unknown items dropped)."""
    items, positions = item_positions(frame, features, item_ids)
    keep = (items >= 0) & (positions >= 0) & (positions < features.positions)
    return frame[keep].assign(item_index=items[keep].astype("int32"), position_index=positions[keep].astype("int32"))
