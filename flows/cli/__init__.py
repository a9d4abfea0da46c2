"""The ``funnel`` command line. Heavy engines (TF, MLflow, Prefect) are imported inside commands.

``app`` (Typer) and ``main`` (the console script) live in ``flows.cli.app``; the commands are
grouped by verb in ``training``, ``registry`` and ``operations``; what they print, in ``output``.
"""

from __future__ import annotations

from flows.cli.app import app, main
from flows.cli.output import render_table

# Each module registers its commands on ``app``; this order is the order of `funnel --help`.
# isort: off
from flows.cli import training  # noqa: F401
from flows.cli import tune  # noqa: F401
from flows.cli import registry  # noqa: F401
from flows.cli import operations  # noqa: F401
from flows.cli import params  # noqa: F401
# isort: on

__all__ = ["app", "main", "render_table"]
