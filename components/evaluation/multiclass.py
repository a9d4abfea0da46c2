"""Metrics, slices and plots for multiclass classifiers (e.g. customer-service intents)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from components.evaluation.plots import save_figure


def compute_multiclass_metrics(
    y_true: Sequence[str] | np.ndarray, predicted: Sequence[str] | np.ndarray,
    probabilities: np.ndarray | None = None, classes: Sequence[str] | None = None,
    only: Collection[str] | None = None,
) -> dict[str, float]:
    """Accuracy, macro/weighted F1; top-3 accuracy and log loss when probabilities are given.

    Labels are compared as text, or as they are when both are integer codes (``encode_labels``);
    ``only`` limits the work to the named metrics (bootstrap resamples need the gate's few).
    """
    y_true, predicted = _labels(y_true), _labels(predicted)
    measures: dict[str, Callable[[], float]] = {
        "accuracy": lambda: skm.accuracy_score(y_true, predicted),
        "macro_f1": lambda: skm.f1_score(y_true, predicted, average="macro", zero_division=0),
        "weighted_f1": lambda: skm.f1_score(y_true, predicted, average="weighted", zero_division=0),
    }
    if probabilities is not None and classes is not None:
        index = {c: i for i, c in enumerate(classes)}
        codes = np.array([index.get(y, -1) for y in y_true])
        known = codes >= 0

        def top3() -> float:
            best = np.argsort(-probabilities, axis=1)[:, :3]
            return float(np.mean([c in row for c, row in zip(codes, best, strict=True)]))

        measures["top3_accuracy"] = top3
        measures["log_loss"] = lambda: -np.mean(np.log(np.clip(probabilities, 1e-7, 1.0)[known, codes[known]]))
    return {name: float(measure()) for name, measure in measures.items() if only is None or name in only}


def _labels(values) -> np.ndarray:
    values = np.asarray(values)
    return values if np.issubdtype(values.dtype, np.integer) else values.astype(str)


def encode_labels(y_true, predicted) -> tuple[np.ndarray, np.ndarray]:
    """Both label arrays as integer codes of one shared vocabulary (same metrics, faster)."""
    y_true, predicted = np.asarray(y_true).astype(str), np.asarray(predicted).astype(str)
    _, codes = np.unique(np.concatenate([y_true, predicted]), return_inverse=True)
    return codes[: len(y_true)], codes[len(y_true):]


def length_labels(edges: Sequence[int]) -> list[str]:
    """``up to 5 words``, ``6-10 words``, ``over 10 words`` for edges (5, 10)."""
    labels, low = [f"up to {edges[0]} words"], int(edges[0])
    for edge in edges[1:]:
        labels.append(f"{edge} words" if low + 1 == edge else f"{low + 1}-{edge} words")
        low = int(edge)
    return [*labels, f"over {low} words"]


def length_bucket(texts: pd.Series, edges: Sequence[int]) -> pd.Series:
    """Word-count buckets (labels from ``length_labels``), as ordered categories so slice tables
    list them shortest first."""
    words = texts.astype(str).str.split().str.len()
    return pd.cut(words, bins=[-1, *edges, np.inf], labels=length_labels(edges))


def compute_multiclass_slices(frame: pd.DataFrame, y_true, predicted, columns: Sequence[str]) -> list[dict]:
    rows = []
    y_true, predicted = np.asarray(y_true).astype(str), np.asarray(predicted).astype(str)
    for column in columns:
        # categorical buckets come in their order; buckets without rows are left out
        for value, index in frame.groupby(column, sort=True, observed=True).indices.items():
            metrics = compute_multiclass_metrics(y_true[index], predicted[index])
            rows.append({"slice": column, "value": str(value), "rows": len(index), **metrics})
    return rows


def write_multiclass_plots(y_true, predicted, classes: Sequence[str], folder: Path) -> list[Path]:
    """A normalised confusion matrix and per-class F1 (worst first), as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    matrix = skm.confusion_matrix(y_true, predicted, labels=list(classes), normalize="true")
    fig, ax = plt.subplots(figsize=(9, 9))
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    ax.set(title="Confusion matrix (row-normalised)", xlabel="predicted class", ylabel="true class")
    paths = [save_figure(fig, folder / "confusion_matrix.png")]
    f1 = skm.f1_score(y_true, predicted, labels=list(classes), average=None, zero_division=0)
    order = np.argsort(f1)
    fig, ax = plt.subplots(figsize=(7, 12))
    ax.barh(np.array(classes)[order], f1[order])
    ax.tick_params(axis="y", labelsize=6)
    ax.set(title="F1 per class", xlabel="F1", xlim=(0, 1))
    paths.append(save_figure(fig, folder / "f1_per_class.png"))
    return paths
