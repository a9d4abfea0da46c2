"""Registry commands: history, rollback, lineage, review approve|reject."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from flows.cli import output
from flows.cli.app import FAILED, REGISTRY, app, check_use_cases, fail, settings_and_params

review_app = typer.Typer(help="Approve or reject a challenger waiting for review.", no_args_is_help=True)
app.add_typer(review_app, name="review", rich_help_panel=REGISTRY)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of a table.")]
HISTORY_COLUMNS = ("#", "when (UTC)", "action", "alias", "from", "to", "who", "flow run", "why")
ACTION_STYLES = {"promote": "green", "approve": "green", "rollback": "yellow", "manual promotion": "red"}


@app.command(rich_help_panel=REGISTRY)
def history(
    use_case: Annotated[str, typer.Argument(help="Use case (see `funnel list`).")],
    json_: JsonOption = False,
) -> None:
    """Every alias move of USE_CASE (promotions, approvals, rollbacks), oldest first."""
    from components.release.ledger import read_ledger

    settings, params = settings_and_params()
    check_use_cases(params, [use_case])
    entries = read_ledger(settings, use_case)
    if json_:
        output.print_json([asdict(e) for e in entries])
        return
    if not entries:
        typer.echo(f"{use_case}: no alias moves recorded yet")
        return
    # a move a crash interrupted shows its status (intent / not applied) after the action
    rows = [[str(e.sequence), e.at, output.styled(e.action if e.status == "applied" else f"{e.action} [{e.status}]",
                                                   ACTION_STYLES.get(e.action, "")), f"@{e.alias}",
             f"v{e.from_version}" if e.from_version else "-", f"v{e.to_version}", e.actor, e.flow_run_id[:8] or "-",
             e.reason[:90]] for e in entries]
    output.print_table(rows, HISTORY_COLUMNS)


@app.command(rich_help_panel=REGISTRY)
def rollback(
    use_case: Annotated[str, typer.Argument(help="Use case whose @champion moves back.")],
    to: Annotated[str | None, typer.Option("--to", help="Version to serve (default: the previous champion); it must have been @champion before, unless --force.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in the ledger; required with --force).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Serve a version that was never @champion (recorded as a manual promotion; needs --reason).")] = False,
) -> None:
    """Move @champion back in one step (to the previous champion, or --to VERSION); recorded in the ledger."""
    from components.release import registry
    from components.release.ledger import move_alias, read_ledger, rollback_action, rollback_target

    settings, params = settings_and_params()
    check_use_cases(params, [use_case])
    alias = params.common.champion_alias
    current = registry.get_alias_version(settings, use_case, alias)
    current_version = str(current.version) if current is not None else None
    entries = read_ledger(settings, use_case)
    target = to or rollback_target(entries, alias, current_version)
    action = rollback_action(entries, alias, target, force=force, reason=reason)
    entry = move_alias(settings, use_case, alias, target, expected_from=current_version, require_expected=True,
                       action=action, reason=reason or "rollback", lock_timeout_s=params.common.lock_timeout_s)
    before = f"v{entry.from_version}" if entry.from_version else "(none)"
    typer.echo(f"{use_case}: @{alias} {before} -> v{entry.to_version} ({entry.action}, ledger #{entry.sequence})")


@app.command(rich_help_panel=REGISTRY)
def lineage(
    use_case: Annotated[str | None, typer.Argument(help="Use case (omit with --data).")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Model version (default: @champion).")] = None,
    data: Annotated[str | None, typer.Option("--data", help="A snapshot md5: list the versions trained on it.")] = None,
    json_: JsonOption = False,
) -> None:
    """Lineage both ways: a model version's data, code, flow run, GX result and previous champion; or, with --data MD5, every model version trained on that snapshot."""
    from components.release.ledger import describe_lineage, versions_trained_on

    settings, params = settings_and_params()
    if data:
        rows = versions_trained_on(settings, data)
        if json_:
            output.print_json(rows)
        elif rows:
            output.print_table([list(r.values()) for r in rows], tuple(rows[0]))
        if not rows:
            fail(f"no model version was trained on data md5 {data}", FAILED)
        return
    if not use_case:
        raise typer.BadParameter("give USE_CASE (and optionally --version) or --data MD5")
    check_use_cases(params, [use_case])
    facts = describe_lineage(settings, use_case, version, params.common.champion_alias)
    if json_:
        output.print_json(facts)
    else:
        output.print_pairs(facts)


def _answer_review(use_case: str, version: str, approve: bool, reason: str) -> None:
    from uuid import UUID, uuid4

    from flows.runtime import configure_environment

    configure_environment()
    from prefect.flow_runs import resume_flow_run

    from components.errors import ReviewError
    from components.release import registry
    from components.release.ledger import REVIEW_ANSWER_TAG, current_actor, review_answer

    settings, params = settings_and_params()
    check_use_cases(params, [use_case])
    found = registry.get_version(settings, use_case, version)
    if found is None:
        raise ReviewError(f"{use_case} has no version {version}; see `funnel history {use_case}`")
    status = found.tags.get("review.status")
    if status != "pending":
        raise ReviewError(f"{use_case} v{version} is not waiting for a review (review status: {status or 'none'})")
    run_id = found.tags.get("prefect_flow_run_id")
    if not run_id:
        raise ReviewError(f"{use_case} v{version} has no Prefect flow run to resume")
    # the answer goes to the registry first, as this user: the flow accepts only an answer the
    # registry holds (a 403 here: this MLflow user may not edit, so may not review, the model)
    reviewer, answer_id = current_actor(settings), uuid4().hex
    registry.write_version_tags(settings, use_case, version,
                                {REVIEW_ANSWER_TAG: review_answer(approve, reason, reviewer, answer_id)})
    resume_flow_run(UUID(run_id), run_input={"approve": approve, "reason": reason, "reviewer": reviewer,
                                              "answer_id": answer_id})
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
