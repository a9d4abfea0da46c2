"""Metrics, thresholds, slices and plots for binary classifiers; model and baseline side by side."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

logger = logging.getLogger(__name__)


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
        for value, index in frame.groupby(column, sort=True).indices.items():
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


def write_binary_plots(
    y_true: np.ndarray, curves: dict[str, np.ndarray], threshold: float, folder: Path
) -> list[Path]:
    """ROC, PR, calibration (one line per scorer) and the model's confusion matrix, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    folder.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, scores in curves.items():
        fpr, tpr, _ = skm.roc_curve(y_true, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {skm.roc_auc_score(y_true, scores):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    paths.append(_save(fig, folder / "roc.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, scores in curves.items():
        precision, recall, _ = skm.precision_recall_curve(y_true, scores)
        ax.plot(recall, precision, label=f"{name} (AP {skm.average_precision_score(y_true, scores):.3f})")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax.legend(loc="lower left")
    paths.append(_save(fig, folder / "pr.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, scores in curves.items():
        observed, predicted = calibration_curve(y_true, scores, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, "o-", label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", title="Calibration")
    ax.legend(loc="upper left")
    paths.append(_save(fig, folder / "calibration.png"))

    model_scores = next(iter(curves.values()))
    matrix = skm.confusion_matrix(y_true, (model_scores >= threshold).astype(int), labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center")
    ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual",
           title=f"Confusion matrix (threshold {threshold:.2f})")
    paths.append(_save(fig, folder / "confusion_matrix.png"))
    return paths


def gains_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gains: share of rows contacted (best scores first) vs share of positives found."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    found = np.cumsum(np.asarray(y_true)[order]) / max(float(np.sum(y_true)), 1.0)
    contacted = np.arange(1, len(order) + 1) / len(order)
    return np.concatenate([[0.0], contacted]), np.concatenate([[0.0], found])


def write_gains_plot(y_true: np.ndarray, curves: dict[str, np.ndarray], folder: Path) -> Path:
    """Lift/gains chart in business terms: positives captured by contacting the top x% by score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, scores in curves.items():
        contacted, found = gains_curve(y_true, scores)
        at_20 = capture_rate(y_true, np.asarray(scores), 0.2)
        ax.plot(contacted, found, label=f"{name} (top 20% -> {at_20:.0%})")
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="random")
    ax.set(xlabel="share contacted (highest scores first)", ylabel="share of all positives captured",
           title="Cumulative gains")
    ax.legend(loc="lower right")
    return _save(fig, folder / "gains.png")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


@dataclass(frozen=True)
class ChampionScorer:
    """The serving champion, able to score the same test rows as the challenger."""

    version: str
    score: Callable[[pd.DataFrame], np.ndarray]
    threshold: float


@dataclass(frozen=True)
class Evaluation:
    """Model vs baseline (vs champion) on one seeded test split."""

    metrics: dict[str, float]
    baseline_name: str
    baseline_metrics: dict[str, float]
    champion_version: str | None
    champion_metrics: dict[str, float] | None
    champion_error: str | None
    slices: list[dict]
    plots: list[Path]
    threshold: float
    test_rows: int
    seconds: float = 0.0
    # 95% bootstrap confidence intervals of the gate's metrics: name -> (low, high)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {
            "model": self.metrics,
            "baseline": {"name": self.baseline_name, **self.baseline_metrics},
            "champion": (
                {"version": self.champion_version, **self.champion_metrics}
                if self.champion_metrics else None
            ),
            "threshold": self.threshold,
            "test_rows": self.test_rows,
            "slices": self.slices,
            "intervals": {k: list(v) for k, v in self.intervals.items()},
        }


def measure_champion(
    champion: ChampionScorer | None, measure: Callable[[ChampionScorer], dict[str, float]], rows: str = "test split",
) -> tuple[dict[str, float] | None, str | None]:
    """The champion's metrics on the same rows, or why it could not be scored (a champion with
    another input schema must not stop the run; the gate then fails safe)."""
    if champion is None:
        return None, None
    try:
        return measure(champion), None
    except Exception as exc:
        error = f"champion v{champion.version} could not score the {rows}: {exc}"
        logger.warning(error)
        return None, error


def evaluate_use_case(use_case, config, trained, plots_dir: Path, champion: ChampionScorer | None = None) -> Evaluation:
    """Evaluate with the metrics of the use case's task (binary, multiclass, ranking)."""
    if use_case.task == "multiclass":
        from components.evaluation.multiclass import evaluate_multiclass_use_case

        return evaluate_multiclass_use_case(use_case, config, trained, plots_dir, champion)
    if use_case.task == "ranking":
        from components.evaluation.ranking import evaluate_ranking_use_case

        return evaluate_ranking_use_case(use_case, config, trained, plots_dir, champion)
    return evaluate_binary_use_case(use_case, config, trained, plots_dir, champion)


def evaluate_binary_use_case(use_case, config, trained, plots_dir: Path, champion: ChampionScorer | None = None) -> Evaluation:
    """Score model, same-run baseline and current champion on the seeded test split; plot them."""
    from components.data.splits import label_array
    from components.models.scorer import RowScorer

    started = time.perf_counter()
    splits = trained.splits
    test = splits.test
    y_test = label_array(test, config.label)
    options = binary_options(config)

    def measure(scores: np.ndarray, threshold: float) -> dict[str, float]:
        return compute_binary_metrics(y_test, scores, threshold, **options)

    model_scores = RowScorer(trained.model).score(test)
    metrics = measure(model_scores, trained.threshold)

    baseline = use_case.fit_baseline(splits.train, config)
    y_validation = label_array(splits.validation, config.label)
    baseline_threshold = choose_use_case_threshold(config, y_validation, baseline.score(splits.validation))
    baseline_scores = baseline.score(test)
    baseline_metrics = measure(baseline_scores, baseline_threshold)
    curves = {"model": model_scores, baseline.name: baseline_scores}

    def measure_scores(scorer: ChampionScorer) -> dict[str, float]:
        scores = np.asarray(scorer.score(test), dtype="float64").reshape(-1)
        curves[f"champion v{scorer.version}"] = scores
        return measure(scores, scorer.threshold)

    champion_metrics, champion_error = measure_champion(champion, measure_scores)

    sliced = add_bucket_columns(test, getattr(config.evaluate, "slice_buckets", None) or {})
    slices = compute_slice_metrics(sliced, y_test, model_scores, trained.threshold, config.features.slices)
    plots = write_binary_plots(y_test, curves, trained.threshold, plots_dir)
    plots.append(write_gains_plot(y_test, curves, plots_dir))
    names = gate_metric_names(config)
    intervals = bootstrap_intervals(
        len(test),
        lambda index: compute_binary_metrics(y_test[index], model_scores[index], trained.threshold, **options, only=names),
        names, config.bootstrap_rounds, config.seed,
    )
    return Evaluation(
        metrics=metrics,
        baseline_name=baseline.name,
        baseline_metrics=baseline_metrics,
        champion_version=champion.version if champion else None,
        champion_metrics=champion_metrics,
        champion_error=champion_error,
        slices=slices,
        plots=plots,
        threshold=trained.threshold,
        test_rows=len(test),
        seconds=time.perf_counter() - started,
        intervals=intervals,
    )


def bootstrap_intervals(
    rows: int, measure: Callable[[np.ndarray], dict[str, float]], names: Sequence[str], rounds: int, seed: int
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of the ``names`` metrics over ``rounds`` resamples (with
    replacement) of the test rows; ``measure(index)`` computes the metrics on one resample."""
    if rows == 0 or rounds <= 0:
        return {}
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        try:
            values = measure(rng.integers(0, rows, rows))
        except ValueError:  # e.g. a resample with one class only
            continue
        for name in names:
            value = values.get(name)
            if value is not None and np.isfinite(value):
                samples[name].append(float(value))
    return {
        name: (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))
        for name, values in samples.items() if len(values) >= rounds // 2
    }


def gate_metric_names(config) -> list[str]:
    gate = config.params.gate
    return list(dict.fromkeys((gate.primary_metric, *gate.floors)))


def binary_options(config) -> dict:
    """The optional binary-metric settings of a use case's ``evaluate`` section."""
    return {
        "lift_fractions": config.evaluate.lift_fractions,
        "natural_positive_rate": getattr(config.evaluate, "natural_positive_rate", None),
        "precision_target": getattr(config.evaluate, "precision_target", None),
    }


def choose_use_case_threshold(config, y_validation: np.ndarray, scores: np.ndarray) -> float:
    """The threshold rule of a binary use case (max F1, or max recall at its precision target)."""
    options = binary_options(config)
    weights = natural_rate_weights(y_validation, options["natural_positive_rate"])
    return choose_threshold(y_validation, scores, options["precision_target"], weights)


def add_bucket_columns(frame: pd.DataFrame, buckets: dict) -> pd.DataFrame:
    """A copy with ``<column>_bucket`` columns (``[0, 10)``, ``[10, 100)``, ...) for slicing."""
    if not buckets:
        return frame
    extra = {}
    for column, edges in buckets.items():
        bins = [-np.inf, *edges, np.inf]
        labels = [f"<{edges[0]:g}"] + [f"[{a:g}, {b:g})" for a, b in zip(edges, edges[1:], strict=False)] + [f">={edges[-1]:g}"]
        extra[f"{column}_bucket"] = pd.cut(frame[column], bins=bins, labels=labels, right=False).astype(str)
    return frame.assign(**extra)


def write_metrics_json(evaluation: Evaluation, path: Path) -> Path:
    """The DVC metrics file (``reports/<use_case>/metrics.json``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(evaluation.as_json()), indent=2, sort_keys=True) + "\n")
    return path


def _finite(value):
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
