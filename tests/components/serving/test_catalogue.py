"""Items added to a cold-start model's item table after training: read from the configured table,
featurized as at training and ranked beside the others; a bad new row is refused by its column
(the Open Bandit item context as the item table, a small real hybrid model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.config import DataParams
from components.errors import ConfigError
from tests.conftest import MIRROR, ROOT, needs_mirror

pytestmark = needs_mirror
FEATURES = {"user": "user", "item": "item_id", "item_numbers": ("item_feature_0",),
            "item_categories": ("item_feature_1", "item_feature_2")}
USERS = 20


@pytest.fixture(scope="module")
def items() -> pd.DataFrame:
    return pd.read_csv(MIRROR / "open_bandit" / "random" / "all" / "item_context.csv", index_col=0)


@pytest.fixture(scope="module")
def registered(items):
    """The serving model of a hybrid trained on the first 70 items (60 of them with history)."""
    from components.models.coldstart import (
        ColdStartFeatures,
        ColdStartTrain,
        build_coldstart,
        content_matrix,
        item_table,
    )
    from components.models.coldstart_layers import build_serving, trained_catalogue
    from components.models.recommender import build_recommender

    features = ColdStartFeatures(**FEATURES)
    params = ColdStartTrain(hidden_units=(), embedding_dim=8, input_dropout=0.0, l2=0.0, learning_rate=0.01,
                            top_k=100, batch_size=16, max_epochs=1, early_stopping_patience=1,
                            validation_fraction=0.1, content_hidden_units=(16,))
    table = item_table(items.iloc[:70], features)
    content, _, featurizer = content_matrix(table, features, params)
    warm, history = np.arange(70), np.arange(60)
    rng = np.random.default_rng(0)
    histories = (rng.random((USERS, 70)) < 0.2).astype("float32")
    histories[:, 60:] = 0.0
    histories[0, :60] = 1.0  # every item with history appears in the training rows
    frame = pd.DataFrame({"user": 0, "item_id": history})
    network = build_coldstart(frame, features, params, seed=1, content=content[warm])
    network.fit(histories, histories, epochs=1, verbose=0)
    collaborative = build_recommender(frame, features, params, seed=1)
    collaborative.fit(histories[:, history], histories[:, history], epochs=1, verbose=0)
    return build_serving(trained_catalogue(network, collaborative, content, warm, history, histories,
                                           np.arange(USERS), table["item_id"].to_numpy(), "user",
                                           (0.5, (1.0, 1.0, 1.0)), featurizer.as_dict(), params.top_k))


def write_table(path, rows: pd.DataFrame):
    from components.serving.catalogue import ItemTable

    rows.to_csv(path, index=False)
    return ItemTable("shop", path, DataParams(source=str(path), format="csv"))


def ranked(model, user: int) -> set[int]:
    return set(np.asarray(model.predict(np.array([[user]], "int64"), verbose=0)["items"])[0].tolist())


def test_items_added_to_the_table_are_ranked_without_retraining(registered, items, tmp_path):
    from components.serving.catalogue import with_table_items

    # given the item table with 10 items the model never saw
    table = write_table(tmp_path / "items.csv", items)
    # when the served model is built from the registered one and the table
    served, catalogue = with_table_items(registered, table)
    # then the 10 new items are ranked beside the 70 it had, and the table's stamp is kept
    assert ranked(registered, 3) < ranked(served, 3)
    assert ranked(served, 3) - ranked(registered, 3) == set(range(70, 80))
    assert catalogue.added == 10
    assert catalogue.stamp == table.stamp()
    # and a change of the table changes its stamp
    write_table(tmp_path / "items.csv", items.iloc[:75])
    assert catalogue.stamp != table.stamp()


def test_a_bad_new_row_is_refused_by_its_column_and_the_registered_items_stay_served(registered, items, tmp_path):
    from components.config import load_settings
    from components.serving.catalogue import ServedCatalogue, serve_catalogue, with_table_items

    # given a new item whose number attribute is text
    rows = items.astype({"item_feature_0": object})
    rows.loc[rows.index[75], "item_feature_0"] = "secret price"
    table = write_table(tmp_path / "items.csv", rows)
    # when the served model is built, then the error names the column and row, never the value
    with pytest.raises(ConfigError, match="'item_feature_0'.*at \\[75\\]") as error:
        with_table_items(registered, table)
    assert "secret" not in str(error.value)
    # and serving keeps the registered items (a served model never goes down over its item table)
    settings = load_settings(env={}, repo_root=ROOT)
    served, catalogue = serve_catalogue(settings, "shop", registered, ServedCatalogue(registered, table, (), 0))
    assert served is None  # the store keeps the model it serves
    assert catalogue is not None
    assert catalogue.stamp == table.stamp()

