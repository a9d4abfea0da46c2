"""A Keras multiclass text classifier (customer-service intents): raw text in, intent and probability out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pandas as pd

from components.config import FitSection
from components.models.encoder import EncoderParams, encoder_vector
from components.models.text import TextFeatures, adapt_vocabulary, adaptation_texts


class IntentTextTrain(FitSection):
    # the pretrained sentence encoder (None: TF-IDF bags only); its mode: frozen (vectors only),
    # hybrid (vectors and the TF-IDF bags), finetune (the encoder trains too)
    encoder: EncoderParams | None = None
    max_tokens: int
    word_ngrams: int
    char_ngrams: int
    char_max_tokens: int
    hidden_units: int
    dropout: float
    # the weight of the encoder's unit vector beside the unit-norm TF-IDF bag (hybrid)
    encoder_scale: float = 1.0
    l2: float
    learning_rate: float
    # how the softmax layer is trained: adam (gradient steps, early stopping on validation) or
    # logistic (L-BFGS to the optimum of multinomial logistic regression on every training row,
    # L2 penalty 1/head_c as scikit-learn defines it; needs hidden_units 0 and no validation rows)
    head: Literal["adam", "logistic"] = "adam"
    head_c: float = 10.0
    head_max_iter: int = 1000
    head_batch_rows: int = 512   # rows per feature batch while the logistic head reads its inputs


def non_null_columns(features: TextFeatures) -> list[str]:
    """Feature columns that must hold no nulls: none (a null text is scored as an empty text)."""
    return []


def build_intent_classifier(
    train: pd.DataFrame, features: TextFeatures, params: IntentTextTrain, seed: int, *, classes: Sequence[str],
    label: str = "",
):
    """Word and character n-gram TF-IDF bags and/or the sentence encoder's vector, one hidden
    layer, softmax over ``classes``.

    The training model outputs class probabilities; ``with_class_names`` wraps it for serving.
    Bags of n-grams have no mask, so an empty (or null) text is a zero vector rather than NaN.
    With ``encoder`` (frozen or hybrid), the encoder's vectors of the training texts are cached
    (``encoder.EmbeddingStore``) and the head trains on them.
    """
    import keras

    keras.utils.set_random_seed(seed)
    text = keras.Input(shape=(1,), name=features.text, dtype="string")
    parts = []
    if params.encoder is not None:
        parts.append(encoder_vector(text, train[features.text], params.encoder, params.encoder_scale))
    if params.encoder is None or params.encoder.mode == "hybrid":
        texts = adaptation_texts(train[features.text])
        words = keras.layers.TextVectorization(
            max_tokens=params.max_tokens, ngrams=params.word_ngrams, output_mode="tf_idf", name="word_ngrams"
        )
        chars = keras.layers.TextVectorization(
            max_tokens=params.char_max_tokens, split="character", standardize="lower",
            ngrams=tuple(range(2, params.char_ngrams + 1)), output_mode="tf_idf", name="char_ngrams",
        )
        adapt_vocabulary(words, texts)
        adapt_vocabulary(chars, texts)
        # index 0 of a tf_idf bag counts every out-of-vocabulary n-gram: for character n-grams it
        # held a fifth of the bag's squared norm and shrank the known terms; scikit-learn drops it
        bag = keras.layers.Concatenate(name="ngrams")([words(text)[..., 1:], chars(text)[..., 1:]])
        # tf-idf magnitudes grow with text length; unit-normalise like scikit-learn's TfidfVectorizer
        bag = keras.layers.UnitNormalization(name="l2_normalise")(bag)
        parts.append(keras.layers.Flatten(name="bag")(bag))  # (rows, 1, terms) as traced -> (rows, terms)
    features_in = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)
    hidden = keras.layers.Dropout(params.dropout, seed=seed, name="head_dropout")(features_in)
    if params.hidden_units:
        hidden = keras.layers.Dense(
            params.hidden_units, activation="relu", kernel_regularizer=keras.regularizers.L2(params.l2), name="hidden"
        )(hidden)
        hidden = keras.layers.Dropout(params.dropout, seed=seed + 1)(hidden)
    output = keras.layers.Dense(
        len(classes), activation="softmax", kernel_regularizer=keras.regularizers.L2(params.l2), name="probabilities"
    )(hidden)
    model = keras.Model(inputs={features.text: text}, outputs=output, name="intent_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(params.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def with_class_names(model, classes: Sequence[str]):
    """The serving model: the class name, its probability and every class's probability."""
    import keras

    probabilities = model.output
    index = keras.ops.argmax(probabilities, axis=-1)
    names = keras.layers.StringLookup(
        vocabulary=list(classes), invert=True, num_oov_indices=0, name="class_name"
    )(index)
    best = keras.ops.max(probabilities, axis=-1)
    return keras.Model(
        inputs=model.inputs,
        outputs={"label": names, "probability": best, "probabilities": probabilities},
        name=f"{model.name}_serving",
    )
