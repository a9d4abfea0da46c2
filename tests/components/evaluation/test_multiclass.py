"""Multiclass metrics: text labels and their integer codes give the same numbers."""

from __future__ import annotations

import numpy as np

from components.evaluation.multiclass import compute_multiclass_metrics, encode_labels


def test_integer_codes_and_only_give_the_same_metrics_as_text_labels():
    rng = np.random.default_rng(0)
    classes = np.array([f"intent_{i}" for i in range(12)])
    y_true = classes[rng.integers(0, 12, 400)]
    predicted = np.where(rng.random(400) < 0.7, y_true, classes[rng.integers(0, 12, 400)])
    predicted[:3] = "never_a_true_label"  # a predicted class with no true rows still counts in macro F1
    text = compute_multiclass_metrics(y_true, predicted)
    y_codes, predicted_codes = encode_labels(y_true, predicted)
    assert compute_multiclass_metrics(y_codes, predicted_codes) == text
    assert compute_multiclass_metrics(y_codes, predicted_codes, only=["macro_f1"]) == {"macro_f1": text["macro_f1"]}
