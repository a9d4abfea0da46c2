"""The coldstart use case on MovieLens 100K: train and evaluate seconds, warm and cold metrics of
the hybrid model vs its same-run peers (EASE on warm items; genre affinity and content kNN on the
held-out cold items), each paired over users with a 95% bootstrap interval. ``--seeds 42,1,2``
repeats it with other training seeds on the same split and the same cold items.

    FUNNEL_DATA_MIRROR=/work/shared/data .venv/bin/python benchmarks/coldstart.py [--seeds 42] [--collaborative]

``--collaborative`` also trains recommend's collaborative model (Mult-DAE) on the same warm rows
and compares the hybrid's warm nDCG@k with it, paired over the same users. ``mixed_list`` judges
the list serving returns (one ranking over every item, with history or not) on all test items
against the collaborative model's, and how often a cold item makes a user's top k. ``calibration``
shows what the model chose on validation: the blend weight of its own collaborative model on items with
history, and the collaborative / hybrid / content temperatures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from task_level import train_and_evaluate  # noqa: E402 - benchmarks run as scripts


def collaborative_peer(use_case, config, trained) -> dict:
    """recommend's collaborative model (its builder and fit, params from the coldstart section) on
    the same warm rows, and the hybrid's warm nDCG@k against it, paired over the same users."""
    import numpy as np
    import pandas as pd

    from components.evaluation.coldstart import top_among
    from components.evaluation.compare import paired_on_rows
    from components.evaluation.ranking import per_user_ranking_metrics
    from components.models.recommender import Interactions, RecommendTrain, build_recommender
    from components.tasks.coldstart import cold_items
    from components.tasks.ranking import fit_recommender

    features, k, splits = config.features, config.evaluate.top_k, trained.splits
    params = RecommendTrain(**{name: getattr(config.train, name) for name in RecommendTrain.model_fields})
    seen_frame = pd.concat([splits.train, splits.validation], ignore_index=True)
    users, items = np.sort(seen_frame[features.user].unique()), np.sort(seen_frame[features.item].unique())
    seen, train, validation = (Interactions.from_frame(f, features, users, items)
                               for f in (seen_frame, splits.train, splits.validation))
    probe = fit_recommender(build_recommender(seen_frame, features, params, config.seed), train, validation,
                            params, config.seed)
    network = build_recommender(seen_frame, features, params.model_copy(update={"max_epochs": probe.best_epoch}),
                                config.seed)
    network.fit(seen.matrix, seen.matrix, batch_size=params.batch_size, epochs=probe.best_epoch, verbose=0)
    test = splits.test
    test_users = np.sort(test[features.user].unique())
    rows = seen.matrix[pd.Index(users).get_indexer(test_users)]
    logits = np.array(network(rows, training=False))
    logits[rows > 0] = -np.inf
    theirs = items[np.argsort(-logits, axis=1)[:, :k]]
    table = np.sort(pd.concat([seen_frame, test])[features.item].unique())
    warm = np.flatnonzero(~cold_items(pd.Series(table), config))
    scores = np.asarray(trained.model.predict(test_users.astype("int64")[:, None], verbose=0))
    mine = top_among(scores, warm, table, k)

    def paired_ndcg(name: str, ours, truth_frame: pd.DataFrame):
        """(model − collaborative) nDCG@k paired over the users with a relevant item in ``truth_frame``."""
        truth = {u: set(g) for u, g in truth_frame.groupby(features.user)[features.item]}
        relevant = [truth.get(u, set()) for u in test_users]
        a, b = (per_user_ranking_metrics(x, relevant, k)[f"ndcg_at_{k}"] for x in (ours, theirs))
        rows_with = np.flatnonzero(~np.isnan(a))
        return b, paired_on_rows(name, rows_with, lambda r: float(np.mean(a[r])), lambda r: float(np.mean(b[r])),
                                 config.bootstrap_rounds, config.seed)

    b, comparison = paired_ndcg(f"ndcg_at_{k}", mine, test[test[features.item].isin(table[warm])])
    # the served list: one ranking over the whole table, judged on every test item (warm and cold);
    # the collaborative model can only ever list items with history
    mixed = table[np.argsort(-scores, axis=1, kind="stable")[:, :k]]
    _, mixed_comparison = paired_ndcg(f"mixed_ndcg_at_{k}", mixed, test)
    cold_ids = table[~np.isin(np.arange(len(table)), warm)]
    cold_pairs = test[test[features.item].isin(cold_ids)]
    position = pd.Index(test_users).get_indexer(cold_pairs[features.user])
    reached = [item in set(mixed[row].tolist()) for row, item in zip(position, cold_pairs[features.item], strict=True)]
    return {"best_epoch": probe.best_epoch, "collaborative_ndcg": float(np.nanmean(b)),
            "hybrid_minus_collaborative": comparison.describe(),
            "mixed_list": {"hybrid_minus_collaborative": mixed_comparison.describe(),
                           "cold_share_of_top_k": float(np.isin(mixed, cold_ids).mean()),
                           "cold_share_of_test_items": len(cold_pairs) / len(test),
                           "cold_reach_at_k": float(np.mean(reached)) if reached else float("nan")}}


def run(seed: int, overrides: dict, collaborative: bool) -> dict:
    # the split and the cold items stay put (split.seed 42) while the training seed varies
    use_case, config, trained, evaluation, trained_s = train_and_evaluate(
        "coldstart", {"common.seed": seed, "use_cases.coldstart.split.seed": 42, **overrides})
    return {
        "seed": seed, "train_seconds": round(trained_s, 1), "evaluate_seconds": round(evaluation.seconds, 1),
        "epochs": trained.fit.epochs_run, "best_epoch": trained.fit.best_epoch, "rows": trained.splits.sizes,
        "model": evaluation.metrics, "baseline": {"name": evaluation.baseline_name, **evaluation.baseline_metrics},
        "comparisons": {name: [evaluation.metrics[name], *evaluation.intervals.get(name, ())]
                        for name in evaluation.metrics if name.startswith("vs_")},
        "vs_baseline": evaluation.baseline_comparison.describe() if evaluation.baseline_comparison else None,
        "intervals": evaluation.intervals,
        "business": use_case.task.business_sentences(evaluation, use_case.card.business_terms),
        "calibration": {name: trained.model.get_layer("catalogue").get_config()[name]
                        for name in ("blend_weight", "temperatures")},
        "collaborative": collaborative_peer(use_case, config, trained) if collaborative else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--collaborative", action="store_true",
                        help="also train recommend's collaborative model on the same warm rows (paired)")
    parser.add_argument("--set", action="append", default=[], help="params override key=json value")
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    for seed in args.seeds.split(","):
        print(json.dumps(run(int(seed), overrides, args.collaborative), indent=2, default=str), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
