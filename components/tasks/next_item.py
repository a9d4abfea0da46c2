"""Next-item prediction (sessions): from the clicks of a session so far, the k items it is most
likely to click next, judged on every step of the test sessions by Recall@k and MRR@k.

Rows are clicks (session, item, time). The split is by session and time (``split.method:
session_time``: a session belongs to the period of its last click, the newest period is the test
as in session-rec); the test split the evaluation reads is its prediction points (one per step
after a session's first click: prefix, next item), keyed by the target click's row key so the
gate leaves out steps a champion trained on. The peers (popularity, transitions, sequential
rules, V-SKNN) are fitted on the same training clicks; the strongest on the primary metric is
the same-run baseline the gate compares with, on resampled test sessions.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from components.config import Section
from components.data.splits import TEST, TRAIN, VALIDATION, Splits, assign_sides, row_keys, split_seed
from components.evaluation.compare import compare_with_champion, paired_on_rows, rows_unseen_by
from components.evaluation.next_item import (
    SESSION,
    TARGET,
    PointScores,
    head_items,
    list_metrics,
    point_names,
    point_slices,
    prediction_points,
    session_intervals,
    session_measure,
    summarize_points,
    write_next_item_plots,
)
from components.evaluation.ranking import champion_items
from components.evaluation.report import (
    ChampionScorer,
    Evaluation,
    compared_fields,
    gate_metric_names,
    measure_champion,
)
from components.models.scorer import RowScorer
from components.training.fit import FitResult, TrainedModel


class NextItemEvaluate(Section):
    """The ``evaluate`` section of a next-item use case."""

    # Recall@k / MRR@k for each k (the largest is the length of the lists judged)
    k_values: tuple[int, ...]
    # prediction points are sliced by prefix length and session length at these edges
    prefix_length_buckets: tuple[int, ...]
    session_length_buckets: tuple[int, ...]
    # head items: the most clicked items taking this share of the training clicks (the rest: tail)
    head_click_share: float
    # peers: sequential rules look this many clicks ahead; V-SKNN's neighbour sessions
    baseline_rule_steps: int
    baseline_knn_neighbours: int
    # no random test rows: the split is by period (split.method session_time), recorded as 0
    test_fraction: float = 0.0


def peer_key(name: str) -> str:
    """A peer's name as a metric prefix (``sequential rules`` -> ``sequential_rules``)."""
    return "".join(c if c.isalnum() else "_" for c in name)


def indexed_prefixes(catalogue, prefixes, length: int) -> np.ndarray:
    from components.models.sessions import padded_prefixes

    return padded_prefixes([catalogue.index(np.asarray(p.split(), dtype=str)) for p in prefixes], length)


def training_inputs(use_case, config, splits: Splits):
    """(train + validation clicks, the untrained network, the training arrays of a click frame,
    the validation prefixes and targets or None): what ``NextItemTask.train`` fits on (and
    benchmarks/refit_benchmark.py)."""
    from components.models.sessions import session_sequences, training_arrays

    features, params = config.features, config.train
    seen = pd.concat([splits.train, splits.validation], ignore_index=True)
    network = use_case.builder.build(seen, features, params, config.seed, label="")
    catalogue = network.catalogue

    def arrays(clicks: pd.DataFrame):
        return training_arrays([catalogue.index(s) for s in session_sequences(clicks, features)], params.max_length)

    validation = None
    if len(splits.validation):
        points, _ = prediction_points(splits.validation, features)
        validation = (indexed_prefixes(catalogue, points[features.prefix], params.max_length),
                      catalogue.index(points[TARGET].to_numpy().astype(str)))
    return seen, network, arrays, validation


