"""The CLI's data commands, and `retrain --all` skipping use cases whose data is unavailable."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import MIRROR, needs_mirror


def _offline(project) -> None:
    """Point the official URLs at a closed local port: no download can succeed."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    for name in ("ctr", "recommend"):
        params["use_cases"][name]["data"]["url"] = "http://127.0.0.1:9/unreachable"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_without_mirror_or_network_ctr_and_recommend_are_skipped_with_a_reason(project, monkeypatch):
    from flows.retrain import available_use_cases

    monkeypatch.delenv("FUNNEL_DATA_MIRROR", raising=False)
    _offline(project)
    ready, skipped = available_use_cases()
    assert ready == ["intent", "sentiment", "support", "fraud"]
    assert set(skipped) == {"ctr", "recommend"}
    assert "FUNNEL_DATA_MIRROR" in skipped["ctr"]
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


def test_history_rollback_and_lineage_after_two_promotions(project):
    from components.config import load_settings
    from components.release.registry import get_alias_version
    from flows.retrain import retrain
    from tests.conftest import FAST

    weak = {**FAST, "use_cases.intent.train.max_epochs": 1, "use_cases.intent.train.learning_rate": 1e-5,
            "use_cases.intent.gate.floors": {"roc_auc": 0.1, "pr_auc": 0.01}}
    first = retrain("intent", weak)
    second = retrain("intent", FAST)  # a properly trained model beats the weak champion
    assert (first["champion_version"], second["champion_version"]) == ("1", "2")
    runner = CliRunner()

    shown = runner.invoke(app, ["history", "intent"])
    assert shown.exit_code == 0, shown.output
    lines = [line for line in shown.output.splitlines() if line.strip()[:1].isdigit()]
    assert len(lines) == 2
    assert "promote" in lines[1]
    assert "v1" in lines[1]
    assert "v2" in lines[1]

    lineage = runner.invoke(app, ["lineage", "intent"])
    assert lineage.exit_code == 0, lineage.output
    assert second["data_md5"] in lineage.output
    assert "previous @champion" in lineage.output
    assert "v1 (moved" in lineage.output
    assert "success" in lineage.output or "evaluated" in lineage.output  # the GX statistics

    by_data = runner.invoke(app, ["lineage", "--data", second["data_md5"]])
    assert by_data.exit_code == 0, by_data.output
    assert "intent" in by_data.output
    assert " 1 " in by_data.output
    assert " 2 " in by_data.output

    rolled = runner.invoke(app, ["rollback", "intent", "--reason", "complaints from sales"])
    assert rolled.exit_code == 0, rolled.output
    assert str(get_alias_version(load_settings(), "intent", "champion").version) == "1"
    after = runner.invoke(app, ["history", "intent"]).output
    assert "rollback" in after
    assert "complaints from sales" in after
