"""Retrieval (automatic answers): the top-k answers of an answer base per query, judged by P@1,
MRR and Recall@k, with a hand-off to a person below a confidence threshold chosen on validation."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from components.config import Section
from components.data.splits import TEST, TRAIN, VALIDATION, Splits, assign_sides, row_keys, split_seed
from components.errors import ConfigError
from components.evaluation.bootstrap import bootstrap_intervals
from components.evaluation.compare import compare_with_champion, paired_on_rows, rows_unseen_by
from components.evaluation.report import (
    ChampionScorer,
    Evaluation,
    compared_fields,
    gate_metric_names,
    measure_champion,
)
from components.evaluation.retrieval import (
    answer_ranks,
    champion_answers,
    choose_threshold,
    confidence_of,
    length_bucket,
    length_labels,
    per_query_metrics,
    retrieval_slices,
    summarize_retrieval,
    write_retrieval_plots,
)
from components.models.scorer import RowScorer
from components.training.fit import FitResult, TrainedModel

SLICE_METRICS = ("p_at_1", "mrr")


class RetrievalEvaluate(Section):
    """The ``evaluate`` section of a retrieval use case."""

    # share of the paraphrases (never an index-only row) held out as test queries
    test_fraction: float
    # Recall@k and MRR count the right answer within the top k
    top_k: int
    # queries are sliced by word count at these edges (the ``length`` slice)
    length_buckets: tuple[int, ...]
    # the TF-IDF baseline's longest word n-gram
    baseline_max_ngram: int = 2


class RetrievalTask:
    """Index rows (an answer's question) stay in train; paraphrases split by row hash; the model
    indexes train, picks its abstention threshold on validation and is scored on test queries."""

    name = "retrieval"
    # whether its use cases learn a label column (validate.label): the answer id is a feature
    needs_label = False
    evaluate_type = RetrievalEvaluate

    def metric_names(self, evaluate: RetrievalEvaluate) -> frozenset[str]:
        return frozenset({*SLICE_METRICS, f"recall_at_{evaluate.top_k}", "abstention_rate", "answered_precision"})

    def slice_metric_names(self, evaluate: RetrievalEvaluate) -> frozenset[str]:
        return frozenset(SLICE_METRICS)

    def split(self, frame: pd.DataFrame, config) -> Splits:
        """The configured (hash) split, then every row whose role is in ``features.index_roles`` moved
        to train: an answer's own question is part of the answer base, never a test query."""
        keys = row_keys(frame, config.params.split.key_columns)
        sides = assign_sides(frame, config.params.split, config.evaluate.test_fraction, config.train.validation_fraction,
                             split_seed(config), keys, config.label)
        features = config.features
        if features.role and features.index_roles:
            sides = np.where(frame[features.role].astype(str).isin(features.index_roles).to_numpy(), TRAIN, sides)
        parts = {"train": TRAIN, "validation": VALIDATION, "test": TEST}
        frames = {name: frame[sides == side].reset_index(drop=True) for name, side in parts.items()}
        return Splits(frames["train"], frames["validation"], frames["test"],
                      keys={name: keys[sides == side] for name, side in parts.items()})

    def train(self, use_case, config, frame: pd.DataFrame) -> TrainedModel:
        """Index the training rows, then choose the abstention threshold on the validation queries."""
        if config.train.top_k < config.evaluate.top_k:
            raise ConfigError(f"params.use_cases.{config.name}.train.top_k ({config.train.top_k}) is below "
                              f"evaluate.top_k ({config.evaluate.top_k}); the model must return every answer scored")
        started = time.perf_counter()
        splits = self.split(frame, config)
        model = use_case.builder.build(splits.train, config.features, config.train, config.seed, label=config.label)
        threshold = float("-inf")
        if len(splits.validation):
            outputs = RowScorer(model).score_outputs(splits.validation)
            right = answer_ranks(outputs["answers"], splits.validation[config.features.answer_id]) == 1
            threshold = choose_threshold(outputs["confidence"], right, config.train.target_precision)
        from components.models.answers import set_threshold

        set_threshold(model, threshold if np.isfinite(threshold) else -1e9)
        fit = FitResult(model=model, epochs_run=0, best_epoch=0, fit_seconds=time.perf_counter() - started)
        return TrainedModel(model=model, splits=splits, fit=fit, threshold=threshold)

    def evaluate(self, use_case, config, trained: TrainedModel, plots_dir: Path,
                 champion: ChampionScorer | None = None) -> Evaluation:
        """Model vs the same-run baseline (its own threshold from validation) vs champion on the test queries."""
        started = time.perf_counter()
        features, k = config.features, config.evaluate.top_k
        test, validation = trained.splits.test, trained.splits.validation
        truth = test[features.answer_id].astype(str).to_numpy()
        outputs = RowScorer(trained.serving).score_outputs(test)
        ranks = answer_ranks(outputs["answers"][:, :k], truth)
        per_query = per_query_metrics(ranks, ~outputs["abstain"].astype(bool), k)
        metrics = summarize_retrieval(per_query)

        baseline = use_case.fit_baseline(trained.splits.train, config)
        rule = config.train.confidence
        baseline_threshold = float("-inf")
        if len(validation):
            ids, scores = baseline.rank(validation[features.text].astype(str).tolist(), k)
            baseline_threshold = choose_threshold(confidence_of(scores, rule),
                                                  answer_ranks(ids, validation[features.answer_id]) == 1,
                                                  config.train.target_precision)
        ids, scores = baseline.rank(test[features.text].astype(str).tolist(), k)
        baseline_ranks = answer_ranks(ids, truth)
        baseline_per_query = per_query_metrics(baseline_ranks, confidence_of(scores, rule) >= baseline_threshold, k)
        baseline_metrics = summarize_retrieval(baseline_per_query)
        ranked = {"model": ranks, baseline.name: baseline_ranks}
        theirs: dict[str, np.ndarray] = {}

        def measure(scorer: ChampionScorer) -> dict[str, float]:
            scored = scorer.score(test)
            champion_ranks = answer_ranks(champion_answers(scored, len(test))[:, :k], truth)
            ranked[f"champion v{scorer.version}"] = champion_ranks
            theirs.update(per_query_metrics(champion_ranks, ~np.asarray(scored["abstain"]).astype(bool), k))
            return summarize_retrieval(theirs)

        champion_metrics, champion_error = measure_champion(champion, measure, "test queries")
        buckets = length_bucket(test[features.text], config.evaluate.length_buckets)
        order = length_labels(config.evaluate.length_buckets)
        slices = retrieval_slices(buckets, per_query, {"baseline": baseline_per_query}, order)
        plots = write_retrieval_plots(ranked, np.asarray(outputs["confidence"], dtype="float64"), per_query["p_at_1"] > 0,
                                      trained.threshold, k, plots_dir)
        gate, primary = config.params.gate, config.params.gate.primary_metric
        rounds, seed = config.bootstrap_rounds, config.seed

        def primary_of(values: dict[str, np.ndarray]):
            return lambda rows: summarize_retrieval(values, rows)[primary]

        every = np.arange(len(test))
        baseline_comparison = paired_on_rows(primary, every, primary_of(per_query), primary_of(baseline_per_query),
                                             rounds, seed)
        intervals = bootstrap_intervals(len(test), lambda rows: summarize_retrieval(per_query, rows),
                                        gate_metric_names(config), rounds, seed)
        champion_comparison, champion_slices, compared = None, [], None
        if champion is not None and theirs:
            compared = rows_unseen_by(trained.splits.keys["test"] if trained.splits.keys else None, champion.seen_keys,
                                      len(test), champion.seen_note)
            champion_comparison, why = compare_with_champion(primary, compared, gate.min_compare_rows,
                                                             primary_of(per_query), primary_of(theirs), rounds, seed)
            champion_error = champion_error or why
            rows = compared.positions
            champion_slices = retrieval_slices(buckets[rows], {n: v[rows] for n, v in theirs.items()}, {}, order)
        return Evaluation(
            metrics=metrics, baseline_name=baseline.name, baseline_metrics=baseline_metrics,
            champion_version=champion.version if champion else None, champion_metrics=champion_metrics,
            champion_error=champion_error, slices=slices, plots=plots, threshold=trained.threshold,
            test_rows=len(test), seconds=time.perf_counter() - started, intervals=intervals,
            champion_comparison=champion_comparison, baseline_comparison=baseline_comparison,
            champion_slices=champion_slices, **compared_fields(compared),
        )

    def drift_score(self, scorer):
        """The champion's confidence in its top answer per query."""
        def score(frame: pd.DataFrame):
            outputs = scorer.score_outputs({name: frame[name].to_numpy() for name in scorer.spec})
            return outputs["confidence"].reshape(-1) if "confidence" in outputs else None
        return score

    def business_sentences(self, evaluation: Evaluation, terms: Mapping[str, str]) -> list[str]:
        """How many questions get the right answer first, and how many go to a person."""
        m = evaluation.metrics
        if "p_at_1" not in m:
            return []
        things = terms.get("rows", "customer questions")
        champion = evaluation.champion_metrics or {}
        text = f"{m['p_at_1']:.1%} of {things} get the right answer first"
        text += f" (the baseline, {evaluation.baseline_name}: {evaluation.baseline_metrics.get('p_at_1', float('nan')):.1%}"
        text += f"; the champion: {champion['p_at_1']:.1%})" if "p_at_1" in champion else ")"
        sentences = [text + "."]
        if "abstention_rate" in m:
            sentences.append(f"{m['abstention_rate']:.1%} are handed to a person (too unsure to answer); "
                             f"{m['answered_precision']:.1%} of the answers given automatically are right.")
        return sentences


RETRIEVAL = RetrievalTask()
TASK = RETRIEVAL
