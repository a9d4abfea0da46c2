"""The slot models: the served policy fills every position from the click model's scores, the
analysis view agrees with it, and a saved policy loads with its layers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.models.slots import SlotFeatures, SlotsTrain, build_slot_models, item_table, training_rows

FEATURES = SlotFeatures(user=("u0", "u1"), item="item_id", item_categorical=("c",), item_numeric=("x",), position="position",
                        positions=3, click="click", propensity="p", policy="policy", train_policy="random",
                        row_id="impression_id")


def logs(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    items = rng.integers(0, 6, rows) + 100  # ids need not start at 0
    return pd.DataFrame({
        "impression_id": [f"random:{i}" for i in range(rows)], "policy": "random",
        "u0": rng.choice(["a", "b"], rows), "u1": rng.choice(["k", "l", "m"], rows), "item_id": items,
        "c": np.where(items % 2 == 0, "even", "odd"), "x": items.astype(float) / 10.0,
        "position": rng.integers(1, 4, rows), "click": (rng.random(rows) < 0.2).astype(int), "p": 1 / 6})


def params(policy: str = "top", **changes) -> SlotsTrain:
    values = {"embedding_dim": 4, "hidden_units": (4,), "dropout": 0.0, "l2": 0.0, "learning_rate": 0.01,
              "policy": policy, "temperature": 0.5, "exploration": 0.1, "batch_size": 32, "max_epochs": 1,
              "early_stopping_patience": 1, "validation_fraction": 0.1}
    return SlotsTrain(**{**values, **changes})


def test_the_top_policy_fills_each_position_with_a_different_item_by_click_rate():
    # given slot models built on logs over 6 items
    frame = logs()
    models = build_slot_models(frame, FEATURES, params("top"), seed=1)
    assert models.item_ids == tuple(range(100, 106))
    users = frame.head(5)
    from components.models.scorer import RowScorer

    served = RowScorer(models.serving).score_outputs(users)
    analysis = RowScorer(models.analysis).score_outputs(users)
    # then every row shows 3 distinct known items, each with probability 1 (deterministic)
    assert served["items"].shape == (5, 3)
    for row in served["items"]:
        assert len(set(row.tolist())) == 3
        assert set(row.tolist()) <= set(models.item_ids)
    assert served["probabilities"] == pytest.approx(np.ones((5, 3)))
    # position 1 holds the item with the highest click rate there, and the served score is its rate
    rates = analysis["click_rates"]
    best = np.array(models.item_ids)[rates[:, 0, :].argmax(axis=1)]
    assert (served["items"][:, 0] == best).all()
    assert served["scores"][:, 0] == pytest.approx(rates[:, 0, :].max(axis=1), rel=1e-5)
    # the distribution the off-policy evaluation reads is one-hot on the served items
    assert analysis["distribution"].sum(axis=2) == pytest.approx(np.ones((5, 3)))


def test_the_softmax_policy_explores_every_item_in_every_position():
    frame = logs()
    models = build_slot_models(frame, FEATURES, params("softmax", exploration=0.3), seed=1)
    from components.models.scorer import RowScorer

    distribution = RowScorer(models.analysis).score_outputs(frame.head(4))["distribution"]
    assert distribution.sum(axis=2) == pytest.approx(np.ones((4, 3)), rel=1e-5)
    assert distribution.min() >= 0.3 / 6 - 1e-6
    served = RowScorer(models.serving).score_outputs(frame.head(4))
    chosen = np.searchsorted(np.array(models.item_ids), served["items"])
    picked = np.take_along_axis(distribution, chosen[:, :, None], axis=2)[:, :, 0]
    assert served["probabilities"] == pytest.approx(picked, rel=1e-5)


def test_the_click_model_trains_on_logged_rows_and_the_saved_policy_loads(tmp_path):
    import keras

    from components.models import register_layers
    from components.models.scorer import RowScorer
    from components.training.fit import fit_model

    frame = logs(200)
    models = build_slot_models(frame, FEATURES, params("top"), seed=1)
    rows = training_rows(frame, FEATURES, models.item_ids)
    assert {"item_index", "position_index"} <= set(rows.columns)
    assert rows["item_index"].between(0, 5).all()
    fit = fit_model(models.training, rows.iloc[:150], rows.iloc[150:], "click", 32, 2, 1, seed=1)
    assert np.isfinite(fit.history["loss"]).all()
    # the trained weights are the served policy's: save and load it as the registry does
    path = tmp_path / "slots.keras"
    models.serving.save(path)
    register_layers()
    loaded = keras.saving.load_model(path)
    before, after = RowScorer(models.serving).score_outputs(frame.head(3)), RowScorer(loaded).score_outputs(frame.head(3))
    assert (before["items"] == after["items"]).all()
    assert before["scores"] == pytest.approx(after["scores"], rel=1e-5)


def test_the_item_table_has_one_row_per_item():
    table = item_table(logs(), FEATURES)
    assert table["item_id"].tolist() == sorted(set(logs()["item_id"]))
