"""Multiclass classification (customer-service intents): the class name and its probability per row."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from components.config import Section
from components.data.splits import check_split_classes
from components.evaluation.bootstrap import bootstrap_intervals
from components.evaluation.compare import compare_with_champion, paired_on_rows, rows_unseen_by
from components.evaluation.multiclass import (
    compute_multiclass_metrics,
    compute_multiclass_slices,
    length_bucket,
    write_multiclass_plots,
)
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
from components.training.fit import TrainedModel, distribution_scope, fit_with_params

METRICS = ("accuracy", "macro_f1", "weighted_f1", "top3_accuracy", "log_loss")
SLICE_METRICS = ("accuracy", "macro_f1", "weighted_f1")


class MulticlassEvaluate(Section):
    """The ``evaluate`` section of a multiclass use case."""

    baseline_c: float
    # texts are sliced by word count at these edges (the ``length`` slice)
    length_buckets: tuple[int, ...]
    # the share of rows held out for testing when the data has no official test split
    test_fraction: float = 0.2


def class_codes(classes: tuple[str, ...], label: str):
    """Encode the label column as integer codes of ``classes`` (unknown classes: -1)."""
    index = {c: i for i, c in enumerate(classes)}

    def encode(part: pd.DataFrame) -> np.ndarray:
        return part[label].astype(str).map(index).fillna(-1).astype("int64").to_numpy()

    return encode


class MulticlassTask(ConfiguredSplit):
    """Classes from the training split, softmax models with a class-name serving head, macro-F1."""

    name = "multiclass"
    # whether its use cases learn a label column (validate.label)
    needs_label = True
    evaluate_type = MulticlassEvaluate

    def metric_names(self, evaluate: MulticlassEvaluate) -> frozenset[str]:
        return frozenset(METRICS)

    def slice_metric_names(self, evaluate: MulticlassEvaluate) -> frozenset[str]:
        return frozenset(SLICE_METRICS)

    def train(self, use_case, config, frame: pd.DataFrame) -> TrainedModel:
        splits = self.split(frame, config)
        # the model learns the training split's classes: a validation or test class it never saw is an error
        check_split_classes(splits, config.label, config.name)
        classes = tuple(sorted(str(c) for c in splits.train[config.label].unique()))
        with distribution_scope(config.distribute):
            model = use_case.builder.build(splits.train, config.features, config.train, config.seed,
                                         label=config.label, classes=classes)
        class_weight = use_case.class_weight(splits.train, config) if use_case.class_weight else None
        fit_model = use_case.builder.fit or fit_with_params
        fit = fit_model(model, splits.train, splits.validation, class_codes(classes, config.label),
                        config.train, config.seed, class_weight)
        serving = use_case.builder.make_serving(model, classes) if use_case.builder.make_serving else model
        return TrainedModel(model=model, splits=splits, fit=fit, threshold=float("nan"), serving=serving, classes=classes)

    def evaluate(self, use_case, config, trained: TrainedModel, plots_dir: Path,
                 champion: ChampionScorer | None = None) -> Evaluation:
        """Model vs same-run baseline vs champion on the test split."""
        started = time.perf_counter()
        test = trained.splits.test
        y_test = test[config.label].astype(str).to_numpy()
        outputs = RowScorer(trained.serving).score_outputs(test)
        classes = list(trained.classes)
        metrics = compute_multiclass_metrics(y_test, outputs["label"], outputs["probabilities"], classes)
        baseline = use_case.fit_baseline(trained.splits.train, config)
        baseline_probabilities = baseline.estimator.predict_proba(baseline.features(test))
        baseline_classes = list(baseline.estimator.classes_)
        baseline_predicted = np.asarray(baseline_classes)[np.argmax(baseline_probabilities, axis=1)]
        baseline_metrics = compute_multiclass_metrics(y_test, baseline_predicted, baseline_probabilities, baseline_classes)
        champion_labels: dict[str, np.ndarray] = {}

        def measure_labels(scorer: ChampionScorer) -> dict[str, float]:
            champion_labels["label"] = np.asarray(scorer.score(test)["label"]).astype(str).reshape(-1)
            return compute_multiclass_metrics(y_test, champion_labels["label"])

        champion_metrics, champion_error = measure_champion(champion, measure_labels)
        frame = test.assign(length=length_bucket(test[config.features.text], config.evaluate.length_buckets))
        slices = compute_multiclass_slices(frame, y_test, outputs["label"], config.features.slices)
        plots = write_multiclass_plots(y_test, outputs["label"], classes, plots_dir)
        # one shared vocabulary of integer codes: the same metrics, computed fast on resamples
        predicted = np.asarray(outputs["label"]).astype(str).reshape(-1)
        arrays = {"truth": y_test.astype(str), "model": predicted, "baseline": baseline_predicted.astype(str),
                  **({"champion": champion_labels["label"]} if "label" in champion_labels else {})}
        vocabulary = np.unique(np.concatenate(list(arrays.values())))
        codes = {name: np.searchsorted(vocabulary, values) for name, values in arrays.items()}
        gate, primary = config.params.gate, config.params.gate.primary_metric
        rounds, seed = config.bootstrap_rounds, config.seed

        def primary_of(name: str):
            return lambda rows: compute_multiclass_metrics(codes["truth"][rows], codes[name][rows], only=[primary])[primary]

        baseline_comparison = paired_on_rows(primary, np.arange(len(test)), primary_of("model"), primary_of("baseline"),
                                             rounds, seed) if primary in SLICE_METRICS else None
        champion_comparison, champion_slices, compared = None, [], None
        if champion is not None and "champion" in codes:
            compared = rows_unseen_by(trained.splits.keys["test"] if trained.splits.keys else None, champion.seen_keys,
                                      len(test), champion.seen_note)
            if primary in SLICE_METRICS:
                champion_comparison, why = compare_with_champion(primary, compared, gate.min_compare_rows,
                                                                 primary_of("model"), primary_of("champion"), rounds, seed)
                champion_error = champion_error or why
            rows = compared.positions
            champion_slices = compute_multiclass_slices(frame.iloc[rows].reset_index(drop=True), y_test[rows],
                                                        champion_labels["label"][rows], config.features.slices)
        names = gate_metric_names(config)
        intervals = bootstrap_intervals(
            len(test), lambda index: compute_multiclass_metrics(codes["truth"][index], codes["model"][index], only=names),
            names, rounds, seed,
        )
        return Evaluation(
            metrics=metrics, baseline_name=baseline.name, baseline_metrics=baseline_metrics,
            champion_version=champion.version if champion else None, champion_metrics=champion_metrics,
            champion_error=champion_error, slices=slices, plots=plots, threshold=float("nan"),
            test_rows=len(test), seconds=time.perf_counter() - started, intervals=intervals,
            champion_comparison=champion_comparison, baseline_comparison=baseline_comparison,
            champion_slices=champion_slices, **compared_fields(compared),
        )

    def drift_score(self, scorer):
        """The champion's probability of its top class per row."""
        return champion_scores(scorer)

    def business_sentences(self, evaluation: Evaluation, terms: Mapping[str, str]) -> list[str]:
        """The share of messages routed to the right class, vs the champion."""
        if "accuracy" not in evaluation.metrics:
            return []
        champion = evaluation.champion_metrics or {}
        things, wins = terms.get("rows", "rows"), terms.get("positives", "positives")
        text = f"{evaluation.metrics['accuracy']:.1%} of {things} are routed to the right {wins}"
        text += f", vs {champion['accuracy']:.1%} with the champion." if "accuracy" in champion else "."
        return [text]


MULTICLASS = MulticlassTask()
TASK = MULTICLASS
