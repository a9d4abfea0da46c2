"""Metrics limits, thresholds and plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.evaluation.binary import (
    capture_rate,
    choose_threshold,
    compute_binary_metrics,
    compute_slice_metrics,
)
from components.evaluation.bootstrap import bootstrap_intervals
from components.evaluation.plots import write_binary_plots

Y = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])


def test_perfect_scores_give_perfect_metrics():
    scores = Y * 0.9 + 0.05
    metrics = compute_binary_metrics(Y, scores, threshold=0.5, lift_fractions=(0.1, 0.2))
    assert metrics["roc_auc"] == 1.0
    assert metrics["pr_auc"] == 1.0
    assert metrics["f1"] == 1.0
    assert metrics["capture_top_20pct"] == 1.0  # both positives are in the top 2 of 10
    assert metrics["capture_top_10pct"] == 0.5


def test_reversed_scores_give_zero_auc():
    assert compute_binary_metrics(Y, 1 - Y, 0.5)["roc_auc"] == 0.0


@pytest.mark.parametrize(("fraction", "expected"), [(0.1, 0.0), (0.5, 0.5), (1.0, 1.0)])
def test_capture_rate_of_a_known_ranking(fraction, expected):
    scores = np.linspace(1, 0, 10)  # row 0 ranks first
    y = np.zeros(10)
    y[[3, 9]] = 1
    assert capture_rate(y, scores, fraction) == expected


def test_capture_rate_without_positives_is_nan():
    assert np.isnan(capture_rate(np.zeros(5), np.arange(5.0), 0.2))


def test_choose_threshold_separates_separable_scores():
    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.8, 0.9])
    threshold = choose_threshold(Y, scores)
    assert 0.55 < threshold <= 0.8


def test_single_class_slice_reports_nan_auc_not_an_error():
    frame = pd.DataFrame({"group": ["a"] * 8 + ["b"] * 2})
    rows = compute_slice_metrics(frame, Y, Y * 0.8 + 0.1, 0.5, ["group"])
    by_value = {r["value"]: r for r in rows}
    assert np.isnan(by_value["a"]["roc_auc"])
    assert by_value["b"]["positives"] == 2


def test_plots_are_written_as_png(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    paths = write_binary_plots(y, {"model": rng.random(200), "baseline": rng.random(200)}, 0.5, tmp_path)
    assert sorted(p.name for p in paths) == ["calibration.png", "confusion_matrix.png", "pr.png", "roc.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def _noisy_scores(rows: int = 600, seed: int = 3):
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.2).astype(int)
    return y, np.clip(rng.random(rows) * 0.6 + y * 0.3, 0, 1)


def test_only_computes_the_named_metrics_with_the_same_values():
    y, scores = _noisy_scores()
    options = {"lift_fractions": (0.1,), "natural_positive_rate": 0.01, "precision_target": 0.9}
    full = compute_binary_metrics(y, scores, 0.5, **options)
    names = ["pr_auc_natural", "roc_auc", "recall_at_precision_90"]
    assert compute_binary_metrics(y, scores, 0.5, **options, only=names) == {n: full[n] for n in full if n in names}


def test_bootstrap_intervals_bracket_the_estimate_and_match_with_only():
    y, scores = _noisy_scores()
    names = ["roc_auc", "pr_auc"]
    full = bootstrap_intervals(len(y), lambda i: compute_binary_metrics(y[i], scores[i], 0.5), names, 50, 7)
    only = bootstrap_intervals(len(y), lambda i: compute_binary_metrics(y[i], scores[i], 0.5, only=names), names, 50, 7)
    assert only == full
    point = compute_binary_metrics(y, scores, 0.5)
    for name in names:
        low, high = full[name]
        assert low < point[name] < high
