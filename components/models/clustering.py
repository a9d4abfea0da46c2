"""Clustering algorithms the topic model is built from: unit rows, k-means, k chosen by
silhouette, word counts and class-based TF-IDF topic terms."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), so k-means on them is spherical."""
    vectors = np.asarray(vectors, dtype="float64")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def fit_kmeans(vectors, k: int, seed: int, n_init: int) -> tuple[np.ndarray, np.ndarray]:
    """(cluster of each row, unit centroids) of k-means++ with ``n_init`` restarts on the rows."""
    from sklearn.cluster import KMeans

    if k < 2 or k > vectors.shape[0]:
        raise ValueError(f"k-means needs 2 <= k <= rows: k={k}, {vectors.shape[0]} rows")
    model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(vectors)
    return model.labels_.astype("int64"), unit_rows(np.asarray(model.cluster_centers_))


def choose_k(vectors, k_values: Sequence[int], cluster: Callable[[np.ndarray, int], np.ndarray]) -> tuple[int, dict[int, float]]:
    """The k of ``k_values`` whose clustering (``cluster(vectors, k)``) has the highest cosine
    silhouette, and every k's silhouette (ties: the smaller k)."""
    from sklearn.metrics import silhouette_score

    scores: dict[int, float] = {}
    for k in sorted(set(k_values)):
        if 2 <= k < vectors.shape[0]:
            scores[k] = float(silhouette_score(vectors, cluster(vectors, k), metric="cosine"))
    if not scores:
        raise ValueError(f"no k of {sorted(set(k_values))} fits {vectors.shape[0]} rows (2 <= k < rows)")
    best = max(scores, key=lambda k: (scores[k], -k))
    return best, scores


def term_counts(texts: Sequence[str], min_df: int, max_df_fraction: float = 1.0, stop_words: str | None = "english"):
    """(document-term count matrix, vocabulary) of single words seen in at least ``min_df`` texts
    and at most ``max_df_fraction`` of them (words every review uses label no topic)."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(stop_words=stop_words, min_df=min_df, max_df=max_df_fraction, token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
    counts = vectorizer.fit_transform(list(texts))
    return counts, np.asarray(vectorizer.get_feature_names_out())


def class_tfidf_terms(counts, vocabulary: np.ndarray, clusters: np.ndarray, k: int, top_terms: int) -> list[list[str]]:
    """Each cluster's ``top_terms`` words by class-based TF-IDF (BERTopic's c-TF-IDF): a word's
    frequency in the cluster's pooled documents times log(1 + mean words per cluster / its
    frequency over all clusters). A cluster without words gets no terms."""
    clusters = np.asarray(clusters)
    pooled = np.vstack([np.asarray(counts[clusters == c].sum(axis=0)).reshape(-1) for c in range(k)]).astype("float64")
    totals = pooled.sum(axis=1, keepdims=True)
    tf = pooled / np.where(totals > 0, totals, 1.0)
    frequency = pooled.sum(axis=0)
    idf = np.log1p(pooled.sum() / k / np.where(frequency > 0, frequency, 1.0))
    weights = tf * idf
    terms = []
    for c in range(k):
        order = np.argsort(-weights[c], kind="stable")[:top_terms]
        terms.append([str(vocabulary[i]) for i in order if weights[c, i] > 0])
    return terms
