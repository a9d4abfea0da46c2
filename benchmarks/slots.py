"""The slots use case on the full Open Bandit sample: retrain seconds, the new policy's CTR by
IPW / SNIPW / DR (95% intervals) vs the logged random policy's CTR (paired interval of the
gated estimator's difference), and each estimator's relative error on the BTS ground truth.

    FUNNEL_DATA_MIRROR=/work/shared/data .venv/bin/python benchmarks/slots.py [--seeds 42,7,1] [key=json ...]

``key=json`` arguments override params.yaml (e.g. ``use_cases.slots.train.policy='"top"'``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from task_level import train_and_evaluate  # noqa: E402 - benchmarks run as scripts


def run(overrides: dict) -> dict:
    use_case, config, trained, evaluation, trained_s = train_and_evaluate("slots", overrides)
    return {
        "seed": config.seed, "policy": config.train.policy, "train_seconds": round(trained_s, 1),
        "evaluate_seconds": round(evaluation.seconds, 1), "epochs": trained.fit.epochs_run,
        "model": {k: round(v, 5) for k, v in evaluation.metrics.items()},
        "intervals": {k: [round(v, 5) for v in pair] for k, pair in evaluation.intervals.items()},
        "vs_logged_policy": evaluation.baseline_comparison.describe() if evaluation.baseline_comparison else None,
        "verdict": evaluation.baseline_comparison.verdict_words() if evaluation.baseline_comparison else None,
        "business": use_case.task.business_sentences(evaluation, use_case.card.business_terms),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="", help="comma-separated seeds (common.seed: split and training)")
    parser.add_argument("overrides", nargs="*", help="key=json overrides of params.yaml")
    args = parser.parse_args()
    overrides = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.overrides)}
    seeds = [int(seed) for seed in args.seeds.split(",") if seed]
    results = [run({**overrides, "common.seed": seed}) for seed in seeds] if seeds else [run(overrides)]
    print(json.dumps(results, indent=2, ensure_ascii=False))  # noqa: T201 - a benchmark prints its numbers


if __name__ == "__main__":
    main()
