"""Batch scoring's row checks against a model signature (no model needed for these)."""

from __future__ import annotations

import re

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


@pytest.mark.parametrize(("content", "says"), [
    (b"", "is empty (no header line, no rows): nothing to score"),
    (b"\n\n", "is empty (no header line, no rows): nothing to score"),
    (b"PageValues,Browser,Month\n", "has column names but no rows: nothing to score"),
    (b"\xff\xfe\x00Zq7Secret\x00\x81", "cannot be read as CSV (comma-separated UTF-8 text with a header line): "
                                      "UnicodeDecodeError"),
])
def test_a_file_with_nothing_to_score_is_refused_before_anything_is_written(tmp_path, content, says):
    from components.serving.batch import check_input

    path = tmp_path / "in.csv"
    path.write_bytes(content)
    with pytest.raises(DataValidationError, match=re.escape(says)) as failure:
        check_input(path)
    assert "Zq7Secret" not in str(failure.value)
    assert list(tmp_path.iterdir()) == [path]


def test_a_row_pandas_cannot_parse_is_named_by_the_error_type_never_quoted(tmp_path):
    from components.serving.batch import check_input, read_chunks

    path = tmp_path / "in.csv"
    path.write_text('PageValues,Browser\n1.0,2\n3.0,"Zq7Secret\n')  # an unclosed quote in the last row
    check_input(path)  # the first row reads
    with pytest.raises(DataValidationError, match="cannot be read as CSV .*: ParserError") as failure:
        list(read_chunks(path, 1))
    assert "Zq7Secret" not in str(failure.value)


def test_an_empty_parquet_file_and_a_missing_file_are_refused(tmp_path):
    from components.serving.batch import check_input

    empty = tmp_path / "in.parquet"
    pd.DataFrame({"PageValues": pd.Series([], dtype="float64")}).to_parquet(empty)
    with pytest.raises(DataValidationError, match="has column names but no rows"):
        check_input(empty)
    (tmp_path / "not.parquet").write_text("PageValues\n1.0\n")
    with pytest.raises(DataValidationError, match="cannot be read as Parquet"):
        check_input(tmp_path / "not.parquet")
    with pytest.raises(DataValidationError, match="does not exist"):
        check_input(tmp_path / "gone.csv")


def test_a_parquet_file_is_scored_one_bounded_chunk_at_a_time(tmp_path, keras_model):
    """``funnel score`` reads parquet row group by row group (never the whole file) and writes
    every row once, in order, with its score."""
    from components.data.stream import write_row_groups
    from components.models.scorer import RowScorer
    from components.serving.batch import read_chunks, score_file

    frame = pd.DataFrame({"amount": [float(i) for i in range(1000)], "visits": [i % 7 for i in range(1000)],
                          "month": [("Jan", "Feb", "Mar", "")[i % 4] for i in range(1000)]})
    source = tmp_path / "in.parquet"
    write_row_groups((frame.iloc[i:i + 250] for i in range(0, 1000, 250)), source, 100)
    assert max(len(chunk) for chunk in read_chunks(source, 64)) <= 64
    result = score_file(RowScorer(keras_model), "7", source, tmp_path / "out.csv", chunk_rows=64)
    scored = pd.read_csv(tmp_path / "out.csv")
    assert (result.rows_scored, result.rows_rejected) == (750, 250)  # a blank month is rejected with its reason
    assert scored["amount"].tolist() == [a for a, m in zip(frame["amount"], frame["month"], strict=True) if m]
    assert scored["score"].between(0, 1).all()
