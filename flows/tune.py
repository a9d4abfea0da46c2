"""`funnel tune <use case>`: search the ranges of its ``tune:`` section (Optuna), every trial an
MLflow run nested under the tuning run; the result is a proposed params.yaml diff, never written."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from components.config import Params, parse_section, read_git_commit, read_params_file
from components.errors import ConfigError, FunnelError, describe_failure
from components.overrides import effective_params
from components.release import registry
from components.training.proposal import propose_diff, set_lines, yaml_value
from components.training.tune import (
    TrialOutcome,
    TrialSpec,
    TuneParams,
    ask_trials,
    best_outcome,
    create_study,
    outcome_of,
    parse_tune,
    reporting,
    shipped_values,
    tell_outcome,
)
from flows.retrain import IO_TASK, ML_TASK, RunContext, ingest, load_context, validate

JOURNAL = "study.journal"


@dataclass(frozen=True)
class Search:
    """A validated ``tune:`` section, the values params.yaml ships, and the study's journal file."""

    tune: TuneParams
    shipped: dict[str, Any]
    journal: Path


def trial_config(ctx: RunContext, values: dict[str, Any], raw: dict[str, Any] | None = None):
    """The use case configured with the run's overrides and a trial's ``values`` (typed: a value
    its section refuses is a ConfigError naming the key); ``raw``: params.yaml as already read."""
    extra = {f"use_cases.{ctx.config.name}.{path}": value for path, value in values.items()}
    raw = read_params_file(ctx.settings.params_path) if raw is None else raw
    return ctx.use_case.configure(parse_section(Params, effective_params(raw, {**(ctx.overrides or {}), **extra}), "params"))


@task(**IO_TASK | {"retries": 0})
def plan_search(ctx: RunContext, trials: int | None) -> Search:
    """Type the ``tune:`` section; every bound and choice must configure the use case."""
    section = ctx.config.params
    tune = parse_tune(section.tune, section.model_dump(), f"params.use_cases.{ctx.config.name}.tune")
    tune = tune.model_copy(update={"trials": trials}) if trials else tune
    raw = read_params_file(ctx.settings.params_path)
    for path, span in tune.params.items():
        for value in span.choices if span.choices is not None else (span.low, span.high):
            trial_config(ctx, {path: value}, raw)
    return Search(tune, shipped_values(tune, section.model_dump()), ctx.scratch / JOURNAL)


@task(**ML_TASK)
def run_trial(ctx: RunContext, frame, search: Search, spec: TrialSpec) -> TrialOutcome:
    """Train one trial's values on the use case's split; its value on the validation metric."""
    started = time.perf_counter()
    config = trial_config(ctx, spec.values)
    try:
        with reporting(search.journal, search.tune, ctx.common.seed, spec) as reporter:
            trained = ctx.use_case.task.train(ctx.use_case, config, frame)
    except FunnelError:
        raise
    except Exception as exc:  # a diverging trial (NaN loss, out of memory) fails alone
        return TrialOutcome(spec.number, spec.values, "failed", None, seconds=time.perf_counter() - started,
                            error=describe_failure(exc), shipped=spec.shipped)
    return outcome_of(spec, trained.fit, search.tune.metric, reporter.pruned, time.perf_counter() - started)


@task(**IO_TASK | {"retries": 0})
def log_trial(ctx: RunContext, parent_run_id: str, metric: str, outcome: TrialOutcome) -> str:
    metrics = {metric: outcome.value} if outcome.value is not None else {}
    return registry.log_trial_run(
        ctx.settings, parent_run_id, f"{ctx.config.name}-trial-{outcome.number}",
        {path: yaml_value(v) for path, v in outcome.values.items()}, {f"epoch_{metric}": outcome.curve},
        {**metrics, "epochs": outcome.epochs, "trial_seconds": outcome.seconds},
        {"trial.number": str(outcome.number), "trial.state": outcome.state, "trial.shipped": str(outcome.shipped),
         **({"trial.error": outcome.error[:500]} if outcome.error else {})}, outcome.state == "failed")


def run_search(ctx: RunContext, frame, search: Search, parent_run_id: str, parallel: int) -> list[TrialOutcome]:
    """Ask the study for ``parallel`` trials at a time, train them (side by side on the task
    runner when ``parallel`` > 1), tell it the outcomes and log each as a nested run."""
    logger, tune = get_run_logger(), search.tune
    study = create_study(tune, ctx.common.seed, search.journal, search.shipped)
    outcomes: list[TrialOutcome] = []
    while len(outcomes) < tune.trials:
        asked = ask_trials(study, tune, min(parallel, tune.trials - len(outcomes)))
        if parallel > 1:  # a Dask worker runs a task in a thread, where Prefect cannot enforce a timeout
            remote = run_trial.with_options(timeout_seconds=None)
            futures = [remote.submit(ctx, frame, search, spec) for _, spec in asked]
            done = [future.result() for future in futures]
        else:
            done = [run_trial(ctx, frame, search, spec) for _, spec in asked]
        for (trial, _), outcome in zip(asked, done, strict=True):
            tell_outcome(study, trial, outcome)
            log_trial(ctx, parent_run_id, tune.metric, outcome)
            shown = "-" if outcome.value is None else f"{outcome.value:.4f}"
            logger.info("trial %d %s: %s=%s after %d epochs (%.1fs)%s", outcome.number, outcome.state, tune.metric,
                        shown, outcome.epochs, outcome.seconds, f": {outcome.error}" if outcome.error else "")
            outcomes.append(outcome)
    return outcomes


