"""The next-item models' Keras layers (``sessions.build_session_model`` assembles them): importing
this module registers them for loading saved models."""

from __future__ import annotations

import keras
import tensorflow as tf

# item index 0 is the padding (and every item the model does not know); real items are 1..n
PAD = 0


@keras.saving.register_keras_serializable(package="funnel")
class PrefixIds(keras.layers.Layer):
    """(rows, 1) strings of space-separated item ids, oldest click first -> (rows, max_length)
    item indices of the last ``max_length`` known clicks, left-padded with 0. An item the model
    never saw in training is skipped (it has no embedding)."""

    def __init__(self, items: list[str], max_length: int, **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.items, self.max_length = [str(i) for i in items], int(max_length)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(self.items), tf.range(1, len(self.items) + 1, dtype=tf.int32)),
            default_value=PAD)

    def call(self, prefixes):
        tokens = tf.strings.split(tf.reshape(prefixes, [-1]))
        ids = tf.ragged.map_flat_values(self.table.lookup, tokens)
        ids = tf.ragged.boolean_mask(ids, ids > PAD)[:, -self.max_length:]
        right = ids.to_tensor(default_value=PAD, shape=[None, self.max_length])
        lengths = tf.cast(ids.row_lengths(), tf.int32)[:, None]
        source = tf.range(self.max_length)[None, :] - (self.max_length - lengths)
        shifted = tf.gather(right, tf.maximum(source, 0), batch_dims=1)
        return tf.where(source >= 0, shifted, PAD)

    def compute_output_spec(self, prefixes):
        return keras.KerasTensor((prefixes.shape[0], self.max_length), dtype="int32")

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("trainable", None)
        return {**config, "items": self.items, "max_length": self.max_length}


