"""Task kinds: the Task protocol (``base``) and one module per kind; ``TASKS`` is the registry.

Every module of this package other than ``base`` defines one ``TASK`` (an object implementing
``base.Task``) and is registered by its presence: adding a kind of task is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil

from components.errors import ConfigError
from components.tasks.base import Task
from components.tasks.binary import BINARY
from components.tasks.multiclass import MULTICLASS
from components.tasks.ranking import RANKING


def discover_tasks() -> dict[str, Task]:
    """The ``TASK`` of every module in this package, by name (two modules with one name fail)."""
    found: dict[str, Task] = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base"):
        task: Task = importlib.import_module(f"{__name__}.{module}").TASK
        if task.name in found:
            raise ConfigError(f"task kind {task.name!r} is defined twice (components/tasks/{module}.py)")
        found[task.name] = task
    return found


TASKS: dict[str, Task] = discover_tasks()


def get_task(name: str) -> Task:
    """The registered task kind called ``name``."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task kind {name!r}; known kinds are {sorted(TASKS)}") from None


__all__ = ["BINARY", "MULTICLASS", "RANKING", "TASKS", "Task", "discover_tasks", "get_task"]