@task(**IO_TASK | {"retries": 0})
def finish_search(ctx: RunContext, search: Search, parent_run_id: str, outcomes: list[TrialOutcome]) -> dict[str, Any]:
    """The best trial against the shipped values; the proposed diff, logged to MLflow and Prefect."""
    name, tune = ctx.config.name, search.tune
    best = best_outcome(outcomes, tune.direction)
    shipped = next((o for o in outcomes if o.shipped), None)
    changed = {p: v for p, v in best.values.items() if v != search.shipped[p]} if best else {}
    diff = propose_diff(ctx.settings.params_path.read_text(encoding="utf-8"), name, changed) if changed else ""
    lines = set_lines(name, changed)
    rows = "\n".join(f"| {o.number} | {o.state}{' (shipped)' if o.shipped else ''} | "
                     f"{'-' if o.value is None else f'{o.value:.4f}'} | {o.epochs} | {o.seconds:.1f} | "
                     f"{', '.join(f'{p}={yaml_value(v)}' for p, v in o.values.items())} |" for o in outcomes)
    proposal = f"```diff\n{diff}```" if diff else "no change: the shipped values are the best trial"
    markdown = (f"# {name}: tuning ({len(outcomes)} trials, {tune.direction} {tune.metric} on the validation split)\n\n"
                f"| trial | state | {tune.metric} | epochs | s | values |\n|---|---|---|---|---|---|\n{rows}\n\n"
                f"## Proposed params.yaml change (not applied)\n\n{proposal}\n")
    figures = {f"best_{tune.metric}": best.value} if best and best.value is not None else {}
    if shipped and shipped.value is not None:
        figures[f"shipped_{tune.metric}"] = shipped.value
    registry.end_tuning_run(ctx.settings, parent_run_id, figures,
                            {"proposal/params.yaml.diff": diff, "proposal/trials.md": markdown})
    create_markdown_artifact(key=f"{name}-tune", markdown=markdown, description=f"{name}: proposed params.yaml change")
    if best is None:
        raise FunnelError(f"{name}: no trial of {len(outcomes)} completed (see the trials in MLflow run {parent_run_id}); "
                          "widen the ranges or raise train.max_epochs, then run `funnel tune` again")
    return {"use_case": name, "metric": tune.metric, "direction": tune.direction, "tuning_run_id": parent_run_id,
            "best": {"trial": best.number, "value": best.value, "values": best.values},
            "shipped": None if shipped is None else {"trial": shipped.number, "value": shipped.value, "values": shipped.values},
            "trials": [{"trial": o.number, "state": o.state, "value": o.value, "epochs": o.epochs, "seconds": o.seconds,
                        "shipped": o.shipped, "values": o.values, "error": o.error} for o in outcomes],
            "diff": diff, "set": lines}


@task(**IO_TASK | {"retries": 0})
def start_search(ctx: RunContext, search: Search, rows: int, source: str) -> str:
    tune = search.tune
    params = {"metric": tune.metric, "direction": tune.direction, "trials": tune.trials, "sampler": "tpe",
              "seed": ctx.common.seed, "pruner": "median" if tune.prune else "none",
              **{f"range.{p}": yaml_value(s.model_dump(exclude_none=True)) for p, s in tune.params.items()}}
    tags = {"git_commit": read_git_commit(ctx.settings.repo_root), "prefect_flow_run_id": str(flow_run.id or ""),
            "data_rows": str(rows), "data_source": source}
    registry.initialise_store(ctx.settings)
    return registry.start_tuning_run(ctx.settings, ctx.config.name, params, tags)


@flow(name="tune", flow_run_name="tune-{use_case}")
def tune(use_case: str, overrides: dict[str, Any] | None = None, trials: int | None = None,
         parallel: int = 1) -> dict[str, Any]:
    """Search the use case's ``tune:`` ranges on its validation split; propose the best values."""
    if parallel < 1:
        raise ConfigError(f"parallel trials must be at least 1, got {parallel}")
    ctx = load_context(use_case, overrides)
    try:
        frame, source = ingest(ctx)
        validate(ctx, frame)
        search = plan_search(ctx, trials)
        parent = start_search(ctx, search, len(frame), source)
        outcomes = run_search(ctx, frame, search, parent, parallel)
        return finish_search(ctx, search, parent, outcomes)
    finally:
        shutil.rmtree(ctx.scratch, ignore_errors=True)


def with_dask(address: str | None, workers: int):
    """``tune`` with its trials on a Dask cluster (``runtime.dask_runner``); a remote cluster's
    workers must share this machine's file system: the study's journal is a file."""
    from flows.runtime import dask_runner

    return tune.with_options(task_runner=dask_runner(address, workers))
