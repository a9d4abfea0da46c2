"""Metrics, thresholds, slices and gains for binary classifiers (pure functions of labels and scores)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from functools import partial

import numpy as np
import pandas as pd
from sklearn import metrics as skm


def natural_rate_weights(y_true: np.ndarray, positive_rate: float | None) -> np.ndarray | None:
    """Weights that reweight negatives so the positive rate is ``positive_rate`` (None: unweighted).

    An under-sampled test set over-states precision; weighting each negative by
    ``(positives / negatives) * (1 - rate) / rate`` restores the rate seen in production.
    """
    if positive_rate is None:
        return None
    y_true = np.asarray(y_true).astype(int)
    positives, negatives = int(y_true.sum()), int((1 - y_true).sum())
    if positives == 0 or negatives == 0:
        return None
    negative_weight = (positives / negatives) * (1 - positive_rate) / positive_rate
    return np.where(y_true == 1, 1.0, negative_weight)


def recall_at_precision(
    y_true: np.ndarray, scores: np.ndarray, target: float, weights: np.ndarray | None = None
) -> tuple[float, float]:
    """The best recall with precision >= ``target``, and the lowest threshold reaching it."""
    precision, recall, thresholds = skm.precision_recall_curve(y_true, scores, sample_weight=weights)
    ok = np.where(precision[:-1] >= target)[0]
    if len(ok) == 0:
        return 0.0, float("inf")
    best = ok[np.argmax(recall[ok])]
    return float(recall[best]), float(thresholds[best])


def choose_threshold(
    y_true: np.ndarray, scores: np.ndarray, precision_target: float | None = None,
    weights: np.ndarray | None = None,
) -> float:
    """The threshold chosen on validation (never on test): max F1, or max recall at a precision."""
    if precision_target is not None:
        _, threshold = recall_at_precision(y_true, scores, precision_target, weights)
        return threshold if np.isfinite(threshold) else float(np.max(scores))
    precision, recall, thresholds = skm.precision_recall_curve(y_true, scores)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall + 1e-12), 0)
    if len(thresholds) == 0:
        return 0.5
    return float(thresholds[int(np.argmax(f1[:-1]))])


def capture_rate(y_true: np.ndarray, scores: np.ndarray, top_fraction: float) -> float:
    """Share of all positives found in the ``top_fraction`` of rows ranked by score."""
    positives = float(np.sum(y_true))
    if positives == 0:
        return float("nan")
    count = max(1, int(round(top_fraction * len(scores))))
    top = np.argsort(-scores, kind="stable")[:count]
    return float(np.sum(y_true[top]) / positives)


def compute_binary_metrics(
    y_true: np.ndarray, scores: np.ndarray, threshold: float, lift_fractions: Sequence[float] = (),
    natural_positive_rate: float | None = None, precision_target: float | None = None,
    only: Collection[str] | None = None,
) -> dict[str, float]:
    """ROC-AUC, PR-AUC, accuracy/F1/precision/recall at ``threshold``, log loss, Brier, captures.

    With ``natural_positive_rate``, also PR-AUC and precision re-weighted to that rate; with
    ``precision_target``, the recall reachable at that precision (re-weighted when a rate is given).
    ``only`` limits the work to the named metrics (bootstrap resamples need the gate's few).
    """
    y_true = np.asarray(y_true).astype(int)
    scores = np.clip(np.asarray(scores, dtype="float64"), 1e-7, 1 - 1e-7)
    predicted = (scores >= threshold).astype(int)
    both = len(np.unique(y_true)) == 2
    weights = natural_rate_weights(y_true, natural_positive_rate) if both else None
    nan = float("nan")
    measures: dict[str, Callable[[], float]] = {
        "roc_auc": lambda: skm.roc_auc_score(y_true, scores) if both else nan,
        "pr_auc": lambda: skm.average_precision_score(y_true, scores) if both else nan,
        "accuracy": lambda: skm.accuracy_score(y_true, predicted),
        "f1": lambda: skm.f1_score(y_true, predicted, zero_division=0),
        "precision": lambda: skm.precision_score(y_true, predicted, zero_division=0),
        "recall": lambda: skm.recall_score(y_true, predicted, zero_division=0),
        "log_loss": lambda: skm.log_loss(y_true, scores, labels=[0, 1]),
        "brier": lambda: skm.brier_score_loss(y_true, scores),
    }
    for fraction in lift_fractions:
        measures[f"capture_top_{round(fraction * 100)}pct"] = partial(capture_rate, y_true, scores, fraction)
    if weights is not None:
        measures["pr_auc_natural"] = lambda: skm.average_precision_score(y_true, scores, sample_weight=weights)
        measures["precision_natural"] = lambda: skm.precision_score(
            y_true, predicted, sample_weight=weights, zero_division=0
        )
    if precision_target is not None and both:
        measures[f"recall_at_precision_{round(precision_target * 100)}"] = lambda: recall_at_precision(
            y_true, scores, precision_target, weights
        )[0]
    return {name: float(measure()) for name, measure in measures.items() if only is None or name in only}


def compute_slice_metrics(
    frame: pd.DataFrame, y_true: np.ndarray, scores: np.ndarray, threshold: float, columns: Sequence[str]
) -> list[dict]:
    """Metrics per value of each slice column (rows, positives, ROC-AUC, accuracy, F1)."""
    rows = []
    for column in columns:
        # categorical buckets come in their order; buckets without rows are left out
        for value, index in frame.groupby(column, sort=True, observed=True).indices.items():
            sub_true, sub_scores = y_true[index], scores[index]
            metrics = compute_binary_metrics(sub_true, sub_scores, threshold)
            rows.append({
                "slice": column,
                "value": str(value),
                "rows": len(index),
                "positives": int(np.sum(sub_true)),
                "roc_auc": metrics["roc_auc"],
                "accuracy": metrics["accuracy"],
                "f1": metrics["f1"],
            })
    return rows


def gains_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gains: share of rows contacted (best scores first) vs share of positives found."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    found = np.cumsum(np.asarray(y_true)[order]) / max(float(np.sum(y_true)), 1.0)
    contacted = np.arange(1, len(order) + 1) / len(order)
    return np.concatenate([[0.0], contacted]), np.concatenate([[0.0], found])


def format_edge(edge: float) -> str:
    """A bucket edge as people write it: ``10``, ``0.5``, ``1000000`` (no exponent, no ``.0``)."""
    edge = float(edge)
    return str(int(edge)) if edge.is_integer() else np.format_float_positional(edge, trim="-")


def bucket_labels(edges: Sequence[float]) -> list[str]:
    """``under 10``, ``10-100``, ``100-500``, ``500 and over`` for edges (10, 100, 500).

    Each bucket holds its lower edge. The labels use only characters MLflow allows in tag keys,
    so gate check names (``slice.Amount_bucket:10-100.roc_auc``) read like the slice tables.
    """
    shown = [format_edge(e) for e in edges]
    inner = [f"{a} to {b}" if a.startswith("-") or b.startswith("-") else f"{a}-{b}"
             for a, b in zip(shown, shown[1:], strict=False)]
    return [f"under {shown[0]}", *inner, f"{shown[-1]} and over"]


def add_bucket_columns(frame: pd.DataFrame, buckets: dict) -> pd.DataFrame:
    """A copy with ``<column>_bucket`` columns (``under 10``, ``10-100``, ...; ``missing`` for
    missing values) for slicing, as ordered categories so slice tables list buckets in order."""
    if not buckets:
        return frame
    extra = {}
    for column, edges in buckets.items():
        edges = sorted(float(e) for e in edges)
        cut = pd.cut(frame[column], bins=[-np.inf, *edges, np.inf], labels=bucket_labels(edges), right=False)
        if cut.isna().any():
            cut = cut.cat.add_categories("missing").fillna("missing")
        extra[f"{column}_bucket"] = cut
    return frame.assign(**extra)
