"""The sentence encoder's Keras layers (``encoder.build_sentence_encoder`` assembles them):
``TextTokens`` (WordPiece ids inside the model) and ``SentenceEncoder`` (BERT, masked mean, L2).
Importing this module registers them for loading saved models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf


def load_tokenizer(tokenizer_json: str, max_tokens: int):
    """The Hugging Face tokenizer with per-batch padding and truncation at ``max_tokens``
    (the packaged file fixes both at 128)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - BERT's padding token, not a secret
    return tokenizer


def decode_texts(values) -> list[str]:
    """A (rows,) or (rows, 1) string tensor or array as Python strings."""
    flat = np.asarray(values).reshape(-1)
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]


@keras.saving.register_keras_serializable(package="funnel")
class TextTokens(keras.layers.Layer):
    """(rows, 1) strings -> WordPiece ``token_ids`` and ``padding_mask``, (rows, longest text).

    The tokenizer file travels with the saved model as an asset."""

    def __init__(self, max_tokens: int, tokenizer_json: str | None = None, **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.max_tokens = int(max_tokens)
        self.tokenizer_json = tokenizer_json
        self._tokenizer = load_tokenizer(tokenizer_json, self.max_tokens) if tokenizer_json else None

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if self._tokenizer is None:
            raise RuntimeError("TextTokens has no tokenizer: the model was saved without its assets")
        encoded = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype="int32").reshape(len(texts), -1)
        mask = np.array([e.attention_mask for e in encoded], dtype="int32").reshape(len(texts), -1)
        return ids, mask

    def call(self, texts):
        def run(values):
            return self.tokenize(decode_texts(values.numpy()))

        ids, mask = tf.py_function(run, [texts], [tf.int32, tf.int32])
        ids.set_shape((None, None))
        mask.set_shape((None, None))
        return ids, mask

    def compute_output_spec(self, texts):
        return (keras.KerasTensor((texts.shape[0], None), dtype="int32"),
                keras.KerasTensor((texts.shape[0], None), dtype="int32"))

    def save_assets(self, dir_path: str) -> None:
        Path(dir_path, "tokenizer.json").write_text(self.tokenizer_json or "")

    def load_assets(self, dir_path: str) -> None:
        self.tokenizer_json = Path(dir_path, "tokenizer.json").read_text()
        self._tokenizer = load_tokenizer(self.tokenizer_json, self.max_tokens)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("trainable", None)
        return {**config, "max_tokens": self.max_tokens}


@keras.saving.register_keras_serializable(package="funnel")
class SentenceEncoder(keras.layers.Layer):
    """(rows, 1) strings -> (rows, hidden) unit vectors: tokens, BERT, masked mean, L2 norm."""

    def __init__(self, backbone, tokens: TextTokens, chunk_rows: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backbone = backbone
        self.tokens = tokens
        self.chunk_rows = int(chunk_rows)
        self.dim = int(backbone.hidden_dim)
        self.store: Any = None  # not saved: a training-time cache
        self._encode: Any = None  # the traced encode_sorted, made on first use

    def build(self, input_shape=None) -> None:
        self.built = True  # the backbone and tokenizer are built when made

    def pool(self, ids, mask, training=None):
        hidden = self.backbone({"token_ids": ids, "segment_ids": tf.zeros_like(ids), "padding_mask": mask},
                               training=training)["sequence_output"]
        weights = tf.cast(mask, hidden.dtype)[:, :, None]
        mean = tf.reduce_sum(hidden * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)
        return tf.math.l2_normalize(mean, axis=-1)

    def encode_sorted(self, ids, mask):
        """Rows sorted by length, encoded ``chunk_rows`` at a time (each chunk padded to its own
        longest row), then put back in their order."""
        lengths = tf.reduce_sum(mask, axis=1)
        order = tf.argsort(lengths, stable=True)
        ids, mask, lengths = tf.gather(ids, order), tf.gather(mask, order), tf.gather(lengths, order)
        rows = tf.shape(ids)[0]
        chunks = (rows + self.chunk_rows - 1) // self.chunk_rows
        parts = tf.TensorArray(tf.float32, size=chunks, infer_shape=False, element_shape=(None, self.dim))

        def body(i, parts):
            start = i * self.chunk_rows
            end = tf.minimum(start + self.chunk_rows, rows)
            width = tf.maximum(tf.reduce_max(lengths[start:end]), 1)
            return i + 1, parts.write(i, self.pool(ids[start:end, :width], mask[start:end, :width], training=False))

        _, parts = tf.while_loop(lambda i, _: i < chunks, body, [tf.constant(0), parts])
        vectors = tf.reshape(parts.concat(), (-1, self.dim))
        return tf.gather(vectors, tf.argsort(order))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Encode Python strings eagerly (length-sorted chunks): the store's way to fill itself."""
        if self._encode is None:
            self._encode = tf.function(self.encode_sorted, reduce_retracing=True)
        out = np.zeros((len(texts), self.dim), dtype="float32")
        step = 4096  # bound the memory of one call; each is sorted and chunked inside
        for start in range(0, len(texts), step):
            ids, mask = self.tokens.tokenize(texts[start : start + step])
            out[start : start + step] = self._encode(tf.constant(ids), tf.constant(mask)).numpy()
        return out

    def call(self, texts, training=None):
        if self.store is not None:  # frozen and cached: look up by text, encode what is new
            store = self.store
            vectors = tf.py_function(lambda values: store.vectors_for(decode_texts(values.numpy()), self.encode_texts),
                                     [texts], tf.float32)
            vectors.set_shape((None, self.dim))
            return vectors
        ids, mask = self.tokens(texts)
        if training and self.backbone.trainable:
            return self.pool(ids, mask, training=True)
        return self.encode_sorted(ids, mask)

    def compute_output_spec(self, texts, training=None):
        return keras.KerasTensor((texts.shape[0], self.dim), dtype="float32")

    def get_config(self) -> dict:
        return {**super().get_config(), "chunk_rows": self.chunk_rows,
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "tokens": keras.saving.serialize_keras_object(self.tokens)}

    @classmethod
    def from_config(cls, config: dict):
        import keras_hub  # noqa: F401 - registers BertBackbone for deserialisation

        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["tokens"] = keras.saving.deserialize_keras_object(config["tokens"])
        return cls(**config)
