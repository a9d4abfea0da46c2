"""How often would each gate rule promote a model that is not better, and a model that is?

For each use case, on identical data and one fixed split, pairs of models are trained with the
same configuration and different training seeds: the challenger is no better than the champion
by construction, so every promotion is a false one. Then the champion is trained on half of the
training rows (a real improvement for the full-data challenger) and the promotions are counted
again. Both rules see the same evaluations: ``point`` (challenger >= champion + min_delta) and
``paired`` (the lower bound of the 95% paired bootstrap interval of challenger - champion, on
the test rows the champion never trained on, exceeds min_delta). The baseline check is left out
(advisory) so the table isolates the champion rule.

Usage: .venv/bin/python benchmarks/gate_benchmark.py [--use-cases intent,sentiment,campaign] [--pairs 10]
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date

from flows.runtime import configure_environment

configure_environment()


def configure(name: str, seed: int):
    from components.config import load_params, load_settings
    from components.use_cases import get_use_case

    settings = load_settings()
    # the split stays put (split.seed 42) while the training seed varies
    split = load_params(settings.params_path).use_cases[name].split.model_dump(mode="json") | {"seed": 42}
    params = load_params(settings.params_path, {"common.seed": seed, f"use_cases.{name}.split": split})
    use_case = get_use_case(name)
    return settings, use_case, use_case.configure(params)


def as_champion(trained, version: str):
    import numpy as np

    from components.evaluation.report import ChampionScorer
    from components.models.scorer import RowScorer

    seen = np.concatenate([trained.splits.keys["train"], trained.splits.keys["validation"]])
    # the pyfunc contract a registered champion scores through: probabilities, or a frame of outputs
    return ChampionScorer(version, RowScorer(trained.serving).predict, trained.threshold, seen_keys=seen,
                          seen_note="its own split")


def halve_training_rows(frame, config, seed: int):
    """The frame without a seeded half of its training rows (validation and test rows stay: the split is stable)."""
    import numpy as np

    from components.data.splits import TRAIN, assign_sides

    split = config.params.split
    # a stratified split (campaign: by conversion) needs the label to place the rows
    sides = assign_sides(frame, split, config.evaluate.test_fraction, config.train.validation_fraction, split.seed,
                         label=config.label)
    rng = np.random.default_rng(seed)
    drop = (sides == TRAIN) & (rng.random(len(frame)) < 0.5)
    return frame[~drop].reset_index(drop=True)


def decide(name, evaluation, gate, rule: str) -> bool:
    from components.release.promotion import decide_promotion

    rule_gate = gate.model_copy(update={"compare": rule, "baseline_policy": "advisory", "floors": {}, "slice_floors": {}})
    decision = decide_promotion(name, "2", evaluation.metrics, rule_gate, evaluation.champion_version,
                                evaluation.champion_metrics, evaluation.champion_error, evaluation.slices,
                                champion_comparison=evaluation.champion_comparison,
                                baseline_comparison=evaluation.baseline_comparison)
    return decision.promote


def run(name: str, pairs: int) -> dict:
    from pathlib import Path

    from components.data.ingest import read_source

    settings, use_case, config = configure(name, 1)
    frame, _ = read_source(name, config.params.data, settings)
    plots = Path("/tmp/funnel-gate-benchmark") / name
    counts = {"same": {"point": 0, "paired": 0}, "better": {"point": 0, "paired": 0}}
    deltas: dict[str, list[float]] = {"same": [], "better": []}
    started = time.perf_counter()
    for pair in range(pairs):
        _, _, champion_config = configure(name, 100 + pair)
        _, _, challenger_config = configure(name, 200 + pair)
        challenger = use_case.task.train(use_case, challenger_config, frame)
        for kind, champion_frame in (("same", frame), ("better", halve_training_rows(frame, champion_config, pair))):
            champion = use_case.task.train(use_case, champion_config, champion_frame)
            evaluation = use_case.task.evaluate(use_case, challenger_config, challenger, plots, as_champion(champion, "1"))
            deltas[kind].append(evaluation.champion_comparison.delta if evaluation.champion_comparison else float("nan"))
            for rule in ("point", "paired"):
                counts[kind][rule] += decide(name, evaluation, challenger_config.params.gate, rule)
        print(f"  {name} pair {pair + 1}/{pairs}: same Δ {deltas['same'][-1]:+.4f}, half-data champion Δ "
              f"{deltas['better'][-1]:+.4f}", flush=True)
    return {"use_case": name, "pairs": pairs, "metric": config.params.gate.primary_metric,
            "min_delta": config.params.gate.min_delta, "counts": counts, "deltas": deltas,
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--use-cases", default="intent,sentiment")
    parser.add_argument("--pairs", type=int, default=10)
    args = parser.parse_args()
    results = [run(name, args.pairs) for name in args.use_cases.split(",")]
    import statistics

    print(f"\nGate calibration, {date.today()} on {platform.machine()} ({platform.processor() or 'cpu'}), "
          f"{args.pairs} pairs per use case, one fixed split\n")
    print("| use case | metric | min_delta | not better: point promotes | not better: paired promotes "
          "| half-data champion: point promotes | half-data champion: paired promotes | mean Δ not better / better | minutes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        same, better = r["counts"]["same"], r["counts"]["better"]
        n = r["pairs"]
        print(f"| {r['use_case']} | {r['metric']} | {r['min_delta']} | {same['point']}/{n} | {same['paired']}/{n} "
              f"| {better['point']}/{n} | {better['paired']}/{n} | {statistics.fmean(r['deltas']['same']):+.4f} / "
              f"{statistics.fmean(r['deltas']['better']):+.4f} | {r['seconds'] / 60:.1f} |")


if __name__ == "__main__":
    main()
