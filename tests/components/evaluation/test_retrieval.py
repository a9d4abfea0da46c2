"""Retrieval metrics, the abstention threshold, the TF-IDF baseline and slices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.evaluation.retrieval import (
    answer_ranks,
    champion_answers,
    choose_threshold,
    confidence_of,
    fit_tfidf_retrieval,
    length_bucket,
    length_labels,
    per_query_metrics,
    retrieval_slices,
    summarize_retrieval,
    write_retrieval_plots,
)


def test_a_perfect_ranking_scores_one_everywhere():
    ranked = np.array([["a", "b"], ["b", "a"], ["c", "a"]])
    ranks = answer_ranks(ranked, ["a", "b", "c"])
    metrics = summarize_retrieval(per_query_metrics(ranks, np.ones(3, bool), k=2))
    assert metrics == {"p_at_1": 1.0, "mrr": 1.0, "recall_at_2": 1.0, "abstention_rate": 0.0, "answered_precision": 1.0}


def test_ranks_count_from_one_and_a_missing_answer_is_zero():
    ranked = np.array([["a", "b", "c"], ["b", "c", "a"], ["b", "c", "d"]])
    ranks = answer_ranks(ranked, ["a", "a", "a"])
    assert ranks.tolist() == [1, 3, 0]
    metrics = summarize_retrieval(per_query_metrics(ranks, np.array([True, True, False]), k=2))
    # given ranks 1, 3, 0 with k=2: only the first is right first or within the top 2
    assert metrics["p_at_1"] == pytest.approx(1 / 3)
    assert metrics["mrr"] == pytest.approx(1 / 3)  # rank 3 is outside the top 2: no credit
    assert metrics["recall_at_2"] == pytest.approx(1 / 3)
    assert metrics["abstention_rate"] == pytest.approx(1 / 3)
    assert metrics["answered_precision"] == pytest.approx(1 / 2)


def test_ranked_lists_must_match_the_queries():
    with pytest.raises(ValueError, match="one ranked list per query"):
        answer_ranks(np.array([["a"]]), ["a", "b"])


def test_summaries_resample_rows_and_survive_no_rows():
    per_query = per_query_metrics(np.array([1, 0]), np.array([True, False]), k=5)
    assert summarize_retrieval(per_query, np.array([0, 0]))["p_at_1"] == 1.0
    empty = summarize_retrieval(per_query, np.array([], dtype=int))
    assert np.isnan(empty["p_at_1"])
    assert np.isnan(empty["answered_precision"])
    assert np.isnan(summarize_retrieval(per_query_metrics(np.array([1]), np.array([False]), 5))["answered_precision"])


@pytest.mark.parametrize(("confidence", "correct", "target", "expected"), [
    # every query right: answer them all (the lowest confidence)
    ([0.9, 0.5, 0.7], [1, 1, 1], 0.95, 0.5),
    # the least confident query is wrong: answer from the next one up
    ([0.9, 0.8, 0.2], [1, 1, 0], 0.95, 0.8),
    # a wrong answer high up is diluted by enough right ones below it (2/3 >= 0.6)
    ([0.9, 0.8, 0.7, 0.1], [0, 1, 1, 0], 0.6, 0.7),
    # ties share a side: both 0.8s are answered or neither (1/2 < 0.75)
    ([0.9, 0.8, 0.8], [1, 1, 0], 0.75, 0.9),
])
def test_the_threshold_is_the_lowest_reaching_the_target_precision(confidence, correct, target, expected):
    assert choose_threshold(np.array(confidence), np.array(correct), target) == pytest.approx(expected)


def test_no_threshold_reaching_the_target_hands_every_query_to_a_person():
    confidence = np.array([0.9, 0.4])
    threshold = choose_threshold(confidence, np.array([0, 0]), 0.5)
    assert threshold > 0.9
    assert not (confidence >= threshold).any()
    assert choose_threshold(np.array([]), np.array([]), 0.9) == float("-inf")


def test_confidence_is_the_top_score_or_its_margin():
    scores = np.array([[0.9, 0.6], [0.5, 0.45]])
    assert confidence_of(scores, "top_score").tolist() == [0.9, 0.5]
    assert confidence_of(scores, "margin") == pytest.approx([0.3, 0.05])
    assert confidence_of(scores[:, :1], "margin").tolist() == [0.9, 0.5]  # one answer: its score


def test_tfidf_baseline_ranks_an_answer_by_its_best_entry():
    index = pd.DataFrame({"text": ["reset my password", "forgot password help", "track my parcel", "where is my order"],
                          "thread": ["login", "login", "delivery", "delivery"]})
    baseline = fit_tfidf_retrieval(index, "text", "thread")
    ids, scores = baseline.rank(["I forgot my password", "where is the parcel"], k=2)
    assert ids.tolist() == [["login", "delivery"], ["delivery", "login"]]
    assert scores.shape == (2, 2)
    assert np.all(np.diff(scores, axis=1) <= 0)
    assert baseline.rank(["password"], k=10)[0].shape == (1, 2)  # k is capped at the answers there are


def test_length_slices_follow_the_bucket_order_with_the_baseline_beside():
    texts = pd.Series(["one two", "a b c d e f g h", "x " * 20, "short one"])
    assert length_labels([6, 12]) == ["up to 6 words", "7-12 words", "over 12 words"]
    buckets = length_bucket(texts, [6, 12])
    assert buckets.tolist() == ["up to 6 words", "7-12 words", "over 12 words", "up to 6 words"]
    mine = per_query_metrics(np.array([1, 2, 1, 0]), np.ones(4, bool), 5)
    rows = retrieval_slices(buckets, mine, {"baseline": per_query_metrics(np.zeros(4), np.ones(4, bool), 5)},
                            length_labels([6, 12]))
    assert [r["value"] for r in rows] == length_labels([6, 12])
    assert rows[0] == {"slice": "length", "value": "up to 6 words", "rows": 2, "p_at_1": 0.5, "mrr": 0.5,
                       "baseline_p_at_1": 0.0}


def test_a_champion_without_ranked_answers_is_refused():
    with pytest.raises(ValueError, match="'answers' column"):
        champion_answers(np.zeros(3), 3)
    with pytest.raises(ValueError, match="2 ranked lists for 3 queries"):
        champion_answers(pd.DataFrame({"answers": [["a"], ["b"]]}), 3)
    assert champion_answers(pd.DataFrame({"answers": [["a", "b"], ["b", "a"]]}), 2).shape == (2, 2)


def test_plots_are_written(tmp_path):
    ranks = {"model": np.array([1, 2, 0]), "baseline": np.array([2, 0, 0])}
    paths = write_retrieval_plots(ranks, np.array([0.9, 0.5, 0.2]), np.array([True, False, False]), 0.4, 3, tmp_path)
    assert [p.name for p in paths] == ["recall_at_k.png", "abstention.png"]
    assert all(p.stat().st_size > 0 for p in paths)
