"""Seeded, stratified splits."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from components.data.splits import per_user_split, split_frame
from components.errors import ConfigError
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


# --- stable split assignment ---------------------------------------------------------------------

def _split(method="hash", **kwargs):
    from components.config import SplitParams

    return SplitParams(method=method, **kwargs)


def test_rows_never_change_sides_as_the_data_grows():
    from components.data.splits import split_rows

    frame = intent_slice(2500)
    small = split_rows(frame.iloc[:1200], _split(), 0.2, 0.15, 42)
    large = split_rows(frame, _split(), 0.2, 0.15, 42)
    for side in ("train", "validation", "test"):
        # every row of the smaller snapshot keeps its side in the larger one
        assert set(small.keys[side]) <= set(large.keys[side])
    assert abs(len(large.test) / len(frame) - 0.2) < 0.03
    assert abs(len(large.validation) / (len(frame) - len(large.test)) - 0.15) < 0.03


def test_identical_rows_share_a_side_and_key_columns_keep_a_group_together():
    from components.data.splits import row_keys, split_rows

    frame = pd.DataFrame({"user": np.repeat(np.arange(200), 5), "item": np.tile(np.arange(5), 200), "x": 1.0})
    doubled = pd.concat([frame, frame], ignore_index=True)
    splits = split_rows(doubled, _split(), 0.25, 0.1, 7)
    assert not set(splits.keys["train"]) & set(splits.keys["test"])
    by_user = split_rows(frame, _split(key_columns=("user",)), 0.25, 0.1, 7)
    assert not set(by_user.train["user"]) & set(by_user.test["user"])  # all of a user's rows on one side
    assert len(np.unique(row_keys(frame))) == len(frame)
    with pytest.raises(ConfigError, match=r"split.key_columns \['session'\]"):
        row_keys(frame, ("session",))


def test_a_seed_changes_the_assignment_and_the_same_seed_repeats_it():
    from components.data.splits import split_rows

    frame = intent_slice(1500)
    a, b, c = (split_rows(frame, _split(), 0.2, 0.15, seed) for seed in (1, 1, 2))
    assert list(a.keys["test"]) == list(b.keys["test"])
    assert set(a.keys["test"]) != set(c.keys["test"])


def test_time_split_tests_on_the_newest_rows_and_official_split_on_the_data_sets_own():
    from components.data.splits import split_rows

    frame = pd.DataFrame({"t": np.arange(1000), "split": np.where(np.arange(1000) % 4 == 0, "test", "train")})
    by_time = split_rows(frame, _split("time", time_column="t"), 0.2, 0.25, 1)
    assert by_time.test["t"].min() > by_time.validation["t"].max() >= by_time.validation["t"].min() > by_time.train["t"].max()
    assert len(by_time.test) == 200
    official = split_rows(frame, _split("official"), 0.2, 0.1, 1)
    assert set(official.test["split"]) == {"test"}
    assert len(official.test) == 250
    assert set(official.train["split"]) == set(official.validation["split"]) == {"train"}


def test_a_stratified_split_keeps_each_class_in_proportion_and_is_seeded():
    from components.config import SplitParams
    from components.data.splits import split_rows

    frame = intent_slice(2000)
    split = SplitParams(method="stratified")
    first = split_rows(frame, split, 0.2, 0.15, seed=42, label="Revenue")
    again = split_rows(frame, split, 0.2, 0.15, seed=42, label="Revenue")
    assert first.test.equals(again.test)
    assert sum(first.sizes.values()) == len(frame)
    positives = int(frame["Revenue"].sum())
    assert abs(int(first.test["Revenue"].sum()) - round(positives * 0.2)) <= 1  # exact, not approximately
    with pytest.raises(ConfigError, match="needs the label"):
        split_rows(frame, split, 0.2, 0.15, seed=42)


@pytest.mark.parametrize(("values", "class_of_interest", "expected"), [
    ([True, False, True], None, [1, 0, 1]),
    ([0, 1, 1], None, [0, 1, 1]),
    (["yes", "no", "yes"], "yes", [1, 0, 1]),
    (["pos", "neg", "neg"], "neg", [0, 1, 1]),      # the rare class worth finding may be any value
    ([0, 1, 1], 0, [1, 0, 0]),
    ([True, False, False], False, [0, 1, 1]),
])
def test_binary_labels_mark_the_class_of_interest(values, class_of_interest, expected):
    from components.data.splits import binary_labels

    assert binary_labels(pd.Series(values), class_of_interest, "y").tolist() == expected


def test_a_text_label_without_a_class_of_interest_says_what_to_set_and_quotes_no_value():
    from components.data.splits import binary_labels
    from components.errors import DataValidationError

    with pytest.raises(ConfigError, match="set card.class_of_interest") as caught:
        binary_labels(pd.Series(["SECRET-1", "SECRET-2"]), None, "y")
    assert "SECRET" not in str(caught.value)
    with pytest.raises(ConfigError, match="never occurs"):
        binary_labels(pd.Series(["a", "b"]), "c", "y")
    with pytest.raises(DataValidationError, match="1 missing values"):
        binary_labels(pd.Series(["a", None]), "a", "y")


SECRET = "Zq7SecretClass"  # a label value from the data: it must not reach any message


def _with_rare_classes(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """``frame`` with one row of a new class and two rows of another."""
    rare = frame.head(3).assign(**{label: [SECRET, "pair", "pair"]})
    return pd.concat([frame.assign(**{label: frame[label].astype(str)}), rare], ignore_index=True)


def test_a_class_too_rare_to_stratify_stays_in_train():
    # given a stratified split where one class has a single row and another two
    frame = _with_rare_classes(intent_slice(1000), "Revenue")

    # when it is split (sklearn cannot stratify a one-row class)
    splits = split_frame(frame, "Revenue", 0.2, 0.15, seed=42)

    # then the single row is in train, every row is on one side, the common classes are split
    assert (splits.train["Revenue"] == SECRET).sum() == 1
    assert SECRET not in set(splits.validation["Revenue"]) | set(splits.test["Revenue"])
    assert sum(splits.sizes.values()) == len(frame)
    assert set(splits.test["Revenue"]) >= {"True", "False"}


def test_a_stratified_split_too_small_for_its_classes_says_so():
    from components.errors import DataValidationError

    frame = pd.DataFrame({"y": list("aabbccdd"), "x": range(8)})
    with pytest.raises(DataValidationError, match="holds out 2 .* too few for one row of each of the 4 classes of 'y'"):
        split_frame(frame, "y", 0.2, 0.1, seed=1)


def test_stable_stratified_sides_keep_the_rarest_rows_of_a_class_in_train():
    from components.config import SplitParams
    from components.data.splits import TRAIN, assign_sides, row_keys

    frame = _with_rare_classes(intent_slice(1000), "Revenue")
    sides = assign_sides(frame, SplitParams(method="stratified"), 0.2, 0.15, 42, row_keys(frame), "Revenue")
    assert (sides[frame["Revenue"].isin([SECRET, "pair"]).to_numpy()] == TRAIN).all()


def _splits(train: list, validation: list, test: list):
    from components.data.splits import Splits

    return Splits(*(pd.DataFrame({"y": values}) for values in (train, validation, test)))


def test_a_class_the_training_split_lacks_is_an_error_with_counts_never_the_value():
    from components.data.splits import check_split_classes
    from components.errors import DataValidationError

    # given a test split with two rows of a class no training row has
    splits = _splits(["a", "a", "b"], ["a", "b"], ["b", SECRET, SECRET])

    # when its classes are checked, then the error counts rows and classes and quotes no label
    with pytest.raises(DataValidationError) as failure:
        check_split_classes(splits, "y", "support")
    message = str(failure.value)
    assert "2 test row(s) are of 1 'y' class(es) with no training row" in message
    assert "split.method: stratified" in message
    assert len(failure.value.failures) == 1  # the validation split's classes are all in train
    assert SECRET not in message
    check_split_classes(_splits(["a", "b", SECRET], ["a"], ["b", "a"]), "y", "support")  # train may hold more


@pytest.mark.parametrize(("train", "validation", "test", "says"), [
    ([0, 0, 1], [0, 1], [0, 1], "1 validation row(s) are of 1 'y' class(es) with fewer than 2 training rows"),
    ([0, 0, 1, 1], [0, 0], [0, 1], "the validation split (2 rows) has no row of 1 of the 2 'y' classes"),
    ([0, 0, 1, 1], [0, 1], [0, 0], "the test split (2 rows) has no row of 1 of the 2 'y' classes"),
])
def test_a_binary_split_needs_both_classes_everywhere_and_two_in_train(train, validation, test, says):
    from components.data.splits import check_split_classes
    from components.errors import DataValidationError

    with pytest.raises(DataValidationError) as failure:
        check_split_classes(_splits(train, validation, test), "y", "fraud", 2, every_side=True)
    assert says in str(failure.value)
    check_split_classes(_splits([0, 0, 1, 1], [0, 1], [1, 0]), "y", "fraud", 2, every_side=True)


def test_a_split_without_the_class_of_interest_is_encoded_not_refused():
    from components.data.splits import encode_binary_splits

    # the class of interest is missing from the test split only: check_split_classes reports that
    encoded = encode_binary_splits(_splits(["yes", "no"], ["no", "yes"], ["no", "no"]), "y", "yes")
    assert [encoded.train["y"].tolist(), encoded.validation["y"].tolist(), encoded.test["y"].tolist()] == [
        [1, 0], [0, 1], [0, 0]]
    with pytest.raises(ConfigError, match="never occurs"):
        encode_binary_splits(_splits(["no"], ["no"], ["no"]), "y", "yes")
