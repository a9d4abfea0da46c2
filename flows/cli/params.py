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


@params_app.command("show")
def params_show(
    use_case: Annotated[str, typer.Argument(help="The use case whose section to print.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override params.yaml: key.path=value")] = None,
) -> None:
    """Print USE_CASE's section as a run uses it: the defaults of its task kind and builder merged
    under it, the --set overrides over it, every section typed (a mistake is a usage error)."""
    import yaml

    from components.use_cases import get_use_case
    from flows.cli.app import check_use_cases, parse_overrides, settings_and_params

    _, params = settings_and_params(parse_overrides(set_))
    check_use_cases(params, [use_case])
    config = get_use_case(use_case, params).configure(params)
    section = config.params.model_dump(mode="json")
    section |= {name: getattr(config, name).model_dump(mode="json") for name in ("features", "train", "evaluate")}
    typer.echo(yaml.safe_dump({use_case: section}, sort_keys=False, allow_unicode=True), nl=False)
