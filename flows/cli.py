"""The ``funnel`` command line. Heavy engines (TF, MLflow, Prefect) are imported inside commands."""

from __future__ import annotations

import math
import os
import sys
from typing import Annotated

import typer

app = typer.Typer(
    help="funnel: retrain, validate, version, gate and promote the shop's conversion models.",
    no_args_is_help=True,
    add_completion=False,
)
stage_app = typer.Typer(help="The dvc.yaml stages (run by `dvc repro`).", no_args_is_help=True)
app.add_typer(stage_app, name="stage")

SUMMARY_COLUMNS = ("use case", "status", "version", "data md5", "model", "baseline", "gate", "champion")


def _parse_overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set expects key=value, got {pair!r}")
        overrides[key.strip()] = value.strip()
    return overrides


def _format_metrics(metrics: dict | None, names: tuple[str, ...]) -> str:
    if not metrics:
        return "-"
    shown = [f"{n}={metrics[n]:.3f}" for n in names if n in metrics and not math.isnan(metrics[n])]
    return " ".join(shown) or "-"


def render_table(rows: list[list[str]], headers: tuple[str, ...]) -> str:
    """A plain-text table that survives any terminal and CI log."""
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=False)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) for row in rows]
    return "\n".join(out)


@app.command("list")
def list_command() -> None:
    """List the registered use cases and whether their data is available."""
    from flows.runtime import configure_environment

    configure_environment()
    from components.config import load_params, load_settings
    from components.errors import DataUnavailableError
    from components.data.ingest import plan_source
    from components.use_cases import REGISTRY

    settings = load_settings()
    params = load_params(settings.params_path)
    rows = []
    notes = {"local": "", "mirror": " (copied on first use)", "url": " (fetched on first use)"}
    for name, use_case in REGISTRY.items():
        try:
            plan = plan_source(name, params.use_cases[name].data, settings)
            where = f"{plan.kind}: {plan.found}{notes[plan.kind]}"
        except DataUnavailableError as exc:
            where = f"unavailable: {exc}"
        rows.append([name, use_case.title, where])
    typer.echo(render_table(rows, ("use case", "what", "data")))


@app.command()
def fetch(
    use_cases: Annotated[list[str] | None, typer.Argument(help="Use cases to fetch (default: all).")] = None,
) -> None:
    """Copy data that may not be committed from FUNNEL_DATA_MIRROR, or download it (sha256-checked),
    into its git-ignored folder under data/ (run before `dvc repro` on a fresh clone)."""
    from components.config import load_params, load_settings
    from components.errors import DataUnavailableError
    from components.data.ingest import resolve_source
    from components.use_cases import list_use_cases

    settings = load_settings()
    params = load_params(settings.params_path)
    missing = 0
    for name in use_cases or list_use_cases():
        try:
            typer.echo(f"{name}: {resolve_source(name, params.use_cases[name].data, settings)}")
        except DataUnavailableError as exc:
            missing += 1
            typer.secho(f"{name}: {exc}", fg="yellow", err=True)
    if missing:
        raise typer.Exit(1)


