"""Cold start: recommendation that reaches items nobody has interacted with yet.

A seeded share of the items is held out entirely (``evaluate.cold_item_fraction``); the rest are
split per interaction as in ``ranking``. The model ranks two catalogues for the test users:
- warm: every item with history, seen items masked (``ndcg_at_k``, ... as ``ranking``), against
  the collaborative same-run peer (EASE, the peer ``recommend``'s champion is gated on);
- cold: the held-out items only, for the users who interacted with them (``cold_ndcg_at_k``,
  ``cold_recall_at_k``, ``cold_coverage``), against popularity within the user's favourite
  categories and content kNN (``components.evaluation.coldstart``).
Each peer comparison is paired over users (``vs_<peer>_<metric>`` = model - peer); the gate's
``baseline_comparison`` is the primary metric against the strongest peer on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.data.splits import Splits, row_keys, split_seed, split_use_case
from components.evaluation.bootstrap import bootstrap_intervals
from components.evaluation.coldstart import (
    cold_item_mask,
    cold_sentence,
    fit_content_peers,
    top_among,
    write_warm_cold_plot,
)
from components.evaluation.compare import paired_on_rows
from components.evaluation.ranking import per_user_ranking_metrics, ranking_metrics, summarize_ranking
from components.evaluation.report import ChampionScorer, Evaluation, gate_metric_names
from components.models.coldstart import category_block, content_matrix, item_table
from components.models.recommender import Interactions
from components.tasks.ranking import RankingEvaluate, fit_recommender
from components.training.fit import FitResult, TrainedModel

COLD = "cold_"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingSetup:
    """What the two networks train on (the task's ``train``; benchmarks/refit_benchmark.py too)."""

    splits: Splits
    ids: np.ndarray          # the item table's ids
    warm: np.ndarray         # positions of the items not held out as cold
    history: np.ndarray      # positions of the items with history: recommend's catalogue
    content: np.ndarray
    featurizer: Any
    seen_frame: pd.DataFrame  # train + validation
    users: np.ndarray
    build: Callable[..., Any]  # the hybrid network for ``params=``
    matrices: Callable[[np.ndarray], tuple]  # (seen, train, validation) Interactions over these items


def training_setup(use_case, config, frame: pd.DataFrame, splits: Splits) -> TrainingSetup:
    features, params = config.features, config.train
    table = item_table(frame, features)
    ids = table[features.item].to_numpy()
    warm = np.flatnonzero(~cold_items(table[features.item], config))
    content, _, featurizer = content_matrix(table, features, params)
    seen_frame = pd.concat([splits.train, splits.validation], ignore_index=True)
    users = np.sort(seen_frame[features.user].unique())
    history = np.flatnonzero(np.isin(ids, seen_frame[features.item].unique()))

    def matrices(columns):
        return tuple(Interactions.from_frame(f, features, users, ids[columns])
                     for f in (seen_frame, splits.train, splits.validation))

    build = partial(use_case.builder.build, seen_frame, features, seed=config.seed, label=config.label,
                    content=content[warm])
    return TrainingSetup(splits, ids, warm, history, content, featurizer, seen_frame, users, build, matrices)


@dataclass(frozen=True)
class HeldOutUsers:
    """The test users and the items each of them went on to buy, warm and cold, as ``evaluate``
    ranks them (benchmarks/refit_benchmark.py too)."""

    table: pd.DataFrame  # the item table of the training and test rows
    ids: np.ndarray  # its ids
    sides: dict[str, np.ndarray]  # "warm" / "cold": positions of those items in ``ids``
    users: np.ndarray
    relevant: dict[str, list[set]]  # per side: each test user's items on that side


def held_out_users(seen_frame: pd.DataFrame, test: pd.DataFrame, features, config) -> HeldOutUsers:
    table = item_table(pd.concat([seen_frame, test], ignore_index=True), features)
    ids = table[features.item].to_numpy()
    cold_mask = cold_items(table[features.item], config)
    sides = {"warm": np.flatnonzero(~cold_mask), "cold": np.flatnonzero(cold_mask)}
    users = np.sort(test[features.user].unique())
    in_cold = test[features.item].isin(ids[sides["cold"]])
    truth = {name: {u: set(g) for u, g in part.groupby(features.user)[features.item]}
             for name, part in (("warm", test[~in_cold]), ("cold", test[in_cold]))}
    return HeldOutUsers(table, ids, sides, users, {name: [truth[name].get(u, set()) for u in users] for name in truth})


def mean_over(values: np.ndarray):
    """The measure a paired bootstrap takes: the mean of ``values`` over the rows it draws."""
    return lambda rows: float(np.nanmean(values[rows])) if len(rows) else float("nan")


class ColdStartEvaluate(RankingEvaluate):
    """The ``evaluate`` section of a cold-start use case."""

    # share of the items (seeded hash of the id) held out of training with all their interactions
    cold_item_fraction: float = 0.2
    # content kNN peer: similar warm items kept per item
    baseline_neighbours: int = 50


def cold_items(items: pd.Series, config) -> np.ndarray:
    """True per item of the table for the held-out (cold) items (seeded like the row split, so a
    training-seed change keeps the same cold catalogue)."""
    return cold_item_mask(items.to_numpy(), config.evaluate.cold_item_fraction, split_seed(config))


def log_softmax(logits: np.ndarray, temperature: float, pool: np.ndarray) -> np.ndarray:
    """``logits / temperature`` minus its log-sum-exp over each row's ``pool`` columns."""
    scaled = logits / temperature
    masked = np.where(pool, scaled, -np.inf)
    top = masked.max(axis=1, keepdims=True)
    return scaled - (top + np.log(np.exp(masked - top).sum(axis=1, keepdims=True)))


def choose_calibration(hybrid, collaborative, train: Interactions, validation: Interactions, history: np.ndarray,
                       params) -> tuple[float, tuple[float, float, float]]:
    """The blend weight and the (collaborative, hybrid, content) temperatures, measured with the
    probe networks on the validation items: each head's temperature maximises the likelihood of
    the validation items with history among the user's unseen items with history, then the blend
    weight maximises validation nDCG@top_k over the hybrid network's items, the largest on a tie
    (``history``: the collaborative model's items' positions among them)."""
    users = np.flatnonzero(validation.matrix[:, history].sum(axis=1) > 0)
    seen, truth = train.matrix[users] > 0, validation.matrix[users] > 0
    heads = np.asarray(hybrid(train.matrix[users], training=False))
    items = train.matrix.shape[1]
    hybrid_logits, content_logits = heads[:, :items], heads[:, items:]
    collaborative_logits = np.zeros_like(hybrid_logits)
    collaborative_logits[:, history] = np.asarray(collaborative(train.matrix[users][:, history], training=False))
    in_history = np.zeros(items, bool)
    in_history[history] = True
    pool = in_history[None, :] & ~seen
    target = truth & in_history[None, :]

    def best_temperature(logits: np.ndarray) -> float:
        likelihood = [float(log_softmax(logits, t, pool)[target].mean()) for t in params.calibration_temperatures]
        return float(params.calibration_temperatures[int(np.argmax(likelihood))])

    temperatures = tuple(best_temperature(x) for x in (collaborative_logits, hybrid_logits, content_logits))
    tc, th, tg = temperatures
    parts = [log_softmax(x, t, pool) for x, t in ((collaborative_logits, tc), (hybrid_logits, th))]
    content = log_softmax(content_logits, tg, pool)
    relevant = [set(np.flatnonzero(row)) for row in truth]
    k = min(params.top_k, items)
    quality = []
    for weight in params.blend_weights:
        scores = np.where(in_history[None, :], weight * parts[0] + (1 - weight) * parts[1], content)
        scores[seen] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        quality.append(ranking_metrics(top, relevant, k, items)[f"ndcg_at_{k}"])
    # a tie goes to the collaborative model (recommend's, the warm items' reference)
    weight = float(max(w for w, q in zip(params.blend_weights, quality, strict=True) if q == max(quality)))
    logger.info("coldstart calibration: temperatures %s, blend weight %.2f (validation nDCG@%d %s)",
                temperatures, weight, k, [round(q, 4) for q in quality])
    return weight, (tc, th, tg)


class ColdStartTask:
    """Warm items split per interaction, cold items held out whole; a hybrid network scores both."""

    name = "coldstart"
    needs_label = False
    evaluate_type = ColdStartEvaluate

    def metric_names(self, evaluate: ColdStartEvaluate) -> frozenset[str]:
        k = evaluate.top_k
        warm = {f"{m}_at_{k}" for m in ("map", "ndcg", "precision", "recall")} | {"coverage"}
        cold = {f"{COLD}ndcg_at_{k}", f"{COLD}recall_at_{k}", f"{COLD}coverage", f"{COLD}customer_reach_at_{k}"}
        compared = {f"vs_{peer}_{COLD}ndcg_at_{k}" for peer in ("genre_affinity", "content_knn")}
        return frozenset(warm | cold | compared | {f"vs_ease_ndcg_at_{k}"})

    def slice_metric_names(self, evaluate: ColdStartEvaluate) -> frozenset[str]:
        return frozenset()

    def split(self, frame: pd.DataFrame, config) -> Splits:
        """The warm items' interactions by the ``split`` section; every cold item's go to test."""
        items = frame[config.features.item]
        table = np.sort(items.unique())
        cold = np.isin(items.to_numpy(), table[cold_items(pd.Series(table), config)])
        warm = split_use_case(frame[~cold].reset_index(drop=True), config)
        held = frame[cold].reset_index(drop=True)
        keys = dict(warm.keys or {})
        if "test" in keys:
            keys["test"] = np.concatenate([keys["test"], row_keys(held, config.params.split.key_columns)])
        return Splits(warm.train, warm.validation, pd.concat([warm.test, held], ignore_index=True), keys or None)

    def train(self, use_case, config, frame: pd.DataFrame) -> TrainedModel:
        """Two networks on the warm items' histories, each early-stopped on validation items and
        refit on train + validation for its best epoch count: the hybrid (content tower +
        residuals) and recommend's collaborative Mult-DAE over the items with history. The
        probes' validation scores choose each head's temperature and the blend weight; the
        registered model ranks the whole item table (``coldstart_layers.CatalogueScores``)."""
        from components.models.coldstart_layers import build_serving, build_table_model, trained_catalogue
        from components.models.recommender import RecommendTrain, build_recommender

        setup = training_setup(use_case, config, frame, self.split(frame, config))
        splits, features, params = setup.splits, config.features, config.train
        ids, warm, history, content, featurizer = setup.ids, setup.warm, setup.history, setup.content, setup.featurizer
        seen_frame, users, build, matrices = setup.seen_frame, setup.users, setup.build, setup.matrices
        seen, train, validation = matrices(warm)
        probe = fit_recommender(build(params=params), train, validation, params, config.seed)
        network = build(params=params.model_copy(update={"max_epochs": probe.best_epoch}))
        started = time.perf_counter()
        network.fit(seen.matrix, seen.matrix, batch_size=params.batch_size, epochs=probe.best_epoch,
                    shuffle=True, verbose=0)
        collaborative_params = RecommendTrain(**{name: getattr(params, name) for name in RecommendTrain.model_fields})
        c_seen, c_train, c_validation = matrices(history)
        c_probe = fit_recommender(build_recommender(seen_frame, features, collaborative_params, config.seed),
                                  c_train, c_validation, collaborative_params, config.seed)
        collaborative = build_recommender(seen_frame, features, collaborative_params.model_copy(
            update={"max_epochs": c_probe.best_epoch}), config.seed)
        collaborative.fit(c_seen.matrix, c_seen.matrix, batch_size=params.batch_size, epochs=c_probe.best_epoch,
                          shuffle=True, verbose=0)
        calibration = choose_calibration(probe.model, c_probe.model, train, validation,
                                         np.searchsorted(warm, history), params)
        fit = FitResult(model=network, epochs_run=probe.epochs_run, best_epoch=probe.best_epoch,
                        fit_seconds=probe.fit_seconds + c_probe.fit_seconds + time.perf_counter() - started,
                        history=probe.history)
        histories = Interactions.from_frame(seen_frame, features, users, ids).matrix
        catalogue = trained_catalogue(network, collaborative, content, warm, history, histories, users, ids,
                                      features.user, calibration, featurizer.as_dict(), params.top_k)
        return TrainedModel(model=build_table_model(catalogue), splits=splits, fit=fit, threshold=float("nan"),
                            serving=build_serving(catalogue))

    def evaluate(self, use_case, config, trained: TrainedModel, plots_dir: Path,
                 champion: ChampionScorer | None = None) -> Evaluation:
        """Warm and cold catalogues ranked for the test users; model vs peers, paired over users."""
        started = time.perf_counter()
        features, k = config.features, config.evaluate.top_k
        train = pd.concat([trained.splits.train, trained.splits.validation], ignore_index=True)
        test = trained.splits.test
        ranked = held_out_users(train, test, features, config)
        table, ids, users, relevant = ranked.table, ranked.ids, ranked.users, ranked.relevant
        warm, cold = ranked.sides["warm"], ranked.sides["cold"]
        scores = np.asarray(trained.model.predict(users.astype("int64")[:, None], verbose=0))
        histories = Interactions.from_frame(train, features, users, ids).matrix

        model_lists = {"warm": top_among(scores, warm, ids, k), "cold": top_among(scores, cold, ids, k)}
        per_user = {side: per_user_ranking_metrics(model_lists[side], relevant[side], k) for side in model_lists}
        ease = use_case.fit_baseline(train, config)
        ease_list = ease.recommend(users, k)
        ease_per_user = per_user_ranking_metrics(ease_list, relevant["warm"], k)
        # the item table's content rows as the model holds them (no second encoder load)
        content = np.asarray(trained.model.get_layer("item_scores").content.numpy())
        categories, _ = category_block(table, features)
        peers = fit_content_peers(histories, content, categories, warm, config.evaluate.baseline_neighbours)
        peer_lists = {p.name: top_among(np.where(histories > 0, -np.inf, p.scores), cold, ids, k) for p in peers}
        peer_per_user = {name: per_user_ranking_metrics(lst, relevant["cold"], k) for name, lst in peer_lists.items()}

        metrics = summarize_ranking(per_user["warm"], model_lists["warm"], len(warm))
        metrics |= self._cold_summary(per_user["cold"], model_lists["cold"], relevant["cold"], len(cold), k)
        peer_metrics = {name: self._cold_summary(per_user_, peer_lists[name], relevant["cold"], len(cold), k)
                        for name, per_user_ in peer_per_user.items()}
        rounds, seed = config.bootstrap_rounds, config.seed
        comparisons = {}
        for name, theirs in [("ease", ("warm", f"ndcg_at_{k}", ease_per_user)),
                             *[(p, ("cold", f"{COLD}ndcg_at_{k}", v)) for p, v in peer_per_user.items()]]:
            side, metric, values = theirs
            rows = np.flatnonzero(np.array([bool(r) for r in relevant[side]]))
            comparisons[name] = paired_on_rows(metric, rows, mean_over(per_user[side][f"ndcg_at_{k}"]),
                                               mean_over(values[f"ndcg_at_{k}"]), rounds, seed)
            metrics[f"vs_{name}_{metric}"] = comparisons[name].delta
        primary = config.params.gate.primary_metric
        strongest = (max(peer_metrics, key=lambda p: peer_metrics[p][primary]) if primary.startswith(COLD) else "ease")
        baseline_metrics = {**peer_metrics[strongest], **summarize_ranking(ease_per_user, ease_list, len(warm))} \
            if strongest != "ease" else summarize_ranking(ease_per_user, ease_list, len(warm))
        intervals = {f"vs_{n}_{c.metric}": (c.low, c.high) for n, c in comparisons.items() if np.isfinite(c.low)}
        cold_users = np.flatnonzero(np.array([bool(r) for r in relevant["cold"]]))
        intervals |= bootstrap_intervals(
            len(cold_users), lambda index: self._cold_summary(
                {m: v[cold_users][index] for m, v in per_user["cold"].items()}, model_lists["cold"][cold_users][index],
                [relevant["cold"][i] for i in cold_users[index]], len(cold), k),
            [m for m in gate_metric_names(config) if m.startswith(COLD)], rounds, seed)

        plot = write_warm_cold_plot({"model": model_lists["warm"], ease.name: ease_list},
                                    {"model": model_lists["cold"], **peer_lists}, relevant, k, plots_dir)
        return Evaluation(
            metrics=metrics, baseline_name=f"{strongest} (cold) / ease (warm)" if strongest != "ease" else "ease",
            baseline_metrics=baseline_metrics, champion_version=champion.version if champion else None,
            # the registered model returns top-k over the whole table, not scores among the cold
            # items: the champion's own recorded metrics are shown, and the gate asks for a review
            champion_metrics=dict(champion.recorded_metrics or {}) or None if champion else None,
            champion_error=("the champion cannot be re-scored on the cold-item protocol (its metrics are its own "
                            "run's, unpaired)") if champion else None,
            slices=[], plots=[plot], threshold=float("nan"), test_rows=len(test),
            seconds=time.perf_counter() - started, intervals=intervals,
            baseline_comparison=comparisons[strongest],
        )

    @staticmethod
    def _cold_summary(per_user: dict[str, np.ndarray], lists: np.ndarray, relevant: list[set], catalogue: int,
                      k: int) -> dict[str, float]:
        """Cold metrics: nDCG@k, Recall@k, coverage of the cold catalogue, and customer reach (every
        (customer, cold item) pair that happened: the share whose item was in that customer's top k)."""
        known = [i for i, r in enumerate(relevant) if r]
        pairs = sum(len(relevant[i]) for i in known)
        hits = sum(len(relevant[i] & set(lists[i][:k].tolist())) for i in known)
        shown = len(np.unique(lists[known])) if known else 0
        return {f"{COLD}ndcg_at_{k}": float(np.nanmean(per_user[f"ndcg_at_{k}"][known])) if known else float("nan"),
                f"{COLD}recall_at_{k}": float(np.nanmean(per_user[f"recall_at_{k}"][known])) if known else float("nan"),
                f"{COLD}coverage": shown / max(catalogue, 1),
                f"{COLD}customer_reach_at_{k}": hits / pairs if pairs else float("nan"),
                f"{COLD}users": float(len(known))}

    def drift_score(self, scorer):
        """Recommendation lists have no per-row score to compare; drift is read from the data."""
        return

    def business_sentences(self, evaluation: Evaluation, terms: Mapping[str, str]) -> list[str]:
        """Warm and cold side by side, and the cold reach in shop terms."""
        things, wins = terms.get("rows", "items"), terms.get("positives", "buy")
        m, sentences = evaluation.metrics, []
        for name, value in m.items():
            if name.startswith(f"{COLD}customer_reach_at_"):
                sentences.append(cold_sentence(value, int(name.rsplit("_", 1)[1]), things, wins))
            elif name.startswith("ndcg_at_") and f"{COLD}{name}" in m:
                sentences.append(f"nDCG@{name.rsplit('_', 1)[1]}: {value:.3f} on {things} with history (warm), "
                                 f"{m[COLD + name]:.3f} on new {things} (cold).")
        return sentences


COLDSTART = ColdStartTask()
TASK = COLDSTART
