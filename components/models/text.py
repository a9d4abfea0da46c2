"""A Keras text classifier: raw strings in, probability out; TextVectorization lives inside."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.config import FitSection, Section
from components.models.encoder import EncoderParams, encoder_vector


class TextFeatures(Section):
    text: str
    slices: tuple[str, ...]


class TextTrain(FitSection):
    # the pretrained sentence encoder (None: n-gram branches only); frozen: its vector is the
    # only branch, hybrid: a third branch beside the n-grams, finetune: the encoder trains too
    encoder: EncoderParams | None = None
    # the L2 penalty of the encoder branch's linear head
    encoder_l2: float = 0.0
    max_tokens: int
    word_ngrams: int
    char_ngrams: int
    char_max_tokens: int
    dropout: float
    l2: float
    learning_rate: float
    # Naive Bayes log-count-ratio smoothing; <= 0 keeps plain idf weights (no NB scaling).
    nb_alpha: float = 1.0
    # Coefficients start at coefficient_init * sign(NB ratio): training starts from the NB
    # classifier and moves towards logistic regression; early stopping picks the blend.
    coefficient_init: float = 1.0


def _ngram_statistics(layer, texts, labels: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-id document counts over all training texts and over the positive ones."""
    size = layer.vocabulary_size()
    total = np.zeros(size)
    positive = np.zeros(size)
    for start in range(0, len(labels), batch):
        ids = np.asarray(layer(texts[start : start + batch]))
        present = np.zeros((len(ids), size), dtype=bool)
        present[np.arange(len(ids))[:, None], ids] = True
        total += present.sum(0)
        positive += present[labels[start : start + batch] == 1].sum(0)
    return total, positive


