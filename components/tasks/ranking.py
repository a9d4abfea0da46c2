"""Ranking (recommendation): the top-k unseen items per user, judged by nDCG, MAP, precision, recall."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from components.config import Section
from components.evaluation.bootstrap import bootstrap_intervals
from components.evaluation.compare import compare_with_champion, paired_on_rows, rows_unseen_by
from components.evaluation.ranking import (
    activity_bucket,
    activity_slices,
    champion_items,
    per_user_ranking_metrics,
    ranking_metrics,
    summarize_ranking,
    write_ranking_plots,
)
from components.evaluation.report import (
    ChampionScorer,
    Evaluation,
    compared_fields,
    gate_metric_names,
    measure_champion,
)
from components.models.recommender import Interactions, RecommendTrain, build_serving
from components.models.scorer import RowScorer
from components.tasks.base import ConfiguredSplit
from components.training.fit import FitResult, TrainedModel, log_epoch


class RankingEvaluate(Section):
    """The ``evaluate`` section of a ranking use case."""

    test_fraction: float
    top_k: int
    # users are sliced by their number of training interactions at these edges
    activity_buckets: tuple[int, ...]
    # the EASE baseline: L2 penalty, and the most popular items it models (memory ~ items² x 4 bytes)
    baseline_l2: float = 500.0
    baseline_max_items: int = 20000


def validation_ndcg(network, train: Interactions, validation: Interactions, k: int) -> float:
    """nDCG@k of held-out validation items, training items masked (the serving rule)."""
    users = np.flatnonzero(validation.matrix.sum(axis=1) > 0)
    k = min(k, train.matrix.shape[1])
    # the first items columns rank (a hybrid network appends its content-only logits)
    logits = np.array(network(train.matrix[users], training=False))[:, : train.matrix.shape[1]]
    logits[train.matrix[users] > 0] = -np.inf
    top = np.argsort(-logits, axis=1)[:, :k]
    relevant = [set(np.flatnonzero(row)) for row in validation.matrix[users]]
    return ranking_metrics(top, relevant, k, train.matrix.shape[1])[f"ndcg_at_{k}"]


def fit_recommender(network, train: Interactions, validation: Interactions, params: RecommendTrain, seed: int):
    """Fit on training histories (target = the bag: -sum of log softmax over the user's items,
    as in Mult-DAE); every ``eval_every_epochs`` epochs, measure nDCG@top_k on held-out validation
    items and stop after ``early_stopping_patience`` measurements without improvement, keeping the
    best weights. The held-out likelihood is a poor stopping signal here: it bottoms out within a
    few epochs while the ranking keeps improving for dozens."""
    import keras

    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    best, best_epoch, best_weights, waited, epoch = -1.0, 0, network.get_weights(), 0, 0
    history: dict[str, list[float]] = {"loss": [], "val_ndcg": []}
    while epoch < params.max_epochs and waited < params.early_stopping_patience:
        step = min(params.eval_every_epochs, params.max_epochs - epoch)
        result = network.fit(train.matrix, train.matrix, batch_size=params.batch_size, epochs=step, shuffle=True, verbose=0)
        epoch += step
        losses = result.history["loss"]
        if not np.all(np.isfinite(losses)):
            raise FloatingPointError("training loss became NaN/inf; lower the learning rate in params.yaml")
        score = validation_ndcg(network, train, validation, params.top_k)
        history["loss"] += [float(v) for v in losses]
        history["val_ndcg"].append(score)
        log_epoch(network.name, epoch, params.max_epochs, {"loss": float(losses[-1]), "val_ndcg": score})
        if score > best:
            best, best_epoch, best_weights, waited = score, epoch, network.get_weights(), 0
        else:
            waited += 1
    network.set_weights(best_weights)
    return FitResult(
        model=network, epochs_run=epoch, best_epoch=best_epoch,
        fit_seconds=time.perf_counter() - started, history=history,
    )


class RankingTask(ConfiguredSplit):
    """Per-user split, a network refit on train + validation for the best epoch count, top-k lists."""

    name = "ranking"
    # whether its use cases learn a label column (validate.label)
    needs_label = False
    evaluate_type = RankingEvaluate

    def metric_names(self, evaluate: RankingEvaluate) -> frozenset[str]:
        k = evaluate.top_k
        return frozenset({f"{m}_at_{k}" for m in ("map", "ndcg", "precision", "recall")} | {"coverage"})

    def slice_metric_names(self, evaluate: RankingEvaluate) -> frozenset[str]:
        k = evaluate.top_k
        return frozenset({f"ndcg_at_{k}", f"precision_at_{k}", f"recall_at_{k}"})

    def train(self, use_case, config, frame: pd.DataFrame) -> TrainedModel:
        """Early-stop on held-out validation items, then refit on all training rows for the best
        epoch count; the serving model masks every item seen in training."""
        splits = self.split(frame, config)
        features, params = config.features, config.train
        seen_frame = pd.concat([splits.train, splits.validation], ignore_index=True)
        seen = Interactions.from_frame(seen_frame, features)
        train = Interactions.from_frame(splits.train, features, seen.users, seen.items)
        validation = Interactions.from_frame(splits.validation, features, seen.users, seen.items)
        probe_network = use_case.builder.build(seen_frame, features, params, config.seed, label=config.label)
        probe = fit_recommender(probe_network, train, validation, params, config.seed)
        final_params = params.model_copy(update={"max_epochs": probe.best_epoch})
        network = use_case.builder.build(seen_frame, features, final_params, config.seed, label=config.label)
        started = time.perf_counter()
        network.fit(seen.matrix, seen.matrix, batch_size=params.batch_size,
                    epochs=probe.best_epoch, shuffle=True, verbose=0)
        fit = FitResult(model=network, epochs_run=probe.epochs_run, best_epoch=probe.best_epoch,
                        fit_seconds=probe.fit_seconds + time.perf_counter() - started, history=probe.history)
        serving = build_serving(network, seen, features, params.top_k)
        return TrainedModel(model=network, splits=splits, fit=fit, threshold=float("nan"), serving=serving)

    def evaluate(self, use_case, config, trained: TrainedModel, plots_dir: Path,
                 champion: ChampionScorer | None = None) -> Evaluation:
        """Model vs same-run baseline vs champion: top-k of unseen items for every test user."""
        started = time.perf_counter()
        user, item, k = config.features.user, config.features.item, config.evaluate.top_k
        # every training row the model saw (validation rows were refit on), so seen items match serving
        train = pd.concat([trained.splits.train, trained.splits.validation], ignore_index=True)
        test = trained.splits.test
        users = np.sort(test[user].unique())
        truth_by_user = {u: set(group) for u, group in test.groupby(user)[item]}
        relevant = [truth_by_user[u] for u in users]
        catalogue = int(pd.concat([train[item], test[item]]).nunique())
        queries = pd.DataFrame({user: users})

        model_items = np.asarray(RowScorer(trained.serving).score_outputs(queries)["items"])[:, :k]
        per_user = per_user_ranking_metrics(model_items, relevant, k)
        metrics = summarize_ranking(per_user, model_items, catalogue)
        baseline = use_case.fit_baseline(train, config)
        baseline_items = baseline.recommend(users, k)
        baseline_per_user = per_user_ranking_metrics(baseline_items, relevant, k)
        baseline_metrics = summarize_ranking(baseline_per_user, baseline_items, catalogue)
        lists = {"model": model_items, baseline.name: baseline_items}

        def measure_lists(scorer: ChampionScorer) -> dict[str, float]:
            champion_list = champion_items(scorer.score(queries), len(users), k)
            lists[f"champion v{scorer.version}"] = champion_list
            return ranking_metrics(champion_list, relevant, k, catalogue)

        champion_metrics, champion_error = measure_champion(champion, measure_lists, "test users")
        activity = activity_bucket(train.groupby(user).size().reindex(users, fill_value=0), config.evaluate.activity_buckets)
        slices = activity_slices(per_user, model_items, catalogue, activity, config.evaluate.activity_buckets, k,
                                 {"baseline_ndcg": (baseline_per_user, baseline_items)})
        plots = write_ranking_plots(lists, relevant, k, catalogue, slices, plots_dir)
        gate, primary = config.params.gate, config.params.gate.primary_metric
        rounds, seed = config.bootstrap_rounds, config.seed
        intervals = bootstrap_intervals(
            len(users), partial(summarize_ranking, per_user, model_items, catalogue), gate_metric_names(config), rounds, seed,
        )

        def mean_of(values: dict[str, np.ndarray]):
            return lambda rows: float(np.nanmean(values[primary][rows])) if len(rows) else float("nan")

        by_user = np.arange(len(users))
        baseline_comparison = (paired_on_rows(primary, by_user, mean_of(per_user), mean_of(baseline_per_user), rounds, seed)
                               if primary in per_user else None)
        champion_comparison, champion_slices, compared = None, [], None
        champion_list = lists.get(f"champion v{champion.version}") if champion else None
        if champion is not None and champion_list is not None:
            # only the test interactions the champion never trained on count, for both models
            compared = rows_unseen_by(trained.splits.keys["test"] if trained.splits.keys else None, champion.seen_keys,
                                      len(test), champion.seen_note)
            kept = test.iloc[compared.positions]
            unseen = {u: set(group) for u, group in kept.groupby(user)[item]}
            unseen_relevant = [unseen.get(u, set()) for u in users]
            mine = per_user_ranking_metrics(model_items, unseen_relevant, k)
            theirs = per_user_ranking_metrics(champion_list, unseen_relevant, k)
            with_items = np.flatnonzero(np.array([bool(r) for r in unseen_relevant]))
            by_users = dataclasses.replace(compared, positions=with_items) if compared.seen_in_training is not None else compared
            if primary in mine:
                champion_comparison, why = compare_with_champion(primary, by_users, gate.min_compare_rows,
                                                                 mean_of(mine), mean_of(theirs), rounds, seed)
                champion_error = champion_error or why
            champion_slices = activity_slices(theirs, champion_list, catalogue, activity, config.evaluate.activity_buckets, k, {})
        return Evaluation(
            metrics=metrics, baseline_name=baseline.name, baseline_metrics=baseline_metrics,
            champion_version=champion.version if champion else None, champion_metrics=champion_metrics,
            champion_error=champion_error, slices=slices, plots=plots, threshold=float("nan"),
            test_rows=len(test), seconds=time.perf_counter() - started, intervals=intervals,
            champion_comparison=champion_comparison, baseline_comparison=baseline_comparison,
            champion_slices=champion_slices, **compared_fields(compared),
        )

    def drift_score(self, scorer):
        """Recommendation lists have no per-row score to compare; drift is read from the data."""
        return

    def business_sentences(self, evaluation: Evaluation, terms: Mapping[str, str]) -> list[str]:
        """How many of the k items shown are ones the customer went on to interact with."""
        champion = evaluation.champion_metrics or {}
        things, wins = terms.get("rows", "rows"), terms.get("positives", "positives")
        sentences = []
        for name, value in evaluation.metrics.items():
            if name.startswith("precision_at_"):
                k = name.removeprefix("precision_at_")
                text = f"Of the {k} {things} shown to a customer, {value * float(k):.1f} are ones they went on to {wins}"
                text += f", vs {champion[name] * float(k):.1f} with the champion" if name in champion else ""
                text += f" and {evaluation.baseline_metrics[name] * float(k):.1f} with the baseline ({evaluation.baseline_name})."
                sentences.append(text)
        return sentences


RANKING = RankingTask()
TASK = RANKING
