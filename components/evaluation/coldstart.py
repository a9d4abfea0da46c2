"""Cold-item evaluation: which items are held out, ranking among them, and the same-run content peers.

The cold items are a seeded share of the catalogue (a hash of the item id, so an item keeps its
side as data grows) whose every interaction is left out of training. A user who interacted with
some of them gets the cold catalogue ranked; nDCG@k and Recall@k of that list, and coverage of
the cold catalogue by all users' lists, are the cold metrics.

Peers score a cold item from the same attributes the model reads:
- ``genre_affinity``: popularity within the user's favourite categories. A cold item has no
  popularity of its own, so it scores the share of the user's history in its categories.
- ``content_knn``: item-kNN on the content vectors: the summed cosine similarity of a cold item to
  the user's history items among its ``neighbours`` most similar warm items.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def cold_item_mask(item_ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """True for the items held out entirely: a seeded hash of the id below ``fraction``."""
    def share(item) -> float:
        digest = hashlib.sha256(f"{seed}:{item}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    return np.fromiter((share(i) < fraction for i in item_ids), dtype=bool, count=len(item_ids))


def top_among(scores: np.ndarray, candidates: np.ndarray, item_ids: np.ndarray, k: int) -> np.ndarray:
    """Per user (row of ``scores`` over the item table), the ids of the k best ``candidates`` positions."""
    sub = scores[:, candidates]
    k = min(k, len(candidates))
    best = np.argsort(-sub, axis=1, kind="stable")[:, :k]
    return item_ids[candidates][best]


@dataclass(frozen=True)
class ContentPeer:
    """A same-run cold-item peer: ``scores`` is users x table items."""

    name: str
    scores: np.ndarray


def genre_affinity_scores(histories: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """users x items: each item's category columns weighted by the user's share of history in
    them (users x table histories, items x category columns multi-hot), over its category count."""
    counts = histories @ categories
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    per_item = np.maximum(categories.sum(axis=1), 1.0)
    return (shares @ categories.T) / per_item[None, :]


def content_knn_scores(histories: np.ndarray, content: np.ndarray, warm: np.ndarray, neighbours: int) -> np.ndarray:
    """users x items: sum over the user's history of cosine(item, history item), each item keeping
    only its ``neighbours`` most similar warm items."""
    unit = content / np.maximum(np.linalg.norm(content, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit[warm].T  # table items x warm items
    keep = min(neighbours, similarity.shape[1])
    if keep < similarity.shape[1]:
        cut = np.partition(similarity, -keep, axis=1)[:, -keep][:, None]
        similarity = np.where(similarity >= cut, similarity, 0.0)
    return histories[:, warm] @ similarity.T


def fit_content_peers(histories: np.ndarray, content: np.ndarray, categories: np.ndarray, warm: np.ndarray,
                      neighbours: int) -> list[ContentPeer]:
    """Both peers' scores over the item table; a peer whose attributes are absent is left out."""
    peers = [ContentPeer("content_knn", content_knn_scores(histories, content, warm, neighbours))]
    if categories.shape[1]:
        peers.insert(0, ContentPeer("genre_affinity", genre_affinity_scores(histories, categories)))
    return peers


def cold_sentence(recall: float, k: int, things: str, wins: str) -> str:
    """The cold-item recall in shop terms."""
    return (f"A product added today (no {wins} history yet) reaches the top {k} of {recall:.0%} of the customers "
            f"who will {wins} it, among the new {things}.")


def write_warm_cold_plot(warm: dict[str, np.ndarray], cold: dict[str, np.ndarray], relevant: dict[str, list[set]],
                         k: int, folder: Path) -> Path:
    """nDCG@1..k of the model and its peers, warm catalogue beside cold catalogue."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from components.evaluation.plots import save_figure
    from components.evaluation.ranking import ranking_metrics

    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (side, lists) in zip(axes, (("warm", warm), ("cold", cold)), strict=True):
        for name, items in lists.items():
            values = [ranking_metrics(items, relevant[side], c, 1)[f"ndcg_at_{c}"] for c in range(1, k + 1)]
            ax.plot(range(1, k + 1), values, "o-", label=name)
        ax.set(xlabel="k (recommendations shown)", ylabel="nDCG@k", title=f"{side} items")
        ax.legend(loc="best")
    return save_figure(fig, folder / "warm_cold_ndcg.png")
