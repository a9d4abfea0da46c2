"""Bootstrap intervals (model card, release review): every metric per resample vs the gate's only.

For the binary (intent), multiclass (support) and ranking (recommend) evaluators, on random
scores the size of each use case's test split, times ``params.yaml``'s ``bootstrap_rounds``
resamples two ways and checks both give the same intervals:
- all metrics: each resample computes every metric (text labels; ranking lists re-scored);
- gate only: the gate's metrics (``only=``), integer label codes, per-user ranking values.

Usage: .venv/bin/python benchmarks/bootstrap_benchmark.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import numpy as np

from components.config import load_params
from components.evaluation.binary import compute_binary_metrics
from components.evaluation.bootstrap import bootstrap_intervals
from components.evaluation.multiclass import compute_multiclass_metrics, encode_labels
from components.evaluation.ranking import per_user_ranking_metrics, ranking_metrics, summarize_ranking
from components.evaluation.report import gate_metric_names
from components.use_cases import get_use_case

ROOT = Path(__file__).resolve().parents[1]
# test-split sizes: intent 20% of 12,330 sessions, Banking77's official test split, MovieLens 100K users
ROWS = {"intent": 2466, "support": 3080, "recommend": 943}


def gate_names(params, use_case: str) -> list[str]:
    return gate_metric_names(get_use_case(use_case).configure(params))


def timed(measure, rows: int, names: list[str], rounds: int) -> tuple[float, dict]:
    started = time.perf_counter()
    intervals = bootstrap_intervals(rows, measure, names, rounds, seed=42)
    return time.perf_counter() - started, intervals


def cases(params, rng: np.random.Generator):
    rows = ROWS["intent"]
    y = (rng.random(rows) < 0.155).astype(int)
    scores = np.clip(rng.random(rows) * 0.6 + y * 0.35, 0, 1)
    names = gate_names(params, "intent")
    yield ("intent (binary)", rows, names,
           lambda i: compute_binary_metrics(y[i], scores[i], 0.5, lift_fractions=(0.1, 0.2)),
           lambda i: compute_binary_metrics(y[i], scores[i], 0.5, lift_fractions=(0.1, 0.2), only=names))

    rows = ROWS["support"]
    classes = np.array([f"intent_{n}" for n in range(77)])
    truth = classes[rng.integers(0, 77, rows)]
    predicted = np.where(rng.random(rows) < 0.9, truth, classes[rng.integers(0, 77, rows)])
    codes, predicted_codes = encode_labels(truth, predicted)
    names = gate_names(params, "support")
    yield ("support (multiclass)", rows, names,
           lambda i: compute_multiclass_metrics(truth[i], predicted[i]),
           lambda i: compute_multiclass_metrics(codes[i], predicted_codes[i], only=names))

    rows, k, catalogue = ROWS["recommend"], 10, 1682
    items = rng.integers(0, catalogue, (rows, k))
    relevant = [set(rng.integers(0, catalogue, 20).tolist()) | set(items[u, : u % 4].tolist()) for u in range(rows)]
    per_user = per_user_ranking_metrics(items, relevant, k)
    yield ("recommend (ranking)", rows, gate_names(params, "recommend"),
           lambda i: ranking_metrics(items[i], [relevant[u] for u in i], k, catalogue),
           partial(summarize_ranking, per_user, items, catalogue))


def main() -> None:
    params = load_params(ROOT / "params.yaml")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=params.common.bootstrap_rounds)
    args = parser.parse_args()
    print(f"{args.rounds} resamples per evaluator\n")
    print(f"{'evaluator':<22} {'rows':>5}  {'gate metrics':<28} {'all metrics s':>13} {'gate only s':>11} {'speed-up':>8}  same")
    for name, rows, names, full, gate_only in cases(params, np.random.default_rng(0)):
        slow, slow_intervals = timed(full, rows, names, args.rounds)
        fast, fast_intervals = timed(gate_only, rows, names, args.rounds)
        same = slow_intervals.keys() == fast_intervals.keys() and all(
            np.allclose(slow_intervals[m], fast_intervals[m], rtol=0, atol=1e-12) for m in slow_intervals
        )
        print(f"{name:<22} {rows:>5}  {', '.join(names):<28} {slow:>13.2f} {fast:>11.2f} {slow / fast:>7.0f}x  {same}")


if __name__ == "__main__":
    main()
