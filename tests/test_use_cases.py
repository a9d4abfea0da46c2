"""One name everywhere: params.yaml use cases == dvc.yaml stage keys; each section names registered code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from components.config import load_params
from components.use_cases import get_use_case, list_use_cases

ROOT = Path(__file__).resolve().parents[1]


def test_registry_params_and_dvc_stages_agree():
    params = load_params(ROOT / "params.yaml")
    listed = subprocess.run(
        [sys.executable, "-m", "dvc", "stage", "list", "--name-only"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    stages: dict[str, set[str]] = {}
    for entry in listed:
        stage, _, key = entry.partition("@")
        stages.setdefault(stage, set()).add(key)
    assert stages == {"snapshot": set(params.use_cases), "train": set(params.use_cases)}


def test_every_use_case_configures_from_params():
    params = load_params(ROOT / "params.yaml")
    for name in list_use_cases(params):
        config = get_use_case(name, params).configure(params)
        assert config.name == name
        assert config.label is None or config.label in config.params.validate.columns
        assert config.params.gate.primary_metric in config.params.gate.floors


def test_dvc_stages_read_their_params_sections():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert dvc["stages"]["snapshot"]["foreach"] == "${use_cases}"
    assert {"defaults", "use_cases.${key}"} <= set(dvc["stages"]["train"]["do"]["params"])
    assert {"defaults", "use_cases.${key}.data", "use_cases.${key}.validate"} <= set(dvc["stages"]["snapshot"]["do"]["params"])


def test_nulls_are_refused_where_the_model_cannot_take_them_whatever_the_allowed_rate():
    # the section-wide rate and a column's own rate both give way for the label and a recommender's ids
    params = load_params(ROOT / "params.yaml", {"use_cases.recommend.validate.max_null_fraction": 0.3,
                                                "use_cases.recommend.validate.columns.item_id.max_null_fraction": 0.5})
    rules = get_use_case("recommend", params).configure(params).params.validate.columns
    assert rules["user_id"].max_null_fraction == 0.0
    assert rules["item_id"].max_null_fraction == 0.0
    assert rules["rating"].max_null_fraction is None  # other columns keep the section's rate
    params = load_params(ROOT / "params.yaml", {"use_cases.intent.validate.max_null_fraction": 0.3})
    rules = get_use_case("intent", params).configure(params).params.validate.columns
    assert rules["Revenue"].max_null_fraction == 0.0
    assert rules["Month"].max_null_fraction is None
