"""The next-item models' Keras layers (``sessions.build_session_model`` assembles them): importing
this module registers them for loading saved models."""

from __future__ import annotations

import re

import keras
import tensorflow as tf

# item index 0 is the padding (and every item the model does not know); real items are 1..n
PAD = 0


@keras.saving.register_keras_serializable(package="funnel")
class PrefixIds(keras.layers.Layer):
    """(rows, 1) strings of space-separated item ids, oldest click first -> (rows, max_length)
    item indices of the last ``max_length`` known clicks, left-padded with 0. An item the model
    never saw in training is skipped (it has no embedding).

    With ``times`` ((rows, 1) strings of space-separated unix seconds, one per item id) the clicks
    of a row are put in time order first (a stable sort: clicks at the same second keep the order
    sent); a row whose times are empty, not numbers or not one per item keeps the order sent
    (``input_problems`` reports those rows before the model runs, so a request never gets there).
    """

    def __init__(self, items: list[str], max_length: int, items_input: str = "", times_input: str = "",
                 **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.items, self.max_length = [str(i) for i in items], int(max_length)
        # the model inputs this layer reads (named for ``input_problems``)
        self.items_input, self.times_input = items_input, times_input
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(self.items), tf.range(1, len(self.items) + 1, dtype=tf.int32)),
            default_value=PAD)

    def call(self, prefixes, times=None):
        tokens = tf.strings.split(tf.reshape(prefixes, [-1]))
        if times is not None:
            times = tf.reshape(times, [-1])
            # most requests send no times: they skip the sort's ops
            tokens = tf.cond(tf.reduce_any(tf.strings.length(times) > 0),
                             lambda: in_time_order(tokens, tf.strings.split(times)), lambda: tokens)
        ids = tf.ragged.map_flat_values(self.table.lookup, tokens)
        ids = tf.ragged.boolean_mask(ids, ids > PAD)[:, -self.max_length:]
        right = ids.to_tensor(default_value=PAD, shape=[None, self.max_length])
        lengths = tf.cast(ids.row_lengths(), tf.int32)[:, None]
        source = tf.range(self.max_length)[None, :] - (self.max_length - lengths)
        shifted = tf.gather(right, tf.maximum(source, 0), batch_dims=1)
        return tf.where(source >= 0, shifted, PAD)

    def input_problems(self, columns) -> list[tuple[int, str, str]]:
        """Rows whose times cannot order their items (not unix seconds, or not one per item)."""
        if not self.times_input or self.times_input not in columns or self.items_input not in columns:
            return []
        return times_problems(columns[self.items_input], columns[self.times_input], self.times_input)

    def compute_output_spec(self, prefixes, times=None):
        return keras.KerasTensor((prefixes.shape[0], self.max_length), dtype="int32")

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("trainable", None)
        return {**config, "items": self.items, "max_length": self.max_length, "items_input": self.items_input,
                "times_input": self.times_input}


# a click time as sent: unix seconds, a whole number or with a decimal fraction (RE2 and Python re)
TIME_PATTERN = r"[0-9]{1,12}(\.[0-9]{1,9})?"
_TIME = re.compile(TIME_PATTERN)
# tf.strings.split without a separator splits at ASCII whitespace runs: the same tokens in Python
_SPACE = re.compile(r"[ \t\n\v\f\r]+")


def split_tokens(value) -> list[str]:
    """A raw prefix or times value as the model's tokens (``tf.strings.split`` at ASCII
    whitespace); a null is no token (the model gets it as the empty string)."""
    if value is None or (isinstance(value, float) and value != value):
        return []
    return [token for token in _SPACE.split(str(value)) if token]


def times_problems(items, times, times_input: str) -> list[tuple[int, str, str]]:
    """(row, ``times_input``, why) for each row whose times are not unix seconds, or not one per
    item id; an empty or null times value is fine (the order sent is kept). Counts, never values."""
    problems = []
    for row, (prefix, stamps) in enumerate(zip(items, times, strict=True)):
        tokens = split_tokens(stamps)
        if not tokens:
            continue
        bad = sum(_TIME.fullmatch(token) is None for token in tokens)
        clicks = len(split_tokens(prefix))
        if bad:
            problems.append((row, times_input, f"{bad} of {len(tokens)} times are not unix seconds (send "
                                               "space-separated numbers of seconds since 1970, e.g. 1396861869.5)"))
        elif len(tokens) != clicks:
            problems.append((row, times_input, f"{len(tokens)} times for {clicks} item ids; send one time per "
                                               "item id, in the same order, or no times"))
    return problems


def in_time_order(tokens: tf.RaggedTensor, stamps: tf.RaggedTensor) -> tf.RaggedTensor:
    """Each row's tokens sorted by its stamps (stable), where the stamps are unix seconds, one per
    token; other rows unchanged."""
    counts, sent = tokens.row_lengths(), stamps.row_lengths()
    numeric = tf.strings.regex_full_match(stamps.flat_values, TIME_PATTERN)
    all_numeric = tf.reduce_all(tf.RaggedTensor.from_row_lengths(numeric, sent), axis=1)
    ordered = (sent == counts) & (sent > 0) & all_numeric
    seconds = tf.strings.to_number(tf.where(numeric, stamps.flat_values, "0"), tf.float64)
    width = tf.maximum(tf.reduce_max(counts), 0)
    rows = tokens.nrows()
    dense_seconds = tf.RaggedTensor.from_row_lengths(seconds, sent).to_tensor(
        default_value=0.0, shape=tf.stack([rows, width]))
    position = tf.cast(tf.range(width), tf.float64)[None, :]
    real = position < tf.cast(counts, tf.float64)[:, None]
    key = tf.where(ordered[:, None], dense_seconds, position)
    # padding sorts last; argsort is stable, so equal seconds keep the order sent
    order = tf.argsort(tf.where(real, key, tf.constant(float("inf"), tf.float64)), axis=1, stable=True)
    dense = tokens.to_tensor(default_value="", shape=tf.stack([rows, width]))
    return tf.RaggedTensor.from_tensor(tf.gather(dense, order, batch_dims=1), lengths=counts)


@keras.saving.register_keras_serializable(package="funnel")
class SequenceEncoder(keras.layers.Layer):
    """(rows, L) item indices -> (rows, L, n + 1) next-item logits at every position (or the last
    position's, ``last_only``): item embeddings, a GRU (GRU4Rec) or causal self-attention blocks
    with positional embeddings (SASRec), and an output layer tied to the item embeddings."""

    def __init__(self, items: int, dim: int, max_length: int, architecture: str = "gru", blocks: int = 1,
                 heads: int = 1, dropout: float = 0.25, unroll: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.unroll = bool(unroll)
        self.n_items, self.dim, self.max_length = int(items), int(dim), int(max_length)
        self.architecture, self.blocks, self.heads, self.rate = architecture, int(blocks), int(heads), float(dropout)
        self.embedding = keras.layers.Embedding(self.n_items + 1, self.dim, name="item_embedding")
        self.drop_in, self.drop_out = keras.layers.Dropout(self.rate), keras.layers.Dropout(self.rate)
        if architecture == "gru":
            self.gru = keras.layers.GRU(self.dim, return_sequences=True, unroll=self.unroll, name="gru")
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
                "architecture": self.architecture, "blocks": self.blocks, "heads": self.heads, "dropout": self.rate,
                "unroll": self.unroll}


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
