"""Slot policy (slots): a click model fills ad positions, and the policy it makes is judged by
off-policy evaluation on logged impressions, never by its own predictions.

Train: the impressions a uniform-random policy logged (``features.train_policy``), split by the
use case's ``split``; the click model learns from the train side. Test: the held-out logged
impressions, on which IPW, self-normalised IPW and doubly robust estimate the CTR the new policy
would get (bootstrap intervals), and the logging policy's own CTR is the peer. The rows of a
second logged policy (``features.truth_policy``) are the ground truth: its CTR is estimated from
the same held-out random impressions and compared with its on-policy CTR (relative error of each
estimator), the dataset's published protocol.

The gate's primary metric names the estimator (``ctr_ipw``, ``ctr_snipw`` or ``ctr_dr``): the new
policy is promoted only when the 95% interval of (estimate - logged CTR) lies above 0
(``baseline_policy: superior``) and the interval of its estimate, less the champion's recorded
estimate, lies above ``min_delta``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from components.config import Section
from components.data.splits import Splits, row_keys, split_rows, split_seed
from components.evaluation.bootstrap import bootstrap_intervals
from components.evaluation.compare import paired_bootstrap
from components.evaluation.plots import write_policy_estimates_plot
from components.evaluation.policy import (
    ESTIMATORS,
    LoggedFeedback,
    against_fixed,
    context_free_distribution,
    effective_sample_size,
    estimate_all,
    estimate_ctr,
    ground_truth_metrics,
    logged_ctr,
    per_thousand,
    position_slices,
)
from components.evaluation.report import ChampionScorer, Evaluation
from components.models.scorer import RowScorer
from components.training.fit import FitResult, TrainedModel, fit_with_params

TRUTH = "ground_truth"


class PolicyEvaluate(Section):
    """The ``evaluate`` section of a slot-policy use case."""

    # of the train policy's impressions, held out for off-policy evaluation
    test_fraction: float
    # the ground-truth policy's probabilities per position and item, from its own logs:
    # frequency (how often it chose each item: unbiased time average) | mean_propensity
    truth_distribution: Literal["frequency", "mean_propensity"] = "frequency"
    # fewer effective impressions than this (the importance weights' (sum w)^2 / sum w^2): the
    # review says the logs barely overlap the policy and the interval is not to be trusted
    min_effective_impressions: float = 500.0


def logged_rows(frame: pd.DataFrame, features, policy: str) -> pd.DataFrame:
    if not policy:
        return frame.iloc[0:0]
    return frame[frame[features.policy].astype(str).eq(policy).to_numpy()].reset_index(drop=True)


def policy_feedback(outputs: Mapping[str, np.ndarray], rows: pd.DataFrame, features,
                    item_ids: tuple[int, ...], distribution: np.ndarray | None = None) -> LoggedFeedback:
    """The logged impressions seen by a target policy: the model's (``distribution`` None) or a
    context-free one ((positions, items) probabilities), with the click model's rates for DR."""
    from components.models.slots import item_positions

    items, positions = item_positions(rows, features, item_ids)
    if np.any(items < 0):
        raise ValueError("a logged item is not in the model's item table; list every item in item_context.csv")
    rates = np.asarray(outputs["click_rates"], dtype="float64")
    every = np.arange(len(rows))
    per_item = rates[every, positions, :]
    target = (np.asarray(outputs["distribution"], dtype="float64")[every, positions, :] if distribution is None
              else distribution[positions, :])
    return LoggedFeedback(clicks=rows[features.click].to_numpy(dtype="float64"),
                          logged=rows[features.propensity].to_numpy(dtype="float64"),
                          target=target[every, items], expected=per_item[every, items],
                          target_expected=(target * per_item).sum(axis=1))


