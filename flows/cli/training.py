"""Data and training commands: list, fetch, retrain, backfill, stage snapshot|train."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from components.errors import FAILED_RUN_STATUSES as FAILED_STATUSES
from flows.cli import output
from flows.cli.app import (
    FAILED,
    TRAINING,
    USAGE,
    app,
    check_use_cases,
    fail,
    format_metrics,
    parse_date,
    parse_overrides,
    settings_and_params,
)

stage_app = typer.Typer(help="The dvc.yaml stages (run by `dvc repro`).", no_args_is_help=True)
app.add_typer(stage_app, name="stage", rich_help_panel=TRAINING)

SUMMARY_COLUMNS = ("use case", "status", "version", "data md5", "model", "baseline", "model vs peer", "gate", "champion")
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of a table.")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="Override params.yaml: key.path=value")]


@app.command("list", rich_help_panel=TRAINING)
def list_command(set_: SetOption = None, json_: JsonOption = False) -> None:
    """List every use case section of params.yaml: its task, title and whether its data is
    available, or why the section is invalid (exit code 1 when one is)."""
    from flows.runtime import configure_environment

    configure_environment()
    from components.config import load_settings
    from components.data.ingest import plan_source
    from components.errors import DataUnavailableError
    from components.use_cases import survey_use_cases

    settings = load_settings()
    notes = {"local": "", "mirror": " (copied on first use)", "url": " (fetched on first use)"}
    entries: list[dict[str, Any]] = []
    data: dict[str, Any]
    for status in survey_use_cases(settings.params_path, parse_overrides(set_)):
        if status.error or status.use_case is None or status.section is None:
            entries.append({"use_case": status.name, "valid": False, "task": None, "title": None,
                            "error": status.error, "data": None})
            continue
        try:
            plan = plan_source(status.name, status.section.data, settings)
            data = {"kind": plan.kind, "location": plan.found, "local": str(plan.local), "error": None}
        except DataUnavailableError as exc:
            data = {"kind": "unavailable", "location": None, "local": None, "error": str(exc)}
        entries.append({"use_case": status.name, "valid": True, "task": status.use_case.task.name,
                        "title": status.use_case.card.title, "error": None, "data": data})
    if json_:
        output.print_json(entries)
    else:
        rows = []
        for entry in entries:
            where: str | Text
            data = entry["data"]
            if not entry["valid"]:
                where = output.styled(f"invalid section: {entry['error']}", "red")
            elif data["error"]:
                where = output.styled(f"unavailable: {data['error']}", "yellow")
            else:
                where = f"{data['kind']}: {data['location']}{notes[data['kind']]}"
            rows.append([entry["use_case"], entry["task"] or "-", entry["title"] or "-", where])
        output.print_table(rows, ("use case", "task", "what", "data"))
    if any(not entry["valid"] for entry in entries):
        raise typer.Exit(FAILED)


@app.command(rich_help_panel=TRAINING)
def fetch(
    use_cases: Annotated[list[str] | None, typer.Argument(help="Use cases to fetch (default: all).")] = None,
    set_: SetOption = None,
) -> None:
    """Copy data that may not be committed from FUNNEL_DATA_MIRROR, or download it (sha256-checked), into its git-ignored folder under data/ (run before `dvc repro` on a fresh clone)."""
    from components.data.ingest import resolve_source
    from components.errors import DataUnavailableError
    from components.use_cases import list_use_cases

    settings, params = settings_and_params(parse_overrides(set_))
    check_use_cases(params, use_cases)
    missing = 0
    for name in use_cases or list_use_cases(params):
        try:
            typer.echo(f"{name}: {resolve_source(name, params.use_cases[name].data, settings)}")
        except DataUnavailableError as exc:
            missing += 1
            typer.secho(f"{name}: {exc}", fg="yellow", err=True)
    if missing:
        raise typer.Exit(FAILED)


def _prepare_run(use_cases: list[str] | None, overrides: dict[str, str]):
    """Settings and params (with the overrides) before anything runs: any problem is a usage error."""
    from flows.runtime import configure_environment

    configure_environment()
    from components.errors import FunnelError
    from components.use_cases import get_use_case

    try:
        settings, params = settings_and_params(overrides)
        check_use_cases(params, use_cases)
        for name in use_cases or list(params.use_cases):  # typed sections: a typo is a usage error
            get_use_case(name, params).configure(params)
    except FunnelError as exc:
        fail(str(exc), USAGE)
    return settings, params


def run_summary(settings, params, result: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """A run's JSON summary and table row: the run's result over what the registry records."""
    from components.release.catalog import describe_use_case

    name = result["use_case"]
    info = describe_use_case(settings, name, params.common.champion_alias)
    gate = params.use_cases[name].gate
    shown = tuple(dict.fromkeys((gate.primary_metric, *gate.floors)))
    baseline = format_metrics(info.get("baseline"), shown)
    row = [
        name, result["status"],
        info.get("version") or "-", (info.get("data_md5") or "-")[:12],
        format_metrics(info.get("metrics"), shown),
        f"{info.get('baseline_name') or ''} {baseline}".strip(),
        info.get("vs_peer") or "-",
        info.get("gate") or "-", info.get("champion_version") or "-",
    ]
    document = {**info, **result, "error": result.get("error")}
    return document, row


def run_results(state) -> list[dict[str, Any]]:
    """Every use case's summary from the final state of a retrain-all run: its result, or the
    results its RetrainFailedError carries (the run failed because some use cases did)."""
    from components.errors import RetrainFailedError

    value = state.result(raise_on_failure=False)
    if isinstance(value, RetrainFailedError):
        return value.results
    if isinstance(value, BaseException):
        raise value
    return value


@app.command(rich_help_panel=TRAINING)
def retrain(
    use_case: Annotated[str | None, typer.Argument(help="Use case to retrain (see `funnel list`).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Retrain every use case whose data is available.")] = False,
    set_: SetOption = None,
    parallel: Annotated[bool, typer.Option("--parallel", help="Fan the use cases out on a Dask cluster.")] = False,
    dask_address: Annotated[str | None, typer.Option(
        "--dask-address", envvar="FUNNEL_DASK_ADDRESS",
        help="Dask scheduler (tcp://host:8786); default: a LocalCluster of worker processes.")] = None,
    dask_workers: Annotated[int, typer.Option("--dask-workers", help="LocalCluster worker processes.")] = 2,
    json_: Annotated[bool, typer.Option(
        "--json", help="Print the end-of-run summary as one JSON document (progress stays on stderr).")] = False,
) -> None:
    """Run the retraining flow: ingest, validate, version, train, evaluate, register, gate, promote.

    Exit codes: 0 every use case ran and its decision was recorded (promoted or not); 1 a run failed or its data was invalid; 2 a usage or configuration error (nothing ran)."""
    if bool(use_case) == all_:
        raise typer.BadParameter("give one USE_CASE or --all")
    overrides = parse_overrides(set_)
    settings, params = _prepare_run([use_case] if use_case else None, overrides)
    from flows.retrain import retrain_all, with_dask

    runner = with_dask(dask_address, dask_workers) if parallel else retrain_all
    # --parallel: the use cases run in Dask worker processes, whose records never reach this one
    with output.run_progress(plain=json_ or parallel), output.stdout_to_stderr(json_):
        state = runner([use_case] if use_case else None, overrides, parallel=parallel, return_state=True)
    results = run_results(state)
    summaries = [run_summary(settings, params, result) for result in results]
    if json_:
        output.print_json({"results": [doc for doc, _ in summaries], "tracking_uri": settings.tracking_uri})
    else:
        typer.echo()
        output.print_table([row for _, row in summaries], SUMMARY_COLUMNS, status_column=1)
    for result in results:
        if result.get("error"):
            message = f"[{result['use_case']}] {result['error']}"
            (output.error if result["status"] in FAILED_STATUSES else output.warn)(message)
    if not json_:
        typer.echo(
            f"\nMLflow UI:  funnel ui   (tracking URI {settings.tracking_uri})"
            "\nPrefect UI: .venv/bin/prefect server start, then open http://127.0.0.1:4200"
        )
    if any(r["status"] in FAILED_STATUSES for r in results):
        raise typer.Exit(FAILED)


@app.command(rich_help_panel=TRAINING)
def backfill(
    use_case: Annotated[str, typer.Argument(help="Use case to backfill.")],
    from_: Annotated[str, typer.Option("--from", help="First date (YYYY-MM-DD).")],
    to: Annotated[str, typer.Option("--to", help="Last date (YYYY-MM-DD).")],
    set_: SetOption = None,
) -> None:
    """Run the retrain flow for every scheduled date between --from and --to, as of that date."""
    start, end = parse_date(from_, "--from"), parse_date(to, "--to")
    if start > end:
        raise typer.BadParameter(f"{from_} is after --to {to}; the first date comes first", param_hint="--from")
    overrides = parse_overrides(set_)
    _prepare_run([use_case], overrides)
    from flows.schedules import backfill as run_backfill

    with output.run_progress():
        results = run_backfill(use_case, start, end, overrides)
    rows = [[r["date"], r["status"], str(r.get("version", "-")), str(r.get("rows", "-")), str(r.get("champion_version", "-")),
             (r.get("error") or "")[:80]] for r in results]
    output.print_table(rows, ("as of", "status", "version", "rows", "champion", "note"), status_column=1)
    if any(r["status"] in FAILED_STATUSES for r in results):
        raise typer.Exit(FAILED)


@stage_app.command("snapshot")
def stage_snapshot(use_case: str) -> None:
    """Ingest and validate USE_CASE, write its snapshot (dvc stage snapshot@USE_CASE)."""
    from flows.runtime import configure_environment

    configure_environment()
    check_use_cases(settings_and_params()[1], [use_case])
    from flows.stages import run_snapshot_stage

    typer.echo(run_snapshot_stage(use_case))


@stage_app.command("train")
def stage_train(use_case: str) -> None:
    """Train and evaluate USE_CASE on its snapshot, write metrics and plots (dvc stage train@USE_CASE)."""
    from flows.runtime import configure_environment

    configure_environment()
    check_use_cases(settings_and_params()[1], [use_case])
    from flows.stages import run_train_stage

    typer.echo(run_train_stage(use_case))
