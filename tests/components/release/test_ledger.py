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


def registry_with_versions(folder: Path, count: int, tracking_uri: str | None = None):
    """A real registry (SQLite in ``folder`` unless ``tracking_uri`` is given) with ``count``
    versions of ``intent``, each pointing at a logged artifact."""
    import mlflow

    uri = tracking_uri or f"sqlite:///{folder / 'mlruns.db'}"
    settings = load_settings(env={"MLFLOW_TRACKING_URI": uri}, repo_root=ROOT)
    from components.release.registry import connect

    client = connect(settings)
    client.create_registered_model("intent")
    experiment = client.create_experiment("intent", artifact_location=(folder / "artifacts").as_uri())
    for _ in range(count):
        run = client.create_run(experiment)
        (folder / "note.txt").write_text("a model would be here")
        client.log_artifact(run.info.run_id, str(folder / "note.txt"), "model")
        client.create_model_version("intent", f"{run.info.artifact_uri}/model", run.info.run_id)
    mlflow.set_tracking_uri(settings.tracking_uri)
    return settings


def passing(version: str, champion: str | None):
    from components.config import GateParams

    gate = GateParams(primary_metric="roc_auc", min_delta=0.0, floors={"roc_auc": 0.5}, compare="point",
                      baseline_policy="advisory")
    champion_metrics = {"roc_auc": 0.6} if champion else None
    return decide_promotion("intent", version, {"roc_auc": 0.9}, gate, champion, champion_metrics)


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


def _promote_in_process(tracking_uri: str, version: str, barrier, results, repo_root: Path = ROOT) -> None:
    settings = load_settings(env={"MLFLOW_TRACKING_URI": tracking_uri}, repo_root=repo_root)
    barrier.wait()
    try:
        apply_promotion(passing(version, "1"), settings, "champion")
        results.put((version, "won"))
    except PromotionConflictError:
        results.put((version, "refused"))


def test_two_racing_promotions_cannot_both_win(tmp_path):
    assert_one_racer_wins(registry_with_versions(tmp_path, 3))


def assert_one_racer_wins(settings, repo_roots: tuple[Path, Path] = (ROOT, ROOT)) -> None:
    """Versions 2 and 3 race to replace champion 1, each from a process of its own (and from its
    own checkout in ``repo_roots``): exactly one move lands in the registry and the ledger."""
    from components.release.registry import get_alias_version

    apply_promotion(passing("1", None), settings, "champion")
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    racers = [context.Process(target=_promote_in_process, args=(settings.tracking_uri, v, barrier, results, root))
              for v, root in zip(("2", "3"), repo_roots, strict=True)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=120)
    outcome = dict(results.get(timeout=5) for _ in racers)
    assert sorted(outcome.values()) == ["refused", "won"]
    winner = next(v for v, o in outcome.items() if o == "won")
    assert str(get_alias_version(settings, "intent", "champion").version) == winner
    entries = read_ledger(settings, "intent")
    assert [(e.from_version, e.to_version) for e in entries] == [(None, "1"), ("1", winner)]


def test_parse_ledger_ignores_other_tags_and_orders_by_sequence():
    from components.release.ledger import LedgerEntry

    a = LedgerEntry(2, "x", "promote", "champion", "1", "2", "me", "t", "r")
    b = LedgerEntry(1, "x", "promote", "champion", None, "1", "me", "t", "r")
    tags = {a.tag: a.to_json(), b.tag: b.to_json(), "owner": "team", "ledger.note": "free text"}
    assert [e.sequence for e in parse_ledger(tags)] == [1, 2]
