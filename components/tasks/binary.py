"""Binary classification (purchase intent, sentiment, fraud, click-through): one probability per row."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from components.config import Section
from components.data.splits import (
    MIN_STRATIFIED_ROWS,
    Splits,
    binary_labels,
    check_split_classes,
    encode_binary_splits,
    label_array,
)
from components.data.stream import SnapshotStream, sample_batches
from components.errors import ConfigError, DataValidationError
from components.evaluation.binary import (
    add_bucket_columns,
    choose_threshold,
    compute_binary_metrics,
    compute_slice_metrics,
    natural_rate_weights,
)
from components.evaluation.bootstrap import bootstrap_intervals
from components.evaluation.compare import compare_with_champion, paired_on_rows, rows_unseen_by
from components.evaluation.plots import write_binary_plots, write_gains_plot
from components.evaluation.report import (
    ChampionScorer,
    Evaluation,
    compared_fields,
    gate_metric_names,
    measure_champion,
)
from components.models.scorer import RowScorer
from components.monitoring.monitor import champion_scores
from components.tasks.base import ConfiguredSplit
from components.training.fit import TrainedModel, distribution_scope, fit_stream_with_params, fit_with_params

BASE_METRICS = ("roc_auc", "pr_auc", "accuracy", "f1", "precision", "recall", "log_loss", "brier")
SLICE_METRICS = ("roc_auc", "accuracy", "f1")
# each class in every split (a threshold needs both on validation, ROC AUC on test), and in train
# often enough for the stratified early-stopping hold-out of the LightGBM baselines
MIN_TRAIN_CLASS_ROWS = MIN_STRATIFIED_ROWS


class BinaryEvaluate(Section):
    """The ``evaluate`` section of a binary use case."""

    test_fraction: float
    # shares of rows ranked by score whose positives are counted (capture_top_<pct>pct)
    lift_fractions: tuple[float, ...]
    # the same-run baseline: boosting rounds (at most, when early-stopped) and learning rate
    baseline_max_iter: int = 300
    baseline_learning_rate: float = 0.05
    baseline_c: float = 1.0
    # LightGBM baselines (fraud, ctr): tree size, regularisation, categorical smoothing, early
    # stopping on a slice of the training split, threads (results depend on the thread count)
    baseline_num_leaves: int = 31
    baseline_min_child_samples: int = 20
    baseline_l2: float = 0.0
    baseline_feature_fraction: float = 1.0
    baseline_cat_smooth: float = 10.0
    baseline_min_data_per_group: int = 100
    baseline_early_stopping_rounds: int = 100
    baseline_early_stopping_metric: str = "binary_logloss"
    baseline_validation_fraction: float = 0.1
    baseline_threads: int = 1
    # under-sampled data: metrics re-weighted to this production positive rate (pr_auc_natural, ...)
    natural_positive_rate: float | None = None
    # the threshold maximises recall at this precision (else F1); adds recall_at_precision_<pct>
    precision_target: float | None = None
    # numeric columns sliced into buckets at these edges (``<column>_bucket`` slices)
    slice_buckets: dict[str, tuple[float, ...]] | None = None


def binary_options(evaluate: BinaryEvaluate) -> dict:
    """The optional binary-metric settings of an ``evaluate`` section."""
    return {
        "lift_fractions": evaluate.lift_fractions,
        "natural_positive_rate": evaluate.natural_positive_rate,
        "precision_target": evaluate.precision_target,
    }


def choose_use_case_threshold(evaluate: BinaryEvaluate, y_validation: np.ndarray, scores: np.ndarray) -> float:
    """The threshold rule of a binary use case (max F1, or max recall at its precision target)."""
    weights = natural_rate_weights(y_validation, evaluate.natural_positive_rate)
    return choose_threshold(y_validation, scores, evaluate.precision_target, weights)


class BinaryTask(ConfiguredSplit):
    """Stable split, 0/1 labels, a decision threshold chosen on validation, ROC/PR/gains."""

    name = "binary"
    # whether its use cases learn a label column (validate.label)
    needs_label = True
    evaluate_type = BinaryEvaluate

    def metric_names(self, evaluate: BinaryEvaluate) -> frozenset[str]:
        names = {*BASE_METRICS, *(f"capture_top_{round(f * 100)}pct" for f in evaluate.lift_fractions)}
        if evaluate.natural_positive_rate is not None:
            names |= {"pr_auc_natural", "precision_natural"}
        if evaluate.precision_target is not None:
            names.add(f"recall_at_precision_{round(evaluate.precision_target * 100)}")
        return frozenset(names)

    def slice_metric_names(self, evaluate: BinaryEvaluate) -> frozenset[str]:
        return frozenset(SLICE_METRICS)

    def train(self, use_case, config, frame: pd.DataFrame) -> TrainedModel:
        # split on the rows as read (their keys match the champion's), then 1 = the class of interest
        splits = encode_binary_splits(self.split(frame, config), config.label, config.params.card.class_of_interest)
        check_split_classes(splits, config.label, config.name, MIN_TRAIN_CLASS_ROWS, every_side=True)
        with distribution_scope(config.distribute):
            model = use_case.builder.build(splits.train, config.features, config.train, config.seed, label=config.label)
        class_weight = use_case.class_weight(splits.train, config) if use_case.class_weight else None
        fit = fit_with_params(model, splits.train, splits.validation, config.label, config.train, config.seed, class_weight)
        validation_scores = RowScorer(model).score(splits.validation)
        threshold = choose_use_case_threshold(config.evaluate, label_array(splits.validation, config.label), validation_scores)
        return TrainedModel(model=model, splits=splits, fit=fit, threshold=threshold)

    def train_stream(self, use_case, config, stream: SnapshotStream) -> TrainedModel:
        """``train`` from the snapshot read as a stream of batches: the builder counts over the
        training rows in passes, each epoch reads them again (row groups in a seeded order)."""
        where = f"use_cases.{config.name}"
        if use_case.builder.build_stream is None:
            raise ConfigError(f"{where}: train.streaming is on, but model builder {config.params.model.builder!r} cannot "
                              "build from a stream of rows; turn train.streaming off or use a builder that can (ctr)")
        if use_case.class_weight is not None:
            raise ConfigError(f"{where}: model.class_weight needs the training rows in memory; turn it off with train.streaming")
        encode = label_encoder(config)
        streaming = config.train.streaming
        with distribution_scope(config.distribute):
            model = use_case.builder.build_stream(stream.reader("train"), config.features, config.train, config.seed,
                                                  label=config.label, median_sample_rows=streaming.median_sample_rows)
        fit = fit_stream_with_params(
            model, lambda epoch: stream.batches("train", order_seed=config.seed + epoch),
            lambda epoch: stream.batches("validation"), encode, config.train, config.seed)
        y_validation, validation_scores = score_stream(stream.batches("validation"), encode, RowScorer(model).score)
        check_stream_classes(config, "validation", y_validation)
        threshold = choose_use_case_threshold(config.evaluate, y_validation, validation_scores)
        empty = stream_columns(stream)
        return TrainedModel(model=model, splits=Splits(empty, empty, empty), fit=fit, threshold=threshold, stream=stream)

    def evaluate(self, use_case, config, trained: TrainedModel, plots_dir: Path,
                 champion: ChampionScorer | None = None) -> Evaluation:
        """Score model, same-run baseline and current champion on the test split; plot them."""
        started = time.perf_counter()
        if trained.stream is not None:
            return self.evaluate_stream(use_case, config, trained, plots_dir, champion, started)
        splits = trained.splits
        test = splits.test
        y_test = label_array(test, config.label)
        model_scores = RowScorer(trained.model).score(test)
        baseline = use_case.fit_baseline(splits.train, config)
        y_validation = label_array(splits.validation, config.label)
        baseline_threshold = choose_use_case_threshold(config.evaluate, y_validation, baseline.score(splits.validation))
        scored = ScoredTest(
            y=y_test, rows=add_bucket_columns(test, config.evaluate.slice_buckets or {}),
            keys=splits.keys["test"] if splits.keys else None, model=model_scores,
            baseline=baseline.score(test), baseline_threshold=baseline_threshold, baseline_name=baseline.name,
        )
        return assemble_evaluation(config, trained, scored, lambda scorer: scorer.score(test), champion, plots_dir, started)

    def evaluate_stream(self, use_case, config, trained: TrainedModel, plots_dir: Path,
                        champion: ChampionScorer | None, started: float) -> Evaluation:
        """``evaluate`` reading the test rows as a stream, keeping per row only the label, the
        scores, the key and the slice columns (as categories). The peer cannot stream: it trains on
        a seeded sample of at most ``train.streaming.peer_sample_rows`` training rows (the
        evaluation's ``baseline_note`` says so when that is fewer than all)."""
        stream: SnapshotStream = trained.stream
        encode = label_encoder(config)
        counted = [0]

        def counting(batches):
            for frame, keys in batches:
                counted[0] += len(frame)
                yield frame, keys

        sample = sample_batches(counting(stream.keyed_batches("train")), config.train.streaming.peer_sample_rows, config.seed)
        sample = sample.assign(**{config.label: encode(sample).astype("int64")})
        baseline = use_case.fit_baseline(sample, config)
        y_validation, baseline_validation = score_stream(stream.batches("validation"), encode, baseline.score)
        baseline_threshold = choose_use_case_threshold(config.evaluate, y_validation, baseline_validation)
        buckets = config.evaluate.slice_buckets or {}
        model_scorer = RowScorer(trained.model)
        parts: dict[str, list] = {"y": [], "model": [], "baseline": [], "keys": [], "rows": []}
        for frame, keys in stream.keyed_batches("test"):
            parts["y"].append(encode(frame))
            parts["model"].append(model_scorer.score(frame))
            parts["baseline"].append(np.asarray(baseline.score(frame), dtype="float64").reshape(-1))
            parts["keys"].append(keys)
            sliced = add_bucket_columns(frame, buckets)
            parts["rows"].append({c: sliced[c].astype("category") for c in config.features.slices})
        y_test = np.concatenate(parts["y"]) if parts["y"] else np.empty(0, dtype="float32")
        check_stream_classes(config, "test", y_test)
        rows = pd.DataFrame({c: union_categoricals([p[c] for p in parts["rows"]], ignore_order=True)
                             for c in config.features.slices})
        note = ""
        if len(sample) < counted[0]:
            note = (f"{baseline.name} trained on a seeded sample of {len(sample)} of the {counted[0]} training rows "
                    "(train.streaming.peer_sample_rows: it cannot stream)")
        scored = ScoredTest(
            y=y_test, rows=rows, keys=np.concatenate(parts["keys"]), model=np.concatenate(parts["model"]),
            baseline=np.concatenate(parts["baseline"]), baseline_threshold=baseline_threshold,
            baseline_name=baseline.name, baseline_note=note,
        )

        def champion_scores(scorer: ChampionScorer) -> np.ndarray:
            return np.concatenate([np.asarray(scorer.score(frame), dtype="float64").reshape(-1)
                                   for frame in stream.batches("test")])

        return assemble_evaluation(config, trained, scored, champion_scores, champion, plots_dir, started)

    def drift_score(self, scorer):
        """The champion's probability per row."""
        return champion_scores(scorer)

    def business_sentences(self, evaluation: Evaluation, terms: Mapping[str, str]) -> list[str]:
        """Positives captured by contacting the top x% of rows, vs the champion and the baseline."""
        champion = evaluation.champion_metrics or {}
        things, wins = terms.get("rows", "rows"), terms.get("positives", "positives")
        sentences = []
        for name, value in evaluation.metrics.items():
            if name.startswith("capture_top_") and name.endswith("pct"):
                share = name.removeprefix("capture_top_").removesuffix("pct")
                others = []
                if name in champion:
                    others.append(f"{champion[name]:.0%} with the champion (v{evaluation.champion_version})")
                if name in evaluation.baseline_metrics:
                    others.append(f"{evaluation.baseline_metrics[name]:.0%} with the baseline ({evaluation.baseline_name})")
                text = f"Contacting the top {share}% of {things} by score captures {value:.0%} of {wins}"
                sentences.append(text + (f", vs {' and '.join(others)}." if others else "."))
        return sentences


@dataclass(frozen=True)
class ScoredTest:
    """The test rows as evaluation needs them: labels, the rows' slice columns and identity keys,
    and the model's and the same-run peer's scores."""

    y: np.ndarray
    rows: pd.DataFrame
    keys: np.ndarray | None
    model: np.ndarray
    baseline: np.ndarray
    baseline_threshold: float
    baseline_name: str
    baseline_note: str = ""


def label_encoder(config) -> Callable[[pd.DataFrame], np.ndarray]:
    """The 0/1 label (1: ``card.class_of_interest``) of a batch of rows, as float32."""
    def encode(frame: pd.DataFrame) -> np.ndarray:
        values = binary_labels(frame[config.label], config.params.card.class_of_interest, config.label, batch=True)
        return values.to_numpy(dtype="float32")

    return encode


def score_stream(batches: Iterable[pd.DataFrame], encode: Callable[[pd.DataFrame], np.ndarray],
                 score: Callable[[pd.DataFrame], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) of every row of a stream of batches: two floats per row are kept."""
    labels, scores = [], []
    for frame in batches:
        labels.append(encode(frame))
        scores.append(np.asarray(score(frame), dtype="float64").reshape(-1))
    if not labels:
        return np.empty(0, dtype="float32"), np.empty(0)
    return np.concatenate(labels), np.concatenate(scores)


def check_stream_classes(config, side: str, y: np.ndarray) -> None:
    """A streamed side needs both classes (a threshold on validation, ROC AUC on test)."""
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        raise DataValidationError(config.name, [
            f"the {side} split ({len(y)} rows) has {positives} row(s) of the class of interest of {config.label!r}; "
            "each side needs both classes: add rows of the rare class"])


def stream_columns(stream: SnapshotStream) -> pd.DataFrame:
    """No rows, the stream's columns and types (what the champion check reads of a split)."""
    import pyarrow.parquet as pq

    return pq.read_schema(stream.path).empty_table().to_pandas()


def assemble_evaluation(config, trained: TrainedModel, scored: ScoredTest,
                        score_champion: Callable[[ChampionScorer], np.ndarray], champion: ChampionScorer | None,
                        plots_dir: Path, started: float) -> Evaluation:
    """Metrics, slices, paired intervals against the peer and the champion, and plots, from the
    test rows' labels and scores (held in memory or gathered from a stream alike)."""
    y_test, model_scores, threshold = scored.y, scored.model, trained.threshold
    options = binary_options(config.evaluate)

    def measure(scores: np.ndarray, cut: float) -> dict[str, float]:
        return compute_binary_metrics(y_test, scores, cut, **options)

    metrics = measure(model_scores, threshold)
    baseline_metrics = measure(scored.baseline, scored.baseline_threshold)
    curves = {"model": model_scores, scored.baseline_name: scored.baseline}
    champion_scores: dict[str, np.ndarray] = {}

    def measure_scores(scorer: ChampionScorer) -> dict[str, float]:
        scores = np.asarray(score_champion(scorer), dtype="float64").reshape(-1)
        curves[f"champion v{scorer.version}"] = champion_scores["scores"] = scores
        return measure(scores, scorer.threshold)

    champion_metrics, champion_error = measure_champion(champion, measure_scores)
    slices = compute_slice_metrics(scored.rows, y_test, model_scores, threshold, config.features.slices)
    gate, primary = config.params.gate, config.params.gate.primary_metric

    def primary_of(scores: np.ndarray, cut: float):
        return lambda rows: compute_binary_metrics(y_test[rows], scores[rows], cut, **options, only=[primary])[primary]

    rounds, seed = config.bootstrap_rounds, config.seed
    baseline_comparison = paired_on_rows(primary, np.arange(len(y_test)), primary_of(model_scores, threshold),
                                         primary_of(scored.baseline, scored.baseline_threshold), rounds, seed)
    champion_comparison, champion_slices, compared = None, [], None
    if champion is not None and "scores" in champion_scores:
        compared = rows_unseen_by(scored.keys, champion.seen_keys, len(y_test), champion.seen_note)
        champion_comparison, why = compare_with_champion(
            primary, compared, gate.min_compare_rows, primary_of(model_scores, threshold),
            primary_of(champion_scores["scores"], champion.threshold), rounds, seed)
        champion_error = champion_error or why
        rows = compared.positions
        champion_slices = compute_slice_metrics(scored.rows.iloc[rows].reset_index(drop=True), y_test[rows],
                                                champion_scores["scores"][rows], champion.threshold, config.features.slices)
    plots = write_binary_plots(y_test, curves, threshold, plots_dir)
    plots.append(write_gains_plot(y_test, curves, plots_dir))
    names = gate_metric_names(config)
    intervals = bootstrap_intervals(
        len(y_test),
        lambda index: compute_binary_metrics(y_test[index], model_scores[index], threshold, **options, only=names),
        names, rounds, seed,
    )
    return Evaluation(
        metrics=metrics, baseline_name=scored.baseline_name, baseline_metrics=baseline_metrics,
        champion_version=champion.version if champion else None, champion_metrics=champion_metrics,
        champion_error=champion_error, slices=slices, plots=plots, threshold=threshold,
        test_rows=len(y_test), seconds=time.perf_counter() - started, intervals=intervals,
        champion_comparison=champion_comparison, baseline_comparison=baseline_comparison,
        champion_slices=champion_slices, baseline_note=scored.baseline_note, **compared_fields(compared),
    )


BINARY = BinaryTask()
TASK = BINARY
