"""Drift detection on real data: quiet on identical data, loud on an injected shift; the retrain guard."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from components.config import MonitorParams
from components.monitoring.monitor import detect_drift, retrain_allowed
from tests.conftest import intent_slice

COLUMNS = ["PageValues", "BounceRates", "Month", "VisitorType", "ProductRelated_Duration"]


def test_identical_data_does_not_drift():
    frame = intent_slice(2000)
    report = detect_drift(frame, frame.copy(), COLUMNS, "Revenue", MonitorParams())
    assert not report.drifted
    assert max(r["psi"] for r in report.features) < 1e-9


def test_another_sample_of_the_same_data_stays_quiet():
    report = detect_drift(intent_slice(2500, seed=1), intent_slice(2500, seed=2), COLUMNS, "Revenue", MonitorParams())
    assert not report.drifted, report.reasons


def test_an_injected_shift_is_detected_and_named():
    reference = intent_slice(2000)
    shifted = reference.assign(PageValues=reference["PageValues"] * 5 + 20, Month="Nov")
    report = detect_drift(reference, shifted, COLUMNS, "Revenue", MonitorParams(),
                          score=lambda frame: frame["PageValues"].to_numpy() / 400)
    assert report.drifted
    named = " ".join(report.reasons)
    assert "PageValues" in named
    assert "Month" in named
    assert "champion scores" in named
    assert "BounceRates" not in named


def test_at_most_one_drift_retrain_per_window():
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert retrain_allowed(None, now, 24)[0]
    assert not retrain_allowed("2026-11-28T01:00:00+00:00", now, 24)[0]
    assert retrain_allowed("2026-11-26T23:00:00+00:00", now, 24)[0]


@pytest.mark.parametrize(("split", "expected"), [
    ({"method": "hash"}, ["a", "b", "when", "split"]),
    ({"method": "time", "time_column": "when"}, ["a", "b", "split"]),
    ({"method": "official", "column": "split"}, ["a", "b", "when"]),
    ({"method": "session_time", "column": "a", "time_column": "when"}, ["b", "split"]),
])
def test_the_split_s_own_columns_are_not_drift_features(split, expected):
    from components.config import SplitParams
    from components.monitoring.monitor import drift_columns

    # a session id and a timestamp change between snapshots by construction: no reason to retrain
    assert drift_columns(["a", "b", "when", "split", "label"], "label", SplitParams(**split)) == expected
