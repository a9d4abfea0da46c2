"""Keras side of ``coldstart``: the hybrid item tower and the registered serving model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras
import numpy as np

from components.models.layers import multinomial_nll


@keras.saving.register_keras_serializable(package="funnel")
class ItemScores(keras.layers.Layer):
    """User vectors in; one logit per item of a fixed item table out.

    Item vector = MLP(content row) + has_history x residual embedding; item bias likewise. With
    ``both_heads`` the content-only logits (residuals left out) follow the hybrid ones."""

    def __init__(self, items: int, content_dim: int, embedding_dim: int, hidden_units: list[int],
                 dropout: float = 0.0, residual_l2: float = 0.0, both_heads: bool = True, seed: int = 0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.items, self.content_dim, self.embedding_dim = int(items), int(content_dim), int(embedding_dim)
        self.hidden_units, self.dropout = [int(u) for u in hidden_units], float(dropout)
        self.residual_l2, self.both_heads, self.seed = float(residual_l2), bool(both_heads), int(seed)
        self.hidden = [keras.layers.Dense(u, activation="relu", name=f"content_{i}")
                       for i, u in enumerate(self.hidden_units)]
        self.drop = keras.layers.Dropout(self.dropout, seed=self.seed) if self.dropout > 0 else None
        self.vector = keras.layers.Dense(self.embedding_dim, name="content_vector")
        self.bias = keras.layers.Dense(1, name="content_bias")

    def build(self, input_shape) -> None:
        self.content = self.add_weight(shape=(self.items, self.content_dim), initializer="zeros",
                                       trainable=False, name="content")
        self.has_history = self.add_weight(shape=(self.items,), initializer="ones", trainable=False,
                                           name="has_history")
        regularizer = keras.regularizers.L2(self.residual_l2) if self.residual_l2 > 0 else None
        self.residual = self.add_weight(shape=(self.items, self.embedding_dim), initializer="zeros",
                                        regularizer=regularizer, name="residual")
        self.residual_bias = self.add_weight(shape=(self.items,), initializer="zeros", name="residual_bias")
        width = self.content_dim
        for layer in self.hidden:
            layer.build((None, width))
            width = layer.units
        self.vector.build((None, width))
        self.bias.build((None, width))

    def content_vectors(self, training=False):
        x = self.content
        for layer in self.hidden:
            x = layer(x)
            if self.drop is not None:
                x = self.drop(x, training=training)
        return self.vector(x), keras.ops.squeeze(self.bias(x), -1)

    def call(self, users, training=False):
        vectors, bias = self.content_vectors(training)
        flag = self.has_history
        hybrid = keras.ops.matmul(users, keras.ops.transpose(vectors + flag[:, None] * self.residual))
        hybrid = hybrid + bias + flag * self.residual_bias
        if not self.both_heads:
            return hybrid
        return keras.ops.concatenate([hybrid, keras.ops.matmul(users, keras.ops.transpose(vectors)) + bias], -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.items * (2 if self.both_heads else 1))

    def get_config(self) -> dict:
        return {**super().get_config(), "items": self.items, "content_dim": self.content_dim,
                "embedding_dim": self.embedding_dim, "hidden_units": self.hidden_units, "dropout": self.dropout,
                "residual_l2": self.residual_l2, "both_heads": self.both_heads, "seed": self.seed}


def two_head_loss(content_weight: float):
    """Multinomial likelihood of the history under the hybrid head plus ``content_weight`` x under
    the content-only head (the network's logits are [hybrid | content])."""

    def loss(bag, logits):
        items = keras.ops.shape(bag)[-1]
        return multinomial_nll(bag, logits[:, :items]) + content_weight * multinomial_nll(bag, logits[:, items:])

    return loss


def user_tower(history, params, seed: int):
    regularizer = keras.regularizers.L2(params.l2) if params.l2 > 0 else None
    x = keras.layers.UnitNormalization(name="normalise")(history)
    if params.input_dropout > 0:
        x = keras.layers.Dropout(params.input_dropout, seed=seed, name="input_dropout")(x)
    for index, units in enumerate(params.hidden_units):
        x = keras.layers.Dense(units, activation=params.activation, kernel_regularizer=regularizer,
                               name=f"user_{index}")(x)
    return keras.layers.Dense(params.embedding_dim, activation=params.activation, kernel_regularizer=regularizer,
                              name="user_vector")(x)


def build_hybrid(content: np.ndarray, params, seed: int):
    """History bag over the warm items in; [hybrid | content-only] logits over them out."""
    keras.utils.set_random_seed(seed)
    items = content.shape[0]
    history = keras.Input(shape=(items,), name="history", dtype="float32")
    scores = ItemScores(items, content.shape[1], params.embedding_dim, list(params.content_hidden_units),
                        params.content_dropout, params.residual_l2, True, seed, name="item_scores")
    logits = scores(user_tower(history, params, seed))
    scores.content.assign(content)
    model = keras.Model(history, logits, name="hybrid_recommender")
    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss=two_head_loss(params.content_loss_weight))
    return model


