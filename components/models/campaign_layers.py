"""The campaign model's Keras layer (``campaign.build_campaign_model`` assembles it): importing
this module registers it for loading saved models."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="funnel")
class FixedArm(keras.layers.Layer):
    """(rows, 1) any input -> (rows, arms) the one-hot of arm ``index`` for every row: the
    counterfactual "this customer in that arm" the uplift is read from."""

    def __init__(self, index: int, arms: int, **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.index, self.arms = int(index), int(arms)

    def call(self, reference):
        rows = tf.shape(reference)[0]
        return tf.tile(tf.one_hot([self.index], self.arms, dtype="float32"), tf.stack([rows, 1]))

    def compute_output_spec(self, reference):
        return keras.KerasTensor((reference.shape[0], self.arms), dtype="float32")

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("trainable", None)
        return {**config, "index": self.index, "arms": self.arms}
