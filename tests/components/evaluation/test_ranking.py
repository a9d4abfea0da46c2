"""Top-k ranking metrics (Microsoft Recommenders' definitions) and the most-popular baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.evaluation.baselines import fit_most_popular
from components.evaluation.ranking import (
    activity_bucket,
    champion_items,
    per_user_ranking_metrics,
    ranking_metrics,
    summarize_ranking,
)


def test_ranking_metrics_match_a_hand_computed_example():
    # user a: hits at ranks 1 and 3 out of 4 relevant; user b: no hit; user c has no test items
    recommended = np.array([[1, 2, 3], [7, 8, 9], [1, 2, 3]])
    relevant = [{1, 3, 5, 6}, {4}, set()]
    got = ranking_metrics(recommended, relevant, k=3, catalogue_size=10)
    dcg = 1 + 1 / np.log2(4)
    ideal = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert got["precision_at_3"] == pytest.approx((2 / 3 + 0) / 2)
    assert got["recall_at_3"] == pytest.approx((2 / 4 + 0) / 2)
    assert got["ndcg_at_3"] == pytest.approx((dcg / ideal + 0) / 2)
    assert got["map_at_3"] == pytest.approx(((1 / 1 + 2 / 3) / 4 + 0) / 2)
    assert got["coverage"] == pytest.approx(6 / 10)
    assert got["users"] == 2


def test_summary_over_picked_users_equals_the_metrics_of_those_users_lists():
    recommended = np.array([[1, 2, 3], [7, 8, 9], [1, 2, 3], [4, 5, 6]])
    relevant = [{1, 3, 5, 6}, {4}, set(), {6, 9}]
    per_user = per_user_ranking_metrics(recommended, relevant, k=3)
    index = np.array([0, 0, 3, 2])  # a bootstrap-style pick: repeats count, users without items skip
    picked = ranking_metrics(recommended[index], [relevant[i] for i in index], k=3, catalogue_size=10)
    assert summarize_ranking(per_user, recommended, 10, index) == pytest.approx(picked)
    assert picked["users"] == 3


def test_most_popular_never_recommends_seen_items_and_is_deterministic():
    train = pd.DataFrame({"user_id": [1, 1, 2, 3, 3, 3], "item_id": [10, 20, 10, 10, 20, 30]})
    baseline = fit_most_popular(train, "user_id", "item_id")
    assert baseline.recommend([1, 2, 99], k=2).tolist() == [[30, -1], [20, 30], [10, 20]]


def test_activity_buckets_and_champion_output_shape():
    assert activity_bucket(pd.Series([5, 30, 99, 100]), (30, 100)).tolist() == ["under 30", "30-99", "30-99", "100 and over"]
    scored = pd.DataFrame({"items": [[1, 2, 3], [4, 5, 6]], "scores": [[0.3, 0.2, 0.1]] * 2})
    assert champion_items(scored, rows=2, k=2).tolist() == [[1, 2], [4, 5]]
    with pytest.raises(ValueError, match="'items'"):
        champion_items(np.zeros(2), rows=2, k=2)
