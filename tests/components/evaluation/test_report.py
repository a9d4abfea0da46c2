"""What an evaluation hands on: a champion that cannot score says why without quoting data rows."""

from __future__ import annotations

import math

from components.errors import InputSchemaError
from components.evaluation.compare import PairedComparison
from components.evaluation.report import ChampionScorer, measure_champion


def _failing(exc: Exception) -> ChampionScorer:
    def score(rows):
        raise exc

    return ChampionScorer("3", score, 0.5)


def test_a_library_error_is_named_by_its_type_only_because_it_may_quote_data():
    leaky = ValueError("could not convert 'alice@example.com' in row 17 to float")
    metrics, error = measure_champion(_failing(leaky), lambda scorer: scorer.score(None))
    assert metrics is None
    assert error.startswith("champion v3 could not score the test split: ValueError")
    assert "alice" not in error
    assert "row 17" not in error


def test_funnels_own_errors_keep_their_message_of_column_names():
    missing = InputSchemaError("input column 'PageValues' is missing; the model needs ['Month', 'PageValues']")
    _, error = measure_champion(_failing(missing), lambda scorer: scorer.score(None))
    assert error.endswith("input column 'PageValues' is missing; the model needs ['Month', 'PageValues']")


def test_an_interval_that_could_not_be_measured_is_not_called_a_tie():
    undefined = PairedComparison("roc_auc", 10, 0.9, 0.8, 0.1, math.nan, math.nan, math.nan, 3)
    assert undefined.verdict() == "undefined"
    assert undefined.phrase("lightgbm") == "not measurable (no interval) against lightgbm"
    tied = PairedComparison("roc_auc", 10, 0.9, 0.9, 0.0, -0.01, 0.01, 0.5, 200)
    assert tied.phrase("lightgbm") == "tied with lightgbm"
