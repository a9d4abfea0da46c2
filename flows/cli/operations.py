"""Operations commands: score, drift, serve, schedule list|serve|deploy, ui."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from flows.cli import output
from flows.cli.app import OPERATIONS, app, check_use_cases, settings_and_params

schedule_app = typer.Typer(help="Scheduled retraining (one Prefect deployment per use case).", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule", rich_help_panel=OPERATIONS)


@app.command(rich_help_panel=OPERATIONS)
def score(
    use_case: Annotated[str, typer.Argument(help="Use case whose @champion scores the file.")],
    input_path: Annotated[str, typer.Argument(help="CSV or Parquet file of raw rows.")],
    output_path: Annotated[str | None, typer.Option(
        "--output", help="Where to write scores (default: <input>.scored.csv).")] = None,
) -> None:
    """Batch-score a file with @champion: scores + model version + input md5; bad rows to *.rejects.csv."""
    from flows.runtime import configure_environment

    configure_environment()
    check_use_cases(settings_and_params()[1], [use_case])
    from flows.batch import batch_score

    with output.run_progress(plain=True):
        summary = batch_score(use_case, input_path, output_path)
    output.print_pairs({k: str(v) for k, v in summary.items()})


@app.command("drift", rich_help_panel=OPERATIONS)
def drift_command(
    use_case: Annotated[str, typer.Argument(help="Use case to check.")],
    no_retrain: Annotated[bool, typer.Option("--no-retrain", help="Report only; never retrain.")] = False,
) -> None:
    """Compare the newest data with @champion's training snapshot; retrain on drift (once per window)."""
    from flows.runtime import configure_environment

    configure_environment()
    check_use_cases(settings_and_params()[1], [use_case])
    from flows.monitor import drift

    with output.run_progress(plain=True):
        summary = drift(use_case, not no_retrain)
    facts: dict[str, Any] = {k: "; ".join(v) if isinstance(v, list) else str(v) for k, v in summary.items()}
    if "drifted" in summary:
        facts["drifted"] = output.styled(facts["drifted"], "yellow" if summary["drifted"] else "green")
    output.print_pairs(facts)


@app.command(rich_help_panel=OPERATIONS)
def serve(
    use_cases: Annotated[list[str], typer.Argument(help="Use cases whose @champion to serve.")],
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8080,
    workers: Annotated[int | None, typer.Option(help="Server processes (default: common.serving.workers).")] = None,
) -> None:
    """HTTP JSON API for each use case's @champion: /predict/<use_case>, /health, /ready, /metrics, /openapi.json; reloads when @champion moves (settings: common.serving in params.yaml)."""
    from flows.serve import serve_command

    _, params = settings_and_params()
    check_use_cases(params, use_cases)
    serving = params.common.serving
    serve_command(use_cases, host=host, port=port, poll_interval_s=serving.poll_interval_s, max_rows=serving.max_rows,
                  max_batch_rows=serving.max_batch_rows, scoring_threads=serving.scoring_threads,
                  max_batch_wait_ms=serving.max_batch_wait_ms,
                  workers=serving.workers if workers is None else workers)


@schedule_app.command("list")
def schedule_list() -> None:
    """The schedules params.yaml defines (cron, timezone, active)."""
    _, params = settings_and_params()
    rows = [[n, s.schedule.cron, s.schedule.timezone,
             output.styled("yes", "green") if s.schedule.active else output.styled("no", "dim")]
            for n, s in params.use_cases.items()]
    output.print_table(rows, ("use case", "cron", "timezone", "active"))


@schedule_app.command("serve")
def schedule_serve(
    use_cases: Annotated[list[str] | None, typer.Argument(help="Use cases to schedule (default: all active).")] = None,
) -> None:
    """Serve the retraining deployments on this machine until Ctrl-C (schedules are not paused on exit). Point PREFECT_API_URL at a running `prefect server start` so the runs outlive this process."""
    from flows.runtime import configure_environment

    configure_environment()
    _, params = settings_and_params()
    check_use_cases(params, use_cases)
    from flows.schedules import serve_schedules

    serve_schedules(params, use_cases or None)


@schedule_app.command("deploy")
def schedule_deploy(
    use_cases: Annotated[list[str] | None, typer.Argument(help="Use cases to deploy (default: all active).")] = None,
    pool: Annotated[str, typer.Option("--pool", help="Prefect work pool whose workers run the flows.")] = "funnel-process",
    source: Annotated[str | None, typer.Option(
        "--source", help="Checkout the workers run from (default: this repository).")] = None,
) -> None:
    """Register the scheduled retrain deployments with a work pool (the production stack's workers run them). Needs PREFECT_API_URL pointing at the Prefect server."""
    from pathlib import Path

    from flows.runtime import configure_environment

    configure_environment()
    settings, params = settings_and_params()
    check_use_cases(params, use_cases)
    from flows.schedules import deploy_to_pool

    ids = deploy_to_pool(params, pool, Path(source).resolve() if source else settings.repo_root, use_cases or None)
    typer.echo(f"{len(ids)} deployment(s) on work pool {pool}: start a worker with "
               f"`prefect worker start --pool {pool}`; run one with `prefect deployment run retrain/<use case>`.")


@app.command(rich_help_panel=OPERATIONS)
def ui(
    port: Annotated[int, typer.Option(help="Port for the MLflow UI.")] = 5000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
) -> None:
    """Open the MLflow UI on funnel's tracking store (the Prefect UI: `prefect server start`)."""
    from components.config import load_settings

    settings = load_settings()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", settings.tracking_uri,
               "--host", host, "--port", str(port)]
    if settings.artifact_location:
        command += ["--default-artifact-root", settings.artifact_location]
    typer.echo(f"MLflow UI on http://{host}:{port}  (Ctrl-C to stop)")
    os.execv(sys.executable, command)
