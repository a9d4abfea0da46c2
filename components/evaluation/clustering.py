"""Clustering evaluation: agreement with labels (NMI, ARI), coherence (NPMI) and diversity of
the topic terms, the topic table and the TF-IDF + k-means peer (the algorithms live in
components.models.clustering).

Every function takes arrays or texts and returns values; nothing reads params.yaml.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from components.models.clustering import fit_kmeans


def npmi_coherence(counts, vocabulary: np.ndarray, topics: Sequence[Sequence[str]]) -> float:
    """Mean over topics of the mean NPMI of their term pairs, from document co-occurrence in
    ``counts`` (-1: never together, 0: independent, 1: always together); NaN without pairs."""
    position = {term: i for i, term in enumerate(vocabulary)}
    present = (counts > 0).astype("float64").tocsc()
    documents = present.shape[0]
    values = []
    for terms in topics:
        columns = [position[t] for t in terms if t in position]
        pairs = []
        for a in range(len(columns)):
            for b in range(a + 1, len(columns)):
                first, second = present[:, columns[a]], present[:, columns[b]]
                p_a, p_b = first.sum() / documents, second.sum() / documents
                p_ab = first.multiply(second).sum() / documents
                if p_ab == 0:
                    pairs.append(-1.0)
                elif p_ab == 1:
                    pairs.append(1.0)
                else:
                    pairs.append(float(np.log(p_ab / (p_a * p_b)) / -np.log(p_ab)))
        if pairs:
            values.append(float(np.mean(pairs)))
    return float(np.mean(values)) if values else float("nan")


def topic_diversity(topics: Sequence[Sequence[str]]) -> float:
    """Share of distinct words among all topics' terms (1: no topic shares a word)."""
    words = [t for terms in topics for t in terms]
    return len(set(words)) / len(words) if words else float("nan")


def agreement(truth: np.ndarray, clusters: np.ndarray, index: np.ndarray | None = None) -> dict[str, float]:
    """NMI (arithmetic normalisation) and ARI between the labels and the clusters (on the rows
    ``index`` picks, repeats counted, when given)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    truth, clusters = np.asarray(truth), np.asarray(clusters)
    if index is not None:
        truth, clusters = truth[index], clusters[index]
    return {"nmi": float(normalized_mutual_info_score(truth, clusters)),
            "ari": float(adjusted_rand_score(truth, clusters))}


def share_trend(clusters: np.ndarray, periods: np.ndarray | None, k: int) -> list[str]:
    """Per cluster, its share of rows in each period (oldest first) as ``"a% → b% → ..."``;
    "–" for every cluster when the rows carry no date."""
    if periods is None:
        return ["–"] * k
    order = sorted(set(periods.tolist()))
    trends = []
    for c in range(k):
        shares = [float(np.mean(clusters[periods == p] == c)) for p in order]
        trends.append(" → ".join(f"{s:.0%}" for s in shares))
    return trends


def quote(text: str, chars: int) -> str:
    """The text's first ``chars`` characters on one line (cut at a word, with an ellipsis); 0: none."""
    if chars <= 0:
        return ""
    flat = " ".join(str(text).split())
    if len(flat) <= chars:
        return flat
    return flat[:chars].rsplit(" ", 1)[0] + "…"


@dataclass(frozen=True)
class Topic:
    """One cluster of the corpus: its terms, size, share and the reviews nearest its centroid."""

    topic_id: int
    terms: tuple[str, ...]
    rows: int
    share: float
    trend: str
    examples: tuple[tuple[str, str], ...]  # (row id, short quote)

    @property
    def label(self) -> str:
        return ", ".join(self.terms)


def describe_topics(
    clusters: np.ndarray, similarity: np.ndarray, terms: Sequence[Sequence[str]], ids: Sequence[str],
    texts: Sequence[str], examples: int, quote_chars: int, periods: np.ndarray | None = None,
) -> list[Topic]:
    """The topic table, largest topic first; representatives are the rows most similar to their
    topic's centroid, shown by id and a short quote."""
    clusters, similarity = np.asarray(clusters), np.asarray(similarity, dtype="float64")
    k = len(terms)
    trends = share_trend(clusters, periods, k)
    topics = []
    for c in range(k):
        members = np.flatnonzero(clusters == c)
        nearest = members[np.argsort(-similarity[members], kind="stable")[:examples]]
        topics.append(Topic(c, tuple(terms[c]), len(members), len(members) / max(len(clusters), 1), trends[c],
                            tuple((str(ids[i]), quote(texts[i], quote_chars)) for i in nearest)))
    return sorted(topics, key=lambda t: (-t.rows, t.topic_id))


def topic_slices(topics: Sequence[Topic]) -> list[dict]:
    """The topic table as evaluation slices (the review's slice table shows them)."""
    return [{"slice": "topic", "value": f"{t.topic_id}: {t.label}", "rows": t.rows, "share": t.share,
             "trend": t.trend, "example": "; ".join(f"{i} “{q}”" if q else i for i, q in t.examples) or "–"}
            for t in topics]


@dataclass(frozen=True)
class TfidfKMeans:
    """The same-run peer: k-means on unit TF-IDF rows (word 1-n grams, sublinear tf)."""

    name: str
    max_ngram: int
    min_df: int
    n_init: int
    seed: int

    def cluster(self, texts: Sequence[str], k: int) -> np.ndarray:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectors = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, self.max_ngram), min_df=self.min_df,
                                  stop_words="english").fit_transform(list(texts))
        labels, _ = fit_kmeans(vectors, k, self.seed, self.n_init)
        return labels


def fit_tfidf_kmeans(max_ngram: int, min_df: int, n_init: int, seed: int) -> TfidfKMeans:
    return TfidfKMeans(f"tfidf_kmeans (word 1-{max_ngram} grams)", max_ngram, min_df, n_init, seed)
