"""Schedules: one Prefect deployment per use case (cron and timezone from params.yaml), and backfills."""

from __future__ import annotations

import inspect
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from components.config import Params

RETRAIN_ENTRYPOINT = "flows/retrain.py:retrain"


def deployments(params: Params, names: list[str] | None = None, flow: Any = None, **options: Any) -> list:
    """A RunnerDeployment of the retrain flow (or ``flow``, e.g. one loaded from source) per use
    case with an active schedule; ``options`` go to ``to_deployment`` (work pool, job variables)."""
    from prefect.schedules import Cron

    if flow is None:
        from flows.retrain import retrain as flow

    built = []
    for name, section in params.use_cases.items():
        if (names and name not in names) or not section.schedule.active:
            continue
        built.append(flow.to_deployment(
            name=name,
            schedule=Cron(section.schedule.cron, timezone=section.schedule.timezone),
            parameters={"use_case": name},
            description=f"Scheduled retraining of {name} ({section.schedule.cron}, {section.schedule.timezone})",
            tags=["funnel", name],
            **options,
        ))
    return built


def deploy_to_pool(
    params: Params, work_pool: str, source: Path, names: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> list:
    """Register the scheduled retrain deployments with ``work_pool``: its workers (``prefect worker
    start --pool ...``) run each flow from the checkout at ``source`` (a path the workers see),
    with ``env`` added to their environment. Returns the deployment ids."""
    from prefect import deploy

    from flows.retrain import retrain

    remote = retrain.from_source(source=str(source), entrypoint=RETRAIN_ENTRYPOINT)
    options: dict[str, Any] = {"work_pool_name": work_pool}
    if env:
        options["job_variables"] = {"env": env}
    built = deployments(params, names, flow=remote, **options)
    if not built:
        raise ValueError(f"no active schedule among {names or 'the use cases'}; nothing to deploy")
    ids = deploy(*built, work_pool_name=work_pool, build=False, push=False, print_next_steps_message=False)
    assert not inspect.isawaitable(ids)  # called outside any event loop: Prefect's sync API returns the ids
    return ids


def serve_schedules(params: Params, names: list[str] | None = None) -> None:
    """Run the schedules on this machine until stopped; they stay active after a shutdown."""
    from prefect import serve

    serve(*deployments(params, names), pause_on_shutdown=False)


def backfill_dates(cron: str, timezone: str, start: date, end: date) -> list[date]:
    """The dates in [start, end] on which ``cron`` fires in ``timezone`` (Prefect has no backfill)."""
    from cronsim import CronSim

    zone = ZoneInfo(timezone)
    # CronSim yields the fire times strictly after its start: begin just before midnight of ``start``
    fires = CronSim(cron, datetime.combine(start, time.min, zone) - timedelta(seconds=1))
    dates: list[date] = []
    for moment in fires:
        if moment.date() > end:
            return dates
        if not dates or dates[-1] != moment.date():
            dates.append(moment.date())
    return dates


def backfill(use_case: str, start: date, end: date, overrides: dict[str, Any] | None = None) -> list[dict]:
    """Run the retrain flow for each scheduled date in [start, end], oldest first, as of that date."""
    from components.config import load_params, load_settings
    from flows.retrain import outcome, retrain

    params = load_params(load_settings().params_path, overrides)
    schedule = params.use_cases[use_case].schedule
    results = []
    for day in backfill_dates(schedule.cron, schedule.timezone, start, end):
        state = retrain(use_case, overrides, as_of=day.isoformat(), return_state=True)
        results.append({"date": day.isoformat(), **outcome(use_case, state)})
    return results