class PolicyTask:
    """Train and test: the random policy's impressions; plus the ground-truth policy's rows."""

    name = "policy"
    needs_label = True
    evaluate_type = PolicyEvaluate

    def metric_names(self, evaluate: PolicyEvaluate) -> frozenset[str]:
        names = {f"ctr_{e}" for e in ESTIMATORS} | {f"{TRUTH}_ctr_{e}" for e in ESTIMATORS}
        names |= {f"{TRUTH}_rel_error_{e}" for e in ESTIMATORS}
        return frozenset(names | {"logged_ctr", "impressions", "clicks", "effective_impressions", "min_effective_impressions",
                                  f"{TRUTH}_on_policy_ctr", f"{TRUTH}_impressions"})

    def slice_metric_names(self, evaluate: PolicyEvaluate) -> frozenset[str]:
        return frozenset({"logged_ctr", *(f"ctr_{e}" for e in ESTIMATORS)})

    def split(self, frame: pd.DataFrame, config) -> Splits:
        features = config.features
        logged = logged_rows(frame, features, features.train_policy)
        splits = split_rows(logged, config.params.split, config.evaluate.test_fraction, config.train.validation_fraction,
                            split_seed(config), config.label)
        truth = logged_rows(frame, features, features.truth_policy)
        test = pd.concat([splits.test, truth], ignore_index=True)
        keys = dict(splits.keys or {})
        keys["test"] = row_keys(test, config.params.split.key_columns)
        return Splits(splits.train, splits.validation, test, keys=keys)

    def train(self, use_case, config, frame: pd.DataFrame) -> TrainedModel:
        from components.models.slots import training_rows

        splits = self.split(frame, config)
        models = use_case.builder.build(splits.train, config.features, config.train, config.seed, label=config.label,
                                        items=frame)
        started = time.perf_counter()
        fit = fit_with_params(models.training, training_rows(splits.train, config.features, models.item_ids),
                              training_rows(splits.validation, config.features, models.item_ids),
                              config.features.click, config.train, config.seed)
        fit = FitResult(models.serving, fit.epochs_run, fit.best_epoch, time.perf_counter() - started, fit.history)
        return TrainedModel(model=models.analysis, splits=splits, fit=fit, threshold=float("nan"), serving=models.serving)

    def evaluate(self, use_case, config, trained: TrainedModel, plots_dir: Path,
                 champion: ChampionScorer | None = None) -> Evaluation:
        started = time.perf_counter()
        features, primary = config.features, config.params.gate.primary_metric
        estimator = primary.removeprefix("ctr_") if primary.removeprefix("ctr_") in ESTIMATORS else "snipw"
        item_ids = tuple(trained.serving.get_layer("slot_policy").item_ids)
        logged = logged_rows(trained.splits.test, features, features.train_policy)
        truth = logged_rows(trained.splits.test, features, features.truth_policy)
        outputs = RowScorer(trained.model).score_outputs(logged)
        mine = policy_feedback(outputs, logged, features, item_ids)
        clicks = mine.clicks
        metrics = {**estimate_all(mine), "logged_ctr": logged_ctr(clicks), "impressions": float(mine.rows),
                   "clicks": float(clicks.sum()), "effective_impressions": effective_sample_size(mine),
                   "min_effective_impressions": config.evaluate.min_effective_impressions}
        checked = None
        if len(truth):
            distribution = context_free_distribution(truth, features.position, features.item, features.propensity,
                                                     features.positions, list(item_ids), config.evaluate.truth_distribution)
            checked = policy_feedback(outputs, logged, features, item_ids, distribution)
            metrics |= ground_truth_metrics(checked, logged_ctr(truth[features.click].to_numpy()), TRUTH)
            metrics[f"{TRUTH}_impressions"] = float(len(truth))
        peer = use_case.fit_baseline(trained.splits.train, config)
        baseline_metrics = {name: metrics["logged_ctr"] for name in ("logged_ctr", *(f"ctr_{e}" for e in ESTIMATORS))}
        rounds, seed = config.bootstrap_rounds, config.seed

        def measure(rows: np.ndarray) -> dict[str, float]:
            return {**estimate_all(mine, rows), **(estimate_all(checked, rows, f"{TRUTH}_ctr_") if checked else {})}

        names = [*(f"ctr_{e}" for e in ESTIMATORS), *((f"{TRUTH}_ctr_{e}" for e in ESTIMATORS) if checked else ())]
        intervals = bootstrap_intervals(mine.rows, measure, names, rounds, seed)
        baseline_comparison = paired_bootstrap(
            primary, mine.rows, lambda index: (estimate_ctr(estimator, mine, index), peer.ctr(clicks, index)), rounds, seed)
        champion_metrics, champion_error, champion_comparison = None, None, None
        if champion is not None:
            recorded = (champion.recorded_metrics or {}).get(primary)
            if recorded is None or not np.isfinite(recorded):
                champion_error = f"champion v{champion.version} recorded no {primary}; a reviewer compares the policies"
            else:
                champion_metrics = {primary: float(recorded)}
                champion_comparison = against_fixed(primary, estimator, mine, float(recorded), rounds, seed)
        plots = [write_policy_estimates_plot({f"ctr_{e}": metrics[f"ctr_{e}"] for e in ESTIMATORS}, intervals,
                                             metrics["logged_ctr"], plots_dir)]
        return Evaluation(
            metrics=metrics, baseline_name=peer.name, baseline_metrics=baseline_metrics,
            champion_version=champion.version if champion else None, champion_metrics=champion_metrics,
            champion_error=champion_error, slices=position_slices(logged[features.position].to_numpy(), clicks, mine, estimator),
            plots=plots, threshold=float("nan"), test_rows=mine.rows, seconds=time.perf_counter() - started,
            intervals=intervals, baseline_comparison=baseline_comparison, champion_comparison=champion_comparison,
            champion_note=("the champion's estimate as its own run recorded it (a fixed number: the interval is the "
                           "challenger's, less that estimate)") if champion_comparison else "",
        )

    def drift_score(self, scorer):
        """The champion's click rate of the item it puts into position 1: a shift of it is drift."""
        def score(frame: pd.DataFrame):
            outputs = scorer.score_outputs({name: frame[name].astype(str).to_numpy() for name in scorer.spec})
            return np.asarray(outputs["scores"])[:, 0] if "scores" in outputs else None
        return score

    def business_sentences(self, evaluation: Evaluation, terms: Mapping[str, str]) -> list[str]:
        """Impressions, clicks, the estimates per 1,000 impressions, the verdict in words, and
        how far each estimator was from the ground truth."""
        m, peer = evaluation.metrics, evaluation.baseline_comparison
        rows, positives = terms.get("rows", "impressions"), terms.get("positives", "clicks")
        if "impressions" not in m:
            return []
        sentences = [f"On {int(m['impressions']):,} held-out {rows} of {evaluation.baseline_name} "
                     f"({int(m['clicks'])} {positives}), the logged policy got {per_thousand(m['logged_ctr'])} "
                     f"{positives} per 1,000 {rows}."]
        shown = []
        for name in ESTIMATORS:
            low, high = evaluation.intervals.get(f"ctr_{name}", (float("nan"), float("nan")))
            shown.append(f"{name.upper()} {per_thousand(m[f'ctr_{name}'])} [95% CI {per_thousand(low)}, {per_thousand(high)}]")
        sentences.append(f"The new policy would get, per 1,000 {rows}: {'; '.join(shown)} — resting on an effective "
                         f"{m['effective_impressions']:,.0f} {rows} (where it agrees with what was logged).")
        if m["effective_impressions"] < m.get("min_effective_impressions", 0.0):
            sentences.append(f"The logs barely overlap this policy: its estimate rests on {m['effective_impressions']:,.0f} "
                             f"effective {rows}, fewer than {m['min_effective_impressions']:,.0f}, so its interval "
                             f"understates the uncertainty (a few {positives} more or less would change it a lot).")
        if peer is not None:
            gap = (f"the 95% interval of its gain over the logged policy is [{per_thousand(peer.low)}, "
                   f"{per_thousand(peer.high)}] {positives} per 1,000 {rows} ({peer.metric})")
            if np.isfinite(peer.low) and peer.low > 0:
                sentences.append(f"There is evidence that the new policy gets more {positives} than the logged one: {gap}.")
            else:
                sentences.append(f"Not enough evidence that the new policy gets more {positives} than the logged one: "
                                 f"{gap}, which does not lie above 0. Nothing should be promoted on this evidence; "
                                 f"more logged {rows} would narrow the interval.")
        if f"{TRUTH}_on_policy_ctr" in m:
            errors = "; ".join(f"{name.upper()} {per_thousand(m[f'{TRUTH}_ctr_{name}'])} (relative error "
                               f"{m[f'{TRUTH}_rel_error_{name}']:.2f})" for name in ESTIMATORS)
            sentences.append(f"Estimator check on the data's ground truth: from the same random {rows}, the second "
                             f"logged policy's CTR is estimated at {errors} per 1,000 {rows}, against its on-policy "
                             f"{per_thousand(m[f'{TRUTH}_on_policy_ctr'])} on {int(m[f'{TRUTH}_impressions']):,} {rows}.")
        return sentences


POLICY = PolicyTask()
TASK = POLICY
