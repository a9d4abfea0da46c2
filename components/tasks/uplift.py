"""Uplift (campaign): a randomised message, two outcomes in a funnel (visit, then conversion) and
the customer's response to the message itself.

The model scores pCTR, pCVR and pCTCVR in the row's arm and the uplift of the message; its
same-run peer is gradient boosting per target (the CVR model on visited rows only). Visit AUC,
conversion AUC over every row, CVR AUC on visited rows, their PR-AUCs, the Qini area (AUUC) and
the extra conversions per 1,000 e-mails in the top x% by uplift are measured on the test rows,
each compared with the peer on the same rows (paired bootstrap).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import model_validator

from components.config import Section
from components.errors import DataValidationError
from components.evaluation.bootstrap import bootstrap_intervals
from components.evaluation.campaign import (
    RANDOM_METRIC,
    Outcomes,
    compute_campaign_metrics,
    metric_names,
)
from components.evaluation.compare import compare_with_champion, paired_on_rows, rows_unseen_by
from components.evaluation.plots import write_qini_plot
from components.evaluation.report import (
    ChampionScorer,
    Evaluation,
    compared_fields,
    gate_metric_names,
    measure_champion,
)
from components.models.scorer import RowScorer
from components.tasks.base import ConfiguredSplit
from components.training.fit import TrainedModel, distribution_scope, fit_model

SCORES = ("pctr", "pcvr", "pctcvr", "uplift", "visit_uplift")
SLICE_METRICS = ("visit_roc_auc", "ctcvr_roc_auc")
PEER_PREFIX = "vs_peer_"


class UpliftEvaluate(Section):
    """The ``evaluate`` section of an uplift use case."""

    test_fraction: float
    # shares of customers targeted by uplift whose extra conversions per 1,000 messages are reported
    target_fractions: tuple[float, ...]
    # metrics also compared with the same-run peer (paired bootstrap: vs_peer_<metric> = model - peer)
    compared_metrics: tuple[str, ...] = ()
    # the gradient-boosting peers: boosting rounds (at most; early-stopped) and learning rate
    baseline_max_iter: int = 300
    baseline_learning_rate: float = 0.05
    baseline_threads: int = 1
    # each side needs this many conversions in train, validation and test, or the run stops
    min_conversions_per_split: int = 5

    @model_validator(mode="after")
    def _known_compared_metrics(self) -> UpliftEvaluate:
        unknown = [m for m in self.compared_metrics if m not in metric_names(self.target_fractions)]
        if unknown:
            raise ValueError(f"compared_metrics {unknown} are not campaign metrics; known: "
                             f"{sorted(metric_names(self.target_fractions))}")
        return self


def outcomes_of(frame: pd.DataFrame, features) -> Outcomes:
    return Outcomes(frame[features.visit].astype(int).to_numpy(), frame[features.conversion].astype(int).to_numpy(),
                    frame[features.arm].astype(str).isin(features.treatment_arms).to_numpy())


def as_score_arrays(scored) -> dict[str, np.ndarray]:
    """The named outputs of a model (a dict of arrays, or the pyfunc's frame) as flat arrays."""
    if isinstance(scored, pd.DataFrame):
        scored = {c: scored[c].to_numpy() for c in scored.columns}
    if not isinstance(scored, Mapping) or not set(SCORES) <= set(scored):
        raise ValueError(f"the model does not return the campaign outputs {list(SCORES)}")
    return {name: np.asarray(scored[name], dtype="float64").reshape(-1) for name in SCORES}


def check_campaign_splits(splits, features, minimum: int, use_case: str) -> None:
    """Every side holds every arm and at least ``minimum`` conversions (counts only in the message)."""
    problems = []
    arms = {features.control_arm, *features.treatment_arms}
    for side, part in (("train", splits.train), ("validation", splits.validation), ("test", splits.test)):
        missing = len(arms - set(part[features.arm].astype(str).unique()))
        if missing:
            problems.append(f"the {side} split ({len(part)} rows) lacks {missing} of the {len(arms)} arms of {features.arm!r}")
        conversions = int(part[features.conversion].astype(int).sum())
        if conversions < minimum:
            problems.append(f"the {side} split has {conversions} conversions (< evaluate.min_conversions_per_split "
                            f"{minimum}); add rows or lower the fraction")
    if problems:
        raise DataValidationError(use_case, problems)


def slice_rows(frame: pd.DataFrame, outcomes: Outcomes, scores: Mapping[str, np.ndarray], columns) -> list[dict]:
    """Per value of each slice column: rows, visits, conversions and the two AUCs (None: undefined)."""
    rows = []
    for column in columns:
        values = frame[column].astype(str).to_numpy()
        for value in sorted(set(values)):
            index = np.flatnonzero(values == value)
            part = outcomes.take(index)
            row = {"slice": column, "value": value, "rows": len(index), "visits": int(part.visit.sum()),
                   "conversions": int(part.conversion.sum())}
            for name in SLICE_METRICS:
                try:
                    row[name] = compute_campaign_metrics(outcomes, scores, (), index, only=[name])[name]
                except ValueError:
                    row[name] = None
            rows.append(row)
    return rows


class UpliftTask(ConfiguredSplit):
    """Stable split (stratified by conversion), ESMM training on [visit, conversion], no threshold."""

    name = "uplift"
    needs_label = True
    evaluate_type = UpliftEvaluate

    def metric_names(self, evaluate: UpliftEvaluate) -> frozenset[str]:
        return metric_names(evaluate.target_fractions) | {PEER_PREFIX + m for m in evaluate.compared_metrics}

    def slice_metric_names(self, evaluate: UpliftEvaluate) -> frozenset[str]:
        return frozenset(SLICE_METRICS)

    def train(self, use_case, config, frame: pd.DataFrame) -> TrainedModel:
        from components.models.campaign import outcome_labels

        splits = self.split(frame, config)
        check_campaign_splits(splits, config.features, config.evaluate.min_conversions_per_split, config.name)
        with distribution_scope(config.distribute):
            training, serving = use_case.builder.build(splits.train, config.features, config.train, config.seed,
                                                       label=config.label)
        t = config.train
        fit = fit_model(training, splits.train, splits.validation, outcome_labels(config.features), t.batch_size,
                        t.max_epochs, t.early_stopping_patience, config.seed, monitor=t.early_stopping_monitor,
                        reduce_lr_factor=t.reduce_lr_factor)
        return TrainedModel(model=serving, splits=splits, fit=fit, threshold=float("nan"))

    def evaluate(self, use_case, config, trained: TrainedModel, plots_dir: Path,
                 champion: ChampionScorer | None = None) -> Evaluation:
        """Model vs boosted peers vs champion on the test rows: metrics, paired intervals, Qini plot."""
        started = time.perf_counter()
        evaluate, gate = config.evaluate, config.params.gate
        test = trained.splits.test
        outcomes = outcomes_of(test, config.features)
        fractions = evaluate.target_fractions
        model_scores = as_score_arrays(RowScorer(trained.model).score_outputs(test))
        peer = use_case.fit_baseline(trained.splits.train, config)
        peer_scores = as_score_arrays(peer.score(test))
        metrics = compute_campaign_metrics(outcomes, model_scores, fractions)
        baseline_metrics = compute_campaign_metrics(outcomes, peer_scores, fractions)
        rounds, seed, every = config.bootstrap_rounds, config.seed, np.arange(len(test))

        def metric_of(scores: Mapping[str, np.ndarray], name: str):
            return lambda rows: compute_campaign_metrics(outcomes, scores, fractions, rows, only=[name])[name]

        comparisons = {name: paired_on_rows(name, every, metric_of(model_scores, name), metric_of(peer_scores, name),
                                            rounds, seed)
                       for name in dict.fromkeys((gate.primary_metric, *evaluate.compared_metrics))}
        names = list(dict.fromkeys((*gate_metric_names(config), *evaluate.compared_metrics)))
        intervals = bootstrap_intervals(
            len(test), lambda rows: compute_campaign_metrics(outcomes, model_scores, fractions, rows, only=names),
            names, rounds, seed)
        for name in evaluate.compared_metrics:
            metrics[PEER_PREFIX + name] = comparisons[name].delta
            if np.isfinite(comparisons[name].low):
                intervals[PEER_PREFIX + name] = (comparisons[name].low, comparisons[name].high)
        curves = {"model": model_scores["uplift"], peer.name: peer_scores["uplift"]}
        held: dict[str, dict[str, np.ndarray]] = {}

        def measure(scorer: ChampionScorer) -> dict[str, float]:
            held["scores"] = as_score_arrays(scorer.score(test))
            curves[f"champion v{scorer.version}"] = held["scores"]["uplift"]
            return compute_campaign_metrics(outcomes, held["scores"], fractions)

        champion_metrics, champion_error = measure_champion(champion, measure)
        champion_comparison, compared = None, None
        if champion is not None and "scores" in held:
            keys = trained.splits.keys["test"] if trained.splits.keys else None
            compared = rows_unseen_by(keys, champion.seen_keys, len(test), champion.seen_note)
            champion_comparison, why = compare_with_champion(
                gate.primary_metric, compared, gate.min_compare_rows, metric_of(model_scores, gate.primary_metric),
                metric_of(held["scores"], gate.primary_metric), rounds, seed)
            champion_error = champion_error or why
        return Evaluation(
            metrics=metrics, baseline_name=peer.name, baseline_metrics=baseline_metrics,
            champion_version=champion.version if champion else None, champion_metrics=champion_metrics,
            champion_error=champion_error, slices=slice_rows(test, outcomes, model_scores, config.features.slices),
            plots=[write_qini_plot(outcomes.conversion, outcomes.treated, curves, plots_dir)],
            threshold=float("nan"), test_rows=len(test), seconds=time.perf_counter() - started, intervals=intervals,
            champion_comparison=champion_comparison, baseline_comparison=comparisons[gate.primary_metric],
            **compared_fields(compared),
        )

    def drift_score(self, scorer):
        """The champion's pCTCVR (conversion probability in the row's arm) per row."""
        def score(frame: pd.DataFrame):
            outputs = scorer.score_outputs({name: frame[name].to_numpy() for name in scorer.spec})
            return outputs["pctcvr"].reshape(-1) if "pctcvr" in outputs else None
        return score

    def business_sentences(self, evaluation: Evaluation, terms: Mapping[str, str]) -> list[str]:
        """Extra conversions per 1,000 messages when targeting by uplift vs at random; visitors' buyers ranked."""
        m, b, ci = evaluation.metrics, evaluation.baseline_metrics, evaluation.intervals
        messages, wins = terms.get("treated", "messages"), terms.get("positives", "conversions")
        things = terms.get("rows", "customers")
        sentences = []
        random = m.get(RANDOM_METRIC, float("nan"))
        for name in sorted(n for n in m if n.startswith("conversions_per_1000_top_")):
            share = name.removeprefix("conversions_per_1000_top_").removesuffix("pct")
            interval = f" (95% CI {ci[name][0]:+.1f} to {ci[name][1]:+.1f})" if name in ci else ""
            sentences.append(
                f"Sending {messages} to the top {share}% of {things} by predicted uplift yields {m[name]:+.1f} extra "
                f"{wins} per 1,000 {messages}{interval}, vs {random:+.1f} for sending them at random and "
                f"{b.get(name, float('nan')):+.1f} when the top {share}% are picked by the peer ({evaluation.baseline_name}).")
        if "cvr_roc_auc" in m:
            peer = f"{PEER_PREFIX}cvr_roc_auc"
            interval = f" (Δ {m[peer]:+.3f}, 95% CI {ci[peer][0]:+.3f} to {ci[peer][1]:+.3f})" if peer in ci else ""
            sentences.append(f"Among the {things} who visited, the model ranks the buyers with AUC {m['cvr_roc_auc']:.3f}, "
                             f"vs {b.get('cvr_roc_auc', float('nan')):.3f} for a model fitted on visitors only{interval}.")
        if "ctcvr_roc_auc" in m:
            sentences.append(f"Over all {things}, conversion is ranked with AUC {m['ctcvr_roc_auc']:.3f} "
                             f"(peer {b.get('ctcvr_roc_auc', float('nan')):.3f}); visits with AUC "
                             f"{m.get('visit_roc_auc', float('nan')):.3f} (peer {b.get('visit_roc_auc', float('nan')):.3f}).")
        return sentences


UPLIFT = UpliftTask()
TASK = UPLIFT
