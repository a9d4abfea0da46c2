"""Clustering metrics: limit cases of NMI / ARI, c-TF-IDF and NPMI on toy corpora, k by silhouette."""

from __future__ import annotations

import numpy as np
import pytest

from components.evaluation.clustering import (
    agreement,
    describe_topics,
    npmi_coherence,
    quote,
    topic_diversity,
    topic_slices,
)
from components.models.clustering import choose_k, class_tfidf_terms, fit_kmeans, term_counts

TOY = ["zip broke zip stuck", "zip broken again", "zip stuck",
       "fabric thin fabric cheap", "thin fabric see through", "cheap thin fabric"]


def test_identical_clusterings_agree_perfectly_whatever_the_names():
    truth = np.array(["a", "a", "b", "b", "c", "c"])
    assert agreement(truth, np.array([2, 2, 0, 0, 1, 1])) == {"nmi": pytest.approx(1.0), "ari": pytest.approx(1.0)}


def test_a_single_cluster_carries_no_information_and_resamples_count_repeats():
    truth = np.array(["a", "b"] * 10)
    assert agreement(truth, np.zeros(20, dtype=int))["nmi"] == pytest.approx(0.0)
    assert agreement(truth, np.arange(20) % 2, np.array([0, 0, 1, 1]))["nmi"] == pytest.approx(1.0)


def test_class_tfidf_labels_each_toy_cluster_by_its_own_words():
    counts, vocabulary = term_counts(TOY, min_df=1)
    terms = class_tfidf_terms(counts, vocabulary, np.array([0, 0, 0, 1, 1, 1]), 2, 2)
    assert terms[0] == ["zip", "stuck"]  # the most frequent own words first
    assert terms[1][0] == "fabric"
    assert set(terms[1]) <= {"fabric", "thin", "cheap"}
    assert topic_diversity(terms) == 1.0
    assert topic_diversity([["zip", "thin"], ["zip", "thin"]]) == 0.5


def test_npmi_is_one_for_words_always_together_and_minus_one_for_words_never_together():
    counts, vocabulary = term_counts(["red wool", "red wool", "blue cotton", "blue wool"], min_df=1)
    assert npmi_coherence(counts, vocabulary, [["red", "wool"]]) > npmi_coherence(counts, vocabulary, [["blue", "wool"]])
    assert npmi_coherence(counts, vocabulary, [["blue", "cotton"]]) == pytest.approx(1 - np.log(2) / np.log(4))
    assert npmi_coherence(counts, vocabulary, [["red", "blue"]]) == -1.0
    assert np.isnan(npmi_coherence(counts, vocabulary, [["red"]]))


def test_silhouette_picks_the_number_of_separated_groups():
    rng = np.random.default_rng(3)
    centres = np.eye(8)[:3] * 5
    vectors = np.vstack([c + rng.normal(0, 0.3, (30, 8)) for c in centres])
    k, scores = choose_k(vectors, [2, 3, 4, 5], lambda v, c: fit_kmeans(v, c, 0, 5)[0])
    assert k == 3
    assert set(scores) == {2, 3, 4, 5}
    with pytest.raises(ValueError, match="no k"):
        choose_k(vectors[:3], [5], lambda v, c: fit_kmeans(v, c, 0, 5)[0])


def test_the_topic_table_is_largest_first_with_short_quotes_by_id():
    topics = describe_topics(np.array([1, 0, 0, 0]), np.array([0.9, 0.2, 0.8, 0.5]), [["zip"], ["fabric", "thin"]],
                             ["r1", "r2", "r3", "r4"], ["thin fabric", "a zip that broke on the first day I wore it",
                                                        "zip stuck", "zip"], examples=2, quote_chars=12)
    assert [t.topic_id for t in topics] == [0, 1]
    assert topics[0].share == 0.75
    assert topics[0].examples == (("r3", "zip stuck"), ("r4", "zip"))
    assert quote("a zip that broke on the first day", 12) == "a zip that…"
    rows = topic_slices(topics)
    assert rows[0]["value"] == "0: zip"
    assert rows[0]["rows"] == 3
    assert rows[0]["trend"] == "–"
