"""Paired comparisons: the interval of a difference on shared rows, and rows a champion never saw."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from components.evaluation.compare import compare_with_champion, paired_on_rows, rows_unseen_by


def _auc(y, scores):
    return lambda rows: roc_auc_score(y[rows], scores[rows])


def test_a_scorer_against_itself_is_tied_at_zero():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 800)
    scores = y * 0.3 + rng.random(800)
    result = paired_on_rows("roc_auc", np.arange(800), _auc(y, scores), _auc(y, scores), 100, 1)
    assert result.delta == 0.0
    assert result.low == result.high == 0.0
    assert result.verdict() == "tied"


def test_a_clearly_better_scorer_is_better_with_a_small_p_value_and_pairing_narrows_the_interval():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 2000)
    noise = rng.random(2000)
    good, worse = y * 0.6 + noise, y * 0.4 + noise  # the same noise: a paired design
    result = paired_on_rows("roc_auc", np.arange(2000), _auc(y, good), _auc(y, worse), 200, 1)
    assert result.verdict() == "better"
    assert result.p_value < 0.05
    assert 0 < result.low < result.delta < result.high
    # the same difference bootstrapped without pairing (independent resamples for each scorer)
    rng = np.random.default_rng(1)
    unpaired = [roc_auc_score(y[i], good[i]) - roc_auc_score(y[j], worse[j])
                for i, j in ((rng.integers(0, 2000, 2000), rng.integers(0, 2000, 2000)) for _ in range(200))]
    unpaired_width = float(np.percentile(unpaired, 97.5) - np.percentile(unpaired, 2.5))
    assert result.high - result.low < unpaired_width
    assert "[95% CI +" in result.describe()


def test_rows_the_champion_trained_on_are_left_out_and_unknown_rows_mean_no_comparison():
    keys = np.arange(10, dtype="uint64")
    compared = rows_unseen_by(keys, np.array([2, 5, 99], dtype="uint64"), 10, "its training rows")
    assert list(compared.positions) == [0, 1, 3, 4, 6, 7, 8, 9]
    assert (compared.seen_in_training, compared.excluded) == (0, 2)
    unknown = rows_unseen_by(keys, None, 10, "snapshot missing")
    assert unknown.seen_in_training is None
    result, why = compare_with_champion("roc_auc", unknown, 5, len, len, 10, 1)
    assert result is None
    assert "snapshot missing" in why
    result, why = compare_with_champion("roc_auc", compared, 9, len, len, 10, 1)
    assert result is None
    assert "only 8 test rows" in why
