"""Keras side of ``coldstart``: the hybrid item tower and the registered serving model."""

from __future__ import annotations

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


def full_table_scores(network, content: np.ndarray, warm: np.ndarray):
    """The trained item tower over the whole item table: content rows of every item, the warm
    items' residuals at ``warm`` (their positions in the table), zero (content only) elsewhere."""
    trained: ItemScores = network.get_layer("item_scores")
    table = ItemScores(content.shape[0], content.shape[1], trained.embedding_dim, trained.hidden_units,
                       trained.dropout, 0.0, False, trained.seed, name="item_scores")
    table.build((None, trained.embedding_dim))
    for mine, theirs in zip([*table.hidden, table.vector, table.bias], [*trained.hidden, trained.vector, trained.bias],
                            strict=True):
        mine.set_weights(theirs.get_weights())
    flag = np.zeros(content.shape[0], "float32")
    flag[warm] = 1.0
    residual = np.zeros((content.shape[0], trained.embedding_dim), "float32")
    residual[warm] = keras.ops.convert_to_numpy(trained.residual)
    residual_bias = np.zeros(content.shape[0], "float32")
    residual_bias[warm] = keras.ops.convert_to_numpy(trained.residual_bias)
    table.content.assign(content)
    table.has_history.assign(flag)
    table.residual.assign(residual)
    table.residual_bias.assign(residual_bias)
    return table


def build_table_model(network, content: np.ndarray, warm: np.ndarray, histories: np.ndarray, users: np.ndarray,
                      user_column: str):
    """User ids in; logits over every item of the table out, items in the user's history at -1e9.

    ``histories``: users x table items (multi-hot); its ``warm`` columns feed the user tower.
    An unknown user (or ``scorer.MISSING_ID``) gets the items' content + residual biases only."""
    table = full_table_scores(network, content, warm)
    ids = keras.Input(shape=(1,), name=user_column, dtype="int64")
    row = keras.layers.IntegerLookup(vocabulary=users.astype("int64"), name="user_lookup")(ids)  # 0: unknown
    stored = keras.layers.Embedding(len(users) + 1, histories.shape[1], trainable=False, name="histories")
    history = keras.layers.Reshape((histories.shape[1],), name="history_row")(stored(row))
    warm_history = keras.ops.take(history, keras.ops.convert_to_tensor(warm.astype("int32")), axis=1)
    tower = keras.Model(network.input, network.get_layer("user_vector").output, name="user_tower")
    user_vectors = tower(warm_history, training=False)
    known = keras.ops.cast(keras.ops.greater(row, 0), "float32")
    logits = table(user_vectors * known)
    logits = keras.ops.where(keras.ops.greater(history, 0.0), -1e9, logits)
    model = keras.Model(ids, logits, name="item_table_scores")
    stored.set_weights([np.vstack([np.zeros((1, histories.shape[1]), "float32"), histories.astype("float32")])])
    return model


def build_top_k(table_model, item_ids: np.ndarray, top_k: int):
    """The registered model: user ids in, the top-k unseen item ids of the table and their softmax scores out."""
    k = min(top_k, len(item_ids))
    scores, positions = keras.ops.top_k(keras.ops.softmax(table_model.output, axis=-1), k)
    to_item = keras.layers.IntegerLookup(vocabulary=item_ids.astype("int64"), invert=True, name="item_ids")
    return keras.Model(table_model.input, {"items": to_item(keras.ops.add(positions, 1)), "scores": scores},
                       name="hybrid_recommender_serving")
