"""Schedules from params.yaml, backfill dates, and the replay feed through backfilled runs."""

from __future__ import annotations

from datetime import date

import pytest

from components.config import load_params
from components.data.ingest import apply_replay
from components.errors import ConfigError
from flows.schedules import backfill_dates, deployments
from tests.conftest import FAST, ROOT, intent_slice


def test_one_deployment_per_active_use_case_with_cron_and_timezone_from_params():
    params = load_params(ROOT / "params.yaml", {"use_cases.fraud.schedule.active": False})
    built = {d.name: d for d in deployments(params)}
    assert set(built) == set(params.use_cases) - {"fraud"}
    schedule = built["intent"].schedules[0].schedule
    assert schedule.cron == params.use_cases["intent"].schedule.cron
    assert schedule.timezone == "Europe/Berlin"
    assert built["intent"].parameters == {"use_case": "intent"}
    # one running flow per deployment; cron + drift + backfill runs queue instead of racing
    assert built["intent"].concurrency_limit == 1
    assert built["intent"].concurrency_options.collision_strategy.value == "ENQUEUE"
    two = {d.name: d for d in deployments(load_params(ROOT / "params.yaml", {"use_cases.intent.schedule.max_running": 2}))}
    assert two["intent"].concurrency_limit == 2


@pytest.mark.parametrize(("key", "value", "says"), [
    ("cron", "0 3 * *", "use_cases.intent.schedule.cron: '0 3 * *' is not a cron line"),
    ("cron", "61 3 * * 1", "use_cases.intent.schedule.cron: '61 3 * * 1' is not a cron line (Bad minute)"),
    ("timezone", "Europe/Atlantis", "use_cases.intent.schedule.timezone: unknown timezone 'Europe/Atlantis'"),
])
def test_a_bad_schedule_is_a_config_error_naming_its_key(key, value, says):
    params = load_params(ROOT / "params.yaml", {f"use_cases.intent.schedule.{key}": value})
    with pytest.raises(ConfigError) as failure:
        deployments(params, ["intent"])
    assert says in str(failure.value)


def test_nothing_to_deploy_or_backfill_is_a_config_error_saying_what_to_change(tmp_path):
    from flows.schedules import backfill, deploy_to_pool

    params = load_params(ROOT / "params.yaml", {"use_cases.intent.schedule.active": False})
    with pytest.raises(ConfigError, match="no active schedule among intent; nothing to deploy. Set schedule.active"):
        deploy_to_pool(params, "funnel-process", tmp_path, ["intent"])
    weekly = {"use_cases.intent.schedule.cron": "0 3 * * 1"}  # Mondays; 2026-01-06 is a Tuesday
    with pytest.raises(ConfigError, match=r"has no run between 2026-01-06 and 2026-01-06; widen --from/--to"):
        backfill("intent", date(2026, 1, 6), date(2026, 1, 6), weekly)
    with pytest.raises(ConfigError, match="starts on 2026-02-01, after its last date 2026-01-01"):
        backfill("intent", date(2026, 2, 1), date(2026, 1, 1), weekly)


def test_backfill_runs_the_dates_the_schedule_would_have_run():
    # every Monday at 03:30 Berlin time, over two weeks and a bit
    assert backfill_dates("30 3 * * 1", "Europe/Berlin", date(2026, 11, 1), date(2026, 11, 17)) == [
        date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16)]
    # daily, both ends included
    assert backfill_dates("0 3 * * *", "UTC", date(2026, 2, 27), date(2026, 3, 1)) == [
        date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)]


def test_replay_releases_months_in_order():
    params = load_params(ROOT / "params.yaml", {"use_cases.intent.data.replay.enabled": True})
    replay = params.use_cases["intent"].data.replay
    frame = intent_slice(3000)
    sizes = []
    for day in (date(2026, 9, 1), date(2026, 9, 7), date(2026, 9, 14), date(2026, 9, 21), date(2027, 3, 1)):
        released, periods = apply_replay(frame, replay, day)
        sizes.append((periods, len(released)))
        assert set(released["Month"]) == set(replay.order[:periods])
    assert [p for p, _ in sizes] == [1, 1, 2, 3, 10]
    assert sizes[-1][1] == len(frame)
    assert all(a[1] <= b[1] for a, b in zip(sizes, sizes[1:], strict=False))


@pytest.mark.integration
def test_backfill_gives_each_date_its_own_snapshot_and_version(project):
    from flows.schedules import backfill

    # every run promotes (min_delta -1): this test is about backfill and replay; the gate has its own
    overrides = {**FAST, "use_cases.intent.data.replay.enabled": True, "use_cases.intent.schedule.cron": "0 3 * * 1",
                 "use_cases.intent.gate.floors": {"roc_auc": 0.5, "pr_auc": 0.1},
                 "use_cases.intent.gate.min_delta": -1.0}
    results = backfill("intent", date(2026, 10, 12), date(2026, 10, 26), overrides)  # May.., then Nov, then Dec
    assert [r["date"] for r in results] == ["2026-10-12", "2026-10-19", "2026-10-26"]
    assert [r["status"] for r in results] == ["promoted", "promoted", "promoted"]
    from components.config import load_settings
    from components.release.registry import get_run, list_versions

    settings = load_settings()
    versions = list_versions(settings, "intent")
    assert [str(v.version) for v in versions] == ["1", "2", "3"]
    rows = [int(get_run(settings, v.run_id).data.tags["data_rows"]) for v in versions]
    assert rows == sorted(rows)
    assert len(set(rows)) == 3  # each run saw a new snapshot, versioned by DVC
    assert len({v.tags["data_md5"] for v in versions}) == 3
    # as months are released the snapshot grows, yet no champion is ever scored on rows it trained on
    assert [v.tags["eval.champion_rows_seen_in_training"] for v in versions] == ["no champion", "0", "0"]
    assert [v.tags["eval.champion_rows_excluded"] for v in versions[1:]] == ["0", "0"]
    from components.release.ledger import read_ledger

    moves = read_ledger(settings, "intent")
    assert [m.to_version for m in moves] == ["1", "2", "3"]  # the ledger shows the decisions
    # dvc.lock says which release the snapshot it records came from (the last run's as_of day)
    import yaml

    lock = yaml.safe_load((settings.repo_root / "dvc.lock").read_text())
    recorded = lock["stages"]["snapshot@intent"]["params"]["params.yaml"]["use_cases.intent.data"]
    assert recorded["replay"]["as_of"] == date(2026, 10, 26)
    assert recorded["replay"]["enabled"] is True
