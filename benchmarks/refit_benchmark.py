"""Refit cost against quality for the two longest trainings of `make run` (sessions, coldstart):
the current refit (a new network trained on train + validation for the early-stopped best epoch
count) against the early-stopped network itself and against it continued for a few epochs on
train + validation. One probe fit is shared by every variant (same seed, split and, for
coldstart, calibration); each variant's test metric is paired with the current refit's on the
same test sessions / users (paired bootstrap, `config.bootstrap_rounds` rounds).

    .venv/bin/python benchmarks/refit_benchmark.py --use-cases sessions,coldstart

2026-12-06 (README: make run's time): every shorter variant lost significantly, so the refit stays.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from task_level import load_use_case as load  # noqa: E402


def interval(delta) -> str:
    return f"{delta.delta:+.4f} [{delta.low:+.4f}, {delta.high:+.4f}]"


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from flows.cli import render_table

    print(f"\n{title}\n")
    print(render_table(rows, tuple(columns)))


def sessions() -> None:
    import keras

    from components.evaluation.compare import paired_on_rows
    from components.evaluation.next_item import PointScores, session_measure, summarize_points
    from components.models.scorer import RowScorer
    from components.models.sessions import build_serving
    from components.tasks.next_item import SESSION, TARGET, training_inputs
    from components.training.sequences import fit_session_model

    use_case, config, frame = load("sessions")
    splits = use_case.task.split(frame, config)
    features, p = config.features, config.train
    seen, network, arrays, validation = training_inputs(use_case, config, splits)
    started = time.perf_counter()
    fit = fit_session_model(network, arrays(splits.train), validation, p, config.seed)
    print(f"probe: best epoch {fit.best_epoch} of {fit.epochs_run}, {time.perf_counter() - started:.1f} s", flush=True)
    test = splits.test
    targets, visits = test[TARGET].to_numpy(), test[SESSION].to_numpy()
    ks = tuple(config.evaluate.k_values)

    def scores_of(net) -> PointScores:
        lists = np.asarray(RowScorer(build_serving(net, features, p.top_k)).score_outputs(test)["items"])[:, :max(ks)]
        return PointScores.of(lists, targets, visits)

    results = {"early-stopped network, no refit": (scores_of(network), 0.0)}
    started = time.perf_counter()
    scratch = use_case.builder.build(seen, features, p, config.seed, label="")
    fit_session_model(scratch, arrays(seen), None, p, config.seed, epochs=fit.best_epoch)
    current = f"refit from scratch, {fit.best_epoch} epochs (current)"
    results[current] = (scores_of(scratch), time.perf_counter() - started)
    started = time.perf_counter()
    for n in (1, 2, 3):
        # a continued fit_session_model at epoch best + n: the seed, that epoch's decayed rate
        keras.utils.set_random_seed(config.seed)
        network.optimizer.learning_rate.assign(p.learning_rate * p.learning_rate_decay ** (fit.best_epoch + n - 1))
        network.fit(*arrays(seen), batch_size=p.batch_size, epochs=1, shuffle=True, verbose=0)
        results[f"early-stopped network continued {n} epoch(s)"] = (scores_of(network), time.perf_counter() - started)
    base = results[current][0]
    every = np.arange(int(base.sessions.max()) + 1)
    rounds, seed = config.bootstrap_rounds, config.seed
    rows = []
    for name, (scores, seconds) in results.items():
        values = summarize_points(scores, ks)
        row = [name, f"{seconds:.1f}", f"{values['mrr_at_20']:.4f}", f"{values['recall_at_20']:.4f}"]
        for metric in ("mrr_at_20", "recall_at_20"):
            row.append("-" if name == current else interval(paired_on_rows(
                metric, every, session_measure(scores, metric, ks), session_measure(base, metric, ks), rounds, seed)))
        rows.append(row)
    print_table(f"sessions: {len(test)} test steps of {len(every)} visits, paired over visits, {rounds} rounds",
                ["variant", "refit s", "MRR@20", "Recall@20", "MRR@20 vs current", "Recall@20 vs current"], rows)


def coldstart() -> None:
    from components.evaluation.coldstart import top_among
    from components.evaluation.compare import paired_on_rows
    from components.evaluation.ranking import per_user_ranking_metrics
    from components.models.coldstart_layers import build_table_model, trained_catalogue
    from components.models.recommender import Interactions, RecommendTrain, build_recommender
    from components.tasks.coldstart import choose_calibration, held_out_users, mean_over, training_setup
    from components.tasks.ranking import fit_recommender

    use_case, config, frame = load("coldstart")
    setup = training_setup(use_case, config, frame, use_case.task.split(frame, config))
    splits, features, params = setup.splits, config.features, config.train
    ids, warm, history, content, featurizer = setup.ids, setup.warm, setup.history, setup.content, setup.featurizer
    seen_frame, users, build, matrices = setup.seen_frame, setup.users, setup.build, setup.matrices
    seen, train, validation = matrices(warm)
    started = time.perf_counter()
    probe = fit_recommender(build(params=params), train, validation, params, config.seed)
    collaborative_params = RecommendTrain(**{n: getattr(params, n) for n in RecommendTrain.model_fields})
    c_seen, c_train, c_validation = matrices(history)
    c_probe = fit_recommender(build_recommender(seen_frame, features, collaborative_params, config.seed),
                              c_train, c_validation, collaborative_params, config.seed)
    calibration = choose_calibration(probe.model, c_probe.model, train, validation, np.searchsorted(warm, history),
                                     params)
    print(f"probes: hybrid best epoch {probe.best_epoch} of {probe.epochs_run}, collaborative {c_probe.best_epoch} "
          f"of {c_probe.epochs_run}, {time.perf_counter() - started:.1f} s", flush=True)
    histories = Interactions.from_frame(seen_frame, features, users, ids).matrix
    # the test users as ColdStartTask.evaluate ranks them
    k = config.evaluate.top_k
    held_out = held_out_users(seen_frame, splits.test, features, config)
    test_ids, sides, test_users, relevant = held_out.ids, held_out.sides, held_out.users, held_out.relevant

    def per_user(network, collaborative) -> dict[str, np.ndarray]:
        catalogue = trained_catalogue(network, collaborative, content, warm, history, histories, users, ids,
                                      features.user, calibration, featurizer.as_dict(), params.top_k)
        scores = np.asarray(build_table_model(catalogue).predict(test_users.astype("int64")[:, None], verbose=0))
        return {side: per_user_ranking_metrics(top_among(scores, items, test_ids, k), relevant[side], k)[f"ndcg_at_{k}"]
                for side, items in sides.items()}

    results = {"early-stopped networks, no refit": (per_user(probe.model, c_probe.model), 0.0)}
    started = time.perf_counter()
    hybrid = build(params=params.model_copy(update={"max_epochs": probe.best_epoch}))
    hybrid.fit(seen.matrix, seen.matrix, batch_size=params.batch_size, epochs=probe.best_epoch, shuffle=True, verbose=0)
    collaborative = build_recommender(seen_frame, features, collaborative_params.model_copy(
        update={"max_epochs": c_probe.best_epoch}), config.seed)
    collaborative.fit(c_seen.matrix, c_seen.matrix, batch_size=params.batch_size, epochs=c_probe.best_epoch,
                      shuffle=True, verbose=0)
    current = f"refit from scratch, {probe.best_epoch} + {c_probe.best_epoch} epochs (current)"
    results[current] = (per_user(hybrid, collaborative), time.perf_counter() - started)
    started, done = time.perf_counter(), 0
    for n in (2, 5, 10):
        for model, matrix in ((probe.model, seen.matrix), (c_probe.model, c_seen.matrix)):
            model.fit(matrix, matrix, batch_size=params.batch_size, epochs=n - done, shuffle=True, verbose=0)
        done = n
        results[f"early-stopped networks continued {n} epochs"] = (per_user(probe.model, c_probe.model),
                                                                   time.perf_counter() - started)
    rounds, seed = config.bootstrap_rounds, config.seed
    base = results[current][0]
    rows = []
    for name, (values, seconds) in results.items():
        row = [name, f"{seconds:.1f}"]
        for side in ("cold", "warm"):
            mine, theirs = values[side], base[side]
            row.append(f"{np.nanmean(mine):.4f}")
            if name != current:
                # paired over the users with items on this side, as the task's evaluate pairs them
                users_with_items = np.flatnonzero([bool(items) for items in relevant[side]])
                row.append(interval(paired_on_rows(f"{side}_ndcg_at_{k}", users_with_items, mean_over(mine),
                                                   mean_over(theirs), rounds, seed)))
            else:
                row.append("-")
        rows.append(row)
    print_table(f"coldstart: test users paired, {rounds} rounds",
                ["variant", "refit s", f"cold nDCG@{k}", "vs current", f"warm nDCG@{k}", "vs current"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--use-cases", default="sessions,coldstart", help="sessions and/or coldstart, comma-separated")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    runs = {"sessions": sessions, "coldstart": coldstart}
    for name in [n for n in args.use_cases.split(",") if n]:
        if name not in runs:
            sys.exit(f"--use-cases: {name!r} is not one of {', '.join(runs)}")
        runs[name]()


if __name__ == "__main__":
    main()
