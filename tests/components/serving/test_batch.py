"""Batch scoring's row checks against a model signature (no model needed for these)."""

from __future__ import annotations

import pandas as pd
import pytest

from components.errors import DataValidationError
from components.serving.batch import REASON, check_columns, output_columns, split_valid_rows

SPEC = {"PageValues": "float32", "Browser": "int64", "Month": "string"}


def test_rows_that_break_the_signature_are_rejected_with_a_reason():
    frame = pd.DataFrame({
        "PageValues": [1.5, "abc", None, 2.0, 3.0],
        "Browser": [1, 2, 3, 2.5, 4],
        "Month": ["Nov", "May", "Feb", "Mar", None],
        "extra": list("abcde"),
    })
    valid, rejected = split_valid_rows(frame, SPEC)
    assert valid.index.tolist() == [0]
    assert valid["Browser"].dtype == "int64"
    assert rejected[REASON].tolist() == [
        "PageValues is not a number", "PageValues is empty", "Browser is not a whole number", "Month is empty"]
    assert rejected["extra"].tolist() == list("bcde")  # the row comes back as it was given


def test_a_missing_column_refuses_the_file():
    with pytest.raises(DataValidationError, match=r"\['Month'\] are missing"):
        check_columns(pd.DataFrame({"PageValues": [1.0], "Browser": [1]}), SPEC, "in.csv")


def test_named_outputs_become_columns():
    import numpy as np

    assert list(output_columns({"output": np.array([[0.2], [0.7]])})) == ["score"]
    cols = output_columns({"items": np.array([[1, 2], [3, 4]]), "label": np.array(["a", "b"])})
    assert cols["items"] == ["[1, 2]", "[3, 4]"]
    assert list(cols["label"]) == ["a", "b"]
