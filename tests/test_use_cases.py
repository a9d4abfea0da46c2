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
    task, builder = "defaults.task.${item.task}", "defaults.builder.${item.model.builder}"
    assert {task, builder, "use_cases.${key}"} <= set(dvc["stages"]["train"]["do"]["params"])
    assert {task, "use_cases.${key}.data", "use_cases.${key}.validate"} <= set(dvc["stages"]["snapshot"]["do"]["params"])
    # each stage records its own defaults in dvc.lock, not the whole section (DVC rewrites the lock per commit)
    assert "defaults" not in dvc["stages"]["train"]["do"]["params"] + dvc["stages"]["snapshot"]["do"]["params"]


def test_every_task_kind_and_builder_a_use_case_names_has_a_defaults_entry():
    """dvc.yaml lists defaults.task.<kind> and defaults.builder.<name> per stage, and DVC refuses a
    listed key params.yaml lacks: an entry (``{}`` when there is nothing to default) must exist."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, section in raw["use_cases"].items():
        assert section["task"] in raw["defaults"]["task"], f"{name}: add defaults.task.{section['task']}"
        builder = section["model"]["builder"]
        assert builder in raw["defaults"]["builder"], f"{name}: add defaults.builder.{builder}"


def test_dvc_lock_records_each_stage_s_own_defaults():
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for stage, entry in lock["stages"].items():
        recorded = entry["params"]["params.yaml"]
        section = raw["use_cases"][stage.split("@")[1]]
        assert "defaults" not in recorded
        assert f"defaults.task.{section['task']}" in recorded
        assert (f"defaults.builder.{section['model']['builder']}" in recorded) == stage.startswith("train@")


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


def _imported_components(path: Path) -> set[str]:
    """Every ``components.*`` module ``path`` imports (at module level or inside functions)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return {name for name in names if name.split(".")[0] == "components"}


def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def stage_closure() -> set[Path]:
    """The files ``funnel stage snapshot|train`` (flows/stages.py) can run: its imports, transitively."""
    seen: set[Path] = set()
    todo = [ROOT / "flows" / "stages.py"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += [f for f in map(_module_file, _imported_components(path)) if f is not None]
    return seen


def test_dvc_stage_deps_cover_every_module_and_common_param_the_stages_read():
    """dvc.yaml's deps are derived from the imports: a module the stages reach but the stage does
    not list would let `dvc repro` keep outputs that code changed."""
    import re

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    closure = stage_closure()
    assert ROOT / "components" / "training" / "fit.py" in closure  # the walk follows function-level imports
    for name in ("snapshot", "train"):
        deps = [d for d in stages[name]["do"]["deps"] if not d.startswith("${")]
        uncovered = sorted(str(p.relative_to(ROOT)) for p in closure
                           if not any(p.relative_to(ROOT).as_posix() == d or p.relative_to(ROOT).as_posix().startswith(d + "/")
                                      for d in deps))
        assert uncovered == [], f"dvc.yaml stage {name} misses deps: {uncovered}"
    # the common keys the train stage reads (folders excepted: they are where, not what)
    read = {m for p in closure for m in re.findall(r"params\.common\.([a-z_]+)", p.read_text())}
    read -= {"snapshot_dir", "reports_dir", "data_docs_dir", "dvc_remote_dir"}
    listed = {p.removeprefix("common.") for p in stages["train"]["do"]["params"] if p.startswith("common.")}
    assert read, "the walk found no params.common reads"
    assert read <= listed, f"dvc.yaml train misses params: {sorted(read - listed)}"
