"""Seeded, stratified splits."""

from __future__ import annotations

from types import SimpleNamespace

from components.data.splits import per_user_split, split_frame
from tests.conftest import intent_slice, movielens_slice, needs_mirror


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


@needs_mirror
def test_per_user_split_holds_out_a_quarter_of_each_user_seeded():
    frame = movielens_slice(100)
    config = SimpleNamespace(features=SimpleNamespace(user="user_id"), evaluate=SimpleNamespace(test_fraction=0.25),
                             train=SimpleNamespace(validation_fraction=0.1), seed=42)
    first, again = per_user_split(frame, config), per_user_split(frame, config)
    assert first.test.equals(again.test)
    assert sum(first.sizes.values()) == len(frame)
    keys = [set(zip(p["user_id"], p["item_id"], strict=True)) for p in (first.train, first.validation, first.test)]
    assert not keys[0] & keys[2]
    assert not keys[1] & keys[2]
    assert not keys[0] & keys[1]
    per_user = frame.groupby("user_id").size()
    held = first.test.groupby("user_id").size().reindex(per_user.index, fill_value=0)
    assert ((held - per_user * 0.25).abs() <= 1).all()  # every user keeps ~75% for training
