"""One generic Prefect flow: ingest -> validate -> version -> train -> evaluate -> register -> gate -> promote."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict
from uuid import uuid4

from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.client.schemas.objects import TaskRun
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.states import State
from prefect.tasks import RetryConditionCallable

from components.config import Settings, load_params, load_settings, read_git_commit
from components.data import versioning
from components.data.ingest import Snapshot, apply_replay, derive, read_source, resolve_source, write_snapshot
from components.data.validate import ValidationReport, artifact_rows, check_report, validate_frame
from components.data.versioning import DataVersion
from components.errors import (
    FAILED_RUN_STATUSES,
    DataUnavailableError,
    DataValidationError,
    GateFailedError,
    RetrainFailedError,
    ReviewError,
    describe_failure,
    is_transient,
)
from components.evaluation.report import Evaluation, write_metrics_json
from components.release import registry
from components.release.champion import evaluate_with_champion, load_champion
from components.release.ledger import confirm_review_answer
from components.release.promotion import PromotionDecision, apply_promotion, decide_promotion
from components.release.registry import RegisteredVersion
from components.release.review import collect_facts, write_review
from components.tasks.base import train_from_snapshot
from components.training.fit import TrainedModel
from components.use_cases import get_use_case, list_use_cases

if TYPE_CHECKING:  # flows import no pandas at module level
    import pandas as pd


class TaskOptions(TypedDict, total=False):
    """The ``@task`` options set here (typed, so ``@task(**options)`` type-checks)."""

    cache_policy: CachePolicy
    retries: int
    retry_delay_seconds: float
    retry_condition_fn: RetryConditionCallable
    timeout_seconds: float


def retry_transient(task: Task, task_run: TaskRun, state: State) -> bool:
    """Prefect's ``retry_condition_fn``: retry only what may pass next time (a network or OS error,
    a timeout, an HTTP 5xx from MLflow: ``is_transient``), never a FunnelError (bad data, a failed
    gate, a bad setting)."""
    return is_transient(state.data if isinstance(state.data, BaseException) else None)


# Retries, timeouts and caching for every task, set in one place. Results stay in memory
# (frames, Keras models), so nothing is cached or persisted between runs.
IO_TASK: TaskOptions = {
    "cache_policy": NO_CACHE, "retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": retry_transient,
    "timeout_seconds": 600,
}
# under common.reports_dir: one folder per running flow (RunContext.scratch)
SCRATCH_DIR = ".runs"
ML_TASK: TaskOptions = {"cache_policy": NO_CACHE, "retries": 0, "retry_condition_fn": retry_transient,
                        "timeout_seconds": 3600}


@dataclass(frozen=True)
class RunContext:
    settings: Settings
    use_case: Any
    config: Any
    common: Any
    # the run's --set overrides (dvc.lock records them for the stages this run commits)
    overrides: dict[str, Any] | None = None
    # this run's own folder: its snapshot, metrics and plots are written here, then published
    # to the paths dvc.yaml names under the DVC lock (concurrent runs of one use case never
    # write the same file); removed when the run ends
    scratch: Path = Path()


@task(**IO_TASK)
def load_context(name: str, overrides: dict[str, Any] | None) -> RunContext:
    settings = load_settings()
    params = load_params(settings.params_path, overrides)
    use_case = get_use_case(name, params)
    scratch = settings.path(params.common.reports_dir) / SCRATCH_DIR / f"{name}-{flow_run.id or uuid4().hex}"
    return RunContext(settings, use_case, use_case.configure(params), params.common, overrides, scratch)


@task(**IO_TASK)
def ingest(ctx: RunContext, as_of: str | None = None) -> tuple[pd.DataFrame, str]:
    """Read the source; a replay source releases the periods due by ``as_of`` (default: the
    run's scheduled date, so each scheduled or backfilled run sees its own snapshot)."""
    frame, source = read_source(ctx.config.name, ctx.config.params.data, ctx.settings)
    day = replay_day(ctx, as_of)
    if day is not None:
        frame, released = apply_replay(frame, ctx.config.params.data.replay, day)
        source = f"{source} (replay: {released} period(s) by {day})"
    return derive(ctx.config.name, frame, ctx.config.transforms), source


def replay_day(ctx: RunContext, as_of: str | None) -> date | None:
    """The day a replay source releases data up to (``as_of``, else the run's scheduled date);
    None when the use case has no replay."""
    replay = ctx.config.params.data.replay
    if replay is None or not replay.enabled:
        return None
    return date.fromisoformat(as_of) if as_of else run_date()


def run_date() -> date:
    scheduled = flow_run.scheduled_start_time
    return scheduled.date() if scheduled else date.today()


@task(**IO_TASK | {"retries": 0})
def validate(ctx: RunContext, frame) -> ValidationReport:
    docs = ctx.settings.path(ctx.common.data_docs_dir)
    report = validate_frame(ctx.config.name, frame, ctx.config.params.validate, docs,
                            delimiter=ctx.config.params.data.delimiter)
    rows = artifact_rows(report)  # counts and statistics only: never data values
    create_table_artifact(
        key=f"{ctx.config.name}-validation", table=rows,
        description=f"GX suite for {ctx.config.name}: {report.statistics}; Data Docs: {report.docs_path}",
    )
    if not report.success:
        failed = "\n".join(f"- {f}" for f in report.failures)
        create_markdown_artifact(
            key=f"{ctx.config.name}-validation-failed",
            markdown=f"# {ctx.config.name}: data validation failed\n\n{failed}\n\nData Docs: `{report.docs_path}`",
        )
    return check_report(report)


@task(**IO_TASK)
def version(ctx: RunContext, frame, source: str, as_of: str | None = None) -> tuple[Snapshot, DataVersion]:
    staged = write_snapshot(ctx.config.name, frame, source, ctx.scratch, ctx.common.snapshot_row_group_rows)
    target = ctx.settings.path(ctx.common.snapshot_dir) / ctx.config.name / staged.path.name
    # dvc.lock records what this run used: its --set values and the day a replay released data to
    day = replay_day(ctx, as_of)
    used = {**(ctx.overrides or {}), **({f"use_cases.{ctx.config.name}.data.replay.as_of": day.isoformat()} if day else {})}
    data_version = versioning.version_snapshot(
        ctx.settings.repo_root, f"snapshot@{ctx.config.name}", target, ctx.settings.dvc_remote, used,
        lock_timeout_s=ctx.common.lock_timeout_s, staged=staged.path,
    )
    return replace(staged, path=target), data_version


@task(**ML_TASK)
def train(ctx: RunContext, snapshot) -> TrainedModel:
    # train.streaming: the published snapshot file is read in row batches, not the frame
    return train_from_snapshot(ctx.use_case, ctx.config, snapshot.frame, snapshot.path)


@task(**ML_TASK)
def evaluate(ctx: RunContext, trained) -> Evaluation:
    champion = load_champion(ctx.settings, ctx.config, ctx.common.champion_alias)
    reports = ctx.settings.path(ctx.common.reports_dir) / ctx.config.name
    evaluation = evaluate_with_champion(ctx.use_case, ctx.config, trained, ctx.scratch / "plots", champion)
    metrics = write_metrics_json(evaluation, ctx.scratch / "metrics.json")
    versioning.commit_stage(ctx.settings.repo_root, f"train@{ctx.config.name}", ctx.overrides,
                            lock_timeout_s=ctx.common.lock_timeout_s,
                            staged={metrics: reports / "metrics.json", ctx.scratch / "plots": reports / "plots"})
    return evaluation


@task(**IO_TASK | {"retries": 0})
def register(ctx: RunContext, snapshot, data_version, trained, evaluation, report) -> RegisteredVersion:
    context = {"git_commit": read_git_commit(ctx.settings.repo_root), "flow_run_id": str(flow_run.id or "")}
    return registry.log_training_run(
        ctx.settings, ctx.config, snapshot, data_version, trained, evaluation, report, context,
        ctx.common.challenger_alias, ctx.common.input_example,
    )


@task(**IO_TASK | {"retries": 0})
def gate(ctx: RunContext, registered, evaluation) -> PromotionDecision:
    decision = decide_promotion(
        ctx.config.name, registered.version, evaluation.metrics, ctx.config.params.gate,
        evaluation.champion_version, evaluation.champion_metrics, evaluation.champion_error,
        evaluation.slices, champion_comparison=evaluation.champion_comparison,
        baseline_comparison=evaluation.baseline_comparison, baseline_name=evaluation.baseline_name,
        champion_slices=evaluation.champion_slices, schema_change=evaluation.schema_change,
    )
    rows = [{"check": c.name, "passed": c.passed, "detail": c.detail} for c in decision.checks]
    create_table_artifact(
        key=f"{ctx.config.name}-gate", table=rows,
        description=f"{ctx.config.name} v{registered.version}: gate {decision.verdict}",
    )
    return decision


@task(**IO_TASK | {"retries": 0})
def review_report(
    ctx: RunContext, registered, evaluation, decision, snapshot, data_version, report,
) -> dict[str, Path]:
    """Release review (HTML + Markdown) and model card: reports/<uc>/, the MLflow run, Prefect."""
    context = {"git_commit": read_git_commit(ctx.settings.repo_root), "flow_run_id": str(flow_run.id or "")}
    facts = collect_facts(ctx.settings, ctx.use_case, ctx.config, registered, evaluation, decision,
                          snapshot, data_version, report, context)
    paths = write_review(facts, ctx.settings.path(ctx.common.reports_dir) / ctx.config.name)
    registry.log_review_files(ctx.settings, registered.run_id, list(paths.values()))
    card = paths["model_card"].read_text(encoding="utf-8")
    registry.describe_version(ctx.settings, ctx.config.name, registered.version, card)
    create_markdown_artifact(
        key=f"{ctx.config.name}-review", markdown=paths["markdown"].read_text(encoding="utf-8"),
        description=f"{ctx.config.name} v{registered.version} release review; HTML: {paths['html']}",
    )
    return paths


class ReviewInput(RunInput):
    """What a release reviewer answers in the Prefect UI or with `funnel review approve|reject`."""

    approve: bool
    reason: str
    reviewer: str = "prefect-ui"
    # set by `funnel review`, which first writes the answer to the model version in the registry
    # as the reviewer; an answer without it (typed in the Prefect UI) is not accepted
    answer_id: str = ""


def wait_for_review(ctx: RunContext, registered, decision) -> ReviewInput:
    """Pause the flow run until a reviewer approves or rejects; a timeout or a rejection raises
    ReviewError and leaves @champion where it is."""
    gate, name, version = ctx.config.params.gate, ctx.config.name, registered.version
    registry.write_version_tags(ctx.settings, name, version, {"review.status": "pending"})
    checks = "\n".join(f"- {c.name}: {c.detail}" for c in decision.checks)
    why = f"**{decision.schema_change}**: the champion cannot be compared on this data.\n\n" if decision.schema_change else ""
    description = (
        f"## Release review: {name} v{version}\n\n{why}The gate passed:\n{checks}\n\n"
        f"Approve to make v{version} the @champion, or reject, with `funnel review approve|reject {name} "
        f"{version} --reason ...`: it records the answer in the registry as your MLflow user first. An answer "
        f"submitted here instead is not accepted (it would carry a typed name, not a signed-in one)."
    )
    get_run_logger().info("%s v%s waits for a review (timeout %ss)", name, version, gate.review_timeout_s)
    try:
        review = pause_flow_run(
            wait_for_input=ReviewInput.with_initial_data(description=description, approve=False, reason=""),
            timeout=gate.review_timeout_s, poll_interval=gate.review_poll_s,
        )
    except FlowPauseTimeout:
        registry.write_version_tags(ctx.settings, name, version, {"review.status": "timed out"})
        raise ReviewError(
            f"{name} v{version}: no review within {gate.review_timeout_s} s; @champion is unchanged. "
            "Re-run the flow to ask again."
        ) from None
    found = registry.get_version(ctx.settings, name, version)
    try:
        answer = confirm_review_answer(dict(found.tags) if found else {}, review.approve, review.answer_id)
    except ReviewError:
        registry.write_version_tags(ctx.settings, name, version, {"review.status": "unconfirmed answer"})
        raise
    review = ReviewInput(approve=review.approve, reason=answer["reason"], reviewer=answer["reviewer"],
                         answer_id=review.answer_id)
    verdict = "approved" if review.approve else "rejected"
    registry.write_version_tags(ctx.settings, name, version, {
        "review.status": verdict, "review.reviewer": review.reviewer, "review.reason": review.reason[:500],
    })
    if not review.approve:
        raise ReviewError(f"{name} v{version} was rejected by {review.reviewer}: {review.reason}; @champion is unchanged")
    return review


@task(**IO_TASK | {"retries": 0})
def promote(ctx: RunContext, decision, review: ReviewInput | None = None) -> str:
    timeout = ctx.common.lock_timeout_s
    if review is None:
        return apply_promotion(decision, ctx.settings, ctx.common.champion_alias, flow_run_id=str(flow_run.id or ""),
                               lock_timeout_s=timeout)
    return apply_promotion(
        decision, ctx.settings, ctx.common.champion_alias,
        action="approve (schema change)" if decision.schema_change else "approve", actor=review.reviewer,
        reason=review.reason, flow_run_id=str(flow_run.id or ""), lock_timeout_s=timeout,
    )


@flow(name="retrain", flow_run_name="retrain-{use_case}")
def retrain(use_case: str, overrides: dict[str, Any] | None = None, as_of: str | None = None) -> dict[str, Any]:
    """Take one use case from its data source to a gated, possibly promoted, model version."""
    ctx = load_context(use_case, overrides)
    try:
        return run_steps(ctx, as_of)
    finally:
        shutil.rmtree(ctx.scratch, ignore_errors=True)


def run_steps(ctx: RunContext, as_of: str | None) -> dict[str, Any]:
    """The retrain flow's steps on one loaded context (each a Prefect task)."""
    logger = get_run_logger()
    use_case = ctx.config.name
    frame, source = ingest(ctx, as_of)
    report = validate(ctx, frame)
    snapshot, data_version = version(ctx, frame, source, as_of)
    trained = train(ctx, snapshot)
    evaluation = evaluate(ctx, trained)
    registered = register(ctx, snapshot, data_version, trained, evaluation, report)
    decision = gate(ctx, registered, evaluation)
    logger.info("%s v%s: gate %s", use_case, registered.version, decision.verdict)
    review_report(ctx, registered, evaluation, decision, snapshot, data_version, report)
    review = None
    if decision.promote and (ctx.config.params.gate.promotion_mode == "review" or decision.needs_review):
        review = wait_for_review(ctx, registered, decision)
    champion = promote(ctx, decision, review)
    return {"use_case": use_case, "version": registered.version, "data_md5": data_version.md5, "rows": snapshot.rows,
            "gate": decision.verdict, "champion_version": champion}


def available_use_cases(
    names: list[str] | None = None, overrides: dict[str, Any] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Split use cases into those whose data can be read and those skipped (with the reason);
    ``--set`` overrides (e.g. another ``data.source``) count."""
    settings = load_settings()
    params = load_params(settings.params_path, overrides)
    ready, skipped = [], {}
    for name in names or list_use_cases(params):
        try:
            resolve_source(name, params.use_cases[name].data, settings)
            ready.append(name)
        except DataUnavailableError as exc:
            skipped[name] = str(exc)
    return ready, skipped


@flow(name="retrain-all")
def retrain_all(
    use_cases: list[str] | None = None, overrides: dict[str, Any] | None = None, parallel: bool = False,
) -> list[dict[str, Any]]:
    """Retrain every use case whose data is available; one failure does not stop the others, but
    the run then ends Failed with a RetrainFailedError carrying every summary (``results``). A gate
    that kept @champion ("not promoted") is a decision, not a failure; nor is skipped data.
    With ``parallel``, each use case is a task on the flow's task runner (Dask: see
    ``with_dask``), so use cases train side by side; DVC calls stay serialised per repository."""
    logger = get_run_logger()
    ready, skipped = available_use_cases(use_cases, overrides)
    results = [{"use_case": name, "status": "skipped", "error": why} for name, why in skipped.items()]
    for name, why in skipped.items():
        logger.warning("skipping %s: %s", name, why)
    if parallel:
        registry.initialise_store(load_settings())
        futures = [retrain_one.submit(name, overrides) for name in ready]
        results += [future.result() for future in futures]
    else:
        results += [outcome(name, retrain(name, overrides, return_state=True)) for name in ready]
    if any(r["status"] in FAILED_RUN_STATUSES for r in results):
        raise RetrainFailedError(results)
    return results


@task(cache_policy=NO_CACHE, retries=0)
def retrain_one(name: str, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """One use case's retrain flow, run where the task runner puts it (a Dask worker process)."""
    return outcome(name, retrain(name, overrides, return_state=True))


def with_dask(address: str | None, workers: int):
    """``retrain_all`` on a Dask cluster: the scheduler at ``address``, or a LocalCluster of
    ``workers`` single-threaded worker processes (``runtime.dask_runner``)."""
    from flows.runtime import dask_runner

    return retrain_all.with_options(task_runner=dask_runner(address, workers))


def outcome(name: str, state) -> dict[str, Any]:
    """A retrain run's summary, or why it stopped (gate, validation, error)."""
    try:
        return {**state.result(), "status": "promoted"}
    except (GateFailedError, ReviewError) as exc:
        return {"use_case": name, "status": "not promoted", "error": str(exc)}
    except DataValidationError as exc:
        return {"use_case": name, "status": "invalid data", "error": str(exc)}
    except Exception as exc:  # a library's message may quote data rows: funnel's own errors only
        return {"use_case": name, "status": "error", "error": describe_failure(exc)}
