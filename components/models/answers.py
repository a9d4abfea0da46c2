"""A Keras answer-retrieval model: raw question in, the best FAQ answers, their scores and a hand-off flag out.

The answer base is an index of entries (each answer's canonical question and the paraphrases
seen in training), embedded once with the frozen sentence encoder and stored in the model as a
non-trainable matrix. A query is encoded by the same encoder; an answer's score is the highest
cosine between the query and the answer's entries. The model returns the top-k answer ids and
scores, the top answer's text, a confidence (the top score, or its margin over the runner-up)
and ``abstain``: the confidence is below the threshold chosen on validation, so a person answers.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from components.config import Section
from components.models.encoder import EncoderParams, encode_frozen
from components.models.scorer import as_strings


class AnswerFeatures(Section):
    """Which columns hold an entry's text, its answer's id and the answer's text."""

    text: str
    answer_id: str
    # the answer's text (the model returns the top answer's); "" : the model returns ids only
    answer: str = ""
    # a column naming each entry's role, and the roles that are always in the index (an answer's
    # canonical question); "": every row is a paraphrase, split like any other
    role: str = ""
    index_roles: tuple[str, ...] = ()


class AnswersTrain(Section):
    """The retrieval model's settings (``train`` of an answers use case)."""

    encoder: EncoderParams
    # share of the non-index rows held out to choose the abstention threshold
    validation_fraction: float
    # answers returned per query
    top_k: int
    # the answered queries' P@1 the abstention threshold is chosen for (on validation)
    target_precision: float
    # top_score: the best answer's cosine; margin: its lead over the second best answer
    confidence: Literal["top_score", "margin"] = "top_score"


def non_null_columns(features: AnswerFeatures) -> list[str]:
    """An entry needs its text and its answer id."""
    return [features.text, features.answer_id]


def answer_base(index: pd.DataFrame, features: AnswerFeatures) -> tuple[list[str], list[str], np.ndarray]:
    """(answer ids, their texts, each entry's answer position) of the index rows, ids sorted; an
    answer's text is that of its first row (Bitext: one agent response per intent)."""
    ids = index[features.answer_id].astype(str)
    answer_ids = sorted(ids.unique())
    if features.answer:
        first = index.assign(_id=ids.to_numpy()).drop_duplicates("_id").set_index("_id")[features.answer]
        texts = [str(first[a]) for a in answer_ids]
    else:
        texts = ["" for _ in answer_ids]
    return answer_ids, texts, np.searchsorted(np.asarray(answer_ids), ids.to_numpy()).astype("int32")


def build_answer_model(
    index: pd.DataFrame, features: AnswerFeatures, params: AnswersTrain, seed: int, *, label: str = "",
):
    """The retrieval model over the answer base ``index`` (entries: texts and their answer ids).

    The entries' vectors come from the encoder's embedding cache (a frozen encoder caches every
    text it encodes), so a retrain on the same texts does not re-encode them; the threshold is 0
    (nothing abstains) until ``set_threshold``.
    """
    import keras

    from components.models.answer_layers import Abstain, AnswerIndex, AnswerLookup

    keras.utils.set_random_seed(seed)
    texts = list(as_strings(index[features.text].to_numpy()))
    encoder, vectors = encode_frozen(params.encoder, texts)  # the index holds fixed vectors
    answer_ids, answer_texts, entry_answer = answer_base(index, features)
    k = min(params.top_k, len(answer_ids))
    text = keras.Input(shape=(1,), name=features.text, dtype="string")
    lookup = AnswerIndex(len(texts), encoder.dim, len(answer_ids), name="answer_index")
    scores, positions = keras.ops.top_k(lookup(encoder(text)), k)
    confidence, abstain = Abstain(params.confidence, name="abstain")(scores)
    ids, answer = AnswerLookup(answer_ids, answer_texts, name="answer_lookup")(positions, abstain)
    lookup.set_weights([vectors.astype("float32"), entry_answer])
    outputs = {"answer_id": ids[:, 0], "answer": answer, "confidence": confidence, "abstain": abstain,
               "answers": ids, "scores": scores}
    return keras.Model(inputs={features.text: text}, outputs=outputs, name="answer_retrieval")


def set_threshold(model, threshold: float) -> None:
    """Store the abstention threshold in the model (queries below it are handed to a person)."""
    model.get_layer("abstain").threshold.assign(float(threshold))


def model_threshold(model) -> float:
    return float(model.get_layer("abstain").threshold.numpy())
