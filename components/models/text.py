"""A Keras text classifier: raw strings in, probability out; TextVectorization lives inside."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class TextFeatures:
    text: str
    slices: tuple[str, ...]


@dataclass(frozen=True)
class TextTrain:
    max_tokens: int
    word_ngrams: int
    char_ngrams: int
    char_max_tokens: int
    dropout: float
    l2: float
    learning_rate: float
    batch_size: int
    max_epochs: int
    early_stopping_patience: int
    validation_fraction: float


def build_text_classifier(train: pd.DataFrame, features: TextFeatures, params: TextTrain, seed: int):
    """Word n-gram and character n-gram TF-IDF branches feeding a regularised sigmoid unit.

    Bags of n-grams have no mask, so an empty or punctuation-only text is a zero vector
    (a masked embedding with average pooling would give NaN there).
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    texts = tf.constant(train[features.text].astype(str).to_numpy(dtype=object).reshape(-1, 1))
    text = keras.Input(shape=(1,), name=features.text, dtype="string")
    words = keras.layers.TextVectorization(
        max_tokens=params.max_tokens, ngrams=params.word_ngrams, output_mode="tf_idf", name="word_ngrams"
    )
    chars = keras.layers.TextVectorization(
        max_tokens=params.char_max_tokens,
        split="character",
        ngrams=tuple(range(2, params.char_ngrams + 1)),
        output_mode="tf_idf",
        name="char_ngrams",
    )
    words.adapt(texts)
    chars.adapt(texts)
    merged = keras.layers.Concatenate(name="ngrams")([words(text), chars(text)])
    merged = keras.layers.Dropout(params.dropout, seed=seed)(merged)
    output = keras.layers.Dense(
        1,
        activation="sigmoid",
        kernel_regularizer=keras.regularizers.L2(params.l2),
        name="probability",
    )(merged)
    model = keras.Model(inputs={features.text: text}, outputs=output, name="text_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(params.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model
