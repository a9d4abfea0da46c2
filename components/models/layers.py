"""funnel's custom Keras layers (importing this module registers them for loading saved models)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="funnel")
class CooccurrenceCounts(keras.layers.Layer):
    """``log1p`` of how often each combination of fields (a "cross") occurred in the training data.

    Each cross is a tuple of string inputs; all crosses share one hashed count table (the cross's
    index is part of the key). Counts are label-free. While training, a row's own occurrence is
    left out (count - 1) so that training rows look like unseen rows do at serving time.
    """

    def __init__(self, crosses: list[list[int]], num_bins: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.crosses = [list(c) for c in crosses]
        self.num_bins = int(num_bins)

    def build(self, input_shape) -> None:
        self.table = self.add_weight(
            shape=(self.num_bins,), initializer="zeros", trainable=False, name="counts", dtype="float32"
        )

    def bins(self, inputs) -> tf.Tensor:
        """(rows, crosses) hash bins of each row's value combinations."""
        columns = [tf.reshape(tf.strings.as_string(x) if x.dtype != tf.string else x, (-1,)) for x in inputs]
        keys = [
            tf.strings.join([tf.constant(f"{index}")] + [columns[i] for i in cross], separator="\x1f")
            for index, cross in enumerate(self.crosses)
        ]
        return tf.strings.to_hash_bucket_fast(tf.stack(keys, axis=1), self.num_bins)

    def adapt(self, inputs) -> None:
        """Count every cross over the training rows."""
        bins = self.bins(inputs).numpy().reshape(-1)
        self.table.assign(np.bincount(bins, minlength=self.num_bins).astype("float32"))

    def call(self, inputs, training=None):
        counts = tf.gather(self.table, self.bins(inputs))
        if training:
            counts = tf.maximum(counts - 1.0, 0.0)
        return tf.math.log1p(counts)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], len(self.crosses))

    def get_config(self) -> dict:
        return {**super().get_config(), "crosses": self.crosses, "num_bins": self.num_bins}


@keras.saving.register_keras_serializable(package="funnel")
def multinomial_nll(bag, logits):
    """-sum over a user's items of log softmax (Mult-DAE's multinomial likelihood).

    keras' CategoricalCrossentropy trained noticeably worse with multi-hot targets here
    (measured: its loss rose after 4 epochs while this one kept falling)."""
    return -keras.ops.sum(bag * keras.ops.log_softmax(logits, axis=-1), axis=-1)