@app.command()
def retrain(
    use_case: Annotated[str | None, typer.Argument(help="Use case to retrain (see `funnel list`).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Retrain every use case whose data is available.")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override params.yaml: key.path=value")] = None,
    parallel: Annotated[bool, typer.Option("--parallel", help="Fan the use cases out on a Dask cluster.")] = False,
    dask_address: Annotated[str | None, typer.Option(
        "--dask-address", envvar="FUNNEL_DASK_ADDRESS",
        help="Dask scheduler (tcp://host:8786); default: a LocalCluster of worker processes.")] = None,
    dask_workers: Annotated[int, typer.Option("--dask-workers", help="LocalCluster worker processes.")] = 2,
) -> None:
    """Run the retraining flow: ingest, validate, version, train, evaluate, register, gate, promote."""
    if bool(use_case) == all_:
        raise typer.BadParameter("give one USE_CASE or --all")
    from flows.runtime import configure_environment

    configure_environment()
    from components.config import load_params, load_settings
    from components.errors import FunnelError
    from components.release.registry import describe_use_case

    try:
        settings = load_settings()
        params = load_params(settings.params_path)
        if use_case and use_case not in params.use_cases:
            from components.use_cases import get_use_case

            get_use_case(use_case)
    except FunnelError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None

    from flows.retrain import retrain_all, with_dask

    runner = with_dask(dask_address, dask_workers) if parallel else retrain_all
    results = runner([use_case] if use_case else None, _parse_overrides(set_ or []), parallel=parallel)
    rows, errors = [], []
    for result in results:
        info = describe_use_case(settings, result["use_case"], params.common.champion_alias)
        gate = params.use_cases[result["use_case"]].gate
        shown = tuple(dict.fromkeys((gate.primary_metric, *gate.floors)))
        baseline = _format_metrics(info.get("baseline"), shown)
        rows.append([
            result["use_case"], result["status"],
            info.get("version") or "-", (info.get("data_md5") or "-")[:12],
            _format_metrics(info.get("metrics"), shown),
            f"{info.get('baseline_name') or ''} {baseline}".strip(),
            info.get("gate") or "-", info.get("champion_version") or "-",
        ])
        if result.get("error"):
            errors.append(f"[{result['use_case']}] {result['error']}")
    typer.echo("\n" + render_table(rows, SUMMARY_COLUMNS))
    for error in errors:
        typer.echo("\n" + error, err=True)
    typer.echo(
        f"\nMLflow UI:  funnel ui   (tracking URI {settings.tracking_uri})"
        "\nPrefect UI: .venv/bin/prefect server start, then open http://127.0.0.1:4200"
    )
    if any(r["status"] in ("invalid data", "error") for r in results):
        raise typer.Exit(1)


@app.command()
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


def _settings_and_params():
    from components.config import load_params, load_settings

    settings = load_settings()
    return settings, load_params(settings.params_path)


@app.command()
def history(use_case: Annotated[str, typer.Argument(help="Use case (see `funnel list`).")]) -> None:
    """Every alias move of USE_CASE (promotions, approvals, rollbacks), oldest first."""
    from components.release.ledger import read_ledger

    settings, _ = _settings_and_params()
    entries = read_ledger(settings, use_case)
    if not entries:
        typer.echo(f"{use_case}: no alias moves recorded yet")
        return
    rows = [[str(e.sequence), e.at, e.action, f"@{e.alias}", f"v{e.from_version}" if e.from_version else "-",
             f"v{e.to_version}", e.actor, e.flow_run_id[:8] or "-", e.reason[:90]] for e in entries]
    typer.echo(render_table(rows, ("#", "when (UTC)", "action", "alias", "from", "to", "who", "flow run", "why")))


@app.command()
def rollback(
    use_case: Annotated[str, typer.Argument(help="Use case whose @champion moves back.")],
    to: Annotated[str | None, typer.Option("--to", help="Version to serve (default: the previous champion).")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the ledger).")] = "rollback",
) -> None:
    """Move @champion back in one step (to the previous champion, or --to VERSION); recorded in the ledger."""
    from components.release import registry
    from components.release.ledger import move_alias, read_ledger, rollback_target

    settings, params = _settings_and_params()
    alias = params.common.champion_alias
    current = registry.get_alias_version(settings, use_case, alias)
    current_version = str(current.version) if current is not None else None
    target = to or rollback_target(read_ledger(settings, use_case), alias, current_version)
    entry = move_alias(settings, use_case, alias, target, expected_from=current_version, require_expected=True,
                       action="rollback", reason=reason)
    typer.echo(f"{use_case}: @{alias} v{entry.from_version} -> v{entry.to_version} (ledger #{entry.sequence})")


@app.command()
def lineage(
    use_case: Annotated[str | None, typer.Argument(help="Use case (omit with --data).")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Model version (default: @champion).")] = None,
    data: Annotated[str | None, typer.Option("--data", help="A snapshot md5: list the versions trained on it.")] = None,
) -> None:
    """Lineage both ways: a model version's data, code, flow run, GX result and previous champion;
    or, with --data MD5, every model version trained on that snapshot."""
    from components.release.ledger import describe_lineage, versions_trained_on

    settings, params = _settings_and_params()
    if data:
        rows = versions_trained_on(settings, data)
        if not rows:
            typer.echo(f"no model version was trained on data md5 {data}")
            raise typer.Exit(1)
        typer.echo(render_table([list(r.values()) for r in rows], tuple(rows[0])))
        return
    if not use_case:
        raise typer.BadParameter("give USE_CASE (and optionally --version) or --data MD5")
    facts = describe_lineage(settings, use_case, version, params.common.champion_alias)
    typer.echo(render_table([[k, v] for k, v in facts.items()], ("", "")))


@app.command()
def score(
    use_case: Annotated[str, typer.Argument(help="Use case whose @champion scores the file.")],
    input_path: Annotated[str, typer.Argument(help="CSV or Parquet file of raw rows.")],
    output: Annotated[str | None, typer.Option("--output", help="Where to write scores (default: <input>.scored.csv).")] = None,
) -> None:
    """Batch-score a file with @champion: scores + model version + input md5; bad rows to *.rejects.csv."""
    from flows.runtime import configure_environment

    configure_environment()
    from flows.batch import batch_score

    summary = batch_score(use_case, input_path, output)
    typer.echo(render_table([[k, str(v)] for k, v in summary.items()], ("", "")))


@app.command("drift")
def drift_command(
    use_case: Annotated[str, typer.Argument(help="Use case to check.")],
    no_retrain: Annotated[bool, typer.Option("--no-retrain", help="Report only; never retrain.")] = False,
) -> None:
    """Compare the newest data with @champion's training snapshot; retrain on drift (once per window)."""
    from flows.runtime import configure_environment

    configure_environment()
    from flows.monitor import drift

    summary = drift(use_case, not no_retrain)
    typer.echo(render_table([[k, "; ".join(v) if isinstance(v, list) else str(v)] for k, v in summary.items()], ("", "")))


@app.command()
def serve(
    use_cases: Annotated[list[str], typer.Argument(help="Use cases whose @champion to serve.")],
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8080,
    workers: Annotated[int | None, typer.Option(help="Server processes (default: common.serving.workers).")] = None,
) -> None:
    """HTTP JSON API for each use case's @champion: /predict/<use_case>, /health, /ready, /metrics,
    /openapi.json; reloads when @champion moves (settings: common.serving in params.yaml)."""
    from flows.serve import serve_command

    _, params = _settings_and_params()
    serving = params.common.serving
    serve_command(use_cases, host=host, port=port, poll_interval_s=serving.poll_interval_s, max_rows=serving.max_rows,
                  max_batch_rows=serving.max_batch_rows, scoring_threads=serving.scoring_threads,
                  max_batch_wait_ms=serving.max_batch_wait_ms,
                  workers=serving.workers if workers is None else workers)


schedule_app = typer.Typer(help="Scheduled retraining (one Prefect deployment per use case).", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("list")
def schedule_list() -> None:
    """The schedules params.yaml defines (cron, timezone, active)."""
    _, params = _settings_and_params()
    rows = [[n, s.schedule.cron, s.schedule.timezone, "yes" if s.schedule.active else "no"] for n, s in params.use_cases.items()]
    typer.echo(render_table(rows, ("use case", "cron", "timezone", "active")))


@schedule_app.command("serve")
def schedule_serve(
    use_cases: Annotated[list[str] | None, typer.Argument(help="Use cases to schedule (default: all active).")] = None,
) -> None:
    """Serve the retraining deployments on this machine until Ctrl-C (schedules are not paused on exit).
    Point PREFECT_API_URL at a running `prefect server start` so the runs outlive this process."""
    from flows.runtime import configure_environment

    configure_environment()
    from flows.schedules import serve_schedules

    _, params = _settings_and_params()
    serve_schedules(params, use_cases or None)


@schedule_app.command("deploy")
def schedule_deploy(
    use_cases: Annotated[list[str] | None, typer.Argument(help="Use cases to deploy (default: all active).")] = None,
    pool: Annotated[str, typer.Option("--pool", help="Prefect work pool whose workers run the flows.")] = "funnel-process",
    source: Annotated[str | None, typer.Option("--source", help="Checkout the workers run from (default: this repository).")] = None,
) -> None:
    """Register the scheduled retrain deployments with a work pool (the production stack's workers
    run them). Needs PREFECT_API_URL pointing at the Prefect server."""
    from pathlib import Path

    from flows.runtime import configure_environment

    configure_environment()
    from flows.schedules import deploy_to_pool

    settings, params = _settings_and_params()
    ids = deploy_to_pool(params, pool, Path(source).resolve() if source else settings.repo_root, use_cases or None)
    typer.echo(f"{len(ids)} deployment(s) on work pool {pool}: start a worker with "
               f"`prefect worker start --pool {pool}`; run one with `prefect deployment run retrain/<use case>`.")


@app.command()
def backfill(
    use_case: Annotated[str, typer.Argument(help="Use case to backfill.")],
    from_: Annotated[str, typer.Option("--from", help="First date (YYYY-MM-DD).")],
    to: Annotated[str, typer.Option("--to", help="Last date (YYYY-MM-DD).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override params.yaml: key.path=value")] = None,
) -> None:
    """Run the retrain flow for every scheduled date between --from and --to, as of that date."""
    from datetime import date

    from flows.runtime import configure_environment

    configure_environment()
    from flows.schedules import backfill as run_backfill

    results = run_backfill(use_case, date.fromisoformat(from_), date.fromisoformat(to), _parse_overrides(set_ or []))
    rows = [[r["date"], r["status"], str(r.get("version", "-")), str(r.get("rows", "-")), str(r.get("champion_version", "-")),
             (r.get("error") or "")[:80]] for r in results]
    typer.echo(render_table(rows, ("as of", "status", "version", "rows", "champion", "note")))


review_app = typer.Typer(help="Approve or reject a challenger waiting for review.", no_args_is_help=True)
app.add_typer(review_app, name="review")


def _answer_review(use_case: str, version: str, approve: bool, reason: str) -> None:
    from uuid import UUID

    from flows.runtime import configure_environment

    configure_environment()
    from prefect.flow_runs import resume_flow_run

    from components.release import registry
    from components.errors import ReviewError
    from components.release.ledger import current_actor

    settings, _ = _settings_and_params()
    found = registry.get_version(settings, use_case, version)
    if found is None:
        raise ReviewError(f"{use_case} has no version {version}; see `funnel history {use_case}`")
    status = found.tags.get("review.status")
    if status != "pending":
        raise ReviewError(f"{use_case} v{version} is not waiting for a review (review status: {status or 'none'})")
    run_id = found.tags.get("prefect_flow_run_id")
    if not run_id:
        raise ReviewError(f"{use_case} v{version} has no Prefect flow run to resume")
    resume_flow_run(UUID(run_id), run_input={"approve": approve, "reason": reason, "reviewer": current_actor()})
    typer.echo(f"{use_case} v{version}: {'approved' if approve else 'rejected'} ({reason}); flow run {run_id} resumes")


@review_app.command("approve")
def review_approve(
    use_case: str, version: str,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the ledger and on the version).")],
) -> None:
    """Approve USE_CASE VERSION: its paused flow run resumes and promotes it to @champion."""
    _answer_review(use_case, version, True, reason)


@review_app.command("reject")
def review_reject(
    use_case: str, version: str,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept on the version).")],
) -> None:
    """Reject USE_CASE VERSION: its paused flow run ends and @champion stays where it is."""
    _answer_review(use_case, version, False, reason)


@stage_app.command("snapshot")
def stage_snapshot(use_case: str) -> None:
    """Ingest and validate USE_CASE, write its snapshot (dvc stage snapshot@USE_CASE)."""
    from flows.runtime import configure_environment

    configure_environment()
    from flows.stages import run_snapshot_stage

    typer.echo(run_snapshot_stage(use_case))


@stage_app.command("train")
def stage_train(use_case: str) -> None:
    """Train and evaluate USE_CASE on its snapshot, write metrics and plots (dvc stage train@USE_CASE)."""
    from flows.runtime import configure_environment

    configure_environment()
    from flows.stages import run_train_stage

    typer.echo(run_train_stage(use_case))


def main() -> None:
    from components.errors import FunnelError

    try:
        app()
    except FunnelError as exc:
        typer.secho(str(exc), fg="red", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
