"""The architecture, enforced: the dependency rule, import contracts, no task-name switches, module sizes."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path, module_level_only: bool = False) -> set[str]:
    """Top-level packages a module imports: anywhere, or only at module level (what importing it
    runs; imports inside functions and ``if TYPE_CHECKING:`` blocks are left out)."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in (tree.body if module_level_only else ast.walk(tree)):
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


def test_import_contracts_hold():
    """import-linter (pyproject.toml): components never import Prefect or flows, the layers of
    components import only downwards, and no package of components has an import cycle."""
    out = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "0 broken" in out.stdout


def test_flows_import_no_pandas_or_tensorflow_at_module_level():
    heavy = {"pandas", "tensorflow", "keras", "numpy", "sklearn"}
    offenders = {str(p.relative_to(ROOT)): imported_modules(p, module_level_only=True) & heavy for p in (ROOT / "flows").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_nothing_outside_the_task_registry_switches_on_a_task_name():
    switch = re.compile(r"""\btask(?:\.name)?\s*(?:==|!=|\bin\b)\s*[\"'(\[]|[\"']\w+[\"']\s*(?:==|!=)\s*\w*\.?task\b""")
    offenders = [
        f"{p.relative_to(ROOT)}:{number}"
        for folder in ("components", "flows")
        for p in (ROOT / folder).rglob("*.py") if "tasks" not in p.relative_to(ROOT).parts
        for number, line in enumerate(p.read_text().splitlines(), 1) if switch.search(line)
    ]
    assert offenders == []


def test_no_components_module_is_over_400_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in (ROOT / "components").rglob("*.py")}
    assert {k: v for k, v in sizes.items() if v > 400} == {}
