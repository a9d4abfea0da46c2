"""Schedules: one Prefect deployment per use case (cron and timezone from params.yaml), and backfills."""

from __future__ import annotations

import inspect
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from components.config import Params, ScheduleParams
from components.errors import ConfigError

RETRAIN_ENTRYPOINT = "flows/retrain.py:retrain"


def check_schedule(name: str, schedule: ScheduleParams) -> None:
    """A use case's cron line and timezone must parse: else a ConfigError naming the key."""
    from cronsim import CronSim, CronSimError

    where = f"use_cases.{name}.schedule"
    try:
        ZoneInfo(schedule.timezone)
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
        raise ConfigError(f"{where}.timezone: unknown timezone {schedule.timezone!r}; use an IANA name such "
                          "as UTC or Europe/Berlin") from None
    try:
        CronSim(schedule.cron, datetime.now(ZoneInfo(schedule.timezone)))
    except CronSimError as exc:
        raise ConfigError(f"{where}.cron: {schedule.cron!r} is not a cron line ({exc}); five fields: minute hour "
                          "day-of-month month day-of-week, e.g. '0 3 * * 1'") from None


def scheduled(params: Params, names: list[str] | None = None) -> list[str]:
    """The use cases (of ``names``, default all) whose schedule is active."""
    return [name for name, section in params.use_cases.items()
            if (not names or name in names) and section.schedule.active]


def deployments(params: Params, names: list[str] | None = None, flow: Any = None, **options: Any) -> list:
    """A RunnerDeployment of the retrain flow (or ``flow``, e.g. one loaded from source) per use
    case with an active schedule; ``options`` go to ``to_deployment`` (work pool, job variables)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    if flow is None:
        from flows.retrain import retrain as flow

    built = []
    for name in scheduled(params, names):
        section = params.use_cases[name]
        check_schedule(name, section.schedule)
        built.append(flow.to_deployment(
            name=name,
            schedule=Cron(section.schedule.cron, timezone=section.schedule.timezone),
            parameters={"use_case": name},
            description=f"Scheduled retraining of {name} ({section.schedule.cron}, {section.schedule.timezone})",
            tags=["funnel", name],
            concurrency_limit=ConcurrencyLimitConfig(limit=section.schedule.max_running,
                                                     collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
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

    if not scheduled(params, names):
        raise ConfigError(no_active_schedule(names, "deploy"))
    remote = retrain.from_source(source=str(source), entrypoint=RETRAIN_ENTRYPOINT)
    options: dict[str, Any] = {"work_pool_name": work_pool}
    if env:
        options["job_variables"] = {"env": env}
    built = deployments(params, names, flow=remote, **options)
    ids = deploy(*built, work_pool_name=work_pool, build=False, push=False, print_next_steps_message=False)
    assert not inspect.isawaitable(ids)  # called outside any event loop: Prefect's sync API returns the ids
    return ids


def serve_schedules(params: Params, names: list[str] | None = None) -> None:
    """Run the schedules on this machine until stopped; they stay active after a shutdown."""
    from prefect import serve

    if not scheduled(params, names):
        raise ConfigError(no_active_schedule(names, "serve"))
    serve(*deployments(params, names), pause_on_shutdown=False)


def no_active_schedule(names: list[str] | None, action: str) -> str:
    which = ", ".join(names) if names else "the use cases"
    return (f"no active schedule among {which}; nothing to {action}. Set schedule.active: true in their "
            "params.yaml sections (`funnel schedule list` shows them)")


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
    check_schedule(use_case, schedule)
    if start > end:
        raise ConfigError(f"the backfill starts on {start}, after its last date {end}; swap --from and --to")
    dates = backfill_dates(schedule.cron, schedule.timezone, start, end)
    if not dates:
        raise ConfigError(f"{use_case}'s schedule ({schedule.cron!r}, {schedule.timezone}) has no run between {start} "
                          f"and {end}; widen --from/--to (`funnel schedule list` shows the schedules)")
    results = []
    for day in dates:
        state = retrain(use_case, overrides, as_of=day.isoformat(), return_state=True)
        results.append({"date": day.isoformat(), **outcome(use_case, state)})
    return results