@keras.saving.register_keras_serializable(package="funnel")
class TakeColumns(keras.layers.Layer):
    """The columns of a (batch, items) matrix at fixed positions (a weight, so it can be read back)."""

    def __init__(self, columns: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.columns = int(columns)

    def build(self, input_shape) -> None:
        self.positions = self.add_weight(shape=(self.columns,), initializer="zeros", dtype="int32",
                                         trainable=False, name="positions")

    def call(self, matrix):
        return keras.ops.take(matrix, self.positions, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.columns)

    def get_config(self) -> dict:
        return {**super().get_config(), "columns": self.columns}


@keras.saving.register_keras_serializable(package="funnel")
class CatalogueScores(keras.layers.Layer):
    """One comparable score per item of the table: a calibrated log-probability over the unseen
    items with history.

    Items with history: ``blend_weight`` x the collaborative model's log-softmax + the rest x the
    hybrid head's; items without (cold, or added after training): the content head's log-softmax.
    Each head's logits are divided by its temperature (``temperatures``: collaborative, hybrid,
    content; chosen on validation likelihood) and normalised over the same pool (the user's unseen
    items with history), so one list can mix both kinds. ``featurizer`` (``ItemFeaturizer.as_dict``)
    and ``top_k`` travel with the model: they turn an item added later into a content row."""

    def __init__(self, items: int, blend_weight: float = 1.0, temperatures=(1.0, 1.0, 1.0),
                 featurizer: dict | None = None, top_k: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        self.items, self.blend_weight = int(items), float(blend_weight)
        self.temperatures = [float(t) for t in temperatures]
        self.featurizer, self.top_k = featurizer, int(top_k)

    def build(self, input_shape) -> None:
        self.in_history = self.add_weight(shape=(self.items,), initializer="zeros", trainable=False,
                                          name="in_history")
        self.to_history = self.add_weight(shape=(self.items,), initializer="zeros", dtype="int32", trainable=False,
                                          name="to_history")

    def call(self, inputs):
        collaborative, heads, history = inputs
        items, ops = self.items, keras.ops
        pool = ops.logical_and(ops.greater(self.in_history, 0.0)[None, :], ops.less_equal(history, 0.0))

        def log_softmax(logits, temperature):
            scaled = logits / temperature
            return scaled - ops.logsumexp(ops.where(pool, scaled, -1e9), axis=-1, keepdims=True)

        tc, th, tg = self.temperatures
        on_table = ops.take(collaborative, self.to_history, axis=1)
        warm = self.blend_weight * log_softmax(on_table, tc) + (1.0 - self.blend_weight) * log_softmax(
            heads[:, :items], th)
        return ops.where(ops.greater(self.in_history, 0.0)[None, :], warm, log_softmax(heads[:, items:], tg))

    def compute_output_shape(self, input_shape):
        return (input_shape[2][0], self.items)

    def get_config(self) -> dict:
        return {**super().get_config(), "items": self.items, "blend_weight": self.blend_weight,
                "temperatures": self.temperatures, "featurizer": self.featurizer, "top_k": self.top_k}


@dataclass(frozen=True)
class Catalogue:
    """What the table model is built from (``catalogue_of`` reads it back from a built one).

    Positions index the table: ``warm`` the hybrid network's items, ``history`` the collaborative
    model's (items with history, in its column order). ``histories``: users x table items."""

    user_tower: keras.Model  # warm history -> user vector
    collaborative: keras.Model  # history over ``history`` -> logits
    item_scores: ItemScores  # trained item tower (any size: its content MLP is reused)
    content: np.ndarray
    residual: np.ndarray  # table rows (zero for items the hybrid network never had)
    residual_bias: np.ndarray
    has_residual: np.ndarray
    warm: np.ndarray
    history: np.ndarray
    histories: np.ndarray
    users: np.ndarray
    item_ids: np.ndarray
    user_column: str
    blend_weight: float
    temperatures: tuple[float, float, float]
    featurizer: dict | None
    top_k: int

    def with_items(self, item_ids: np.ndarray, content: np.ndarray) -> Catalogue:
        """This catalogue plus items it has never seen (content rows only: no history, no residual)."""
        n = len(item_ids)
        return dataclasses.replace(
            self, item_ids=np.concatenate([self.item_ids, item_ids]), content=np.vstack([self.content, content]),
            residual=np.vstack([self.residual, np.zeros((n, self.residual.shape[1]), "float32")]),
            residual_bias=np.concatenate([self.residual_bias, np.zeros(n, "float32")]),
            has_residual=np.concatenate([self.has_residual, np.zeros(n, "float32")]),
            histories=np.hstack([self.histories, np.zeros((len(self.histories), n), "float32")]))


def _table_item_scores(catalogue: Catalogue) -> ItemScores:
    trained = catalogue.item_scores
    items, width = catalogue.content.shape
    table = ItemScores(items, width, trained.embedding_dim, trained.hidden_units, trained.dropout, 0.0, True,
                       trained.seed, name="item_scores")
    table.build((None, trained.embedding_dim))
    for mine, theirs in zip([*table.hidden, table.vector, table.bias], [*trained.hidden, trained.vector, trained.bias],
                            strict=True):
        mine.set_weights(theirs.get_weights())
    table.content.assign(catalogue.content)
    table.has_history.assign(catalogue.has_residual)
    table.residual.assign(catalogue.residual)
    table.residual_bias.assign(catalogue.residual_bias)
    return table


def trained_catalogue(network, collaborative, content: np.ndarray, warm: np.ndarray, history: np.ndarray,
                      histories: np.ndarray, users: np.ndarray, item_ids: np.ndarray, user_column: str,
                      calibration: tuple[float, tuple[float, float, float]], featurizer: dict | None,
                      top_k: int) -> Catalogue:
    """The catalogue of a freshly trained hybrid ``network`` (over the table's ``warm`` items) and
    ``collaborative`` model (over the table's ``history`` items)."""
    trained: ItemScores = network.get_layer("item_scores")
    residual = np.zeros((content.shape[0], trained.embedding_dim), "float32")
    residual[warm] = keras.ops.convert_to_numpy(trained.residual)
    residual_bias, has_residual = np.zeros(content.shape[0], "float32"), np.zeros(content.shape[0], "float32")
    residual_bias[warm] = keras.ops.convert_to_numpy(trained.residual_bias)
    has_residual[warm] = 1.0
    tower = keras.Model(network.input, network.get_layer("user_vector").output, name="user_tower")
    collaborative = keras.Model(collaborative.input, collaborative.output, name="collaborative")
    blend_weight, (tc, th, tg) = calibration
    return Catalogue(tower, collaborative, trained, content.astype("float32"), residual, residual_bias, has_residual,
                     warm.astype("int32"), history.astype("int32"), histories.astype("float32"), users,
                     item_ids, user_column, float(blend_weight), (float(tc), float(th), float(tg)), featurizer,
                     int(top_k))


def build_table_model(catalogue: Catalogue):
    """User ids in; one calibrated score per item of the table out (``CatalogueScores``), items
    in the user's history at -1e9. An unknown user (or ``scorer.MISSING_ID``) has an empty
    history: the collaborative model's and the items' biases rank for them."""
    items = len(catalogue.item_ids)
    ids = keras.Input(shape=(1,), name=catalogue.user_column, dtype="int64")
    lookup = keras.layers.IntegerLookup(vocabulary=catalogue.users.astype("int64"), name="user_lookup")
    row = lookup(ids)  # 0: unknown
    stored = keras.layers.Embedding(len(catalogue.users) + 1, items, trainable=False, name="histories")
    history = keras.layers.Reshape((items,), name="history_row")(stored(row))
    warm_columns = TakeColumns(len(catalogue.warm), name="warm_columns")
    history_columns = TakeColumns(len(catalogue.history), name="history_columns")
    user_vectors = catalogue.user_tower(warm_columns(history), training=False)
    known = keras.ops.cast(keras.ops.greater(row, 0), "float32")
    heads = _table_item_scores(catalogue)(user_vectors * known)
    collaborative = catalogue.collaborative(history_columns(history), training=False)
    scores = CatalogueScores(items, catalogue.blend_weight, catalogue.temperatures, catalogue.featurizer,
                             catalogue.top_k, name="catalogue")
    logits = keras.ops.where(keras.ops.greater(history, 0.0), -1e9, scores([collaborative, heads, history]))
    model = keras.Model(ids, logits, name="item_table_scores")
    stored.set_weights([np.vstack([np.zeros((1, items), "float32"), catalogue.histories.astype("float32")])])
    warm_columns.positions.assign(catalogue.warm.astype("int32"))
    history_columns.positions.assign(catalogue.history.astype("int32"))
    in_history = np.zeros(items, "float32")
    in_history[catalogue.history] = 1.0
    to_history = np.zeros(items, "int32")
    to_history[catalogue.history] = np.arange(len(catalogue.history), dtype="int32")
    scores.in_history.assign(in_history)
    scores.to_history.assign(to_history)
    return model


def build_top_k(table_model, item_ids: np.ndarray, top_k: int):
    """The registered model: user ids in, the top-k unseen item ids of the table and their softmax scores out."""
    k = min(top_k, len(item_ids))
    scores, positions = keras.ops.top_k(keras.ops.softmax(table_model.output, axis=-1), k)
    to_item = keras.layers.IntegerLookup(vocabulary=item_ids.astype("int64"), invert=True, name="item_ids")
    return keras.Model(table_model.input, {"items": to_item(keras.ops.add(positions, 1)), "scores": scores},
                       name="hybrid_recommender_serving")


def build_serving(catalogue: Catalogue):
    """The registered model of ``catalogue``: user ids in, top-k item ids and softmax scores out."""
    return build_top_k(build_table_model(catalogue), catalogue.item_ids, catalogue.top_k)


def is_catalogue_model(model) -> bool:
    """Whether a (loaded) Keras model is a cold-start serving model that can take new items."""
    try:
        model.get_layer("catalogue")
    except ValueError:
        return False
    return True


def catalogue_of(model) -> Catalogue:
    """The catalogue a (saved and loaded) serving or table model was built from."""
    scores: CatalogueScores = model.get_layer("catalogue")
    item_scores: ItemScores = model.get_layer("item_scores")
    numpy = keras.ops.convert_to_numpy
    lookup = model.get_layer("user_lookup")
    users = np.asarray(lookup.get_vocabulary(include_special_tokens=False), "int64")
    item_ids = np.asarray(model.get_layer("item_ids").get_vocabulary(include_special_tokens=False), "int64")
    histories = np.asarray(model.get_layer("histories").get_weights()[0][1:], "float32")
    t = scores.temperatures
    return Catalogue(
        model.get_layer("user_tower"), model.get_layer("collaborative"), item_scores,
        numpy(item_scores.content), numpy(item_scores.residual), numpy(item_scores.residual_bias),
        numpy(item_scores.has_history), numpy(model.get_layer("warm_columns").positions),
        numpy(model.get_layer("history_columns").positions), histories, users, item_ids,
        model.input.name if not isinstance(model.input, list) else model.input[0].name,
        scores.blend_weight, (t[0], t[1], t[2]), scores.featurizer, scores.top_k)
