"""Clustering (topics): the corpus rows a filter picks (e.g. the complaints) grouped by what they
are about, each topic with its top terms, share, trend and representative rows by id and quote.

The gated quality is measured on a labelled set of the same use case (rows of
``features.labelled_source``): the same procedure (encoder, centring, clustering with k = the
number of labels) clusters those rows, and NMI / ARI against their labels are compared with the
TF-IDF + k-means peer on the same rows (paired bootstrap over the labelled rows). NPMI coherence
and topic diversity of the corpus topics and the topic table describe the registered model.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from components.config import Section
from components.data.splits import Splits, row_keys
from components.evaluation.bootstrap import bootstrap_intervals
from components.evaluation.clustering import (
    agreement,
    describe_topics,
    npmi_coherence,
    topic_diversity,
    topic_slices,
)
from components.evaluation.compare import paired_on_rows
from components.evaluation.plots import write_topic_shares_plot
from components.evaluation.report import ChampionScorer, Evaluation, gate_metric_names
from components.models.clustering import term_counts
from components.models.scorer import RowScorer
from components.training.fit import FitResult, TrainedModel


class ClusteringEvaluate(Section):
    """The ``evaluate`` section of a clustering use case."""

    # labelled rows with these labels, or with a label held by fewer rows, are left out
    excluded_labels: tuple[str, ...] = ()
    min_label_rows: int
    # representative rows per topic and the characters of their quotes in the topic table
    examples_per_topic: int
    quote_chars: int
    # no random test rows: the labelled rows are the test (recorded in each version's split spec)
    test_fraction: float = 0.0
    # the TF-IDF + k-means peer's longest word n-gram and minimum document frequency
    baseline_max_ngram: int = 1
    baseline_min_df: int = 1


def labelled_rows(frame: pd.DataFrame, features, evaluate: ClusteringEvaluate) -> pd.DataFrame:
    """The labelled set's rows kept for evaluation: labelled, not excluded, of a frequent label."""
    if not features.labelled_source:
        return frame.iloc[0:0]
    rows = frame[frame[features.source].astype(str).eq(features.labelled_source).to_numpy()]
    labels = rows[features.label].astype(str)
    rows = rows[labels.ne("").to_numpy() & ~labels.isin(evaluate.excluded_labels).to_numpy()]
    counts = rows[features.label].astype(str).value_counts()
    frequent = counts.index[counts >= evaluate.min_label_rows]
    return rows[rows[features.label].astype(str).isin(frequent).to_numpy()].reset_index(drop=True)


def champion_procedure_metrics(champion: ChampionScorer | None) -> tuple[dict[str, float] | None, str | None]:
    """The champion's labelled NMI / ARI as its own run recorded them: the labelled set is a fixed
    file (sha256 in params.yaml) and the registered model holds topics, not the procedure, so the
    gate compares with those numbers (``gate.compare: point``), not by re-scoring."""
    if champion is None:
        return None, None
    metrics = champion.recorded_metrics or {}
    recorded = {name: float(metrics[name]) for name in ("nmi", "ari") if name in metrics}
    if recorded:
        return recorded, None
    return None, (f"champion v{champion.version} recorded no labelled NMI/ARI at registration; "
                  "a reviewer compares the topic tables")


