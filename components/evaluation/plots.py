"""Plots of an evaluation, written as PNG for the run's artifacts, DVC plots and the release review."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from components.evaluation.binary import capture_rate, gains_curve


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` and release it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


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
    paths.append(save_figure(fig, folder / "roc.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, scores in curves.items():
        precision, recall, _ = skm.precision_recall_curve(y_true, scores)
        ax.plot(recall, precision, label=f"{name} (AP {skm.average_precision_score(y_true, scores):.3f})")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax.legend(loc="lower left")
    paths.append(save_figure(fig, folder / "pr.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, scores in curves.items():
        observed, predicted = calibration_curve(y_true, scores, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, "o-", label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", title="Calibration")
    ax.legend(loc="upper left")
    paths.append(save_figure(fig, folder / "calibration.png"))

    model_scores = next(iter(curves.values()))
    matrix = skm.confusion_matrix(y_true, (model_scores >= threshold).astype(int), labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center")
    ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual",
           title=f"Confusion matrix (threshold {threshold:.2f})")
    paths.append(save_figure(fig, folder / "confusion_matrix.png"))
    return paths


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
    return save_figure(fig, folder / "gains.png")


def write_topic_shares_plot(labels: list[str], shares: list[float], folder: Path) -> Path:
    """Horizontal bars: each topic's share of the clustered rows, largest first, by its top terms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(labels), 1) + 1.2))
    ax.barh(range(len(labels)), shares, color="tab:blue")
    ax.set_yticks(range(len(labels)), [label[:60] for label in labels], fontsize=8)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set(xlabel="share of the clustered rows", title="Topics")
    fig.tight_layout()
    return save_figure(fig, folder / "topic_shares.png")


def write_policy_estimates_plot(estimates: dict[str, float], intervals: dict[str, tuple[float, float]],
                                logged_ctr: float, folder: Path) -> Path:
    """Each off-policy estimate of the new policy's CTR with its 95% interval (clicks per 1,000
    impressions), beside the logged policy's CTR (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    names = list(estimates)
    points = [1000 * estimates[n] for n in names]
    low = [1000 * (estimates[n] - intervals.get(n, (estimates[n], estimates[n]))[0]) for n in names]
    high = [1000 * (intervals.get(n, (estimates[n], estimates[n]))[1] - estimates[n]) for n in names]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.errorbar(range(len(names)), points, yerr=[low, high], fmt="o", capsize=6, color="tab:blue", label="new policy")
    ax.axhline(1000 * logged_ctr, linestyle="--", color="tab:gray", label="logged policy")
    ax.set_xticks(range(len(names)), names)
    ax.set(ylabel="clicks per 1,000 impressions", title="Off-policy estimates (95% CI)")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, folder / "policy_estimates.png")


def write_qini_plot(outcome: np.ndarray, treated: np.ndarray, curves: dict[str, np.ndarray], folder: Path) -> Path:
    """Qini curves: extra outcomes per treated row when the top x% by each scorer's uplift are treated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from components.evaluation.uplift import qini_curve, uplift_areas

    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 5))
    end = 0.0
    for name, scores in curves.items():
        share, extra = qini_curve(outcome, treated, scores)
        ax.plot(share, extra, label=f"{name} (Qini {uplift_areas(outcome, treated, scores)['qini']:+.4f})")
        end = float(extra[-1])
    ax.plot([0, 1], [0, end], "k:", lw=1, label="random targeting")
    ax.set(xlabel="share of customers targeted (highest uplift first)", ylabel="extra conversions per treated customer",
           title="Qini curve")
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, folder / "qini.png")
