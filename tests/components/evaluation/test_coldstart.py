"""Cold-item protocol: the held-out items, ranking among them, the content peers, the shop sentence."""

from __future__ import annotations

import numpy as np

from components.evaluation.coldstart import (
    cold_item_mask,
    cold_sentence,
    content_knn_scores,
    fit_content_peers,
    genre_affinity_scores,
    top_among,
)


def test_cold_items_are_a_seeded_stable_share_of_the_catalogue():
    items = np.arange(1, 5001)
    mask = cold_item_mask(items, 0.2, seed=42)
    assert 0.18 < mask.mean() < 0.22
    # an item keeps its side as the catalogue grows, and another seed draws other items
    np.testing.assert_array_equal(cold_item_mask(np.arange(1, 10001), 0.2, 42)[:5000], mask)
    assert (cold_item_mask(items, 0.2, seed=1) != mask).any()
    assert not cold_item_mask(items, 0.0, 42).any()


def test_top_among_ranks_only_the_candidates():
    scores = np.array([[9.0, 1.0, 3.0, 2.0]])
    np.testing.assert_array_equal(top_among(scores, np.array([1, 2, 3]), np.array([10, 11, 12, 13]), 2), [[12, 13]])


def test_genre_affinity_prefers_the_users_favourite_genre():
    # items x genres: 0-1 comedy, 2 drama, 3 comedy (cold)
    categories = np.array([[1, 0], [1, 0], [0, 1], [1, 0], [0, 1]], dtype="float32")
    histories = np.array([[1, 1, 1, 0, 0]], dtype="float32")  # two comedies, one drama
    scores = genre_affinity_scores(histories, categories)
    assert scores[0, 3] > scores[0, 4]
    np.testing.assert_allclose(scores[0, 3], 2 / 3)


def test_content_knn_scores_an_item_like_the_history_first():
    content = np.array([[1, 0], [0, 1], [0.9, 0.1], [0.1, 0.9]], dtype="float32")
    histories = np.array([[1, 0, 0, 0]], dtype="float32")
    scores = content_knn_scores(histories, content, warm=np.array([0, 1]), neighbours=1)
    assert scores[0, 2] > scores[0, 3]


def test_without_categories_only_the_knn_peer_runs():
    peers = fit_content_peers(np.ones((1, 2), "float32"), np.eye(2, dtype="float32"), np.zeros((2, 0), "float32"),
                              np.array([0]), 5)
    assert [p.name for p in peers] == ["content_knn"]


def test_the_shop_sentence_names_the_share_of_buyers_reached():
    sentence = cold_sentence(0.234, 10, "products", "buy")
    assert "top 10 of 23% of the customers who will buy it" in sentence
