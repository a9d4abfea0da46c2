"""The CLI's data commands, `retrain --all` skipping use cases whose data is unavailable, the
registry commands (tables and --json) and the exit codes: 0 done, 1 failed at run time, 2 usage."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import MIRROR, needs_mirror


def _offline(project) -> None:
    """Point the official URLs at a closed local port: no download can succeed."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    for name in ("ctr", "recommend", "answers", "sessions"):
        params["use_cases"][name]["data"]["url"] = "http://127.0.0.1:9/unreachable"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_without_mirror_or_network_the_uncommittable_data_sets_are_skipped_with_a_reason(project, monkeypatch):
    from flows.retrain import available_use_cases

    monkeypatch.delenv("FUNNEL_DATA_MIRROR", raising=False)
    _offline(project)
    ready, skipped = available_use_cases()
    assert ready == ["intent", "sentiment", "support", "fraud"]
    assert set(skipped) == {"ctr", "recommend", "answers", "topics", "slots", "campaign", "sessions", "coldstart"}
    assert "FUNNEL_DATA_MIRROR" in skipped["ctr"]
    # --set reaches the availability check: the overridden source is the one looked for
    ready, skipped = available_use_cases(["intent"], {"use_cases.intent.data.source": str(project / "gone.csv")})
    assert ready == []
    assert str(project / "gone.csv") in skipped["intent"]
    result = CliRunner().invoke(app, ["fetch", "ctr"])
    assert result.exit_code == 1
    assert "FUNNEL_DATA_MIRROR" in result.output


@needs_mirror
def test_fetch_copies_mirror_data_into_git_ignored_folders(project, monkeypatch):
    monkeypatch.setenv("FUNNEL_DATA_MIRROR", str(MIRROR))
    _offline(project)
    listed = CliRunner().invoke(app, ["list"])
    assert "mirror:" in listed.output
    assert not (project / "data" / "ctr").exists()  # listing copies nothing
    result = CliRunner().invoke(app, ["fetch", "ctr", "recommend"])
    assert result.exit_code == 0, result.output
    assert (project / "data" / "ctr" / "frappe.validation.libfm").is_file()
    assert (project / "data" / "recommend" / "u.data").is_file()
    import subprocess

    ignored = subprocess.run(["git", "check-ignore", "data/ctr/frappe.test.libfm", "data/recommend/u.data"],
                             cwd=project, capture_output=True, text=True)
    assert ignored.stdout.split() == ["data/ctr/frappe.test.libfm", "data/recommend/u.data"]


