"""The answer-retrieval model on small real slices: StackFAQ threads and Bitext intents."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.config import DataParams, load_params
from components.data.readers import read_csv, read_stackfaq
from components.evaluation.retrieval import answer_ranks, fit_tfidf_retrieval
from components.models.answers import (
    AnswerFeatures,
    answer_base,
    build_answer_model,
    model_threshold,
    non_null_columns,
    set_threshold,
)
from components.models.scorer import RowScorer
from components.use_cases import get_use_case
from tests.conftest import MIRROR, needs_mirror

ROOT = Path(__file__).resolve().parents[3]
STACKFAQ = MIRROR / "stackfaq"
BITEXT = ROOT / "data" / "answers" / "bitext"
BITEXT_CSV = "Bitext_Sample_Customer_Support_Training_Dataset.csv"
FEATURES = AnswerFeatures(text="text", answer_id="thread", answer="answer", role="role", index_roles=("question",))


def stackfaq_slice(threads: int = 20) -> pd.DataFrame:
    frame = read_stackfaq(STACKFAQ, DataParams(source="", format="stackfaq", files={"stackExchange-FAQ.xml": ""}))
    return frame[frame["thread"].isin(sorted(frame["thread"].unique())[:threads])].reset_index(drop=True)


@pytest.fixture(scope="module")
def train_params(tmp_path_factory):
    """The answers use case's train section, with an embedding cache of this module's own."""
    params = load_params(ROOT / "params.yaml")
    train = get_use_case("answers", params).configure(params).train
    encoder = train.encoder.model_copy(update={"cache_dir": str(tmp_path_factory.mktemp("embeddings"))})
    return train.model_copy(update={"encoder": encoder})


@pytest.fixture(scope="module")
def faq():
    """20 StackFAQ threads: their questions and every 2nd paraphrase indexed, the rest as queries."""
    frame = stackfaq_slice()
    paraphrase_number = frame.groupby("thread").cumcount()
    indexed = (frame["role"] == "question") | (paraphrase_number % 2 == 0)
    return frame[indexed].reset_index(drop=True), frame[~indexed].reset_index(drop=True)


@pytest.fixture(scope="module")
def model(faq, train_params):
    index, _ = faq
    return build_answer_model(index, FEATURES, train_params, seed=42)


@needs_mirror
def test_reader_gives_one_row_per_question_or_paraphrase():
    frame = read_stackfaq(STACKFAQ, DataParams(source="", format="stackfaq", files={"stackExchange-FAQ.xml": ""}))
    assert frame.columns.tolist() == ["thread", "role", "text", "answer"]
    assert frame["thread"].nunique() == 125
    assert (frame["role"] == "question").sum() == 125
    assert (frame["role"] == "paraphrase").sum() == 1249  # the "*" placeholders are gone
    assert (frame["answer"].str.len() > 0).all()
    assert (frame["text"] != "*").all()


@pytest.mark.parametrize(("content", "message"), [
    ("<root><other/></root>", "no <qapair>"),
    ("<root><qapair><rephr>a</rephr></qapair></root>", "number 1 has no <question>"),
    ("<root><qapair>", "not well-formed XML"),
])
def test_reader_refuses_a_file_that_is_not_stackfaq(tmp_path, content, message):
    (tmp_path / "faq.xml").write_text(content)
    with pytest.raises(ValueError, match=message):
        read_stackfaq(tmp_path, DataParams(source="", format="stackfaq", files={"faq.xml": ""}))


@needs_mirror
def test_model_returns_top_k_answers_scores_and_a_hand_off_flag(model, faq):
    _, queries = faq
    outputs = RowScorer(model).score_outputs(queries)
    rows = len(queries)
    assert outputs["answers"].shape == (rows, 5)
    assert outputs["scores"].shape == (rows, 5)
    assert outputs["answer_id"].shape == (rows,)
    assert outputs["confidence"].shape == (rows,)
    assert np.all(np.isfinite(outputs["scores"]))
    assert np.all(np.abs(outputs["scores"]) <= 1.0 + 1e-5)
    assert np.all(np.diff(outputs["scores"], axis=1) <= 1e-6)  # best first
    np.testing.assert_allclose(outputs["confidence"], outputs["scores"][:, 0], rtol=1e-6)
    assert (outputs["answer_id"] == outputs["answers"][:, 0]).all()
    assert all(len(set(row)) == 5 for row in outputs["answers"])  # five different answers
    # the top answer's text comes with it
    answers = faq[0].drop_duplicates("thread").set_index("thread")["answer"]
    assert (outputs["answer"] == answers[outputs["answer_id"]].to_numpy()).all()


@needs_mirror
def test_model_beats_tfidf_on_held_out_paraphrases(model, faq):
    index, queries = faq
    outputs = RowScorer(model).score_outputs(queries)
    p_at_1 = float(np.mean(answer_ranks(outputs["answers"], queries["thread"]) == 1))
    ids, _ = fit_tfidf_retrieval(index, "text", "thread").rank(queries["text"].tolist(), 5)
    baseline = float(np.mean(answer_ranks(ids, queries["thread"]) == 1))
    assert p_at_1 > baseline
    assert p_at_1 > 0.8


@needs_mirror
def test_threshold_hands_unsure_questions_to_a_person(model):
    texts = {"text": np.array(["How do I delete my facebook account?"])}
    try:
        set_threshold(model, 2.0)  # no cosine reaches it
        assert model_threshold(model) == 2.0
        outputs = RowScorer(model).score_outputs(texts)
        assert outputs["abstain"].tolist() == [True]
        assert outputs["answer"].tolist() == [""]
        assert outputs["answers"].shape == (1, 5)  # the ranked answers still come, for the person
        set_threshold(model, -1.0)
        outputs = RowScorer(model).score_outputs(texts)
        assert outputs["abstain"].tolist() == [False]
        assert outputs["answer"][0]
    finally:
        set_threshold(model, 0.0)


@needs_mirror
def test_saved_model_scores_raw_text_as_trained(model, tmp_path):
    import keras

    set_threshold(model, 0.3)
    texts = {"text": np.array(["strikethrough text in github markdown", ""])}  # an empty text is scored too
    expected = RowScorer(model).score_outputs(texts)
    model.save(tmp_path / "answers.keras")
    loaded = keras.saving.load_model(tmp_path / "answers.keras")
    got = RowScorer(loaded).score_outputs(texts)
    assert (got["answers"] == expected["answers"]).all()
    np.testing.assert_allclose(got["scores"], expected["scores"], atol=1e-5)
    assert model_threshold(loaded) == pytest.approx(0.3)
    set_threshold(model, 0.0)


def test_bitext_is_an_answer_base_by_configuration_alone(train_params):
    # given Bitext read as plain CSV and its columns named as features: instruction -> intent's response
    frame = read_csv(BITEXT, DataParams(source="", files={BITEXT_CSV: ""}))
    features = AnswerFeatures(text="instruction", answer_id="intent", answer="response")
    assert non_null_columns(features) == ["instruction", "intent"]
    ids, texts, entry_answer = answer_base(frame, features)
    assert len(ids) == 27
    assert ids == sorted(ids)
    first = frame.drop_duplicates("intent").set_index("intent")["response"]
    assert texts == [first[i] for i in ids]
    assert (np.asarray(ids)[entry_answer] == frame["intent"].to_numpy()).all()
    # when 4 customer messages per intent are the index, other messages find their intent's answer
    sample = frame.groupby("intent", group_keys=False).sample(n=8, random_state=7)
    position = sample.groupby("intent").cumcount()
    index, queries = sample[position < 4], sample[position >= 4]
    model = build_answer_model(index, features, train_params, seed=42)
    outputs = RowScorer(model).score_outputs(queries)
    assert np.mean(answer_ranks(outputs["answers"], queries["intent"]) == 1) > 0.7
    # and the answer given is the intent's response in the index (its first row's)
    indexed = index.drop_duplicates("intent").set_index("intent")["response"]
    assert (outputs["answer"] == indexed[outputs["answer_id"]].to_numpy()).all()
