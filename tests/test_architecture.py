"""The dependency rule: components never import prefect; flows never import the reverse."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_components_never_import_prefect_or_flows():
    offenders = {
        str(p.relative_to(ROOT)): imported_modules(p) & {"prefect", "flows"}
        for p in (ROOT / "components").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_engines_are_each_used_in_one_module():
    owners = {"great_expectations": "validate.py", "mlflow": "registry.py"}
    for module, owner in owners.items():
        users = {p.name for p in (ROOT / "components").rglob("*.py") if module in imported_modules(p)}
        assert users == {owner}, module


def test_cli_help_does_not_import_the_engines():
    code = (
        "import sys; from flows.cli import app; "
        "heavy = [m for m in ('tensorflow', 'mlflow', 'prefect', 'great_expectations', 'dvc', 'pandas') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""
    help_text = subprocess.run([sys.executable, "-m", "flows.cli", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert help_text.returncode == 0
    assert "retrain" in help_text.stdout
