"""The plain data a training run records: the rows its dataset's schema is inferred from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.types.utils import _infer_schema

from components.release.run_record import keep_distinct_values
from tests.conftest import SENTIMENT_DIR, fraud_slice, intent_slice, support_slice


def mixed_frame() -> pd.DataFrame:
    """Every kind of column a snapshot may hold, with and without missing values."""
    rows = 400
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({
        "float": rng.normal(size=rows), "int": rng.integers(0, 5, rows), "bool": rng.random(rows) > 0.5,
        "text": pd.array(rng.choice(["a", "b", "c"], rows), dtype="string"),
        "objects": pd.Series(rng.choice(["x", "y"], rows), dtype=object),
        "when": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 30, rows), unit="D"),
    })
    holes = frame.copy()
    holes.loc[5, "float"] = np.nan
    holes["nullable_int"] = pd.array(rng.integers(0, 3, rows), dtype="Int64")
    holes.loc[9, "nullable_int"] = pd.NA
    holes.loc[3, "text"] = pd.NA
    holes.loc[7, "objects"] = None
    holes.loc[11, "when"] = pd.NaT
    holes["mostly_missing"] = np.where(np.arange(rows) == 0, 1.0, np.nan)
    return pd.concat([frame.add_prefix("full_"), holes], axis=1)


@pytest.mark.parametrize("frame", [
    pytest.param(intent_slice(600), id="intent"), pytest.param(fraud_slice(300), id="fraud"),
    pytest.param(support_slice()["train"], id="support"), pytest.param(mixed_frame(), id="every column kind"),
    pytest.param(pd.read_csv(SENTIMENT_DIR / "yelp_labelled.txt", sep="\t", names=["text", "label"], quoting=3),
                 id="sentiment"),
    pytest.param(mixed_frame().head(0), id="no rows"),
])
def test_mlflow_infers_the_same_schema_from_the_distinct_values(frame):
    kept = keep_distinct_values(frame)
    assert list(kept.columns) == list(frame.columns)
    assert list(kept.dtypes) == list(frame.dtypes)
    assert len(kept) <= len(frame)
    assert _infer_schema(kept) == _infer_schema(frame)


def test_the_distinct_values_are_each_columns_own():
    frame = pd.DataFrame({"few": ["a", "a", "b", "b", "a", "b"], "names": ["x", "y", None, "z", "w", None],
                          "numbers": [1.0, 2.0, np.nan, 4.0, 5.0, np.nan], "whole": [1, 2, 3, 4, 5, 6]})
    kept = keep_distinct_values(frame)
    assert len(kept) == 5  # "names": x, y, None, z, w
    assert set(kept["few"]) == {"a", "b"}
    assert kept["names"].isna().sum() == 1
    # a NumPy number column: its first value and its first NaN (MLflow's type is the dtype's)
    assert kept["numbers"].iloc[0] == 1.0
    assert kept["numbers"].isna().sum() == 1
    assert set(kept["whole"]) == {1}


def test_nested_values_are_compared_by_value_and_repeated_names_keep_the_frame():
    frame = pd.DataFrame({"lists": [[1], [2], [1]], "dicts": [{"a": 1}, {"a": 1}, {"b": 2}], "n": [1, 2, 2]})
    kept = keep_distinct_values(frame)
    assert len(kept) == 2
    assert _infer_schema(kept) == _infer_schema(frame)  # the dicts' keys: "a" and "b" each optional
    repeated = pd.DataFrame([[1, 2], [3, 4]], columns=["x", "x"])
    assert keep_distinct_values(repeated) is repeated
