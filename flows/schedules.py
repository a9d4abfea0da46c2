"""Schedules: one Prefect deployment per use case (cron and timezone from params.yaml), and backfills."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from components.config import Params


def deployments(params: Params, names: list[str] | None = None) -> list:
    """A RunnerDeployment of the retrain flow per use case with an active schedule."""
    from prefect.schedules import Cron

    from flows.retrain import retrain

    built = []
    for name, section in params.use_cases.items():
        if (names and name not in names) or not section.schedule.active:
            continue
        built.append(retrain.to_deployment(
            name=name,
            schedule=Cron(section.schedule.cron, timezone=section.schedule.timezone),
            parameters={"use_case": name},
            description=f"Scheduled retraining of {name} ({section.schedule.cron}, {section.schedule.timezone})",
            tags=["funnel", name],
        ))
    return built


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
