"""Failures a run survives or reports: tasks retry transient errors only (a real Prefect task), and
`retrain --all` runs every use case, then ends Failed when any errored or had invalid data."""

from __future__ import annotations

import socket

import pytest
from prefect import flow, task

from components.errors import (
    ConfigError,
    DataUnavailableError,
    DataValidationError,
    GateFailedError,
    RetrainFailedError,
    is_transient,
)
from flows.retrain import IO_TASK, ML_TASK


def _mlflow_error(code: str) -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2

    return MlflowException("the tracking server said no", error_code=getattr(databricks_pb2, code))


def _http_error(status: int) -> Exception:
    import requests

    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status}", response=response)


def _chained(cause: Exception, outer: Exception) -> Exception:
    try:
        raise outer from cause
    except Exception as exc:
        return exc


@pytest.mark.parametrize(("exc", "transient"), [
    (ConnectionResetError("peer reset"), True),
    (TimeoutError("read timed out"), True),
    (socket.gaierror("name resolution failed"), True),
    (OSError("database is locked"), True),
    (FileNotFoundError("data/intent.csv"), False),
    (PermissionError("mlruns.db"), False),
    (_mlflow_error("TEMPORARILY_UNAVAILABLE"), True),   # HTTP 503
    (_mlflow_error("INTERNAL_ERROR"), True),            # 500: e.g. the request never reached the server
    (_mlflow_error("RESOURCE_DOES_NOT_EXIST"), False),  # 404
    (_mlflow_error("INVALID_PARAMETER_VALUE"), False),  # 400
    (_http_error(502), True),
    (_http_error(429), True),
    (_http_error(404), False),                          # an OSError in requests, yet never transient
    (_chained(ConnectionError("refused"), RuntimeError("client failed")), True),
    (ValueError("could not convert string to float"), False),
    (KeyError("Month"), False),
    (DataValidationError("intent", ["too few rows"]), False),
    (GateFailedError("intent", "2", ["roc_auc below its floor"]), False),
    (ConfigError("bad key"), False),
    (_chained(ConnectionError("refused"), DataUnavailableError("no source answered")), False),
    (None, False),
])
def test_only_transient_errors_are_retried(exc, transient):
    assert is_transient(exc) is transient


def _count_attempts(failures: list[BaseException], options) -> tuple[int, object]:
    """Run a task with ``options`` (no delay between tries) that raises ``failures`` in turn, then
    succeeds; returns how often it ran and its final state."""
    attempts: list[int] = []

    @task(**(options | {"retry_delay_seconds": 0}))
    def read_once() -> int:
        attempts.append(1)
        if len(attempts) <= len(failures):
            raise failures[len(attempts) - 1]
        return len(attempts)

    @flow
    def run_once() -> dict:
        return {"task": read_once(return_state=True)}  # in a dict: the flow itself completes

    state = run_once()["task"]
    return len(attempts), state


def test_an_io_task_retries_a_transient_error_and_then_succeeds():
    ran, state = _count_attempts([ConnectionResetError("peer reset")], IO_TASK)
    assert ran == 2
    assert state.is_completed()
    assert state.result() == 2


def test_an_io_task_gives_up_after_its_retries():
    failures: list[BaseException] = [TimeoutError("slow"), TimeoutError("slow"), TimeoutError("slow")]
    ran, state = _count_attempts(failures, IO_TASK)
    assert ran == IO_TASK["retries"] + 1
    assert state.is_failed()


@pytest.mark.parametrize("error", [
    DataValidationError("intent", ["too few rows"]),
    GateFailedError("intent", "2", ["roc_auc below its floor"]),
    FileNotFoundError("data/intent.csv"),
])
def test_an_io_task_never_retries_bad_data_a_failed_gate_or_a_missing_file(error):
    ran, state = _count_attempts([error], IO_TASK)
    assert ran == 1
    assert state.is_failed()
    with pytest.raises(type(error)):
        state.result()


def test_ml_tasks_do_not_retry():
    ran, state = _count_attempts([ConnectionResetError("peer reset")], ML_TASK)
    assert (ran, state.is_failed()) == (1, True)


def test_a_multi_use_case_failure_names_the_failed_runs_not_the_decisions():
    results = [
        {"use_case": "intent", "status": "promoted"},
        {"use_case": "fraud", "status": "not promoted", "error": "gate"},
        {"use_case": "ctr", "status": "skipped", "error": "no mirror"},
        {"use_case": "support", "status": "invalid data", "error": "..."},
        {"use_case": "sentiment", "status": "error", "error": "..."},
    ]
    error = RetrainFailedError(results)
    assert error.failed == ["support", "sentiment"]
    assert error.results is results
    assert str(error).startswith("2 of 5 use case run(s) failed (support: invalid data; sentiment: error)")


@pytest.mark.integration
def test_retrain_all_runs_every_use_case_then_ends_failed(project):
    from flows.retrain import retrain_all

    # given two use cases whose data both fail validation (nothing trains: a quick run)
    overrides = {"use_cases.intent.validate.min_rows": 10**8, "use_cases.sentiment.validate.min_rows": 10**8}

    # when both are retrained in one run
    state = retrain_all(["intent", "sentiment"], overrides, return_state=True)

    # then the second ran although the first failed, and the run ended Failed with both summaries
    assert state.is_failed()
    assert "2 of 2 use case run(s) failed" in state.message
    error = state.result(raise_on_failure=False)
    assert isinstance(error, RetrainFailedError)
    assert [(r["use_case"], r["status"]) for r in error.results] == [
        ("intent", "invalid data"), ("sentiment", "invalid data")]
    with pytest.raises(RetrainFailedError, match="intent: invalid data; sentiment: invalid data"):
        retrain_all(["intent", "sentiment"], overrides)
