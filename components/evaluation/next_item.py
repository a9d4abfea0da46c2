"""Next-item prediction: the prediction points of test sessions, their metrics, slices and plots.

A prediction point is one step of a test session: the clicks so far (the prefix) and the item
clicked next (the target), for every position after the first (session-rec's protocol). A list
is judged by the rank of the target in it: Recall@k (the target is among the k shown) and
MRR@k (1 / its rank, 0 beyond k) averaged over all points; a target the model never saw in
training is a miss. The statistical unit is the session (its steps are correlated): intervals
resample sessions and weigh each by its number of points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.data.splits import row_keys
from components.models.sessions import SessionFeatures, item_strings, ordered_clicks

# the columns of the prediction points frame besides the prefix column
SESSION, POSITION, TARGET, PREFIX_LENGTH, SESSION_LENGTH = "session", "position", "target", "prefix_length", "session_length"


def prediction_points(clicks: pd.DataFrame, features: SessionFeatures, key_columns: tuple[str, ...] = ()) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per step of each session after its first click: the session, the target's
    position, the prefix (space-separated ids, oldest first), the target and the lengths; and
    the identity key of each target's click row (so a champion's training clicks can be left out)."""
    ordered = ordered_clicks(clicks, features)
    keys = row_keys(ordered, key_columns)
    items = item_strings(ordered[features.item].to_numpy())
    sessions = ordered[features.session].to_numpy()
    starts = np.r_[True, sessions[1:] != sessions[:-1]] if len(sessions) else np.zeros(0, bool)
    position = np.arange(len(sessions)) - np.maximum.accumulate(np.where(starts, np.arange(len(sessions)), 0))
    lengths = pd.Series(sessions).map(pd.Series(sessions).value_counts()).to_numpy() if len(sessions) else position
    prefixes: list[str] = []
    current: list[str] = []
    for start, item in zip(starts, items, strict=True):
        if start:
            current = []
        prefixes.append(" ".join(current))
        current.append(item)
    frame = pd.DataFrame({SESSION: sessions, POSITION: position, features.prefix: prefixes, TARGET: items,
                          PREFIX_LENGTH: position, SESSION_LENGTH: lengths})
    targets = (position > 0)
    return frame[targets].reset_index(drop=True), keys[targets]


@dataclass(frozen=True)
class PointScores:
    """Per prediction point: the target's rank in the list (0: not in it), and the session index."""

    ranks: np.ndarray
    sessions: np.ndarray

    @classmethod
    def of(cls, lists: np.ndarray, targets: np.ndarray, sessions: np.ndarray) -> PointScores:
        lists = np.asarray(lists).astype(str)
        hit = lists == np.asarray(targets).astype(str)[:, None]
        ranks = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0)
        return cls(ranks=ranks, sessions=pd.factorize(np.asarray(sessions))[0])


def point_values(ranks: np.ndarray, k_values: Sequence[int]) -> dict[str, np.ndarray]:
    """recall_at_k (0/1) and mrr_at_k (1/rank or 0) per point for each k."""
    values = {}
    for k in k_values:
        inside = (ranks > 0) & (ranks <= k)
        values[f"recall_at_{k}"] = inside.astype("float64")
        values[f"mrr_at_{k}"] = np.where(inside, 1.0 / np.maximum(ranks, 1), 0.0)
    return values


def summarize_points(scores: PointScores, k_values: Sequence[int], rows: np.ndarray | None = None) -> dict[str, float]:
    """Recall@k and MRR@k over the points ``rows`` picks (all by default), and the share of
    sessions with at least one right next item among the largest k shown (``hit_rate``)."""
    index = np.arange(len(scores.ranks)) if rows is None else rows
    if not len(index):
        return {name: float("nan") for name in [*point_names(k_values), "hit_rate"]}
    ranks = scores.ranks[index]
    out = {name: float(v.mean()) for name, v in point_values(ranks, k_values).items()}
    top = max(k_values)
    hit = pd.Series((ranks > 0) & (ranks <= top)).groupby(scores.sessions[index]).max()
    out["hit_rate"] = float(hit.mean())
    return out


def point_names(k_values: Sequence[int]) -> list[str]:
    return [f"{m}_at_{k}" for k in k_values for m in ("recall", "mrr")]


def list_metrics(lists: np.ndarray, popularity: pd.Series, catalogue: int) -> dict[str, float]:
    """coverage (share of the catalogue in any list) and popularity_bias (the mean training
    popularity of the listed items, relative to the most clicked item; session-rec's)."""
    listed = np.asarray(lists).astype(str)
    shown = np.unique(listed)
    top = float(popularity.max()) if len(popularity) else 1.0
    bias = popularity.reindex(listed.reshape(-1), fill_value=0).to_numpy().mean() / top if listed.size else float("nan")
    return {"coverage": float(len(shown) / max(catalogue, 1)), "popularity_bias": float(bias)}


