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
