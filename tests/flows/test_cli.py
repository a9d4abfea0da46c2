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
