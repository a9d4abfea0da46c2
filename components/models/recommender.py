"""A Keras two-tower recommender trained with a softmax over the whole catalogue.

User tower: the user's training history (a multi-hot bag of items, unit-normalised, with input
dropout as in Mult-DAE) through an MLP into a user vector. Item tower: one embedding (plus bias)
per item. Score = user vector . item vector, trained with the multinomial likelihood of the
user's items (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018).

The registered model takes user ids and returns the top-k unseen item ids with their softmax
scores; the training histories and item popularity are non-trainable weights inside the model,
so cold (unknown) users get the most popular items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.config import FitSection, Section


class RecommendFeatures(Section):
    user: str
    item: str


class RecommendTrain(FitSection):
    hidden_units: tuple[int, ...]
    embedding_dim: int
    input_dropout: float
    l2: float
    learning_rate: float
    # items the registered model returns per user (also the k of the validation nDCG)
    top_k: int
    activation: str = "tanh"
    # early stopping measures validation nDCG@top_k every this many epochs
    eval_every_epochs: int = 5


@dataclass(frozen=True)
class Interactions:
    """Users x items multi-hot matrix of one split, with the id <-> row/column maps."""

    users: np.ndarray
    items: np.ndarray
    matrix: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, features: RecommendFeatures, users=None, items=None) -> Interactions:
        users = np.sort(frame[features.user].unique()) if users is None else users
        items = np.sort(frame[features.item].unique()) if items is None else items
        rows = pd.Index(users).get_indexer(frame[features.user])
        cols = pd.Index(items).get_indexer(frame[features.item])
        keep = (rows >= 0) & (cols >= 0)
        matrix = np.zeros((len(users), len(items)), dtype="float32")
        matrix[rows[keep], cols[keep]] = 1.0
        return cls(users=np.asarray(users), items=np.asarray(items), matrix=matrix)


def non_null_columns(features: RecommendFeatures) -> list[str]:
    """Feature columns that must hold no nulls: an interaction needs its user and its item id."""
    return [features.user, features.item]


def check_ids(frame: pd.DataFrame, features: RecommendFeatures) -> None:
    """Raises ``DataValidationError`` naming each id column that holds nulls (with their count)."""
    from components.errors import DataValidationError

    failures = [
        f"column {column!r} has {int(frame[column].isna().sum())} null(s): every interaction needs a user "
        "and an item id; drop those rows or fix the source"
        for column in non_null_columns(features) if frame[column].isna().any()
    ]
    if failures:
        raise DataValidationError("recommender training rows", failures)


def build_recommender(
    train: pd.DataFrame, features: RecommendFeatures, params: RecommendTrain, seed: int, *, label: str = ""
):
    """The trainable network: a history bag (users x items row) in, one logit per item out.

    Raises:
        DataValidationError: a user or item id is null (``non_null_columns``).
    """
    import keras

    check_ids(train, features)
    keras.utils.set_random_seed(seed)
    items = int(train[features.item].nunique())
    regularizer = keras.regularizers.L2(params.l2) if params.l2 > 0 else None
    history = keras.Input(shape=(items,), name="history", dtype="float32")
    x = keras.layers.UnitNormalization(name="normalise")(history)
    if params.input_dropout > 0:
        x = keras.layers.Dropout(params.input_dropout, seed=seed, name="input_dropout")(x)
    for index, units in enumerate(params.hidden_units):
        x = keras.layers.Dense(units, activation=params.activation, kernel_regularizer=regularizer, name=f"user_{index}")(x)
    user_vector = keras.layers.Dense(
        params.embedding_dim, activation=params.activation, kernel_regularizer=regularizer, name="user_vector"
    )(x)
    # the item tower: one embedding (kernel column) and bias per item
    logits = keras.layers.Dense(items, kernel_regularizer=regularizer, name="item_tower")(user_vector)
    model = keras.Model(history, logits, name="two_tower_recommender")
    from components.models.layers import multinomial_nll

    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss=multinomial_nll)
    return model


def build_serving(network, seen: Interactions, features: RecommendFeatures, top_k: int):
    """User ids in; the top-k unseen item ids and softmax scores out (cold users: most popular).

    A null user id arrives as ``scorer.MISSING_ID``, an unknown user: it gets the most popular items."""
    import keras

    users, items = len(seen.users), len(seen.items)
    k = min(top_k, items)
    user_ids = keras.Input(shape=(1,), name=features.user, dtype="int64")
    lookup = keras.layers.IntegerLookup(vocabulary=seen.users.astype("int64"), name="user_lookup")
    row = lookup(user_ids)  # 0 = unknown user
    histories = keras.layers.Embedding(users + 1, items, trainable=False, name="histories")
    popularity = keras.layers.Embedding(1, items, trainable=False, name="popularity")
    history = keras.layers.Reshape((items,), name="history_row")(histories(row))
    popular = keras.layers.Reshape((items,), name="popularity_row")(popularity(keras.ops.zeros_like(row)))
    logits = network(history, training=False)
    logits = keras.ops.where(keras.ops.greater(row, 0), logits, popular)
    logits = keras.ops.where(keras.ops.greater(history, 0.0), -1e9, logits)  # never recommend seen items
    scores, positions = keras.ops.top_k(keras.ops.softmax(logits, axis=-1), k)
    to_item = keras.layers.IntegerLookup(vocabulary=seen.items.astype("int64"), invert=True, name="item_ids")
    serving = keras.Model(user_ids, {"items": to_item(keras.ops.add(positions, 1)), "scores": scores}, name="recommender")
    counts = seen.matrix.sum(axis=0)
    histories.set_weights([np.vstack([np.zeros((1, items), "float32"), seen.matrix])])
    popularity.set_weights([np.log1p(counts)[None, :].astype("float32")])
    return serving