class NextItemTask:
    """Train and validation clicks by period; the model early-stops on validation MRR, then (by
    default) refits on train + validation for the best epoch count."""

    name = "next_item"
    needs_label = False
    evaluate_type = NextItemEvaluate

    def metric_names(self, evaluate: NextItemEvaluate) -> frozenset[str]:
        return frozenset({*point_names(evaluate.k_values), "hit_rate", "coverage", "popularity_bias"})

    def slice_metric_names(self, evaluate: NextItemEvaluate) -> frozenset[str]:
        return frozenset(point_names(evaluate.k_values))

    def split(self, frame: pd.DataFrame, config) -> Splits:
        split, features = config.params.split, config.features
        keys = row_keys(frame, split.key_columns)
        sides = assign_sides(frame, split, config.evaluate.test_fraction, config.train.validation_fraction,
                             split_seed(config), keys)
        test, test_keys = prediction_points(frame[sides == TEST], features, split.key_columns)
        return Splits(frame[sides == TRAIN].reset_index(drop=True), frame[sides == VALIDATION].reset_index(drop=True),
                      test, keys={"train": keys[sides == TRAIN], "validation": keys[sides == VALIDATION], "test": test_keys})

    def train(self, use_case, config, frame: pd.DataFrame) -> TrainedModel:
        from components.models.sessions import build_serving
        from components.training.sequences import fit_session_model

        splits = self.split(frame, config)
        features, params = config.features, config.train
        seen, network, arrays, validation = training_inputs(use_case, config, splits)
        fit = fit_session_model(network, arrays(splits.train), validation, params, config.seed)
        if validation is not None and params.refit:
            started = time.perf_counter()
            network = use_case.builder.build(seen, features, params, config.seed, label="")
            fit_session_model(network, arrays(seen), None, params, config.seed, epochs=fit.best_epoch)
            fit = FitResult(model=network, epochs_run=fit.epochs_run, best_epoch=fit.best_epoch,
                            fit_seconds=fit.fit_seconds + time.perf_counter() - started, history=fit.history)
        serving = build_serving(network, features, params.top_k)
        return TrainedModel(model=network, splits=splits, fit=fit, threshold=float("nan"), serving=serving)

    def evaluate(self, use_case, config, trained: TrainedModel, plots_dir: Path,
                 champion: ChampionScorer | None = None) -> Evaluation:
        from components.models.sessions import item_strings

        started = time.perf_counter()
        features, evaluate = config.features, config.evaluate
        ks, k = tuple(evaluate.k_values), max(evaluate.k_values)
        points = trained.splits.test
        seen = pd.concat([trained.splits.train, trained.splits.validation], ignore_index=True)
        popularity = pd.Series(item_strings(seen[features.item].to_numpy())).value_counts()
        targets, sessions = points[TARGET].to_numpy(), points[SESSION].to_numpy()

        def judged(lists: np.ndarray) -> tuple[PointScores, dict[str, float]]:
            scores = PointScores.of(lists, targets, sessions)
            return scores, {**summarize_points(scores, ks), **list_metrics(lists, popularity, len(popularity))}

        mine = np.asarray(RowScorer(trained.serving).score_outputs(points)["items"])[:, :k] if len(points) else np.zeros((0, k))
        scores, metrics = judged(mine)
        peers = use_case.fit_baseline(seen, config)
        prefixes = points[features.prefix].astype(str).tolist()
        judged_peers = {peer.name: judged(peer.recommend(prefixes, k)) for peer in peers.peers}
        primary = config.params.gate.primary_metric
        ranked_by = primary if primary in point_names(ks) else f"mrr_at_{k}"
        best = max(judged_peers, key=lambda name: judged_peers[name][1][ranked_by])
        peer_scores, baseline_metrics = judged_peers[best]
        for name, (_, values) in judged_peers.items():
            metrics |= {f"peer_{peer_key(name)}_{m}": values[m] for m in (f"recall_at_{k}", f"mrr_at_{k}")}
        lists = {"model": scores, **{name: s for name, (s, _) in judged_peers.items()}}

        def measure(scorer: ChampionScorer) -> dict[str, float]:
            theirs, values = judged(champion_items(scorer.score(points[[features.prefix]]), len(points), k))
            lists[f"champion v{scorer.version}"] = theirs
            return values

        champion_metrics, champion_error = measure_champion(champion, measure, "test steps")
        head = head_items(popularity, evaluate.head_click_share)
        slices = point_slices(points, scores, ks, evaluate.prefix_length_buckets, evaluate.session_length_buckets,
                              head, {"peer": peer_scores})
        rounds, seed, gate = config.bootstrap_rounds, config.seed, config.params.gate
        intervals = session_intervals(scores, gate_metric_names(config), ks, rounds, seed)
        every_session = np.arange(int(scores.sessions.max(initial=-1)) + 1)
        baseline_comparison = None
        if primary in point_names(ks):
            baseline_comparison = paired_on_rows(primary, every_session, session_measure(scores, primary, ks),
                                                 session_measure(peer_scores, primary, ks), rounds, seed)
        champion_comparison, champion_slices, compared = None, [], None
        theirs = lists.get(f"champion v{champion.version}") if champion else None
        if champion is not None and theirs is not None:
            compared = rows_unseen_by(trained.splits.keys["test"] if trained.splits.keys else None,
                                      champion.seen_keys, len(points), champion.seen_note)
            kept = compared.positions
            kept_sessions = pd.factorize(sessions[kept])[0]
            a = PointScores(scores.ranks[kept], kept_sessions)
            b = PointScores(theirs.ranks[kept], kept_sessions)
            units = dataclasses.replace(compared, positions=np.arange(int(kept_sessions.max(initial=-1)) + 1))
            if primary in point_names(ks):
                champion_comparison, why = compare_with_champion(primary, units, gate.min_compare_rows,
                                                                 session_measure(a, primary, ks),
                                                                 session_measure(b, primary, ks), rounds, seed)
                champion_error = champion_error or why
            champion_slices = point_slices(points.iloc[kept].reset_index(drop=True), b, ks,
                                           evaluate.prefix_length_buckets, evaluate.session_length_buckets, head, {})
        plots = write_next_item_plots(lists, slices, k, plots_dir)
        return Evaluation(
            metrics=metrics, baseline_name=best, baseline_metrics=baseline_metrics,
            champion_version=champion.version if champion else None, champion_metrics=champion_metrics,
            champion_error=champion_error, slices=slices, plots=plots, threshold=float("nan"),
            test_rows=len(points), seconds=time.perf_counter() - started, intervals=intervals,
            champion_comparison=champion_comparison, baseline_comparison=baseline_comparison,
            champion_slices=champion_slices, **compared_fields(compared),
        )

    def drift_score(self, scorer):
        """Per click of a log: its session's length bucket crossed with its item's class under the
        champion's training clicks (head, tail, unknown), as one integer; a shift of these shares
        (longer or shorter visits, other or new products) is drift."""
        from components.monitoring.drift import session_item_classes

        try:
            top = scorer.model.get_layer("top_items")
        except ValueError:
            return None
        return lambda frame: session_item_classes(frame, top.session_column, top.item_column, top.items,
                                                  np.asarray(top.popularity.numpy())[1:])

    def business_sentences(self, evaluation: Evaluation, terms: Mapping[str, str]) -> list[str]:
        """How often the right next product is among those shown, vs the peer and the champion."""
        m = evaluation.metrics
        recalls = sorted((int(n.removeprefix("recall_at_")), n) for n in m if n.startswith("recall_at_"))
        if not recalls:
            return []
        k, name = recalls[-1]
        things = terms.get("rows", "steps of a visit")
        champion = evaluation.champion_metrics or {}
        text = f"The right next product is among the {k} shown in {m[name]:.0%} of {things}"
        text += f" (the strongest simple peer, {evaluation.baseline_name}: {evaluation.baseline_metrics.get(name, float('nan')):.0%}"
        text += f"; the champion: {champion[name]:.0%})" if name in champion else ")"
        sentences = [text + "."]
        mrr = f"mrr_at_{k}"
        if mrr in m:
            sentences.append(f"Its mean reciprocal rank in the list (MRR@{k}; 1 would be always first) is {m[mrr]:.3f}, "
                             f"the peer's {evaluation.baseline_metrics.get(mrr, float('nan')):.3f}.")
        return sentences


NEXT_ITEM = NextItemTask()
TASK = NEXT_ITEM