def ngram_weights(layer, texts, labels: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """idf x |naive Bayes log-count ratio| (and the ratio's sign) for every id of an adapted
    ``int`` TextVectorization.

    idf is TextVectorization's own ``log(1 + n / (1 + df))``; the ratio is Wang & Manning's
    NB-SVM ``log((p/|p|) / (q/|q|))`` with ``alpha`` smoothing (``alpha <= 0``: idf only).
    Padding (id 0) and the out-of-vocabulary bucket (id 1) get weight 0.
    """
    df, df_positive = _ngram_statistics(layer, texts, labels)
    weights = np.log1p(len(labels) / (1.0 + df))
    signs = np.zeros_like(weights)
    if alpha > 0:
        p = df_positive + alpha
        q = df - df_positive + alpha
        ratio = np.log((p / p.sum()) / (q / q.sum()))
        weights *= np.abs(ratio)
        signs = np.sign(ratio)
    weights[:2] = 0.0
    signs[:2] = 0.0
    return weights.astype("float32"), signs.astype("float32")


def drop_blank_ngrams(layer) -> None:
    """Remove whitespace-only n-grams from an adapted ``int``-mode TextVectorization.

    Stripping punctuation leaves runs of spaces whose character n-grams are saved as empty
    vocabulary lines, and two of them make the saved model fail to load ("repeated term ''").
    At scoring time such n-grams fall into the out-of-vocabulary bucket.
    """
    vocabulary = layer.get_vocabulary()
    kept = [token for token in vocabulary[2:] if str(token).strip()]  # [0, 1]: padding, OOV
    if len(kept) != len(vocabulary) - 2:
        layer.set_vocabulary(kept)


def adaptation_texts(texts: pd.Series):
    """Texts to adapt vocabularies on, as a (rows, 1) string tensor with whitespace runs collapsed;
    a null text is empty, as at scoring time (``scorer.as_strings``)."""
    import tensorflow as tf

    from components.models.scorer import as_strings

    cleaned = pd.Series(as_strings(texts)).str.replace(r"\s+", " ", regex=True).str.strip()
    return tf.constant(cleaned.to_numpy(dtype=object).reshape(-1, 1))


def adapt_vocabulary(layer, texts) -> None:
    """``layer.adapt(texts)`` for a TextVectorization layer and a (rows, 1) string tensor, with its
    state update traced as one graph: Keras's ``adapt`` runs it eagerly, and in ``tf_idf`` mode
    that dedupes every text's n-grams in a Python-level loop (about 20 s of the support build for
    its 10,003 texts). The vocabulary and document frequencies are the same: they are counts."""
    import tensorflow as tf

    layer.reset_state()
    tf.function(layer.update_state)(texts)
    layer.finalize_state()


def non_null_columns(features: TextFeatures) -> list[str]:
    """Feature columns that must hold no nulls: none (a null text is scored as an empty text)."""
    return []


def build_text_classifier(train: pd.DataFrame, features: TextFeatures, params: TextTrain, seed: int, *, label: str):
    """NB-weighted TF-IDF bags of word 1..n-grams and character n-grams, one linear head each,
    and/or a linear head on the sentence encoder's vector (``params.encoder``).

    Each branch turns the text into n-gram ids (TextVectorization, ``int`` mode), looks up a
    frozen per-n-gram weight (idf x |NB log-count ratio| from the training split, stored in a
    non-trainable Embedding) and a trainable coefficient (an L2-regularised Embedding of width
    1), and scores ``sum(weight * coefficient) / sqrt(sum(weight**2))``: a linear model on the
    L2-normalised NB-TF-IDF vector, computed without materialising the vocabulary-wide vector.
    A Dense unit mixes the word and character scores into a probability.
    Padding ids have weight 0 and the norm is floored, so an empty (or null) or punctuation-only
    text scores 0 (no NaN), unlike a masked embedding with average pooling.
    """
    import keras

    keras.utils.set_random_seed(seed)
    texts = adaptation_texts(train[features.text])
    labels = train[label].astype(int).to_numpy()
    text = keras.Input(shape=(1,), name=features.text, dtype="string")
    branches = {
        "word": keras.layers.TextVectorization(
            max_tokens=params.max_tokens, ngrams=params.word_ngrams, output_mode="int", name="word_ngrams",
        ),
        "char": keras.layers.TextVectorization(
            max_tokens=params.char_max_tokens,
            split="character",
            ngrams=tuple(range(2, params.char_ngrams + 1)),
            output_mode="int",
            name="char_ngrams",
        ),
    }
    scores, frozen = [], []
    if params.encoder is not None:
        vector = encoder_vector(text, train[features.text], params.encoder)
        scores.append(keras.layers.Dense(
            1, kernel_regularizer=keras.regularizers.L2(params.encoder_l2) if params.encoder_l2 else None,
            name="encoder_score")(vector))
    if params.encoder is not None and params.encoder.mode != "hybrid":
        branches = {}
    for name, vectorize in branches.items():
        adapt_vocabulary(vectorize, texts)
        drop_blank_ngrams(vectorize)
        size = vectorize.vocabulary_size()
        ids = vectorize(text)
        weight_table = keras.layers.Embedding(size, 1, trainable=False, name=f"{name}_nb_idf")
        weight = weight_table(ids)  # (batch, ngrams, 1)
        coefficient_table = keras.layers.Embedding(
            size, 1, embeddings_initializer="zeros",
            embeddings_regularizer=keras.regularizers.L2(params.l2) if params.l2 else None,
            name=f"{name}_coefficients",
        )
        coefficient = coefficient_table(ids)
        contribution = keras.layers.Multiply(name=f"{name}_contributions")([weight, coefficient])
        contribution = keras.layers.Dropout(params.dropout, seed=seed, name=f"{name}_dropout")(contribution)
        norm = keras.ops.sqrt(keras.ops.maximum(keras.ops.sum(keras.ops.square(weight), axis=1), 1e-12))
        scores.append(keras.ops.sum(contribution, axis=1) / norm)  # (batch, 1)
        weights, signs = ngram_weights(vectorize, texts, labels, params.nb_alpha)
        frozen.append((weight_table, weights))
        if params.coefficient_init:
            frozen.append((coefficient_table, params.coefficient_init * signs))
    merged = keras.layers.Concatenate(name="branch_scores")(scores)
    # Unit-norm mixing weights: the branch coefficients carry the scale, so their L2 penalty
    # cannot be dodged by growing the mixing weights instead.
    output = keras.layers.Dense(
        1, activation="sigmoid", kernel_initializer=keras.initializers.Constant(len(scores) ** -0.5),
        kernel_constraint=keras.constraints.UnitNorm(axis=0), name="probability",
    )(merged)
    model = keras.Model(inputs={features.text: text}, outputs=output, name="text_classifier")
    for table, weights in frozen:
        table.set_weights([weights.reshape(-1, 1)])
    model.compile(
        optimizer=keras.optimizers.Adam(params.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model