@keras.saving.register_keras_serializable(package="funnel")
class SequenceEncoder(keras.layers.Layer):
    """(rows, L) item indices -> (rows, L, n + 1) next-item logits at every position (or the last
    position's, ``last_only``): item embeddings, a GRU (GRU4Rec) or causal self-attention blocks
    with positional embeddings (SASRec), and an output layer tied to the item embeddings."""

    def __init__(self, items: int, dim: int, max_length: int, architecture: str = "gru", blocks: int = 1,
                 heads: int = 1, dropout: float = 0.25, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_items, self.dim, self.max_length = int(items), int(dim), int(max_length)
        self.architecture, self.blocks, self.heads, self.rate = architecture, int(blocks), int(heads), float(dropout)
        self.embedding = keras.layers.Embedding(self.n_items + 1, self.dim, name="item_embedding")
        self.drop_in, self.drop_out = keras.layers.Dropout(self.rate), keras.layers.Dropout(self.rate)
        if architecture == "gru":
            self.gru = keras.layers.GRU(self.dim, return_sequences=True, name="gru")
        else:
            self.positions = keras.layers.Embedding(self.max_length, self.dim, name="position_embedding")
            self.attention = [keras.layers.MultiHeadAttention(self.heads, self.dim // self.heads, dropout=self.rate,
                                                              name=f"attention_{b}") for b in range(self.blocks)]
            self.feed_in = [keras.layers.Dense(self.dim, activation="relu", name=f"feed_in_{b}") for b in range(self.blocks)]
            self.feed_out = [keras.layers.Dense(self.dim, name=f"feed_out_{b}") for b in range(self.blocks)]
            self.norms = [keras.layers.LayerNormalization(name=f"norm_{i}") for i in range(2 * self.blocks)]
            self.drops = [keras.layers.Dropout(self.rate) for _ in range(2 * self.blocks)]

    def build(self, input_shape) -> None:
        # every sub-layer is built here, so a loaded model finds each weight a saved one lists
        sequence = (None, self.max_length, self.dim)
        self.embedding.build((None, self.max_length))
        if self.architecture == "gru":
            self.gru.build(sequence)
        else:
            self.positions.build((self.max_length,))
            for b in range(self.blocks):
                self.attention[b].build(sequence, sequence)
                self.feed_in[b].build(sequence)
                self.feed_out[b].build(sequence)
            for norm in self.norms:
                norm.build(sequence)
        self.output_bias = self.add_weight(shape=(self.n_items + 1,), initializer="zeros", name="output_bias")

    def hidden(self, ids, training=None):
        x = self.drop_in(self.embedding(ids), training=training)
        if self.architecture == "gru":
            return self.gru(x, training=training)
        x = x * (self.dim ** 0.5) + self.positions(tf.range(self.max_length))[None, :, :]
        real = tf.not_equal(ids, 0)
        causal = tf.linalg.band_part(tf.ones((self.max_length, self.max_length), dtype=tf.bool), -1, 0)
        # a position attends to itself and the real clicks before it, never to padding
        mask = tf.logical_and(causal[None, :, :], real[:, None, :]) | tf.eye(self.max_length, dtype=tf.bool)[None]
        for b in range(self.blocks):
            attended = self.attention[b](x, x, attention_mask=mask, training=training)
            x = self.norms[2 * b](x + self.drops[2 * b](attended, training=training))
            fed = self.feed_out[b](self.feed_in[b](x))
            x = self.norms[2 * b + 1](x + self.drops[2 * b + 1](fed, training=training))
        return x

    def call(self, ids, training=None, last_only=False, hidden_only=False):
        h = self.hidden(ids, training=training)
        h = self.drop_out(h[:, -1, :] if last_only else h, training=training)
        return h if hidden_only else self.logits(h)

    def logits(self, h):
        """Next-item logits of hidden states (the output layer, tied to the item embeddings)."""
        return tf.matmul(h, self.embedding.embeddings, transpose_b=True) + self.output_bias

    def compute_output_spec(self, ids, training=None, last_only=False, hidden_only=False):
        if hidden_only:
            return keras.KerasTensor((ids.shape[0], self.max_length, self.dim), dtype="float32")
        if last_only:
            return keras.KerasTensor((ids.shape[0], self.n_items + 1), dtype="float32")
        return keras.KerasTensor((ids.shape[0], self.max_length, self.n_items + 1), dtype="float32")

    def get_config(self) -> dict:
        return {**super().get_config(), "items": self.n_items, "dim": self.dim, "max_length": self.max_length,
                "architecture": self.architecture, "blocks": self.blocks, "heads": self.heads, "dropout": self.rate}


class TargetPositionsLoss(keras.losses.Loss):
    """Cross-entropy of the next item at the positions with a target only: (rows, L) targets (0:
    none) and (rows, L, dim) hidden states; the full softmax is computed for those positions alone
    (short sessions leave most of the L positions padding), averaged over them."""

    def __init__(self, encoder: SequenceEncoder, **kwargs) -> None:
        super().__init__(name="target_positions_cross_entropy", **kwargs)
        self.encoder = encoder

    def call(self, y_true, y_pred):
        targets = tf.cast(y_true, tf.int32)
        real = targets > PAD
        logits = self.encoder.logits(tf.boolean_mask(y_pred, real))
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.boolean_mask(targets, real), logits=logits)
        return tf.reduce_sum(losses) / tf.maximum(tf.cast(tf.size(losses), losses.dtype), 1.0)


@keras.saving.register_keras_serializable(package="funnel")
class TopNextItems(keras.layers.Layer):
    """(rows, n + 1) logits and the prefix indices -> the top-k item ids and their probabilities;
    a prefix without a known item gets the training popularity list. It also names the click
    log's session and item columns the model was trained on (drift monitoring reads them)."""

    def __init__(self, items: list[str], k: int, session_column: str = "", item_column: str = "", **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.items, self.k = [str(i) for i in items], int(k)
        self.session_column, self.item_column = session_column, item_column

    def build(self, input_shape) -> None:
        self.popularity = self.add_weight(shape=(len(self.items) + 1,), initializer="zeros", trainable=False,
                                          name="popularity")

    def call(self, logits, ids):
        known = tf.reduce_any(ids > 0, axis=1, keepdims=True)
        probabilities = tf.nn.softmax(logits[:, 1:], axis=-1)
        shares = self.popularity[None, 1:] / tf.maximum(tf.reduce_sum(self.popularity), 1.0)
        chosen = tf.where(known, probabilities, tf.broadcast_to(shares, tf.shape(probabilities)))
        scores, positions = tf.math.top_k(chosen, k=min(self.k, len(self.items)))
        return tf.gather(tf.constant(self.items), positions), scores

    def compute_output_spec(self, logits, ids):
        k = min(self.k, len(self.items))
        return (keras.KerasTensor((logits.shape[0], k), dtype="string"),
                keras.KerasTensor((logits.shape[0], k), dtype="float32"))

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("trainable", None)
        return {**config, "items": self.items, "k": self.k, "session_column": self.session_column,
                "item_column": self.item_column}
