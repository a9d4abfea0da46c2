"""The same-run peers of a next-item model, fitted on the same training sessions: popularity,
last-item transition counts, sequential rules and session-kNN (V-SKNN). Each returns the top-k
item ids for prefixes, as a shop would build them without a neural network.

- popularity: the most clicked items.
- transitions: how often each item followed the prefix's last item (ties: popularity).
- sequential rules (Ludewig & Jannach 2018): item b after item a within ``rule_steps`` clicks
  of the same session, weighted 1 / distance; scored from the prefix's last item.
- V-SKNN (Jannach & Ludewig 2017): the ``knn_neighbours`` training sessions most similar to the
  prefix (a dot product in which the prefix's clicks weigh linearly more the more recent they
  are), each voting for its items with its similarity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from components.models.sessions import Catalogue

# popularity breaks ties (and fills lists) with a weight far below any real count
TIE_BREAK = 1e-6


@dataclass(frozen=True)
class SessionPeer:
    """One peer: its name and a function from item-index prefixes to (rows, items + 1) scores."""

    name: str
    catalogue: Catalogue
    kind: str
    transition: sp.csr_matrix | None = None
    sessions: sp.csr_matrix | None = None
    neighbours: int = 0

    def recommend(self, prefixes: Sequence[str], k: int, chunk: int = 1000) -> np.ndarray:
        """The top-k item ids (rows, k) for space-separated id prefixes (unknown items skipped)."""
        indexed = [self.catalogue.index(np.asarray(p.split(), dtype=str)) if p else np.zeros(0, "int32")
                   for p in prefixes]
        indexed = [s[s > 0] for s in indexed]
        lists = []
        for start in range(0, len(indexed), chunk):
            scores = self.scores(indexed[start:start + chunk])
            lists.append(self.catalogue.items[top_columns(scores[:, 1:], k)])
        return np.concatenate(lists) if lists else np.zeros((0, k), dtype=str)

    def scores(self, prefixes: list[np.ndarray]) -> np.ndarray:
        popularity = np.concatenate([[0.0], self.catalogue.clicks])
        base = np.tile(popularity / max(popularity.max(), 1.0) * TIE_BREAK, (len(prefixes), 1))
        if self.kind == "popularity" or not prefixes:
            return base
        if self.kind == "rules":
            last = np.array([p[-1] if len(p) else 0 for p in prefixes])
            assert self.transition is not None
            found = self.transition[last].toarray()
            found[last == 0] = 0.0
            return base + found
        return base + self.knn_scores(prefixes)

    def knn_scores(self, prefixes: list[np.ndarray]) -> np.ndarray:
        assert self.sessions is not None
        n = self.sessions.shape[1]
        rows, cols, weights = [], [], []
        for row, prefix in enumerate(prefixes):
            if len(prefix):
                rows += [row] * len(prefix)
                cols += list(prefix)
                weights += list(np.arange(1, len(prefix) + 1) / len(prefix))  # linear decay: newest weighs 1
        query = sp.csr_matrix((weights, (rows, cols)), shape=(len(prefixes), n))
        query.sum_duplicates()
        similarity = (query @ self.sessions.T).tocsr()
        if similarity.shape[1] > self.neighbours:
            similarity = nearest_only(similarity, self.neighbours)
        return np.asarray((similarity @ self.sessions).toarray())


def nearest_only(similarity: sp.csr_matrix, neighbours: int) -> sp.csr_matrix:
    """Each row's entries at or above its ``neighbours``-th largest value (ties at the cut all
    kept; a row with fewer non-zero entries keeps them all), columns in ascending order: the
    sparse form of keeping ``similarity >= cut`` in the dense rows, without making them dense."""
    similarity = similarity.copy()
    similarity.sum_duplicates()  # also sorts each row's columns, so products add in column order
    similarity.eliminate_zeros()
    counts = np.diff(similarity.indptr)
    rows = np.repeat(np.arange(similarity.shape[0]), counts)
    descending = np.lexsort((-similarity.data, rows))  # row by row, largest first
    cut = np.full(similarity.shape[0], -np.inf)
    full = counts >= neighbours
    cut[full] = similarity.data[descending[similarity.indptr[:-1][full] + neighbours - 1]]
    keep = similarity.data >= cut[rows]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=similarity.shape[0]))])
    return sp.csr_matrix((similarity.data[keep], similarity.indices[keep], indptr), shape=similarity.shape)


def top_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """The columns of each row's ``k`` highest scores, highest first, ties by column: the first
    ``k`` of a stable argsort of ``-scores``, sorting only the candidates at or above the cut."""
    if k >= scores.shape[1]:
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    cut = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    rows, columns = np.nonzero(scores >= cut[:, None])
    order = np.lexsort((columns, -scores[rows, columns], rows))  # row, then score descending, then column
    rows, columns = rows[order], columns[order]
    starts = np.searchsorted(rows, np.arange(len(scores)))
    rank = np.arange(len(rows)) - starts[rows]
    return columns[rank < k].reshape(len(scores), k)


def indexed_sessions(catalogue: Catalogue, sequences: list[np.ndarray]) -> list[np.ndarray]:
    return [s[s > 0] for s in (catalogue.index(seq) for seq in sequences)]


def fit_popularity(catalogue: Catalogue) -> SessionPeer:
    return SessionPeer("popularity", catalogue, "popularity")


def fit_rules(catalogue: Catalogue, sequences: list[np.ndarray], steps: int, name: str) -> SessionPeer:
    """``steps`` 1: transition counts; more: sequential rules weighted 1 / distance."""
    rows, cols, weights = [], [], []
    for sequence in indexed_sessions(catalogue, sequences):
        for gap in range(1, steps + 1):
            if len(sequence) > gap:
                rows.append(sequence[:-gap])
                cols.append(sequence[gap:])
                weights.append(np.full(len(sequence) - gap, 1.0 / gap))
    n = len(catalogue.items) + 1
    if rows:
        matrix = sp.csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    else:
        matrix = sp.csr_matrix((n, n))
    return SessionPeer(name, catalogue, "rules", transition=matrix)


def fit_session_knn(catalogue: Catalogue, sequences: list[np.ndarray], neighbours: int) -> SessionPeer:
    """Each training session as a binary row over the items."""
    indexed = [np.unique(s) for s in indexed_sessions(catalogue, sequences)]
    indexed = [s for s in indexed if len(s)]
    n = len(catalogue.items) + 1
    if indexed:
        rows = np.concatenate([np.full(len(s), i) for i, s in enumerate(indexed)])
        matrix = sp.csr_matrix((np.ones(len(rows)), (rows, np.concatenate(indexed))), shape=(len(indexed), n))
    else:
        matrix = sp.csr_matrix((0, n))
    return SessionPeer("v-sknn", catalogue, "knn", sessions=matrix, neighbours=neighbours)


@dataclass(frozen=True)
class SessionPeers:
    """Every peer, fitted on the same training sessions (``BASELINES['session_peers']``)."""

    peers: tuple[SessionPeer, ...]

    @property
    def name(self) -> str:
        return "session peers (" + ", ".join(p.name for p in self.peers) + ")"


def fit_session_peers(sequences: list[np.ndarray], rule_steps: int, knn_neighbours: int) -> SessionPeers:
    """The four peers on the training sessions (item id strings in click order)."""
    catalogue = Catalogue.from_sequences(sequences)
    return SessionPeers((
        fit_popularity(catalogue),
        fit_rules(catalogue, sequences, 1, "transitions"),
        fit_rules(catalogue, sequences, rule_steps, "sequential rules"),
        fit_session_knn(catalogue, sequences, knn_neighbours),
    ))
