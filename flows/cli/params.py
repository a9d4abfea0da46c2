"""`funnel params`: what params.yaml may hold."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import OPERATIONS, app

params_app = typer.Typer(help="params.yaml: its JSON Schema (editor completion and checks).", no_args_is_help=True)
app.add_typer(params_app, name="params", rich_help_panel=OPERATIONS)


@params_app.command("schema")
def params_schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the schema here instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of params.yaml, every use case's sections typed by its builder and task
    (point your editor's YAML language server at it: `# yaml-language-server: $schema=params.schema.json`)."""
    import json

    from components.use_cases import params_json_schema

    text = json.dumps(params_json_schema(), indent=2, sort_keys=True) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote the params.yaml schema to {output}", err=True)
