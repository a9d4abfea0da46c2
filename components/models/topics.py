"""A Keras topic model: raw review text in, its topic id, the topic's top terms and the cosine to
the topic's centroid out.

Training encodes the corpus with the frozen sentence encoder (vectors cached by text), centres
the vectors on the corpus mean, chooses k by silhouette over ``k_values``, clusters (spectral on a
k-nearest-neighbour graph, or k-means) and stores each cluster's unit centroid and the mean as
frozen weights; a text's topic is its nearest centroid, and each topic's label is its top words by
class-based TF-IDF over the texts assigned to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from components.config import Section
from components.models.clustering import (
    choose_k,
    class_tfidf_terms,
    fit_kmeans,
    term_counts,
    unit_rows,
)
from components.models.encoder import EncoderParams, encode_frozen
from components.models.scorer import as_strings

logger = logging.getLogger(__name__)


class TopicFeatures(Section):
    """Which rows are the corpus (and which of them are clustered), which are the labelled set."""

    text: str
    row_id: str
    # the column naming each row's data set, and its values for the corpus and the labelled set
    source: str
    corpus_source: str
    labelled_source: str = ""
    # the labelled set's label (its rows only; never a model input)
    label: str = ""
    # the corpus rows clustered: filter_column <= filter_max (e.g. rating <= 2: the complaints)
    filter_column: str = ""
    filter_max: float | None = None
    # a date column of the corpus (topic share per period in the topic table); "": undated
    date: str = ""
    date_period: str = "Q"


class TopicsTrain(Section):
    """The topic model's settings (``train`` of a clustering use case)."""

    encoder: EncoderParams
    # no validation rows: nothing is early-stopped (recorded in each version's split spec)
    validation_fraction: float = 0.0
    # spectral: on the k-nearest-neighbour cosine graph; kmeans: spherical k-means
    method: Literal["spectral", "kmeans"] = "spectral"
    # the candidate numbers of topics; the highest cosine silhouette wins
    k_values: tuple[int, ...]
    neighbours: int
    kmeans_restarts: int
    # subtract the corpus mean vector before clustering (removes the direction every review shares)
    center: bool = True
    # topic labels: this many words by c-TF-IDF, from words in at least min_df and at most
    # max_df_fraction of the clustered texts
    label_terms: int
    min_df: int
    max_df_fraction: float


@dataclass(frozen=True)
class TopicFit:
    """The clustering of one set of vectors: each row's topic (nearest centroid), the unit
    centroids, the mean subtracted, and the silhouette of every k tried."""

    clusters: np.ndarray
    centroids: np.ndarray
    mean: np.ndarray
    silhouettes: dict[int, float]

    @property
    def k(self) -> int:
        return len(self.centroids)


def non_null_columns(features: TopicFeatures) -> list[str]:
    return [features.row_id, features.source]


def corpus_rows(frame: pd.DataFrame, features: TopicFeatures) -> pd.DataFrame:
    """The corpus rows to cluster: from the corpus source, with text, passing the filter."""
    keep = frame[features.source].astype(str).eq(features.corpus_source) & frame[features.text].notna()
    keep &= frame[features.text].astype(str).str.strip().ne("")
    if features.filter_column and features.filter_max is not None:
        keep &= pd.to_numeric(frame[features.filter_column], errors="coerce").le(features.filter_max)
    return frame[keep.to_numpy()].reset_index(drop=True)


def cluster_labels(vectors: np.ndarray, k: int, params: TopicsTrain, seed: int) -> np.ndarray:
    if params.method == "kmeans":
        return fit_kmeans(vectors, k, seed, params.kmeans_restarts)[0]
    from sklearn.cluster import SpectralClustering

    spectral = SpectralClustering(k, affinity="nearest_neighbors", n_neighbors=min(params.neighbours, len(vectors) - 1),
                                  random_state=seed, assign_labels="kmeans", n_init=params.kmeans_restarts)
    return spectral.fit_predict(vectors).astype("int64")


def fit_topics(vectors: np.ndarray, params: TopicsTrain, seed: int, k: int | None = None) -> TopicFit:
    """Cluster unit ``vectors`` into ``k`` topics (None: the silhouette's best of ``k_values``);
    each row's topic is then its nearest centroid, as the served model assigns it."""
    mean = vectors.mean(axis=0) if params.center else np.zeros(vectors.shape[1])
    centered = unit_rows(vectors - mean)
    silhouettes: dict[int, float] = {}
    tried: dict[int, np.ndarray] = {}  # the chosen k's clustering is not computed twice (it is seeded)

    def clustered(rows: np.ndarray, count: int) -> np.ndarray:
        tried[count] = cluster_labels(rows, count, params, seed)
        return tried[count]

    if k is None:
        k, silhouettes = choose_k(centered, params.k_values, clustered)
    labels = tried[k] if k in tried else cluster_labels(centered, k, params, seed)
    centroids = unit_rows(np.vstack([centered[labels == c].mean(axis=0) for c in range(k)]))
    return TopicFit(np.argmax(centered @ centroids.T, axis=1), centroids, mean, silhouettes)


def topic_terms(texts: list[str], clusters: np.ndarray, k: int, params: TopicsTrain) -> list[list[str]]:
    counts, vocabulary = term_counts(texts, params.min_df, params.max_df_fraction)
    return class_tfidf_terms(counts, vocabulary, clusters, k, params.label_terms)


def encode(frame: pd.DataFrame, features: TopicFeatures, params: EncoderParams):
    """(frozen encoder with its cache, the rows' unit vectors)."""
    encoder, vectors = encode_frozen(params, list(as_strings(frame[features.text].to_numpy())))
    return encoder, np.asarray(vectors, dtype="float64")


def model_vectors(model, frame: pd.DataFrame, features: TopicFeatures) -> np.ndarray:
    """The rows' unit vectors from a freshly built topic model's own encoder and its cache (no
    second encoder is loaded)."""
    encoder = model.get_layer("sentence_encoder")
    texts = list(as_strings(frame[features.text].to_numpy()))
    return np.asarray(encoder.store.vectors_for(texts, encoder.encode_texts), dtype="float64")


def build_topic_model(frame: pd.DataFrame, features: TopicFeatures, params: TopicsTrain, seed: int, *, label: str = ""):
    """The topic model of the corpus rows of ``frame`` (filtered as ``features`` says)."""
    import keras

    from components.models.topic_layers import NearestTopic

    keras.utils.set_random_seed(seed)
    corpus = corpus_rows(frame, features)
    encoder, vectors = encode(corpus, features, params.encoder)
    fit = fit_topics(vectors, params, seed)
    terms = topic_terms(corpus[features.text].astype(str).tolist(), fit.clusters, fit.k, params)
    logger.info("%d topics over %d texts (silhouette by k: %s)", fit.k, len(corpus),
                {k: round(v, 4) for k, v in fit.silhouettes.items()})
    text = keras.Input(shape=(1,), name=features.text, dtype="string")
    nearest = NearestTopic(fit.k, encoder.dim, [", ".join(t) for t in terms], name="nearest_topic")
    topic, topic_label, similarity = nearest(encoder(text))
    nearest.set_weights([fit.centroids.astype("float32"), fit.mean.astype("float32")])
    return keras.Model(inputs={features.text: text},
                       outputs={"topic_id": topic, "topic": topic_label, "similarity": similarity}, name="topics")


def topic_labels(model) -> list[str]:
    return list(model.get_layer("nearest_topic").labels)
