"""The cold-start item tower: content vectors from item attributes named in configuration (the
Open Bandit item table as a second, e-commerce table), the hybrid network and its table model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.errors import ConfigError
from components.models.coldstart import (
    ColdStartFeatures,
    ColdStartTrain,
    category_block,
    check_item_rows,
    content_matrix,
    featurize_items,
    item_table,
    number_block,
)
from tests.conftest import MIRROR, needs_mirror

TRAIN = ColdStartTrain(hidden_units=(), embedding_dim=8, input_dropout=0.0, l2=0.0, learning_rate=0.01, top_k=3,
                       batch_size=16, max_epochs=2, early_stopping_patience=1, validation_fraction=0.1,
                       content_hidden_units=(16,))


def test_flags_stay_columns_and_other_categories_are_one_hot():
    # given a 0/1 genre flag and a string department
    items = pd.DataFrame({"item": [1, 2, 3], "genre_x": [1, 0, 1], "dept": ["a", "b", None]})
    features = ColdStartFeatures(user="u", item="item", item_categories=("genre_x", "dept"))
    # when the category block is built
    block, names = category_block(items, features)
    # then the flag is one column, the department one-hot over its values (missing: all zero)
    assert names == ["genre_x", "dept[0]", "dept[1]"]
    np.testing.assert_array_equal(block, [[1, 1, 0], [0, 0, 1], [1, 0, 0]])


def test_numbers_are_standardised_on_the_table_with_a_missing_flag():
    items = pd.DataFrame({"item": [1, 2, 3], "year": [1990.0, 2000.0, np.nan]})
    block = number_block(items, ColdStartFeatures(user="u", item="item", item_numbers=("year",)))
    np.testing.assert_allclose(block[:, 0], [-1.0, 1.0, 0.0])
    np.testing.assert_array_equal(block[:, 1], [0, 0, 1])


@pytest.mark.parametrize(("features", "message"), [
    (ColdStartFeatures(user="u", item="item", item_numbers=("price",)), "price"),
    (ColdStartFeatures(user="u", item="item"), "no item attribute"),
    (ColdStartFeatures(user="u", item="item", item_text=("title",)), "train.encoder"),
])
def test_a_misconfigured_item_tower_is_a_config_error_naming_the_fix(features, message):
    frame = pd.DataFrame({"u": [1], "item": [1], "title": ["x"]})
    with pytest.raises(ConfigError, match=message):
        content_matrix(item_table(frame, features), features, TRAIN)


@needs_mirror
def test_the_item_tower_builds_from_the_open_bandit_item_table_by_params_alone():
    from components.models.coldstart import build_coldstart
    from components.models.coldstart_layers import build_table_model, trained_catalogue
    from components.models.recommender import build_recommender
    from components.models.scorer import MISSING_ID

    # given the Open Bandit item context and only configuration naming its columns
    items = pd.read_csv(MIRROR / "open_bandit" / "random" / "all" / "item_context.csv", index_col=0)
    features = ColdStartFeatures(user="user", item="item_id", item_numbers=("item_feature_0",),
                                 item_categories=("item_feature_1", "item_feature_2", "item_feature_3"))
    table = item_table(items, features)
    content, columns, featurizer = content_matrix(table, features, TRAIN)
    # then every item is a content row: price-like number + flag, and each hashed category one-hot
    levels = sum(items[c].nunique() for c in features.item_categories)
    assert content.shape == (len(items), levels + 2) == (80, columns.width)
    assert np.isfinite(content).all()
    # when the hybrid network is built on 60 warm items, the collaborative one on the 50 of them
    # with history, and both are trained on a few histories
    warm, history = np.arange(60), np.arange(50)
    rng = np.random.default_rng(0)
    histories = (rng.random((40, len(items))) < 0.1).astype("float32")
    histories[:, 50:] = 0.0
    frame = pd.DataFrame({"user": np.repeat(np.arange(40), 2), "item_id": rng.choice(history, 80)})
    frame = pd.concat([frame, pd.DataFrame({"user": 0, "item_id": history})], ignore_index=True)
    network = build_coldstart(frame, features, TRAIN, seed=1, content=content[warm])
    assert network.output.shape[-1] == 2 * len(warm)
    network.fit(histories[:, warm], histories[:, warm], epochs=2, verbose=0)
    collaborative = build_recommender(frame, features, TRAIN, seed=1)
    collaborative.fit(histories[:, history], histories[:, history], epochs=2, verbose=0)
    catalogue = trained_catalogue(network, collaborative, content, warm, history, histories, np.arange(40),
                                  np.asarray(table["item_id"]), "user", (0.5, (1.0, 1.0, 1.0)),
                                  featurizer.as_dict(), 5)
    # then the table model scores all 80 items, the 30 without history from their attributes alone,
    # masks a user's history, and an unknown user still gets finite scores
    scores = np.asarray(build_table_model(catalogue).predict(np.array([[1], [MISSING_ID]], dtype="int64"), verbose=0))
    assert scores.shape == (2, 80)
    assert np.isfinite(scores).all()
    assert len(np.unique(np.round(scores[0, 50:], 5))) > 1
    assert (scores[0][histories[1] > 0] <= -1e8).all()


def test_an_item_added_later_gets_the_content_row_it_would_have_had():
    # given a featurizer fitted on a table of three items
    items = pd.DataFrame({"item": [1, 2, 3], "flag": [1, 0, 1], "dept": ["a", "b", "a"], "year": [1990.0, 2000.0, 1995.0]})
    features = ColdStartFeatures(user="u", item="item", item_categories=("flag", "dept"), item_numbers=("year",))
    content, _, featurizer = content_matrix(item_table(items, features), features, TRAIN)
    # when a fourth item (an unknown department, no year) is featurized by the stored featurizer
    restored = type(featurizer).from_dict(featurizer.as_dict())
    new = featurize_items(pd.DataFrame({"item": [4, 2], "flag": [0, 0], "dept": ["c", "b"], "year": [None, 2000]}),
                          restored)
    # then the known item's row is the training row, the new item's uses the training levels and statistics
    np.testing.assert_allclose(new[1], content[1])
    np.testing.assert_allclose(new[0], [0, 0, 0, 0, 1])


@pytest.mark.parametrize(("rows", "column"), [
    ({"item": [4], "flag": [1], "year": ["nineteen ninety"]}, "year"),
    ({"item": [4], "flag": [2], "year": [1999]}, "flag"),
    ({"item": [4, 4], "flag": [1, 0], "year": [1999, 1998]}, "item"),
    ({"item": [4], "year": [1999]}, "flag"),
])
def test_bad_new_item_rows_are_a_config_error_naming_the_column_never_the_values(rows, column):
    items = pd.DataFrame({"item": [1, 2], "flag": [1, 0], "year": [1990.0, 2000.0]})
    features = ColdStartFeatures(user="u", item="item", item_categories=("flag",), item_numbers=("year",))
    _, _, featurizer = content_matrix(items, features, TRAIN)
    with pytest.raises(ConfigError, match=repr(column)) as error:
        check_item_rows(pd.DataFrame(rows), featurizer, "the item table")
    assert "nineteen" not in str(error.value)
    assert "1999" not in str(error.value)
