"""funnel's custom Keras layers (importing this module registers them for loading saved models)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from components.models.scorer import MISSING_TOKEN


@keras.saving.register_keras_serializable(package="funnel")
class FillMissing(keras.layers.Layer):
    """NaN -> a fixed value per column (the training median), so no NaN reaches the network.

    The values live in the layer's config, so the registered model imputes raw rows itself.
    """

    def __init__(self, values: list[float], **kwargs) -> None:
        super().__init__(**kwargs)
        self.values = [float(v) for v in values]

    def call(self, inputs):
        fill = tf.constant(self.values, dtype=inputs.dtype)  # (columns,), broadcast over rows
        return tf.where(tf.math.is_nan(inputs), fill, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "values": self.values}


@keras.saving.register_keras_serializable(package="funnel")
class MissingIndicator(keras.layers.Layer):
    """1.0 where the chosen columns are NaN, else 0.0: one flag per column."""

    def __init__(self, columns: list[int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.columns = [int(c) for c in columns]

    def call(self, inputs):
        return tf.cast(tf.math.is_nan(tf.gather(inputs, self.columns, axis=-1)), "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.columns))

    def get_config(self) -> dict:
        return {**super().get_config(), "columns": self.columns}


@keras.saving.register_keras_serializable(package="funnel")
class BlankAsMissing(keras.layers.Layer):
    """Blank strings (a null becomes "" on the way in, see ``scorer``) -> ``MISSING_TOKEN``, the
    categorical lookups' vocabulary entry for a missing value."""

    def call(self, inputs):
        blank = tf.equal(tf.strings.strip(inputs), "")
        return tf.where(blank, tf.constant(MISSING_TOKEN), inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


def nan_medians(values: np.ndarray) -> list[float]:
    """Per-column medians of a (rows, columns) array ignoring NaN (0.0 for an all-null column)."""
    with np.errstate(all="ignore"):
        medians = np.nanmedian(values, axis=0) if len(values) else np.full(values.shape[1], np.nan)
    return [float(m) if np.isfinite(m) else 0.0 for m in np.atleast_1d(medians)]


def nan_normalization(values: np.ndarray, name: str) -> keras.layers.Normalization:
    """A ``Normalization`` layer with per-column mean and variance of the non-null values only
    (``adapt`` would turn a single NaN into a NaN mean). An all-null column gets mean 0, variance 1."""
    mask = np.isfinite(values)
    counts = mask.sum(axis=0)
    filled = np.where(mask, values, 0.0)
    mean = filled.sum(axis=0) / np.maximum(counts, 1)
    variance = np.where(mask, (values - mean) ** 2, 0.0).sum(axis=0) / np.maximum(counts, 1)
    mean, variance = np.where(counts > 0, mean, 0.0), np.where(counts > 0, variance, 1.0)
    return keras.layers.Normalization(mean=mean.astype("float32"), variance=variance.astype("float32"), name=name)


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
