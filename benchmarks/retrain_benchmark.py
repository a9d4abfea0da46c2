"""Retrain every use case through the real flow and print one table.

Each metric is shown next to the same-run baseline and the published result. Wall time is split
into ML work (the train task, which runs only the use case's training code, plus the evaluation,
which includes fitting the baseline and scoring the champion) and platform overhead (everything
else: Prefect, GX, DVC, MLflow; the narrower fit + evaluate seconds are shown too), and per stage
(each Prefect task run's time as Prefect recorded it, plus the flow's time outside its tasks).
The start of Prefect's temporary server and the opening of the MLflow store (tables created on a
new registry) are measured once before the first retrain and printed on their own line.
``--runs 2`` retrains each use case twice in a row: the first run on a new registry makes the
first version (no champion), the second runs with that version as @champion (loaded and scored in
evaluate), each with its own row. ``--seeds`` adds the spread of model and baseline over split
seeds, trained through the same components without the platform. Without ``--use-cases`` every use
case whose data is available is retrained; use cases not in METRICS show their gate's primary metric.

Usage: .venv/bin/python benchmarks/retrain_benchmark.py [--use-cases intent,sentiment,...] [--runs 2] [--seeds 1,2,3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date

from flows.runtime import configure_environment

configure_environment()

METRICS = {"intent": ("roc_auc", "pr_auc", "f1", "capture_top_10pct", "capture_top_20pct"),
           "sentiment": ("accuracy", "f1", "roc_auc"),
           "support": ("accuracy", "macro_f1"),
           "fraud": ("pr_auc_natural", "recall_at_precision_90", "roc_auc"),
           "ctr": ("roc_auc", "log_loss", "pr_auc"),
           "recommend": ("ndcg_at_10", "map_at_10", "precision_at_10", "recall_at_10", "coverage")}


# the retrain flow's tasks in the order they run (flows/retrain.py)
STAGES = ("load_context", "ingest", "validate", "version", "train", "evaluate", "register", "gate",
          "review_report", "promote")
# the target: platform overhead at most this share of a retrain's wall time
OVERHEAD_TARGET = 0.15


def stage_seconds(flow_run_id) -> dict[str, float]:
    """Seconds per task of one flow run, as Prefect's API recorded them (a stage that ran twice,
    e.g. on a retry, is summed)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    seconds: dict[str, float] = {}
    for run in runs:
        stage = run.name.rsplit("-", 1)[0]
        seconds[stage] = seconds.get(stage, 0.0) + run.total_run_time.total_seconds()
    return seconds


def start_prefect() -> float:
    """Seconds until Prefect's API answers: without PREFECT_API_URL, Prefect starts a temporary
    server (a subprocess) on the first call, which would otherwise fall in the first retrain's
    time "outside tasks"; measured here and printed on its own line."""
    from prefect import get_client

    started = time.perf_counter()
    with get_client(sync_client=True) as client:
        failure = client.api_healthcheck()
    if failure is not None:
        raise SystemExit(f"Prefect's API does not answer ({type(failure).__name__}); check PREFECT_API_URL")
    return time.perf_counter() - started


def open_registry() -> float:
    """Seconds to open the MLflow store once in this process (on a fresh registry: creating its
    tables, ~60 migrations), which would otherwise fall in the first retrain's evaluate."""
    from components.config import load_settings
    from components.release.registry import initialise_store

    started = time.perf_counter()
    initialise_store(load_settings())
    return time.perf_counter() - started


def platform_runs(names: list[str], runs: int = 1) -> list[dict]:
    """Retrain each use case ``runs`` times in a row (the later runs with a champion when the
    earlier one was promoted); one row per retrain."""
    from components.config import load_params, load_settings
    from components.errors import GateFailedError, ReviewError
    from components.release.catalog import describe_use_case
    from components.release.registry import connect, get_alias_version
    from flows.retrain import retrain

    settings = load_settings()
    params = load_params(settings.params_path)
    rows = []
    for name in [n for n in names for _ in range(runs)]:
        champion = get_alias_version(settings, name, params.common.champion_alias)
        started = time.perf_counter()
        state = retrain(name, return_state=True)
        wall = time.perf_counter() - started
        try:
            state.result()
        except (GateFailedError, ReviewError) as exc:
            print(f"note: {name}: {exc}")
        info = describe_use_case(settings, name, params.common.champion_alias)
        version = connect(settings).get_model_version(name, info["version"])
        run = connect(settings).get_run(version.run_id)
        fit_evaluate = run.data.metrics["fit_seconds"] + run.data.metrics["evaluate_seconds"]
        stages = stage_seconds(state.state_details.flow_run_id)
        stages["outside tasks"] = max(0.0, wall - sum(stages.values()))
        # ML work: the train task (it runs the use case's training code only: split, features,
        # encoders, fit; no platform call) and the evaluation (peer and champion scoring included)
        ml = stages.get("train", 0.0) + run.data.metrics["evaluate_seconds"]
        rows.append({**info, "label": f"{name} (champion v{champion.version})" if champion else name,
                     "with_champion": champion is not None, "wall": wall, "fit_evaluate": fit_evaluate, "ml": ml, "overhead": wall - ml, "stages": stages})
    return rows


