"""Top-k ranking metrics for recommenders, on the protocol of Microsoft Recommenders' benchmark.

Per-user random split; each test user gets the top ``k`` items not already seen in training;
precision@k, recall@k, nDCG@k (binary relevance) and MAP@k as the Recommenders library's
``map_at_k`` (sum of precision at each hit / number of relevant items), plus catalogue coverage.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from components.evaluation.binary import (
    ChampionScorer,
    Evaluation,
    _save,
    bootstrap_intervals,
    gate_metric_names,
    measure_champion,
)


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


@dataclass(frozen=True)
class MostPopular:
    """The most-popular baseline: the training set's most interacted items, seen items removed."""

    ranked_items: np.ndarray
    seen: dict
    name: str = "most_popular"

    def recommend(self, users: Sequence, k: int) -> np.ndarray:
        rows = []
        for user in users:
            seen = self.seen.get(user, ())
            picks = [item for item in self.ranked_items[: k + len(seen)] if item not in seen][:k]
            rows.append(picks + [-1] * (k - len(picks)))
        return np.asarray(rows)


def fit_most_popular(train: pd.DataFrame, user: str, item: str) -> MostPopular:
    counts = train.groupby(item).size()
    # ties broken by item id, so the baseline is deterministic
    ranked = counts.reset_index(name="n").sort_values(["n", item], ascending=[False, True])[item].to_numpy()
    seen = {u: set(group) for u, group in train.groupby(user)[item]}
    return MostPopular(ranked_items=ranked, seen=seen)


def activity_bucket(counts: pd.Series, edges: Sequence[int]) -> pd.Series:
    """Users bucketed by training interactions: ``<30``, ``30-99``, ``>=100`` for edges (30, 100)."""
    edges = [int(e) for e in edges]
    labels = [f"<{edges[0]}"] + [f"{a}-{b - 1}" for a, b in zip(edges, edges[1:], strict=False)] + [f">={edges[-1]}"]
    return pd.cut(counts, bins=[-np.inf, *edges, np.inf], labels=labels, right=False).astype(str)


def champion_items(scored, rows: int, k: int) -> np.ndarray:
    """The ``items`` column a ranking pyfunc returns, as a (rows, k) array."""
    if not isinstance(scored, pd.DataFrame) or "items" not in scored:
        raise ValueError("the champion does not return an 'items' column of recommendations")
    items = np.stack([np.asarray(v) for v in scored["items"]]) if len(scored) else np.zeros((0, k))
    if items.shape[0] != rows or items.shape[1] < k:
        raise ValueError(f"the champion returned {items.shape} recommendations, expected ({rows}, >= {k})")
    return items[:, :k]


def evaluate_ranking_use_case(
    use_case, config, trained, plots_dir: Path, champion: ChampionScorer | None = None
) -> Evaluation:
    """Model vs most-popular vs champion: top-k of unseen items for every test user."""
    from components.models.scorer import RowScorer

    started = time.perf_counter()
    user, item, k = config.features.user, config.features.item, config.evaluate.top_k
    # every training row the model saw (validation rows were refit on), so seen items match serving
    train = pd.concat([trained.splits.train, trained.splits.validation], ignore_index=True)
    test = trained.splits.test
    users = np.sort(test[user].unique())
    truth_by_user = {u: set(group) for u, group in test.groupby(user)[item]}
    relevant = [truth_by_user[u] for u in users]
    catalogue = int(pd.concat([train[item], test[item]]).nunique())
    queries = pd.DataFrame({user: users})

    model_items = np.asarray(RowScorer(trained.serving).score_outputs(queries)["items"])[:, :k]
    per_user = per_user_ranking_metrics(model_items, relevant, k)
    metrics = summarize_ranking(per_user, model_items, catalogue)
    baseline = use_case.fit_baseline(train, config)
    baseline_items = baseline.recommend(users, k)
    baseline_per_user = per_user_ranking_metrics(baseline_items, relevant, k)
    baseline_metrics = summarize_ranking(baseline_per_user, baseline_items, catalogue)
    lists = {"model": model_items, baseline.name: baseline_items}

    def measure_lists(scorer: ChampionScorer) -> dict[str, float]:
        champion_list = champion_items(scorer.score(queries), len(users), k)
        lists[f"champion v{scorer.version}"] = champion_list
        return ranking_metrics(champion_list, relevant, k, catalogue)

    champion_metrics, champion_error = measure_champion(champion, measure_lists, "test users")

    activity = activity_bucket(train.groupby(user).size().reindex(users, fill_value=0), config.evaluate.activity_buckets)
    slices = []
    order = activity_bucket(pd.Series(list(config.evaluate.activity_buckets) + [np.inf]), config.evaluate.activity_buckets)
    for bucket in [b for b in dict.fromkeys(order) if b in set(activity)]:
        index = np.flatnonzero((activity == bucket).to_numpy())
        sub = summarize_ranking(per_user, model_items, catalogue, index)
        base = summarize_ranking(baseline_per_user, baseline_items, catalogue, index)
        slices.append({
            "slice": "train_interactions", "value": bucket, "rows": len(index),
            f"ndcg_at_{k}": sub[f"ndcg_at_{k}"], f"precision_at_{k}": sub[f"precision_at_{k}"],
            f"recall_at_{k}": sub[f"recall_at_{k}"], f"baseline_ndcg_at_{k}": base[f"ndcg_at_{k}"],
        })
    plots = write_ranking_plots(lists, relevant, k, catalogue, slices, plots_dir)
    intervals = bootstrap_intervals(
        len(users), partial(summarize_ranking, per_user, model_items, catalogue),
        gate_metric_names(config), config.bootstrap_rounds, config.seed,
    )
    return Evaluation(
        metrics=metrics, baseline_name=baseline.name, baseline_metrics=baseline_metrics,
        champion_version=champion.version if champion else None, champion_metrics=champion_metrics,
        champion_error=champion_error, slices=slices, plots=plots, threshold=float("nan"),
        test_rows=len(test), seconds=time.perf_counter() - started, intervals=intervals,
    )


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
    paths = [_save(fig, folder / "metrics_at_k.png")]

    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [s["value"] for s in slices]
    positions = np.arange(len(labels))
    ax.bar(positions - 0.2, [s[f"ndcg_at_{k}"] for s in slices], width=0.4, label="model")
    ax.bar(positions + 0.2, [s[f"baseline_ndcg_at_{k}"] for s in slices], width=0.4, label="most popular")
    ax.set_xticks(positions, [f"{v}\n({s['rows']} users)" for v, s in zip(labels, slices, strict=True)])
    ax.set(xlabel="training interactions per user", ylabel=f"nDCG@{k}", title=f"nDCG@{k} by user activity")
    ax.legend(loc="best")
    paths.append(_save(fig, folder / "ndcg_by_activity.png"))
    return paths
