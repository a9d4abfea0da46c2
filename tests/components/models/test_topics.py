"""The topic model: trained on a slice of real negative reviews, saved and loaded, it assigns raw text a topic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.config import load_params
from tests.conftest import MIRROR, needs_mirror

ROOT = Path(__file__).resolve().parents[3]
PARQUET = MIRROR / "womens_clothing_reviews" / "WomensClothingE-CommerceReviews.parquet.brotli"
pytestmark = needs_mirror


def negative_slice(rows: int) -> pd.DataFrame:
    reviews = pd.read_parquet(PARQUET)
    reviews = reviews[reviews["Review Text"].notna() & (reviews["Rating"] <= 2)].head(rows)
    return pd.DataFrame({"doc_id": "review:" + reviews.index.astype(str), "text": reviews["Review Text"],
                         "rating": reviews["Rating"].astype(float), "source": "reviews"}).reset_index(drop=True)


def test_the_saved_model_assigns_raw_text_the_topic_it_assigned_in_training(tmp_path, monkeypatch):
    import keras

    from components.models.scorer import RowScorer
    from components.models.topics import build_topic_model, corpus_rows, topic_labels
    from components.use_cases import get_use_case

    monkeypatch.setenv("FUNNEL_EMBEDDING_CACHE", str(tmp_path / "embeddings"))
    params = load_params(ROOT / "params.yaml", {"use_cases.topics.train.k_values": [3, 4],
                                                "use_cases.topics.train.min_df": 2})
    config = get_use_case("topics", params).configure(params)
    frame = negative_slice(150)
    frame.loc[0, "rating"] = 5.0  # a positive review is not clustered
    assert len(corpus_rows(frame, config.features)) == 149
    model = build_topic_model(frame, config.features, config.train, config.seed)
    labels = topic_labels(model)
    assert len(labels) in (3, 4)
    assert all(labels)
    texts = frame.iloc[1:6]
    before = RowScorer(model).score_outputs(texts)
    model.save(tmp_path / "topics.keras")
    loaded = keras.saving.load_model(tmp_path / "topics.keras")
    after = RowScorer(loaded).score_outputs(texts)
    np.testing.assert_array_equal(before["topic_id"], after["topic_id"])
    np.testing.assert_allclose(before["similarity"], after["similarity"], atol=1e-5)
    assert [t.decode() if isinstance(t, bytes) else str(t) for t in after["topic"]] == [labels[i] for i in after["topic_id"]]
    assert ((after["similarity"] > -1) & (after["similarity"] <= 1.0001)).all()


def test_no_corpus_rows_is_an_error_naming_the_rows():
    from components.models.topics import fit_topics
    from components.use_cases import get_use_case

    params = load_params(ROOT / "params.yaml")
    config = get_use_case("topics", params).configure(params)
    with pytest.raises(ValueError, match="no k"):
        fit_topics(np.eye(4)[:3], config.train, 0)
