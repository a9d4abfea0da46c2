"""`funnel tune`: a real 3-trial search through the flow, trials nested in MLflow, a diff proposed, params.yaml untouched."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

pytestmark = pytest.mark.integration


def test_a_three_trial_search_nests_its_trials_in_mlflow_and_prints_a_diff_it_does_not_apply(project):
    from components.config import load_settings
    from components.release import registry

    # given the intent slice of a fresh project, 2 epochs per trial, and only sampled trials (so
    # the best one differs from the shipped values and a change is proposed)
    before = (project / "params.yaml").read_bytes()
    searched = ("{train.learning_rate: {low: 0.001, high: 0.03, log: true}, train.dropout: {low: 0.0, high: 0.3},"
                " train.hidden_units: {choices: [[32], [64, 32]]}}")
    args = ["tune", "intent", "--trials", "3", "--set", "use_cases.intent.train.max_epochs=2",
            "--set", "use_cases.intent.tune.include_shipped=false", "--set", f"use_cases.intent.tune.params={searched}"]

    # when it is tuned
    result = CliRunner().invoke(app, args)

    # then three trials ran, a params.yaml diff is printed that applies to the file, and the file is unchanged
    assert result.exit_code == 0, result.output[-3000:]
    printed = result.stdout
    assert "best: trial" in printed
    diff = printed[printed.index("--- a/params.yaml"):printed.index("\nor, for one run:")]
    assert "+      learning_rate: " in diff
    check = subprocess.run(["git", "apply", "--check", "-"], input=diff, text=True, cwd=project, capture_output=True)
    assert check.returncode == 0, check.stderr
    assert "--set 'use_cases.intent.train.learning_rate=" in printed
    assert (project / "params.yaml").read_bytes() == before
    # ... and MLflow holds the tuning run with its three trials nested under it, the diff attached
    client = registry.connect(load_settings())
    experiment = client.get_experiment_by_name("intent").experiment_id
    [parent] = client.search_runs([experiment], "tags.`funnel.kind` = 'tuning'")
    trials = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(trials) == 3
    assert {t.data.tags["trial.number"] for t in trials} == {"0", "1", "2"}
    for trial in trials:
        assert {"train.learning_rate", "train.dropout", "train.hidden_units"} <= set(trial.data.params)
        assert trial.data.tags["trial.state"] in ("complete", "pruned")
        curve = client.get_metric_history(trial.info.run_id, "epoch_val_auc")
        assert [point.step for point in curve] == list(range(1, len(curve) + 1))
        assert 1 <= len(curve) <= 2
    assert parent.data.params["metric"] == "val_auc"
    assert parent.data.metrics["best_val_auc"] == max(t.data.metrics.get("val_auc", 0.0) for t in trials
                                                      if t.data.tags["trial.state"] == "complete")
    local = client.download_artifacts(parent.info.run_id, "proposal/params.yaml.diff", str(project / "downloaded"))
    assert Path(local).read_text(encoding="utf-8") == diff


def test_a_bad_tune_section_is_a_usage_error_naming_the_key_before_anything_runs(tmp_path, monkeypatch):
    from tests.conftest import ROOT

    # given a repository holding only params.yaml and dvc.yaml (no data: nothing could run)
    for name in ("params.yaml", "dvc.yaml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    monkeypatch.setenv("FUNNEL_REPO_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # when the search names a path the use case does not hold, or an empty range
    misspelt = CliRunner().invoke(app, ["tune", "intent", "--set", "use_cases.intent.tune.params={train.learnin_rate: {low: 0.001, high: 0.01}}"])
    empty = CliRunner().invoke(app, ["tune", "ctr", "--set", "use_cases.ctr.tune.params={train.dropout: {low: 0.3, high: 0.3}}"])
    # then each is a usage error naming the key, and no tracking store was made
    assert misspelt.exit_code == 2
    assert "params.use_cases.intent.tune.params.train.learnin_rate" in misspelt.output
    assert empty.exit_code == 2
    assert "params.use_cases.ctr.tune.params.train.dropout" in empty.output
    assert "empty range" in empty.output
    assert not (tmp_path / "mlruns.db").exists()
