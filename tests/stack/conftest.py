"""The production stack, started from packages once for the stack tests (``make test-stack``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.conftest import MIRROR, ROOT, make_project


def load_stack_module():
    """``infra/packages/stack.py`` (a script, not part of the funnel package)."""
    spec = importlib.util.spec_from_file_location("funnel_stack", ROOT / "infra" / "packages" / "stack.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    stack = load_stack_module().new_stack(tmp_path_factory.mktemp("stack"))
    stack.start(worker_env={"FUNNEL_DATA_MIRROR": str(MIRROR)})
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def worker_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout the worker runs flows from: code, params and real data slices, git + DVC."""
    return make_project(tmp_path_factory.mktemp("worker") / "repo")