def test_an_empty_registry_runtime_failures_exit_1_and_usage_errors_exit_2(project, tmp_path):
    runner = CliRunner()
    empty = runner.invoke(app, ["history", "intent"])
    assert empty.exit_code == 0, empty.output
    assert "no alias moves recorded yet" in empty.stdout
    as_json = runner.invoke(app, ["history", "intent", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == []

    # run-time failures: a FunnelError is one red line on stderr and exit code 1, no traceback
    for args, says in [
        (["score", "intent", str(tmp_path / "missing.csv")], "intent has no @champion to score with"),
        (["lineage", "intent"], "intent has no @champion; pass --version"),
        (["rollback", "intent"], "the ledger has no move of @champion"),
        (["lineage", "--data", "0" * 32], "no model version was trained on data md5"),
    ]:
        failed = runner.invoke(app, args)
        assert failed.exit_code == 1, (args, failed.output)
        assert says in failed.stderr, args
        assert says in str(failed.exception), args  # CliRunner callers still see why
        assert failed.stdout == "", args
        assert "Traceback" not in failed.output, args
    by_data = runner.invoke(app, ["lineage", "--data", "0" * 32, "--json"])
    assert (by_data.exit_code, json.loads(by_data.stdout)) == (1, [])

    # usage errors: nothing runs, exit code 2
    for args in (["retrain", "nosuch"], ["retrain", "intent", "--set", "bad"], ["history", "nosuch"]):
        usage = runner.invoke(app, args)
        assert usage.exit_code == 2, (args, usage.output)
    # ... each says what is wrong in a line or a box, never with a traceback
    cron = "--set=use_cases.intent.schedule.cron"
    for args, says in [
        (["retrain", "intent", "--set", "use_cases.intent.validate.columns.Month={type: [str"], "not valid YAML"),
        (["params", "show", "intent", "--set", "use_cases.intent.validate.columns.Month.type=string"],
         "'str' or 'bool', got 'string'"),
        (["backfill", "intent", "--from", "2026-13-01", "--to", "2026-12-31"], "YYYY-MM-DD"),
        (["backfill", "intent", "--from", "2026-12-31", "--to", "2026-01-01"], "is after --to"),
        (["backfill", "intent", "--from", "2026-01-06", "--to", "2026-01-06", f"{cron}=0 3 * * 1"], "has no run between"),
        (["backfill", "intent", "--from", "2026-01-05", "--to", "2026-01-06", f"{cron}=61 3 * * 1"], "is not a cron line"),
    ]:
        usage = runner.invoke(app, args)
        assert usage.exit_code == 2, (args, usage.output)
        assert says in " ".join(usage.output.replace("│", " ").split()), (args, usage.output)
        assert "Traceback" not in usage.output, args
    assert not (project / "data" / "snapshots").exists()

    # a run whose data fails validation: exit code 1, and --json still prints one document
    invalid = runner.invoke(app, ["retrain", "intent", "--json", "--set", "use_cases.intent.validate.min_rows=1000000"])
    assert invalid.exit_code == 1, invalid.output
    [run] = json.loads(invalid.stdout)["results"]
    assert (run["use_case"], run["status"], run["version"]) == ("intent", "invalid data", None)
    assert "failed validation" in run["error"]
    assert "[intent] data for 'intent' failed validation" in invalid.stderr
    assert "intent · validate" in invalid.stderr
    assert "Traceback" not in invalid.output  # the retrain-all run ended Failed; its first line is shown


def _as_set_options(overrides: dict) -> list[str]:
    """``--set key=value`` options for the intent keys of an overrides dict (values as YAML/JSON)."""
    return [f"--set={key}={json.dumps(value)}" for key, value in overrides.items() if key.startswith("use_cases.intent.")]


def test_history_rollback_and_lineage_after_two_promotions(project):
    from components.config import load_settings
    from components.release.registry import get_alias_version
    from flows.retrain import retrain
    from tests.conftest import FAST

    weak = {**FAST, "use_cases.intent.train.max_epochs": 1, "use_cases.intent.train.learning_rate": 1e-5,
            "use_cases.intent.gate.floors": {"roc_auc": 0.1, "pr_auc": 0.01}}
    first = retrain("intent", weak)
    assert first["champion_version"] == "1"
    runner = CliRunner()
    # a properly trained model beats the weak champion; `funnel retrain --json` runs it in-process
    retrained = runner.invoke(app, ["retrain", "intent", "--json", *_as_set_options(FAST)])
    assert retrained.exit_code == 0, retrained.output
    summary = json.loads(retrained.stdout)  # stdout holds the JSON document and nothing else
    assert summary["tracking_uri"] == load_settings().tracking_uri
    [second] = summary["results"]
    assert (second["use_case"], second["status"], second["version"], second["champion_version"]) == (
        "intent", "promoted", "2", "2")
    assert second["gate"] == "passed"
    assert second["error"] is None
    assert {"roc_auc", "pr_auc"} <= set(second["metrics"])
    assert len(second["data_md5"]) == 32
    # the progress went to stderr as plain lines (no terminal): stages and epochs
    assert "intent · train" in retrained.stderr
    assert f"epoch 1/{FAST['use_cases.intent.train.max_epochs']}" in retrained.stderr
    assert "intent · promote" in retrained.stderr
    assert "MLflow UI" not in retrained.output

    shown = runner.invoke(app, ["history", "intent"])
    assert shown.exit_code == 0, shown.output
    lines = [line for line in shown.output.splitlines() if line.strip()[:1].isdigit()]
    assert len(lines) == 2
    assert "promote" in lines[1]
    assert "v1" in lines[1]
    assert "v2" in lines[1]
    moves = json.loads(runner.invoke(app, ["history", "intent", "--json"]).stdout)
    assert [(m["sequence"], m["action"], m["from_version"], m["to_version"]) for m in moves] == [
        (1, "promote", None, "1"), (2, "promote", "1", "2")]

    lineage = runner.invoke(app, ["lineage", "intent"])
    assert lineage.exit_code == 0, lineage.output
    assert second["data_md5"] in lineage.output
    assert "previous @champion" in lineage.output
    assert "v1 (moved" in lineage.output
    assert "success" in lineage.output or "evaluated" in lineage.output  # the GX statistics
    facts = json.loads(runner.invoke(app, ["lineage", "intent", "--json"]).stdout)
    assert (facts["version"], facts["data md5"]) == ("2", second["data_md5"])

    by_data = runner.invoke(app, ["lineage", "--data", second["data_md5"]])
    assert by_data.exit_code == 0, by_data.output
    assert "intent" in by_data.output
    assert " 1 " in by_data.output
    assert " 2 " in by_data.output
    trained_on = json.loads(runner.invoke(app, ["lineage", "--data", second["data_md5"], "--json"]).stdout)
    assert sorted(r["version"] for r in trained_on) == ["1", "2"]

    rolled = runner.invoke(app, ["rollback", "intent", "--reason", "complaints from sales"])
    assert rolled.exit_code == 0, rolled.output
    assert str(get_alias_version(load_settings(), "intent", "champion").version) == "1"
    after = runner.invoke(app, ["history", "intent"]).output
    assert "rollback" in after
    assert "complaints from sales" in after
