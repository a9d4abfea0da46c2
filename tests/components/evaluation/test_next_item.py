"""Next-item evaluation: prediction points, Recall/MRR@k, the session bootstrap unit, the peers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.data.splits import TEST, TRAIN, VALIDATION, session_time_sides
from components.evaluation.next_item import (
    PointScores,
    head_items,
    length_bucket,
    list_metrics,
    prediction_points,
    session_measure,
    summarize_points,
)
from components.evaluation.session_peers import fit_session_peers, nearest_only, top_columns
from components.models.sessions import SessionFeatures, session_sequences, training_arrays
from components.monitoring.drift import session_item_classes

FEATURES = SessionFeatures(session="s", item="i", time="t")


def clicks(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["s", "i", "t"])


def test_every_step_after_the_first_click_is_a_point_with_its_prefix_in_time_order():
    # given two sessions, one listed out of time order
    log = clicks([(1, 10, 2.0), (1, 11, 1.0), (1, 12, 3.0), (2, 20, 5.0)])
    # when the points are made
    points, keys = prediction_points(log, FEATURES)
    # then session 1 gives two points (its prefixes 11 and 11 10), session 2 (one click) none
    assert points["items"].tolist() == ["11", "11 10"]
    assert points["target"].tolist() == ["10", "12"]
    assert points["prefix_length"].tolist() == [1, 2]
    assert points["session_length"].tolist() == [3, 3]
    assert len(keys) == 2
    assert keys[0] != keys[1]


def test_recall_and_mrr_limit_cases_and_unseen_targets_are_misses():
    targets = np.array(["a", "b", "c", "zz"])
    lists = np.array([["a", "x"], ["x", "b"], ["x", "y"], ["x", "y"]])
    scores = PointScores.of(lists, targets, np.array([1, 1, 2, 2]))
    assert scores.ranks.tolist() == [1, 2, 0, 0]
    metrics = summarize_points(scores, [1, 2])
    assert metrics["recall_at_2"] == pytest.approx(0.5)
    assert metrics["mrr_at_2"] == pytest.approx((1 + 0.5) / 4)
    assert metrics["recall_at_1"] == pytest.approx(0.25)
    assert metrics["hit_rate"] == pytest.approx(0.5)  # session 1 had a hit, session 2 none
    perfect = summarize_points(PointScores.of(targets[:, None], targets, np.arange(4)), [1])
    assert perfect["recall_at_1"] == 1.0
    assert perfect["mrr_at_1"] == 1.0


def test_the_session_measure_weighs_each_session_by_its_points():
    scores = PointScores(ranks=np.array([1, 1, 1, 0]), sessions=np.array([0, 0, 0, 1]))
    measure = session_measure(scores, "recall_at_20", [20])
    assert measure(np.array([0, 1])) == pytest.approx(0.75)
    assert measure(np.array([1, 1])) == 0.0
    with pytest.raises(KeyError):
        session_measure(scores, "ndcg", [20])


def test_lists_report_coverage_and_popularity_bias():
    popularity = pd.Series({"a": 10, "b": 5, "c": 1})
    metrics = list_metrics(np.array([["a", "b"], ["a", "b"]]), popularity, 3)
    assert metrics["coverage"] == pytest.approx(2 / 3)
    assert metrics["popularity_bias"] == pytest.approx(0.75)


def test_head_items_take_the_given_share_of_clicks_and_buckets_label_lengths():
    assert head_items(pd.Series({"a": 6, "b": 3, "c": 1}), 0.5) == {"a"}
    assert length_bucket(np.array([1, 2, 3, 7]), (1, 3)).tolist() == ["1", "2-3", "2-3", "4+"]


def test_a_session_takes_the_side_of_its_last_click():
    # given the newest click at t=100, test period 10 and validation period 10
    log = clicks([(1, 1, 0.0), (1, 2, 95.0), (2, 1, 85.0), (3, 1, 50.0), (3, 2, 60.0)])
    sides = session_time_sides(log["s"], log["t"], 10, 10)
    # then session 1 (ends at 95) is test whole, session 2 validation, session 3 train
    assert sides.tolist() == [TEST, TEST, VALIDATION, TRAIN, TRAIN]


def test_training_windows_make_every_click_after_the_first_a_target_once():
    x, y = training_arrays([np.array([1, 2, 3, 4, 5])], 2)
    assert sorted(y[y > 0].tolist()) == [2, 3, 4, 5]
    assert x.shape == (2, 2)


def test_the_peers_follow_the_training_sessions():
    # given sessions where 2 always follows 1, and 3 is the most clicked item
    log = clicks([(1, 1, 0), (1, 2, 1), (2, 1, 0), (2, 2, 1), (3, 3, 0), (3, 3, 1), (3, 3, 2), (4, 3, 0), (4, 4, 1)])
    peers = {p.name: p for p in fit_session_peers(session_sequences(log, FEATURES), 3, 2).peers}
    # then popularity leads with 3, the rules and V-SKNN put 2 after 1; an unknown prefix gets popularity
    assert peers["popularity"].recommend(["1"], 1).tolist() == [["3"]]
    assert peers["transitions"].recommend(["1", "99"], 1).tolist() == [["2"], ["3"]]
    assert peers["sequential rules"].recommend(["4 1"], 1).tolist() == [["2"]]
    assert peers["v-sknn"].recommend(["1"], 2)[0].tolist() == ["1", "2"]


def test_the_sparse_neighbour_cut_and_top_lists_match_their_dense_definitions():
    import scipy.sparse as sp

    # given similarities and scores with many ties (small integers), zeros and rows with few entries
    rng = np.random.default_rng(7)
    dense = rng.integers(0, 4, size=(40, 30)).astype(float) * (rng.random((40, 30)) < 0.4)
    dense[0] = 0.0
    for neighbours in (1, 3, 12):
        # then the sparse cut keeps what the dense rule (>= each row's neighbours-th largest) keeps
        cut = np.partition(dense, -neighbours, axis=1)[:, -neighbours][:, None]
        expected = np.where(dense >= cut, dense, 0.0)
        kept = nearest_only(sp.csr_matrix(dense), neighbours)
        assert kept.has_sorted_indices
        np.testing.assert_array_equal(kept.toarray(), expected)
    for k in (1, 5, 30, 31):
        # and the top lists are a stable argsort's first k (ties by column)
        np.testing.assert_array_equal(top_columns(dense, k), np.argsort(-dense, axis=1, kind="stable")[:, :k])


def test_drift_classes_cross_session_length_with_head_tail_and_new_items():
    log = clicks([(1, 1, 0), (1, 2, 1), (2, 9, 0)])
    classes = session_item_classes(log, "s", "i", ["1", "2"], np.array([10.0, 1.0]))
    # session 1 (2 clicks, bucket 1): item 1 head (0), item 2 tail (1); session 2 (1 click): new item (2)
    assert classes.tolist() == [3, 4, 2]
