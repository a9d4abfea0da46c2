"""Slice tables: readable bucket names that survive as MLflow tag keys, and every bucket with rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.evaluation.binary import add_bucket_columns, bucket_labels, compute_slice_metrics, format_edge
from components.evaluation.multiclass import compute_multiclass_slices, length_bucket, length_labels
from components.evaluation.ranking import (
    activity_bucket,
    activity_labels,
    activity_slices,
    per_user_ranking_metrics,
)


@pytest.mark.parametrize(
    ("edges", "labels"),
    [
        ((10.0, 100.0, 500.0), ["under 10", "10-100", "100-500", "500 and over"]),
        ((0.5,), ["under 0.5", "0.5 and over"]),
        ((1e6,), ["under 1000000", "1000000 and over"]),
        ((-5, 0), ["under -5", "-5 to 0", "0 and over"]),
    ],
)
def test_bucket_labels_read_like_ranges(edges, labels):
    assert bucket_labels(edges) == labels


def test_format_edge_writes_numbers_without_exponents():
    assert [format_edge(e) for e in (10.0, 0.25, 1e-4, 2.5e7)] == ["10", "0.25", "0.0001", "25000000"]


def test_binary_slices_list_every_bucket_with_rows_in_order():
    # given amounts in three of the four buckets (none from 100 to 500) and one missing amount
    frame = pd.DataFrame({"Amount": [1.0, 5.0, 10.0, 99.0, 500.0, 2000.0, np.nan, 3.0]})
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])

    sliced = add_bucket_columns(frame, {"Amount": (10.0, 100.0, 500.0)})
    rows = compute_slice_metrics(sliced, y, np.linspace(0.1, 0.9, 8), 0.5, ["Amount_bucket"])

    assert [(r["value"], r["rows"]) for r in rows] == [
        ("under 10", 3), ("10-100", 2), ("500 and over", 2), ("missing", 1)]
    assert list(frame.columns) == ["Amount"]  # input not mutated


@pytest.mark.parametrize(
    "value",
    [*bucket_labels((10.0, 100.0, 500.0)), *bucket_labels((-0.5, 0.25)), *activity_labels((30, 100)),
     *length_labels((6, 12)), "missing"],
)
def test_bucket_names_are_kept_as_they_are_in_gate_check_names_and_valid_tag_keys(value):
    from mlflow.utils.validation import _validate_tag_name

    from components.release.promotion import slice_check_name

    name = slice_check_name("Amount_bucket", value, "roc_auc")
    assert name == f"slice.Amount_bucket:{value}.roc_auc"  # nothing sanitised away
    _validate_tag_name(f"gate.{name}")


def test_activity_buckets_name_their_first_and_last_count():
    assert activity_labels((30, 100)) == ["under 30", "30-99", "100 and over"]
    assert activity_labels((5, 6)) == ["under 5", "5", "6 and over"]
    counts = pd.Series([0, 5, 30, 99, 100])
    assert activity_bucket(counts, (30, 100)).tolist() == ["under 30", "under 30", "30-99", "30-99", "100 and over"]


def test_ranking_slices_include_the_lowest_activity_bucket():
    # given users with 2, 40 and 150 training interactions and one test item each
    recommended = np.array([[1, 2], [3, 4], [5, 6]])
    relevant = [{1}, {9}, {5, 6}]
    per_user = per_user_ranking_metrics(recommended, relevant, k=2)
    activity = activity_bucket(pd.Series([2, 40, 150]), (30, 100))

    rows = activity_slices(per_user, recommended, 10, activity, (30, 100), 2, {"baseline_ndcg": (per_user, recommended)})

    assert [(r["value"], r["rows"]) for r in rows] == [("under 30", 1), ("30-99", 1), ("100 and over", 1)]
    assert rows[0]["precision_at_2"] == pytest.approx(0.5)
    assert rows[2]["ndcg_at_2"] == pytest.approx(1.0)
    assert rows[1]["baseline_ndcg_at_2"] == pytest.approx(0.0)


def test_ranking_slices_leave_out_buckets_without_users():
    per_user = per_user_ranking_metrics(np.array([[1, 2]]), [{1}], k=2)
    rows = activity_slices(per_user, np.array([[1, 2]]), 10, pd.Series(["under 30"]), (30, 100), 2, {})
    assert [r["value"] for r in rows] == ["under 30"]


def test_length_buckets_are_ordered_shortest_first():
    assert length_labels((6, 12)) == ["up to 6 words", "7-12 words", "over 12 words"]
    assert length_labels((5, 6)) == ["up to 5 words", "6 words", "over 6 words"]
    texts = pd.Series(["one " * 20, "two words", "a b c d e f g h", "short"])
    frame = pd.DataFrame({"length": length_bucket(texts, (6, 12))})
    rows = compute_multiclass_slices(frame, ["a", "b", "a", "b"], ["a", "b", "b", "b"], ["length"])
    assert [(r["value"], r["rows"]) for r in rows] == [("up to 6 words", 2), ("7-12 words", 1), ("over 12 words", 1)]
