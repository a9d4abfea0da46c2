"""The answer-retrieval model's Keras layers (``answers.build_answer_model`` assembles them):
importing this module registers them for loading saved models."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="funnel")
class AnswerIndex(keras.layers.Layer):
    """(rows, dim) unit query vectors -> (rows, answers) scores: the best cosine over each answer's entries."""

    def __init__(self, entries: int, dim: int, answers: int, **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.entries, self.dim, self.answers = int(entries), int(dim), int(answers)

    def build(self, input_shape) -> None:
        self.vectors = self.add_weight(shape=(self.entries, self.dim), initializer="zeros", trainable=False,
                                       name="entry_vectors")
        self.entry_answer = self.add_weight(shape=(self.entries,), initializer="zeros", dtype="int32",
                                            trainable=False, name="entry_answer")

    def call(self, queries):
        cosines = tf.matmul(self.vectors, queries, transpose_b=True)  # (entries, rows)
        best = tf.math.unsorted_segment_max(cosines, self.entry_answer, self.answers)  # (answers, rows)
        return tf.transpose(best)

    def compute_output_spec(self, queries):
        return keras.KerasTensor((queries.shape[0], self.answers), dtype="float32")

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("trainable", None)
        return {**config, "entries": self.entries, "dim": self.dim, "answers": self.answers}


@keras.saving.register_keras_serializable(package="funnel")
class AnswerLookup(keras.layers.Layer):
    """Answer positions -> their ids, and the top answer's text (empty when the model abstains)."""

    def __init__(self, answer_ids: list[str], answer_texts: list[str], **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.answer_ids, self.answer_texts = list(answer_ids), list(answer_texts)

    def call(self, positions, abstain):
        ids = tf.gather(tf.constant(self.answer_ids), positions)
        text = tf.gather(tf.constant(self.answer_texts), positions[:, 0])
        return ids, tf.where(abstain, tf.constant(""), text)

    def compute_output_spec(self, positions, abstain):
        return (keras.KerasTensor(positions.shape, dtype="string"),
                keras.KerasTensor((positions.shape[0],), dtype="string"))

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("trainable", None)
        return {**config, "answer_ids": self.answer_ids, "answer_texts": self.answer_texts}


@keras.saving.register_keras_serializable(package="funnel")
class Abstain(keras.layers.Layer):
    """(rows, k) sorted scores -> the confidence and whether it falls below the stored threshold."""

    def __init__(self, rule: str, **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.rule = rule

    def build(self, input_shape) -> None:
        self.threshold = self.add_weight(shape=(), initializer="zeros", trainable=False, name="threshold")

    def call(self, scores):
        top = scores[:, 0]
        second = scores[:, 1] if scores.shape[1] and scores.shape[1] > 1 else tf.zeros_like(top)
        confidence = top - second if self.rule == "margin" else top
        return confidence, tf.less(confidence, self.threshold)

    def compute_output_spec(self, scores):
        return (keras.KerasTensor((scores.shape[0],), dtype="float32"),
                keras.KerasTensor((scores.shape[0],), dtype="bool"))

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("trainable", None)
        return {**config, "rule": self.rule}
