"""The coldstart use case on MovieLens 100K: train and evaluate seconds, warm and cold metrics of
the hybrid model vs its same-run peers (EASE on warm items; genre affinity and content kNN on the
held-out cold items), each paired over users with a 95% bootstrap interval. ``--seeds 42,1,2``
repeats it with other training seeds on the same split and the same cold items.

    FUNNEL_DATA_MIRROR=/work/shared/data .venv/bin/python benchmarks/coldstart.py [--seeds 42]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(seed: int, overrides: dict) -> dict:
    from components.config import load_params, load_settings
    from components.data.ingest import read_source
    from components.use_cases import get_use_case

    # the split and the cold items stay put (split.seed 42) while the training seed varies
    params = load_params(ROOT / "params.yaml", {"common.seed": seed, "use_cases.coldstart.split.seed": 42,
                                                **overrides})
    use_case = get_use_case("coldstart", params)
    config = use_case.configure(params)
    frame, _ = read_source("coldstart", config.params.data, load_settings())
    started = time.perf_counter()
    trained = use_case.task.train(use_case, config, frame)
    trained_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as plots:
        evaluation = use_case.task.evaluate(use_case, config, trained, Path(plots))
    return {
        "seed": seed, "train_seconds": round(trained_s, 1), "evaluate_seconds": round(evaluation.seconds, 1),
        "epochs": trained.fit.epochs_run, "best_epoch": trained.fit.best_epoch, "rows": trained.splits.sizes,
        "model": evaluation.metrics, "baseline": {"name": evaluation.baseline_name, **evaluation.baseline_metrics},
        "comparisons": {name: [evaluation.metrics[name], *evaluation.intervals.get(name, ())]
                        for name in evaluation.metrics if name.startswith("vs_")},
        "vs_baseline": evaluation.baseline_comparison.describe() if evaluation.baseline_comparison else None,
        "intervals": evaluation.intervals,
        "business": use_case.task.business_sentences(evaluation, use_case.card.business_terms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--set", action="append", default=[], help="params override key=json value")
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    for seed in args.seeds.split(","):
        print(json.dumps(run(int(seed), overrides), indent=2, default=str), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
