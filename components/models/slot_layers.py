"""The slot model's Keras layers (``slots.build_slot_models`` assembles them): importing this
module registers them for loading saved models."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="funnel")
class SlotClickScores(keras.layers.Layer):
    """A user vector -> click logits of items in positions, factorised so every (item, position)
    pair of a user is scored at once:

    logit(u, a, k) = b + b_a + b_k + <u, v_a> + <u, p_k> + <v_a, p_k>, where the item vector v_a
    is its id embedding plus embeddings of its categorical features plus a projection of its
    numeric features. The item table (codes and numbers) is fixed at build time.

    Called on ``user`` alone: (rows, positions, items) logits; with ``item_index`` and
    ``position_index`` (rows, 1): the (rows, 1) logits of those pairs (training on logged rows).
    """

    def __init__(self, dim: int, positions: int, item_codes: list[list[int]], vocabulary_sizes: list[int],
                 item_numbers: list[list[float]], **kwargs) -> None:
        super().__init__(**kwargs)
        self.dim, self.positions = int(dim), int(positions)
        self.item_codes = [[int(v) for v in row] for row in item_codes]  # (items, categorical features)
        self.vocabulary_sizes = [int(v) for v in vocabulary_sizes]
        self.item_numbers = [[float(v) for v in row] for row in item_numbers]  # (items, numeric features)
        self.items = len(self.item_codes)

    def build(self, input_shape) -> None:
        normal = keras.initializers.RandomNormal(stddev=0.05)
        self.item_embedding = self.add_weight(shape=(self.items, self.dim), initializer=normal, name="item_embedding")
        self.feature_embeddings = [
            self.add_weight(shape=(size, self.dim), initializer=normal, name=f"item_feature_embedding_{i}")
            for i, size in enumerate(self.vocabulary_sizes)
        ]
        numbers = len(self.item_numbers[0]) if self.item_numbers else 0
        self.numeric_kernel = self.add_weight(shape=(max(numbers, 1), self.dim), initializer=normal, name="numeric_kernel")
        self.position_embedding = self.add_weight(shape=(self.positions, self.dim), initializer=normal,
                                                  name="position_embedding")
        self.item_bias = self.add_weight(shape=(self.items,), initializer="zeros", name="item_bias")
        self.position_bias = self.add_weight(shape=(self.positions,), initializer="zeros", name="position_bias")
        # the bias starts near the logit of a 0.4% click rate, so the first epochs learn items, not the rate
        self.bias = self.add_weight(shape=(), initializer=keras.initializers.Constant(-5.5), name="bias")

    def item_vectors(self):
        vectors = self.item_embedding
        codes = tf.constant(self.item_codes, dtype="int32") if self.item_codes and self.item_codes[0] else None
        for column, table in enumerate(self.feature_embeddings):
            vectors = vectors + tf.gather(table, codes[:, column])
        if self.item_numbers and self.item_numbers[0]:
            vectors = vectors + tf.matmul(tf.constant(self.item_numbers, dtype=vectors.dtype), self.numeric_kernel)
        return vectors  # (items, dim)

    def call(self, user, item_index=None, position_index=None):
        items, places = self.item_vectors(), self.position_embedding
        if item_index is None or position_index is None:
            user_item = tf.matmul(user, items, transpose_b=True)  # (rows, items)
            user_place = tf.matmul(user, places, transpose_b=True)  # (rows, positions)
            item_place = tf.matmul(places, items, transpose_b=True)  # (positions, items)
            return (self.bias + self.item_bias[None, None, :] + self.position_bias[None, :, None]
                    + user_item[:, None, :] + user_place[:, :, None] + item_place[None, :, :])
        item = tf.reshape(tf.cast(item_index, "int32"), (-1,))
        place = tf.reshape(tf.cast(position_index, "int32"), (-1,))
        v, p = tf.gather(items, item), tf.gather(places, place)
        logit = (self.bias + tf.gather(self.item_bias, item) + tf.gather(self.position_bias, place)
                 + tf.reduce_sum(user * v, axis=1) + tf.reduce_sum(user * p, axis=1) + tf.reduce_sum(v * p, axis=1))
        return tf.reshape(logit, (-1, 1))

    def compute_output_spec(self, user, item_index=None, position_index=None):
        if item_index is None or position_index is None:
            return keras.KerasTensor((user.shape[0], self.positions, self.items), dtype=self.compute_dtype)
        return keras.KerasTensor((user.shape[0], 1), dtype=self.compute_dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "dim": self.dim, "positions": self.positions, "item_codes": self.item_codes,
                "vocabulary_sizes": self.vocabulary_sizes, "item_numbers": self.item_numbers}


@keras.saving.register_keras_serializable(package="funnel")
class SlotPolicy(keras.layers.Layer):
    """(rows, positions, items) click logits -> the items a policy puts into the positions.

    ``top``: position 1 gets the item with the highest click rate there, position 2 the best
    remaining one, ... (deterministic, no item twice). ``softmax``: each position draws an item from
    (1 - exploration) x softmax(logit / temperature) + exploration / items, on its own (an item may
    show in two positions). Returns the item ids (rows, positions), their click rates, the
    policy's probability of each shown item (its propensity, to log) and the whole distribution
    (rows, positions, items), which off-policy evaluation reads."""

    def __init__(self, item_ids: list[int], mode: str, temperature: float, exploration: float, **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.item_ids, self.mode = [int(v) for v in item_ids], str(mode)
        self.temperature, self.exploration = float(temperature), float(exploration)

    def distribution(self, logits):
        items = len(self.item_ids)
        if self.mode == "softmax":
            soft = tf.nn.softmax(logits / self.temperature, axis=-1)
            return (1.0 - self.exploration) * soft + self.exploration / items
        taken = tf.zeros_like(logits[:, 0, :])
        places = []
        for position in range(logits.shape[1]):
            masked = tf.where(taken > 0, tf.fill(tf.shape(taken), tf.constant(-1e9, logits.dtype)), logits[:, position, :])
            chosen = tf.one_hot(tf.argmax(masked, axis=-1), items, dtype=logits.dtype)
            places.append(chosen)
            taken = taken + chosen
        return tf.stack(places, axis=1)

    def call(self, logits):
        distribution = self.distribution(logits)
        if self.mode == "softmax":
            flat = tf.reshape(distribution, (-1, len(self.item_ids)))
            drawn = tf.random.categorical(tf.math.log(flat), 1, dtype="int32")
            chosen = tf.reshape(drawn, tf.shape(distribution)[:2])
        else:
            chosen = tf.argmax(distribution, axis=-1, output_type=tf.int32)
        rates = tf.gather(tf.sigmoid(logits), chosen, batch_dims=2)
        probabilities = tf.gather(distribution, chosen, batch_dims=2)
        return tf.gather(tf.constant(self.item_ids, dtype="int32"), chosen), rates, probabilities, distribution

    def compute_output_spec(self, logits):
        rows, positions = logits.shape[0], logits.shape[1]
        return (keras.KerasTensor((rows, positions), dtype="int32"),
                keras.KerasTensor((rows, positions), dtype=self.compute_dtype),
                keras.KerasTensor((rows, positions), dtype=self.compute_dtype),
                keras.KerasTensor(logits.shape, dtype=self.compute_dtype))

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("trainable", None)
        return {**config, "item_ids": self.item_ids, "mode": self.mode, "temperature": self.temperature,
                "exploration": self.exploration}
