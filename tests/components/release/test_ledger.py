"""The promotion ledger on a real MLflow registry (temp SQLite): moves, rollback, races."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from components.config import load_settings
from components.errors import LedgerError, PromotionConflictError
from components.release.ledger import move_alias, parse_ledger, read_ledger, rollback_target
from components.release.promotion import apply_promotion, decide_promotion

ROOT = Path(__file__).resolve().parents[3]


def registry_with_versions(folder: Path, count: int, tracking_uri: str | None = None, use_case: str = "intent",
                           env: dict[str, str] | None = None):
    """A real registry (SQLite in ``folder`` unless ``tracking_uri`` is given) with ``count``
    versions of ``use_case``, each pointing at a logged artifact."""
    import mlflow

    uri = tracking_uri or f"sqlite:///{folder / 'mlruns.db'}"
    settings = load_settings(env={**(env or {}), "MLFLOW_TRACKING_URI": uri}, repo_root=ROOT)
    from components.release.registry import connect

    client = connect(settings)
    client.create_registered_model(use_case)
    experiment = client.create_experiment(use_case, artifact_location=(folder / "artifacts").as_uri())
    for _ in range(count):
        run = client.create_run(experiment)
        (folder / "note.txt").write_text("a model would be here")
        client.log_artifact(run.info.run_id, str(folder / "note.txt"), "model")
        client.create_model_version(use_case, f"{run.info.artifact_uri}/model", run.info.run_id)
    mlflow.set_tracking_uri(settings.tracking_uri)
    return settings


def passing(version: str, champion: str | None, use_case: str = "intent"):
    from components.config import GateParams

    gate = GateParams(primary_metric="roc_auc", min_delta=0.0, floors={"roc_auc": 0.5}, compare="point",
                      baseline_policy="advisory")
    champion_metrics = {"roc_auc": 0.6} if champion else None
    return decide_promotion(use_case, version, {"roc_auc": 0.9}, gate, champion, champion_metrics)


def test_every_move_is_recorded_and_rollback_restores_the_previous_version(tmp_path):
    from components.release.registry import get_alias_version

    settings = registry_with_versions(tmp_path, 3)
    apply_promotion(passing("1", None), settings, "champion", flow_run_id="run-1")
    apply_promotion(passing("2", "1"), settings, "champion", flow_run_id="run-2")
    entries = read_ledger(settings, "intent")
    assert [(e.sequence, e.from_version, e.to_version, e.action) for e in entries] == [
        (1, None, "1", "promote"), (2, "1", "2", "promote")]
    assert entries[1].flow_run_id == "run-2"
    assert entries[1].gate.startswith("passed: floor.roc_auc: roc_auc 0.9000 >= 0.5000")
    assert entries[1].actor == "gate (auto)"
    assert entries[1].at.endswith("+00:00")
    # rollback goes back exactly one move, and is itself recorded
    target = rollback_target(entries, "champion", "2")
    assert target == "1"
    move_alias(settings, "intent", "champion", target, action="rollback", reason="bad reviews", actor="ana")
    assert str(get_alias_version(settings, "intent", "champion").version) == "1"
    last = read_ledger(settings, "intent")[-1]
    assert (last.action, last.from_version, last.to_version, last.actor, last.reason) == ("rollback", "2", "1", "ana", "bad reviews")
    # the first champion has nothing before it
    with pytest.raises(LedgerError, match="no earlier version"):
        rollback_target(read_ledger(settings, "intent")[:1], "champion", "1")


def test_a_promotion_based_on_a_stale_champion_is_refused(tmp_path):
    from components.release.registry import get_alias_version

    settings = registry_with_versions(tmp_path, 3)
    apply_promotion(passing("1", None), settings, "champion")
    apply_promotion(passing("2", "1"), settings, "champion")
    with pytest.raises(PromotionConflictError, match="moved from v1 to v2"):
        apply_promotion(passing("3", "1"), settings, "champion")  # evaluated against v1, but v2 serves now
    assert str(get_alias_version(settings, "intent", "champion").version) == "2"
    assert len(read_ledger(settings, "intent")) == 2


def test_moving_to_a_version_that_does_not_exist_is_refused(tmp_path):
    settings = registry_with_versions(tmp_path, 1)
    with pytest.raises(LedgerError, match="no version 7"):
        move_alias(settings, "intent", "champion", "7", action="rollback", reason="typo")


def _promote_in_process(settings_env: dict[str, str], version: str, barrier, results, repo_root: Path = ROOT,
                        use_case: str = "intent") -> None:
    settings = load_settings(env=settings_env, repo_root=repo_root)
    barrier.wait()
    try:
        apply_promotion(passing(version, "1", use_case), settings, "champion")
        results.put((version, "won"))
    except PromotionConflictError:
        results.put((version, "refused"))


def test_two_racing_promotions_cannot_both_win(tmp_path):
    assert_one_racer_wins(registry_with_versions(tmp_path, 3))


def assert_one_racer_wins(settings, repo_roots: tuple[Path, Path] = (ROOT, ROOT), use_case: str = "intent") -> None:
    """Versions 2 and 3 race to replace champion 1, each from a process of its own (and from its
    own checkout in ``repo_roots``): exactly one move lands in the registry and the ledger."""
    from components.release.registry import get_alias_version

    apply_promotion(passing("1", None, use_case), settings, "champion")
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    env = {"MLFLOW_TRACKING_URI": settings.tracking_uri, **({"FUNNEL_LOCK_URL": settings.lock_url} if settings.lock_url else {})}
    racers = [context.Process(target=_promote_in_process, args=(env, v, barrier, results, root, use_case))
              for v, root in zip(("2", "3"), repo_roots, strict=True)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=120)
    outcome = dict(results.get(timeout=5) for _ in racers)
    assert sorted(outcome.values()) == ["refused", "won"]
    winner = next(v for v, o in outcome.items() if o == "won")
    assert str(get_alias_version(settings, use_case, "champion").version) == winner
    entries = read_ledger(settings, use_case)
    assert [(e.from_version, e.to_version, e.status) for e in entries] == [(None, "1", "applied"), ("1", winner, "applied")]


def test_parse_ledger_ignores_other_tags_and_orders_by_sequence():
    from components.release.ledger import LedgerEntry

    a = LedgerEntry(2, "x", "promote", "champion", "1", "2", "me", "t", "r")
    b = LedgerEntry(1, "x", "promote", "champion", None, "1", "me", "t", "r")
    tags = {a.tag: a.to_json(), b.tag: b.to_json(), "owner": "team", "ledger.note": "free text"}
    assert [e.sequence for e in parse_ledger(tags)] == [1, 2]


def _crash_during_move(tracking_uri: str, when: str) -> None:
    """Move @champion to v2 in this process and die (os._exit, no clean-up) ``when`` = before or
    after the alias moves: what a killed worker or a lost machine leaves behind."""
    import os

    from components.release import registry

    real_set_alias = registry.set_alias

    def dying_set_alias(*args, **kwargs):
        if when == "after":
            real_set_alias(*args, **kwargs)
        os._exit(3)

    registry.set_alias = dying_set_alias
    settings = load_settings(env={"MLFLOW_TRACKING_URI": tracking_uri}, repo_root=ROOT)
    move_alias(settings, "intent", "champion", "2", action="promote", reason="gate passed")


@pytest.mark.parametrize(("when", "settled", "champion_after_crash"), [
    ("before", "not applied", "1"), ("after", "applied", "2")])
def test_a_crash_between_the_ledger_and_the_alias_leaves_a_record_the_next_move_settles(
        tmp_path, when, settled, champion_after_crash):
    from components.release.ledger import INTENT
    from components.release.registry import get_alias_version

    settings = registry_with_versions(tmp_path, 3)
    move_alias(settings, "intent", "champion", "1", action="promote", reason="first")
    crashed = multiprocessing.get_context("spawn").Process(target=_crash_during_move, args=(settings.tracking_uri, when))
    crashed.start()
    crashed.join(timeout=120)
    assert crashed.exitcode == 3
    assert str(get_alias_version(settings, "intent", "champion").version) == champion_after_crash
    # the move was written down before the alias moved: nothing happened without a record
    [first, interrupted] = read_ledger(settings, "intent")
    assert (interrupted.sequence, interrupted.status, interrupted.to_version) == (2, INTENT, "2")
    # the next move settles it and takes the next number (no entry overwritten)
    entry = move_alias(settings, "intent", "champion", "3", action="promote", reason="next")
    entries = read_ledger(settings, "intent")
    assert [(e.sequence, e.status) for e in entries] == [(1, "applied"), (2, settled), (3, "applied")]
    assert entries[1].reason.endswith(f"[settled later: {settled}]")
    assert entry.from_version == champion_after_crash
    # a rollback never returns to a move that did not happen
    if settled == "not applied":
        assert rollback_target(entries, "champion", "3") == "1"


def test_rollback_only_returns_to_a_former_champion_unless_forced(tmp_path):
    from components.release.ledger import MANUAL, rollback_action

    settings = registry_with_versions(tmp_path, 3)
    apply_promotion(passing("1", None), settings, "champion")
    apply_promotion(passing("2", "1"), settings, "champion")
    entries = read_ledger(settings, "intent")
    assert rollback_action(entries, "champion", "1", force=False, reason=None) == "rollback"
    # v3 never served (say it failed its gate): a rollback to it would bypass the gate
    with pytest.raises(LedgerError, match="v3 was never @champion.*--force --reason"):
        rollback_action(entries, "champion", "3", force=False, reason="it is fine")
    with pytest.raises(LedgerError, match="--force needs --reason"):
        rollback_action(entries, "champion", "3", force=True, reason="  ")
    assert rollback_action(entries, "champion", "3", force=True, reason="hotfix for the sale") == MANUAL


def test_the_cli_refuses_a_rollback_to_a_version_that_never_served_and_records_a_forced_one(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from components.release.registry import get_alias_version
    from flows.cli import app

    settings = registry_with_versions(tmp_path, 3)
    apply_promotion(passing("1", None), settings, "champion")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("FUNNEL_REPO_ROOT", str(ROOT))
    runner = CliRunner()
    refused = runner.invoke(app, ["rollback", "intent", "--to", "3"])
    assert refused.exit_code != 0
    assert "v3 was never @champion" in refused.output
    assert "Traceback" not in refused.output
    assert str(get_alias_version(settings, "intent", "champion").version) == "1"
    forced = runner.invoke(app, ["rollback", "intent", "--to", "3", "--force", "--reason", "hotfix"])
    assert forced.exit_code == 0, forced.output
    assert "manual promotion" in forced.output
    last = read_ledger(settings, "intent")[-1]
    assert (last.action, last.from_version, last.to_version, last.reason) == ("manual promotion", "1", "3", "hotfix")


class _RefusingRegistry:
    """A real HTTP server in front of which MLflow's REST client runs: every request is answered
    with ``status`` and MLflow's JSON error body (what an auth proxy or a failing server sends)."""

    def __init__(self, status: int, error_code: str) -> None:
        import http.server
        import json
        import threading

        body = json.dumps({"error_code": error_code, "message": "refused"}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.mark.parametrize(("status", "error_code"), [(403, "PERMISSION_DENIED"), (401, "UNAUTHENTICATED"),
                                                    (503, "TEMPORARILY_UNAVAILABLE")])
def test_a_refusing_registry_is_never_read_as_no_champion_or_an_empty_ledger(status, error_code, monkeypatch):
    from components.errors import RegistryError
    from components.release import registry

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    server = _RefusingRegistry(status, error_code)
    try:
        settings = load_settings(env={"MLFLOW_TRACKING_URI": server.url, "FUNNEL_LOCK_URL": "file"}, repo_root=ROOT)
        for read in (lambda: registry.get_alias_version(settings, "intent", "champion"),
                     lambda: registry.model_tags(settings, "intent"),
                     lambda: registry.get_version(settings, "intent", "1"),
                     lambda: read_ledger(settings, "intent"),
                     lambda: move_alias(settings, "intent", "champion", "1", action="promote", reason="r")):
            # a refusal names its HTTP status; a failing server (MLflow's client retries 5xx and then
            # reports an internal error) says to look at the server
            with pytest.raises(RegistryError, match=f"HTTP {status}" if status < 500 else "see its log") as raised:
                read()
            assert raised.value.transient == (status >= 500)
            assert "refused" not in str(raised.value)  # the server's own text is not repeated
    finally:
        server.close()


def test_an_absent_model_or_alias_still_reads_as_none(tmp_path):
    from components.release import registry

    settings = registry_with_versions(tmp_path, 1)
    assert registry.get_alias_version(settings, "intent", "champion") is None
    assert registry.get_alias_version(settings, "no_such_model", "champion") is None
    assert registry.model_tags(settings, "no_such_model") == {}
    assert registry.get_version(settings, "intent", "9") is None


def test_moves_through_an_mlflow_server_need_a_shared_lock():
    from components.errors import ConfigError
    from components.release.ledger import lock_target

    server = load_settings(env={"MLFLOW_TRACKING_URI": "http://mlflow:5000"}, repo_root=ROOT)
    with pytest.raises(ConfigError, match="FUNNEL_LOCK_URL=postgresql://"):
        lock_target(server)
    shared = load_settings(env={"MLFLOW_TRACKING_URI": "http://mlflow:5000",
                                "FUNNEL_LOCK_URL": "postgresql://u:p@db:5432/funnel"}, repo_root=ROOT)
    assert lock_target(shared) == "postgresql://u:p@db:5432/funnel"
    assert lock_target(load_settings(env={"MLFLOW_TRACKING_URI": "sqlite:////tmp/x.db"}, repo_root=ROOT)) == "file"
    assert lock_target(load_settings(env={"MLFLOW_TRACKING_URI": "postgresql://u:p@db/mlflow"},
                                     repo_root=ROOT)) == "postgresql://u:p@db/mlflow"


def test_without_user_accounts_the_actor_is_the_named_service_account_or_the_os_user(tmp_path, monkeypatch):
    from components.release.ledger import current_actor

    settings = registry_with_versions(tmp_path, 1)
    monkeypatch.setenv("FUNNEL_ACTOR", "ci-bot")
    assert current_actor(settings) == "ci-bot"
    entry = move_alias(settings, "intent", "champion", "1", action="promote", reason="first")
    assert entry.actor == "ci-bot"
    monkeypatch.delenv("FUNNEL_ACTOR")
    import getpass

    assert current_actor(settings) == getpass.getuser()


def test_a_review_answer_counts_only_when_the_registry_holds_it():
    from components.errors import ReviewError
    from components.release.ledger import REVIEW_ANSWER_TAG, confirm_review_answer, review_answer

    tags = {REVIEW_ANSWER_TAG: review_answer(True, "checked slices", "ana", "a1")}
    assert confirm_review_answer(tags, True, "a1")["reviewer"] == "ana"
    for stored, approve, answer_id in [
        ({}, True, "a1"),                                   # typed in the Prefect UI: nothing in the registry
        (tags, True, ""),                                   # no answer id
        (tags, True, "b2"),                                 # another answer's id
        (tags, False, "a1"),                                # the registry says approve, the flow was told reject
        ({REVIEW_ANSWER_TAG: "not json"}, True, "a1"),
    ]:
        with pytest.raises(ReviewError, match="not confirmed by the registry"):
            confirm_review_answer(stored, approve, answer_id)
