"""Top-k ranking metrics for recommenders, on the protocol of Microsoft Recommenders' benchmark.

Per-user random split; each test user gets the top ``k`` items not already seen in training;
precision@k, recall@k, nDCG@k (binary relevance) and MAP@k as the Recommenders library's
``map_at_k`` (sum of precision at each hit / number of relevant items), plus catalogue coverage.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from components.evaluation.plots import save_figure


def per_user_ranking_metrics(recommended: np.ndarray, relevant: Sequence[set], k: int) -> dict[str, np.ndarray]:
    """AP@k, nDCG@k, precision@k and recall@k of each user (NaN for users without test items)."""
    recommended = np.asarray(recommended)[:, :k]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    values = {name: np.full(len(recommended), np.nan) for name in ("map", "ndcg", "precision", "recall")}
    for user, (row, truth) in enumerate(zip(recommended, relevant, strict=True)):
        if not truth:
            continue
        hits = np.fromiter((item in truth for item in row), dtype=bool, count=len(row))
        found = int(hits.sum())
        values["precision"][user] = found / k
        values["recall"][user] = found / len(truth)
        values["ndcg"][user] = float(discounts[hits[: len(discounts)]].sum()) / float(discounts[: min(k, len(truth))].sum())
        ranks = np.flatnonzero(hits) + 1
        values["map"][user] = float(np.sum(np.arange(1, found + 1) / ranks)) / len(truth)
    return {f"{name}_at_{k}": column for name, column in values.items()}


def summarize_ranking(
    per_user: dict[str, np.ndarray], recommended: np.ndarray, catalogue_size: int, index: np.ndarray | None = None
) -> dict[str, float]:
    """Means of the per-user metrics over users with test items, catalogue coverage and the user
    count; over the rows ``index`` picks (repeats counted) when given, e.g. a bootstrap resample."""
    recommended = np.asarray(recommended)
    if index is not None:
        per_user = {name: column[index] for name, column in per_user.items()}
        recommended = recommended[index]
    result = {}
    for name, column in per_user.items():
        known = column[~np.isnan(column)]
        result[name] = float(known.mean()) if len(known) else float("nan")
    shown = np.unique(recommended[recommended >= 0]) if recommended.size else np.zeros(0)
    result["coverage"] = len(shown) / catalogue_size if catalogue_size else float("nan")
    result["users"] = float(np.sum(~np.isnan(next(iter(per_user.values())))))
    return result


def ranking_metrics(
    recommended: np.ndarray, relevant: Sequence[set], k: int, catalogue_size: int
) -> dict[str, float]:
    """Mean MAP@k, nDCG@k, precision@k, recall@k over users, and catalogue coverage.

    ``recommended`` is one row of item ids per user (best first); ``relevant`` the users' test
    items in the same order. Users without test items are skipped.
    """
    recommended = np.asarray(recommended)[:, :k]
    return summarize_ranking(per_user_ranking_metrics(recommended, relevant, k), recommended, catalogue_size)


def activity_labels(edges: Sequence[int]) -> list[str]:
    """Every activity bucket in order: ``under 30``, ``30-99``, ``100 and over`` for edges (30, 100).

    Counts are whole numbers, so a bucket names its first and last count (one count: ``30``).
    """
    edges = [int(e) for e in edges]
    inner = [f"{a}" if b - 1 == a else f"{a}-{b - 1}" for a, b in zip(edges, edges[1:], strict=False)]
    return [f"under {edges[0]}", *inner, f"{edges[-1]} and over"]


def activity_bucket(counts: pd.Series, edges: Sequence[int]) -> pd.Series:
    """Users bucketed by training interactions (labels from ``activity_labels``)."""
    edges = [int(e) for e in edges]
    return pd.cut(counts, bins=[-np.inf, *edges, np.inf], labels=activity_labels(edges), right=False).astype(str)


def activity_slices(per_user: dict[str, np.ndarray], items: np.ndarray, catalogue: int, activity: pd.Series,
                    edges: Sequence[int], k: int, others: dict[str, tuple[dict[str, np.ndarray], np.ndarray]]) -> list[dict]:
    """nDCG, precision and recall@k per bucket of users' training interactions (every bucket that
    has users, lowest first), with ``others``' nDCG beside them (e.g. the baseline's)."""
    present = set(activity)
    rows = []
    for bucket in [b for b in activity_labels(edges) if b in present]:
        index = np.flatnonzero((activity == bucket).to_numpy())
        sub = summarize_ranking(per_user, items, catalogue, index)
        row = {"slice": "train_interactions", "value": bucket, "rows": len(index),
               f"ndcg_at_{k}": sub[f"ndcg_at_{k}"], f"precision_at_{k}": sub[f"precision_at_{k}"],
               f"recall_at_{k}": sub[f"recall_at_{k}"]}
        for name, (their_per_user, their_items) in others.items():
            row[f"{name}_at_{k}"] = summarize_ranking(their_per_user, their_items, catalogue, index)[f"ndcg_at_{k}"]
        rows.append(row)
    return rows


def champion_items(scored, rows: int, k: int) -> np.ndarray:
    """The ``items`` column a ranking pyfunc returns, as a (rows, k) array."""
    if not isinstance(scored, pd.DataFrame) or "items" not in scored:
        raise ValueError("the champion does not return an 'items' column of recommendations")
    items = np.stack([np.asarray(v) for v in scored["items"]]) if len(scored) else np.zeros((0, k))
    if items.shape[0] != rows or items.shape[1] < k:
        raise ValueError(f"the champion returned {items.shape} recommendations, expected ({rows}, >= {k})")
    return items[:, :k]


def write_ranking_plots(
    lists: dict[str, np.ndarray], relevant: Sequence[set], k: int, catalogue: int, slices: list[dict], folder: Path
) -> list[Path]:
    """Precision/recall/nDCG at 1..k per recommender, and nDCG@k by user activity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    cutoffs = range(1, k + 1)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for name, items in lists.items():
        curves = [ranking_metrics(items, relevant, c, catalogue) for c in cutoffs]
        for ax, metric in zip(axes, ("precision", "recall", "ndcg"), strict=True):
            ax.plot(list(cutoffs), [m[f"{metric}_at_{c}"] for m, c in zip(curves, cutoffs, strict=True)], "o-", label=name)
    for ax, metric in zip(axes, ("precision", "recall", "nDCG"), strict=True):
        ax.set(xlabel="k (recommendations shown)", ylabel=f"{metric}@k", title=f"{metric}@k")
    axes[0].legend(loc="best")
    paths = [save_figure(fig, folder / "metrics_at_k.png")]

    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [s["value"] for s in slices]
    positions = np.arange(len(labels))
    ax.bar(positions - 0.2, [s[f"ndcg_at_{k}"] for s in slices], width=0.4, label="model")
    ax.bar(positions + 0.2, [s[f"baseline_ndcg_at_{k}"] for s in slices], width=0.4, label="same-run baseline")
    ax.set_xticks(positions, [f"{v}\n({s['rows']} users)" for v, s in zip(labels, slices, strict=True)])
    ax.set(xlabel="training interactions per user", ylabel=f"nDCG@{k}", title=f"nDCG@{k} by user activity")
    ax.legend(loc="best")
    paths.append(save_figure(fig, folder / "ndcg_by_activity.png"))
    return paths