class ClusteringTask:
    """Train: the corpus rows (filtered); test: the labelled rows; no validation rows."""

    name = "clustering"
    needs_label = False
    evaluate_type = ClusteringEvaluate

    def metric_names(self, evaluate: ClusteringEvaluate) -> frozenset[str]:
        return frozenset({"nmi", "ari", "npmi", "topic_diversity", "topics", "largest_topic_share"})

    def slice_metric_names(self, evaluate: ClusteringEvaluate) -> frozenset[str]:
        return frozenset({"share"})

    def split(self, frame: pd.DataFrame, config) -> Splits:
        from components.models.topics import corpus_rows

        corpus = corpus_rows(frame, config.features)
        labelled = labelled_rows(frame, config.features, config.evaluate)
        keys = tuple(config.params.split.key_columns) or (config.features.row_id,)
        return Splits(corpus, frame.iloc[0:0], labelled,
                      keys={"train": row_keys(corpus, keys), "validation": np.array([]), "test": row_keys(labelled, keys)})

    def train(self, use_case, config, frame: pd.DataFrame) -> TrainedModel:
        started = time.perf_counter()
        splits = self.split(frame, config)
        model = use_case.builder.build(splits.train, config.features, config.train, config.seed, label="")
        fit = FitResult(model=model, epochs_run=0, best_epoch=0, fit_seconds=time.perf_counter() - started)
        return TrainedModel(model=model, splits=splits, fit=fit, threshold=float("nan"))

    def evaluate(self, use_case, config, trained: TrainedModel, plots_dir: Path,
                 champion: ChampionScorer | None = None) -> Evaluation:
        from components.models.topics import fit_topics, model_vectors, topic_labels

        started = time.perf_counter()
        features, evaluate = config.features, config.evaluate
        corpus, labelled = trained.splits.train, trained.splits.test
        texts = corpus[features.text].astype(str).tolist()
        outputs = RowScorer(trained.serving).score_outputs(corpus)
        clusters = np.asarray(outputs["topic_id"]).astype("int64").reshape(-1)
        labels = topic_labels(trained.model)
        terms = [label.split(", ") if label else [] for label in labels]
        counts, vocabulary = term_counts(texts, config.train.min_df, config.train.max_df_fraction)
        periods = None
        if features.date and features.date in corpus:
            periods = pd.to_datetime(corpus[features.date]).dt.to_period(features.date_period).astype(str).to_numpy()
        topics = describe_topics(clusters, np.asarray(outputs["similarity"]).reshape(-1), terms,
                                 corpus[features.row_id].astype(str).tolist(), texts, evaluate.examples_per_topic,
                                 evaluate.quote_chars, periods)
        described = {"npmi": npmi_coherence(counts, vocabulary, terms), "topic_diversity": topic_diversity(terms),
                     "topics": float(len(terms)), "largest_topic_share": topics[0].share if topics else float("nan")}

        truth = labelled[features.label].astype(str).to_numpy()
        k = len(set(truth))
        nan = {"nmi": float("nan"), "ari": float("nan")}
        mine, peer = np.zeros(len(truth), dtype="int64"), np.zeros(len(truth), dtype="int64")
        baseline = use_case.fit_baseline(corpus, config)
        if k >= 2:
            vectors = model_vectors(trained.model, labelled, features)
            mine = fit_topics(vectors, config.train, config.seed, k=k).clusters
            peer = baseline.cluster(labelled[features.text].astype(str).tolist(), k)
        metrics = {**(agreement(truth, mine) if k >= 2 else nan), **described}
        baseline_metrics = agreement(truth, peer) if k >= 2 else dict(nan)
        primary, rounds, seed = config.params.gate.primary_metric, config.bootstrap_rounds, config.seed
        every = np.arange(len(truth))
        baseline_comparison = None
        if k >= 2 and primary in ("nmi", "ari"):
            baseline_comparison = paired_on_rows(primary, every, lambda rows: agreement(truth, mine, rows)[primary],
                                                 lambda rows: agreement(truth, peer, rows)[primary], rounds, seed)
        names = [n for n in gate_metric_names(config) if n in ("nmi", "ari")]
        intervals = bootstrap_intervals(len(truth), lambda rows: agreement(truth, mine, rows), names, rounds, seed) if k >= 2 else {}
        champion_metrics, champion_error = champion_procedure_metrics(champion)
        return Evaluation(
            metrics=metrics, baseline_name=baseline.name, baseline_metrics=baseline_metrics,
            champion_version=champion.version if champion else None, champion_metrics=champion_metrics,
            champion_error=champion_error, slices=topic_slices(topics), threshold=float("nan"),
            plots=[write_topic_shares_plot([f"{t.topic_id}: {', '.join(t.terms)}" for t in topics],
                                           [t.share for t in topics], plots_dir)],
            test_rows=len(truth), seconds=time.perf_counter() - started, intervals=intervals,
            baseline_comparison=baseline_comparison,
        )

    def drift_score(self, scorer):
        """The champion's topic per corpus row (rows without a label, with text): a shift of the
        topic shares is drift."""
        def score(frame: pd.DataFrame):
            outputs = scorer.score_outputs({name: frame[name].astype(str).to_numpy() for name in scorer.spec})
            return np.asarray(outputs["topic_id"]).reshape(-1).astype("int64") if "topic_id" in outputs else None
        return score

    def business_sentences(self, evaluation: Evaluation, terms: Mapping[str, str]) -> list[str]:
        """The largest complaint topic and its share; how well the procedure finds known topics."""
        topics = [s for s in evaluation.slices if s.get("slice") == "topic"]
        if not topics:
            return []
        things = terms.get("rows", "negative reviews")
        largest = topics[0]
        label = str(largest["value"]).split(": ", 1)[-1]
        sentences = [f"The largest complaint topic, '{label}', is {largest['share']:.0%} of {things} "
                     f"({largest['rows']} of {sum(int(s['rows']) for s in topics)}; {len(topics)} topics)."]
        m, b = evaluation.metrics, evaluation.baseline_metrics
        if np.isfinite(m.get("nmi", float("nan"))):
            sentences.append(f"On a labelled set the same procedure recovers the known topics with NMI {m['nmi']:.3f} "
                             f"(the baseline, {evaluation.baseline_name}: {b.get('nmi', float('nan')):.3f}).")
        return sentences


CLUSTERING = ClusteringTask()
TASK = CLUSTERING