def seed_spread(names: list[str], seeds: list[int]) -> dict:
    from pathlib import Path

    from components.config import load_params, load_settings
    from components.data.ingest import read_source
    from components.use_cases import get_use_case

    settings = load_settings()
    spread = {}
    for name in names:
        use_case = get_use_case(name)
        for seed in seeds:
            config = use_case.configure(load_params(settings.params_path, {"common.seed": seed}))
            frame, _ = read_source(name, config.params.data, settings)
            trained = use_case.task.train(use_case, config, frame)
            evaluation = use_case.task.evaluate(use_case, config, trained, Path("/tmp/funnel-benchmark-plots") / name)
            for metric in METRICS.get(name, (config.params.gate.primary_metric,)):
                spread.setdefault((name, metric), {"model": [], "baseline": []})
                spread[(name, metric)]["model"].append(evaluation.metrics[metric])
                spread[(name, metric)]["baseline"].append(evaluation.baseline_metrics[metric])
    return spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--use-cases", default="", help="comma-separated; default: every use case with data")
    parser.add_argument("--runs", type=int, default=1,
                        help="retrains per use case in a row; 2: the second runs with the first as @champion")
    parser.add_argument("--seeds", default="", help="comma-separated split seeds for the spread table")
    args = parser.parse_args()
    from components.use_cases import get_use_case
    from flows.cli import render_table
    from flows.retrain import available_use_cases

    names, skipped = available_use_cases([n for n in args.use_cases.split(",") if n] or None)
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")

    server = start_prefect()
    store = open_registry()
    rows = platform_runs(names, args.runs)
    print(f"\nfunnel retrain benchmark, {date.today()}, {platform.node()} "
          f"({platform.machine()}, {__import__('os').cpu_count()} cores), seed from params.yaml\n")
    table = []
    for row in rows:
        if row["with_champion"]:  # the same data again: its metrics repeat the first run's
            continue
        published = get_use_case(row["use_case"]).card.published
        for metric in shown_metrics(row):
            model, base = row["metrics"].get(metric), row["baseline"].get(metric)
            table.append([
                row["use_case"], metric, number(model), number(base),
                f"{model - base:+.4f}" if model is not None and base is not None else "-",
                f"{published[metric]:.3f}" if metric in published else "-",
            ])
    print(render_table(table, ("use case", "metric", "model", "baseline", "model-baseline", "published")))
    timing = [[r["label"], r["version"], r["gate"], f"{r['wall']:.1f}", f"{r['fit_evaluate']:.1f}",
               f"{(r['wall'] - r['fit_evaluate']) / r['wall']:.0%}", f"{r['ml']:.1f}", f"{r['overhead']:.1f}",
               f"{r['overhead'] / r['wall']:.0%}", "yes" if r["overhead"] <= OVERHEAD_TARGET * r["wall"] else "no"]
              for r in rows]
    print("\nML s: the train task (the use case's training code: split, features, encoders, fit) + evaluate_seconds "
          "(evaluation, peer and champion scoring); fit+evaluate: the run's fit_seconds + evaluate_seconds only\n")
    print(render_table(timing, ("use case", "version", "gate", "wall s", "fit+evaluate s", "share outside fit+evaluate",
                                "ML s", "platform overhead s", "overhead share", f"<= {OVERHEAD_TARGET:.0%}")))
    columns = [*STAGES, "outside tasks"]
    split = [[r["label"], *(f"{r['stages'].get(stage, 0.0):.1f}" for stage in columns)] for r in rows]
    total = sum(r["wall"] for r in rows)
    print(f"\nseconds per stage (Prefect's task run times; train and evaluate hold the ML work); "
          f"{len(rows)} retrains, {total / 60:.1f} min in all\n")
    print(render_table(split, ("use case", *columns)))
    print(f"\nonce per process, before the first retrain (in no retrain's time above): Prefect API ready {server:.1f} s "
          f"(its temporary server's start when PREFECT_API_URL is unset); MLflow store opened {store:.1f} s "
          "(tables created when the registry is new)")
    if args.seeds:
        seeds = [int(s) for s in args.seeds.split(",")]
        spread = seed_spread(names, seeds)
        lines = [[name, metric, f"{statistics.mean(v['model']):.4f} ± {statistics.pstdev(v['model']):.4f}",
                  f"{statistics.mean(v['baseline']):.4f} ± {statistics.pstdev(v['baseline']):.4f}",
                  f"{sum(m > b for m, b in zip(v['model'], v['baseline'], strict=True))}/{len(seeds)}"]
                 for (name, metric), v in spread.items()]
        print(f"\nspread over split seeds {seeds} (mean ± sd)\n")
        print(render_table(lines, ("use case", "metric", "model", "baseline", "model wins")))


def shown_metrics(row: dict) -> tuple[str, ...]:
    """The metrics of METRICS for the original use cases, else the ones both model and peer have
    (at most five, the gate's primary metric first)."""
    if row["use_case"] in METRICS:
        return METRICS[row["use_case"]]
    from components.config import load_params, load_settings

    primary = load_params(load_settings().params_path).use_cases[row["use_case"]].gate.primary_metric
    shared = [m for m in row["metrics"] if m in row["baseline"] and m != primary]
    return (primary, *shared[:4])


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
