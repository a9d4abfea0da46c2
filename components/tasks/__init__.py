"""Task kinds: the Task protocol (``base``) and one module per kind; ``TASKS`` is the registry."""

from __future__ import annotations

from components.errors import ConfigError
from components.tasks.base import Task
from components.tasks.binary import BINARY
from components.tasks.multiclass import MULTICLASS
from components.tasks.ranking import RANKING

TASKS: dict[str, Task] = {task.name: task for task in (BINARY, MULTICLASS, RANKING)}


def get_task(name: str) -> Task:
    """The registered task kind called ``name``."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task kind {name!r}; known kinds are {sorted(TASKS)}") from None


__all__ = ["BINARY", "MULTICLASS", "RANKING", "TASKS", "Task", "get_task"]
