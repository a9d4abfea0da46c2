"""params.yaml loading: typed, frozen, unknown keys fail fast, dotted overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from components.config import load_params, load_settings
from components.errors import ConfigError
from components.overrides import apply_overrides, merge_defaults
from components.use_cases import get_use_case

ROOT = Path(__file__).resolve().parents[2]


def test_params_load_and_are_frozen():
    params = load_params(ROOT / "params.yaml")
    assert params.common.seed == 42
    with pytest.raises(ValidationError, match="frozen"):
        params.common.seed = 1  # type: ignore[misc]


def test_unknown_key_fails_fast(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("  seed: 42", "  seed: 42\n  sede: 1")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"params\.common\.sede: unknown key"):
        load_params(tmp_path / "params.yaml")


def test_unknown_key_in_a_use_case_section_fails_fast():
    params = load_params(ROOT / "params.yaml", {"use_cases.intent.train": {"max_epochs": 3, "epochz": 1}})
    with pytest.raises(ConfigError, match="epochz"):
        get_use_case("intent").configure(params)


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match=r"params\.common\.seed: input should be a valid integer"):
        load_params(ROOT / "params.yaml", {"common.seed": "'abc'"})


def test_overrides_parse_values_and_reject_unknown_paths():
    raw = {"a": {"b": 1}}
    assert apply_overrides(raw, {"a.b": "2"}) == {"a": {"b": 2}}
    assert raw == {"a": {"b": 1}}  # input not mutated
    with pytest.raises(ConfigError, match="'x' is not a key"):
        apply_overrides(raw, {"x.c": "1"})
    # a new leaf is allowed (an optional key params.yaml leaves out); the typed section refuses a typo
    assert apply_overrides(raw, {"a.c": "1"}) == {"a": {"b": 1, "c": 1}}
    params = load_params(ROOT / "params.yaml", {"use_cases.intent.train.max_epocs": "3"})
    with pytest.raises(ConfigError, match="max_epocs: unknown key"):
        get_use_case("intent", params).configure(params)


def test_defaults_fill_a_section_and_a_set_key_wins():
    raw = {"defaults": {"task": {"binary": {"gate": {"min_delta": 0.001, "floors": {"roc_auc": 0.7}}}}},
           "use_cases": {"a": {"task": "binary", "gate": {"floors": {"pr_auc": 0.5}}}, "b": {"task": "ranking", "gate": {"min_delta": 0.01}}}}
    merged = merge_defaults(raw)
    assert merged["use_cases"]["a"]["gate"] == {"min_delta": 0.001, "floors": {"pr_auc": 0.5}}  # a mapping replaces
    assert merged["use_cases"]["b"]["gate"] == {"min_delta": 0.01}  # another task kind: no binary defaults
    assert raw["use_cases"]["a"]["gate"] == {"floors": {"pr_auc": 0.5}}  # input not mutated
    with pytest.raises(ConfigError, match="unknown key"):
        merge_defaults({"defaults": {"tasks": {}}, "use_cases": {}})


def test_an_override_may_name_a_key_only_the_defaults_hold():
    params = load_params(ROOT / "params.yaml", {"use_cases.intent.gate.min_delta": "0.02",
                                                "defaults.task.binary.gate.max_slice_drop": "0.2"})
    assert params.use_cases["intent"].gate.min_delta == 0.02
    assert params.use_cases["sentiment"].gate.max_slice_drop == 0.2


def test_settings_default_to_the_embedded_stack(tmp_path):
    settings = load_settings(env={}, repo_root=ROOT)
    assert settings.tracking_uri == f"sqlite:///{ROOT / 'mlruns.db'}"
    assert settings.artifact_location == (ROOT / "mlartifacts").as_uri()
    remote = load_settings(env={"MLFLOW_TRACKING_URI": "http://mlflow:5000", "FUNNEL_DVC_REMOTE": "s3://b/dvc"}, repo_root=ROOT)
    assert remote.tracking_uri == "http://mlflow:5000"
    assert remote.artifact_location is None
    assert remote.dvc_remote == "s3://b/dvc"


def test_missing_repo_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no funnel repository"):
        load_settings(env={})


def test_an_unknown_column_type_names_the_column_and_the_allowed_types():
    with pytest.raises(ConfigError, match=r"validate\.columns\.Month\.type: input should be 'int', 'float', 'str' or 'bool'"):
        load_params(ROOT / "params.yaml", {"use_cases.intent.validate.columns": {"Month": {"type": "string"}}})


def test_yaml_scientific_notation_without_a_sign_is_a_number():
    # YAML 1.1 reads 1.0e9 as text; params.yaml accepts it where a number is expected
    params = load_params(ROOT / "params.yaml", {"use_cases.intent.validate.columns": {
        "Administrative_Duration": {"type": "float", "min": 0.0, "max": "1.0e9"}}})
    assert params.use_cases["intent"].validate.columns["Administrative_Duration"].max == 1.0e9


def test_scientific_notation_in_params_yaml_is_a_number(tmp_path):
    from components.overrides import load_yaml

    assert load_yaml("a: 1e9\nb: 1.0e9\nc: -2E-3\nd: '1e9'\ne: e9") == {
        "a": 1e9, "b": 1e9, "c": -0.002, "d": "1e9", "e": "e9"}  # quoted stays text
    text = (ROOT / "params.yaml").read_text().replace("bootstrap_rounds: 200", "bootstrap_rounds: 2e2", 1)
    (tmp_path / "params.yaml").write_text(text)
    assert load_params(tmp_path / "params.yaml").common.bootstrap_rounds == 200


def test_the_lineage_commit_comes_from_the_image_build_argument_when_set(tmp_path):
    import subprocess

    from components.config import read_git_commit

    # a worker image: a local repository made at build time, and the source commit it was built from
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "f").write_text("x")
    subprocess.run(["git", "add", "f"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "image"], cwd=tmp_path, check=True)
    local = read_git_commit(tmp_path, env={})
    assert len(local) == 40
    assert read_git_commit(tmp_path, env={"FUNNEL_GIT_COMMIT": "0123abc" * 5}) == "0123abc" * 5
    assert read_git_commit(tmp_path, env={"FUNNEL_GIT_COMMIT": "unknown"}) == local  # the Dockerfile's default


def test_a_section_without_its_task_kind_is_refused_by_name(tmp_path):
    """dvc.yaml's stages read each section's task as written, so funnel asks for it up front;
    ``funnel list`` still lists the other sections."""
    from components.use_cases import survey_use_cases

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    del raw["use_cases"]["intent"]["task"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"use_cases\.intent\.task"):
        load_params(tmp_path / "params.yaml")
    statuses = {s.name: s for s in survey_use_cases(tmp_path / "params.yaml")}
    assert "use_cases.intent.task" in statuses["intent"].error
    assert statuses["sentiment"].error is None
