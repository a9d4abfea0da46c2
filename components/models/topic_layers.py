"""The topic model's Keras layer (``topics.build_topic_model`` assembles it): importing this
module registers it for loading saved models."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="funnel")
class NearestTopic(keras.layers.Layer):
    """(rows, dim) unit text vectors -> the nearest topic centroid (cosine after subtracting the
    corpus mean vector): its id, its top-terms label and the similarity. Centroids and the mean
    are frozen weights."""

    def __init__(self, topics: int, dim: int, labels: list[str], **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.topics, self.dim, self.labels = int(topics), int(dim), list(labels)

    def build(self, input_shape) -> None:
        self.centroids = self.add_weight(shape=(self.topics, self.dim), initializer="zeros", trainable=False,
                                         name="centroids")
        self.mean = self.add_weight(shape=(self.dim,), initializer="zeros", trainable=False, name="corpus_mean")

    def call(self, vectors):
        centered = vectors - self.mean
        centered = centered / tf.maximum(tf.norm(centered, axis=1, keepdims=True), 1e-12)
        similarity = tf.matmul(centered, self.centroids, transpose_b=True)  # (rows, topics)
        topic = tf.argmax(similarity, axis=1, output_type=tf.int32)
        return topic, tf.gather(tf.constant(self.labels), topic), tf.reduce_max(similarity, axis=1)

    def compute_output_spec(self, vectors):
        rows = vectors.shape[0]
        return (keras.KerasTensor((rows,), dtype="int32"), keras.KerasTensor((rows,), dtype="string"),
                keras.KerasTensor((rows,), dtype="float32"))

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("trainable", None)
        return {**config, "topics": self.topics, "dim": self.dim, "labels": self.labels}
