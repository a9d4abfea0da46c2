"""Seeded, stratified splits."""

from __future__ import annotations

from components.features import split_frame
from tests.conftest import intent_slice


def test_split_is_seeded_stratified_and_disjoint():
    frame = intent_slice(2000)
    first = split_frame(frame, "Revenue", 0.2, 0.15, seed=42)
    again = split_frame(frame, "Revenue", 0.2, 0.15, seed=42)
    other = split_frame(frame, "Revenue", 0.2, 0.15, seed=1)
    assert first.test.equals(again.test)
    assert not first.test.equals(other.test)
    assert sum(first.sizes.values()) == len(frame)
    rate = frame["Revenue"].mean()
    for part in (first.train, first.validation, first.test):
        assert abs(part["Revenue"].mean() - rate) < 0.01
    assert list(first.test.index) == list(range(len(first.test)))
