"""`funnel tune`: a hyperparameter search over a use case's ``tune:`` ranges; prints the proposed params.yaml diff."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli import output
from flows.cli.app import TRAINING, USAGE, app, fail, parse_overrides
from flows.cli.training import JsonOption, SetOption, _prepare_run


@app.command(rich_help_panel=TRAINING)
def tune(
    use_case: Annotated[str, typer.Argument(help="Use case to tune (its tune: section in params.yaml).")],
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trials to run (default: tune.trials).")] = None,
    set_: SetOption = None,
    parallel: Annotated[int, typer.Option(
        "--parallel", min=1, help="Trials trained side by side, each in a Dask worker process (1: in this process).")] = 1,
    dask_address: Annotated[str | None, typer.Option(
        "--dask-address", envvar="FUNNEL_DASK_ADDRESS",
        help="With --parallel: a Dask scheduler whose workers share this file system; default: a LocalCluster of --parallel workers.")] = None,
    json_: JsonOption = False,
) -> None:
    """Search the ranges of USE_CASE's tune: section with Optuna (TPE, seeded; median pruning per
    epoch) on its validation split. Every trial is an MLflow run nested under the tuning run; the
    best values are printed as a params.yaml diff and --set lines, never written to the file."""
    overrides = parse_overrides(set_)
    settings, params = _prepare_run([use_case], overrides)
    from components.errors import ConfigError
    from components.training.tune import parse_tune

    section = params.use_cases[use_case]
    try:  # a bad tune: section is a usage error before anything runs
        parse_tune(section.tune, section.model_dump(), f"params.use_cases.{use_case}.tune")
    except ConfigError as exc:
        fail(str(exc), USAGE)
    from flows.tune import tune as tune_flow
    from flows.tune import with_dask

    runner = with_dask(dask_address, parallel) if parallel > 1 else tune_flow
    with output.run_progress(plain=json_ or parallel > 1), output.stdout_to_stderr(json_):
        state = runner(use_case, overrides, trials, parallel, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, ConfigError):
        fail(str(result), USAGE)
    if isinstance(result, BaseException):
        raise result
    if json_:
        output.print_json({**result, "tracking_uri": settings.tracking_uri})
        return
    rows = [[t["trial"], t["state"] + (" (shipped)" if t["shipped"] else ""),
             "-" if t["value"] is None else f"{t['value']:.4f}", t["epochs"], f"{t['seconds']:.1f}",
             ", ".join(f"{p}={v}" for p, v in t["values"].items())] for t in result["trials"]]
    typer.echo()
    output.print_table(rows, ("trial", "state", result["metric"], "epochs", "seconds", "values"))
    best, shipped = result["best"], result["shipped"]
    versus = f" (shipped values: {shipped['value']:.4f})" if shipped and shipped["value"] is not None else ""
    typer.echo(f"\nbest: trial {best['trial']}, {result['metric']} {best['value']:.4f} on the validation split{versus}")
    if result["diff"]:
        typer.echo("\nProposed params.yaml change (not applied; review it, then edit params.yaml or pass --set):\n")
        typer.echo(result["diff"], nl=False)
        typer.echo("\nor, for one run:  funnel retrain " + use_case + " " + " ".join(result["set"]))
    else:
        typer.echo("\nNo change proposed: the shipped values are the best trial.")
    typer.echo(f"\nMLflow: tuning run {result['tuning_run_id']} (funnel ui; tracking URI {settings.tracking_uri})")
