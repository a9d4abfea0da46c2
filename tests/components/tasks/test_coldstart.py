"""The cold-start split: every interaction of a cold item is in test, none in training; the reader
joins each rating with its item's attributes and names what is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.config import DataParams
from components.errors import DataValidationError
from tests.conftest import ROOT, movielens_slice, needs_mirror


@needs_mirror
def test_cold_items_are_held_out_of_training_entirely_and_warm_ones_split_per_interaction():
    from components.config import load_params
    from components.tasks.coldstart import cold_items
    from components.use_cases import get_use_case

    params = load_params(ROOT / "params.yaml")
    use_case = get_use_case("coldstart", params)
    config = use_case.configure(params)
    frame = movielens_slice(120)
    splits = use_case.task.split(frame, config)
    items = np.sort(frame["item_id"].unique())
    cold = set(items[cold_items(frame["item_id"].drop_duplicates().sort_values(), config)].tolist())
    trained_on = set(splits.train["item_id"]) | set(splits.validation["item_id"])
    assert cold
    assert not cold & trained_on
    assert cold <= set(splits.test["item_id"])
    assert sum(splits.sizes.values()) == len(frame)
    assert len(splits.keys["test"]) == len(splits.test)
    # warm items keep about test_fraction of their interactions in test
    warm_test = splits.test[~splits.test["item_id"].isin(cold)]
    warm_rows = len(frame) - int(frame["item_id"].isin(cold).sum())
    assert 0.2 < len(warm_test) / warm_rows < 0.3


def test_the_item_reader_names_the_files_it_needs(tmp_path: Path):
    from components.data.readers import read_movielens_items

    (tmp_path / "u.data").write_text("1\t2\t5\t0\n")
    data = DataParams(source=str(tmp_path), format="movielens_items", files={"u.data": "0" * 64},
                      columns=["user_id", "item_id", "rating", "timestamp"])
    with pytest.raises(DataValidationError, match="u.item"):
        read_movielens_items(tmp_path, data)


@pytest.mark.parametrize(("collaborative_knows", "hybrid_knows", "weight"), [
    (True, False, 1.0),   # only the collaborative model ranks the validation items first
    (False, True, 0.0),   # only the hybrid head does
])
def test_the_blend_weight_goes_to_the_head_that_ranks_the_validation_items(collaborative_knows, hybrid_knows, weight):
    from components.models.coldstart import ColdStartTrain
    from components.models.recommender import Interactions
    from components.tasks.coldstart import choose_calibration

    # given 30 users, 12 items (the last 2 without history), each user's validation item ranked
    # first by one head and last by the other
    rng = np.random.default_rng(0)
    users, items, history = 30, 12, np.arange(10)
    truth = rng.integers(0, 10, users)
    train, validation = np.zeros((users, items), "float32"), np.zeros((users, items), "float32")
    validation[np.arange(users), truth] = 1.0
    train[np.arange(users), (truth + 1) % 10] = 1.0

    def logits(knows: bool) -> np.ndarray:
        values = rng.normal(size=(users, items)).astype("float32")
        values[np.arange(users), truth] += 5.0 if knows else -5.0
        return values

    hybrid_logits = np.hstack([logits(hybrid_knows), rng.normal(size=(users, items))])
    collaborative_logits = logits(collaborative_knows)[:, history]
    params = ColdStartTrain(hidden_units=(), embedding_dim=4, input_dropout=0.0, l2=0.0, learning_rate=0.01,
                            top_k=3, batch_size=8, max_epochs=1, early_stopping_patience=1, validation_fraction=0.1,
                            blend_weights=(0.0, 0.5, 1.0), calibration_temperatures=(0.5, 1.0))
    ids = np.arange(items)
    # when the probes' validation scores choose the calibration
    chosen, temperatures = choose_calibration(
        lambda rows, training: hybrid_logits, lambda rows, training: collaborative_logits,
        Interactions(np.arange(users), ids, train), Interactions(np.arange(users), ids, validation), history, params)
    # then the blend weight goes all to the head that knows, and every temperature is one of the grid's
    assert chosen == weight
    assert set(temperatures) <= set(params.calibration_temperatures)