def session_measure(scores: PointScores, metric: str, k_values: Sequence[int]):
    """``measure(session_rows)``: ``metric`` over all points of the picked sessions (a session
    picked twice counts twice) — the bootstrap over sessions."""
    values = point_values(scores.ranks, k_values)
    if metric not in values:
        raise KeyError(metric)
    sums = np.bincount(scores.sessions, weights=values[metric], minlength=scores.sessions.max(initial=-1) + 1)
    counts = np.bincount(scores.sessions, minlength=len(sums)).astype("float64")

    def measure(sessions: np.ndarray) -> float:
        total = counts[sessions].sum()
        return float(sums[sessions].sum() / total) if total else float("nan")

    return measure


def session_intervals(scores: PointScores, names: Sequence[str], k_values: Sequence[int], rounds: int,
                      seed: int) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of point metrics over resampled sessions."""
    from components.evaluation.bootstrap import bootstrap_intervals

    kept = [n for n in names if n in point_values(scores.ranks[:0], k_values)]
    measures = {name: session_measure(scores, name, k_values) for name in kept}
    sessions = int(scores.sessions.max(initial=-1) + 1)
    return bootstrap_intervals(sessions, lambda rows: {n: m(rows) for n, m in measures.items()}, kept, rounds, seed)


def length_bucket(lengths: np.ndarray, edges: Sequence[int]) -> np.ndarray:
    """Bucket labels of lengths: ``1``, ``2-3``, ``4+`` for edges (1, 3)."""
    lengths = np.asarray(lengths)
    labels = length_labels(edges)
    index = np.searchsorted(np.asarray(edges), lengths, side="left")
    return np.asarray(labels, dtype=object)[index]


def length_labels(edges: Sequence[int]) -> list[str]:
    labels, low = [], 1
    for edge in edges:
        labels.append(str(low) if edge == low else f"{low}-{edge}")
        low = edge + 1
    return [*labels, f"{low}+"]


def head_items(popularity: pd.Series, share: float) -> set[str]:
    """The most clicked items that together take ``share`` of the training clicks."""
    ordered = popularity.sort_values(ascending=False)
    cumulative = ordered.cumsum() / max(float(ordered.sum()), 1.0)
    return set(ordered.index[(cumulative - ordered / max(float(ordered.sum()), 1.0)) < share])


def point_slices(points: pd.DataFrame, scores: PointScores, k_values: Sequence[int], prefix_edges: Sequence[int],
                 session_edges: Sequence[int], head: set[str], others: dict[str, PointScores]) -> list[dict]:
    """Recall and MRR by prefix length, session length and head / tail / unseen target, with the
    ``others``' (e.g. the peer's) values beside them."""
    groups = {
        "prefix_length": (length_bucket(points[PREFIX_LENGTH].to_numpy(), prefix_edges), length_labels(prefix_edges)),
        "session_length": (length_bucket(points[SESSION_LENGTH].to_numpy(), session_edges), length_labels(session_edges)),
    }
    targets = points[TARGET].astype(str).to_numpy()
    groups["target_item"] = (np.where(np.isin(targets, list(head)), "head", "tail"), ["head", "tail"])
    rows = []
    top = max(k_values)
    for name, (labels, order) in groups.items():
        for value in order:
            index = np.flatnonzero(labels == value)
            if not len(index):
                continue
            row = {"slice": name, "value": value, "rows": int(len(index)),
                   **{m: v for m, v in summarize_points(scores, k_values, index).items() if m != "hit_rate"}}
            for other, theirs in others.items():
                row[f"{other}_recall_at_{top}"] = float(point_values(theirs.ranks[index], [top])[f"recall_at_{top}"].mean())
            rows.append(row)
    return rows


def write_next_item_plots(lists: dict[str, PointScores], slices: list[dict], k: int, folder: Path) -> list[Path]:
    """Recall@1..k of every list (model, peers, champion) and Recall@k by prefix length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    cut = np.arange(1, k + 1)
    for name, scores in lists.items():
        axes[0].plot(cut, [((scores.ranks > 0) & (scores.ranks <= c)).mean() for c in cut], label=name)
    axes[0].set(xlabel="items shown (k)", ylabel="recall@k", title="next item among the first k")
    axes[0].legend(fontsize=7)
    by_prefix = [s for s in slices if s["slice"] == "prefix_length"]
    axes[1].bar([s["value"] for s in by_prefix], [s[f"recall_at_{k}"] for s in by_prefix])
    axes[1].set(xlabel="clicks so far", ylabel=f"recall@{k}", title="by prefix length")
    path = folder / "next_item.png"
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return [path]
