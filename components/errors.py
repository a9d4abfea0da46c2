"""Domain errors that carry a message a user can act on: what failed, where, what to do."""

from __future__ import annotations


class FunnelError(Exception):
    """Base class of every error funnel raises on purpose."""


def describe_failure(exc: BaseException) -> str:
    """A failure as it may appear in a message, tag or report: funnel's own errors say what went
    wrong with counts and column names only; anything else (a library's message may quote the
    data it choked on, and data may be personal) is named by its type alone."""
    if isinstance(exc, FunnelError):
        return str(exc)
    return f"{type(exc).__name__} (its message is not shown: a library's message may quote data rows)"


class ConfigError(FunnelError):
    """params.yaml or a setting is missing, misspelt or of the wrong type."""


class UnknownUseCaseError(FunnelError):
    """A use-case name that is not in the registry."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"unknown use case {name!r}; params.yaml has: {', '.join(sorted(known))}. A use case is a "
            "section under use_cases: in params.yaml (README: Bring your own data); `funnel list` shows them."
        )
        self.name = name


class InputSchemaError(FunnelError):
    """Rows lack an input the model takes (the message names columns, never values)."""


class DataUnavailableError(FunnelError):
    """The data of a use case cannot be read from any of its sources (file, mirror, URL)."""


class DataValidationError(FunnelError):
    """A snapshot failed its Great Expectations suite; nothing was trained or registered."""

    def __init__(self, use_case: str, failures: list[str], docs_path: str | None = None) -> None:
        lines = "\n".join(f"  - {f}" for f in failures)
        where = f"\nData Docs: {docs_path}" if docs_path else ""
        super().__init__(
            f"data for {use_case!r} failed validation ({len(failures)} problem(s)); "
            f"nothing was trained or registered:\n{lines}{where}\n"
            "Fix the source data (or the schema in params.yaml if the change is intended) and re-run."
        )
        self.use_case = use_case
        self.failures = failures
        self.docs_path = docs_path


class GateFailedError(FunnelError):
    """The challenger did not pass the promotion gate; @champion was left untouched."""

    def __init__(self, use_case: str, version: str, failed_checks: list[str]) -> None:
        lines = "\n".join(f"  - {c}" for c in failed_checks)
        super().__init__(
            f"{use_case} v{version} did not pass the promotion gate; @champion is unchanged. "
            f"Failed checks:\n{lines}"
        )
        self.use_case = use_case
        self.version = version
        self.failed_checks = failed_checks


class VersioningError(FunnelError):
    """A DVC command failed."""


class PromotionConflictError(FunnelError):
    """An alias move lost a race or was based on a champion that has since changed."""


class LedgerError(FunnelError):
    """A rollback or lineage request the promotion ledger cannot satisfy."""


class ReviewError(FunnelError):
    """A reviewer rejected the challenger, or no review came in time; @champion is unchanged."""


class RegistryError(FunnelError):
    """The MLflow registry refused or failed a request (auth, permissions, server error): nothing
    is read as "absent" then, so a 403 never looks like "no champion" or "empty ledger"."""

    def __init__(self, uri: str, what: str, error_code: str, status: int | None = None) -> None:
        hint = {401: "check MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD",
                403: "the MLflow user lacks a permission on this model; ask an MLflow admin"}.get(
            status or 0, "check that the MLflow server is up and see its log")
        super().__init__(f"the MLflow registry at {uri} answered {error_code}"
                         f"{f' (HTTP {status})' if status else ''} to {what}; nothing was changed: {hint}")
        self.error_code = error_code
        self.status = status
        # a server error or an unreachable server may pass; a refusal will not
        self.transient = status is None or status >= 500


class LockTimeoutError(FunnelError):
    """Another run holds a lock this run needs, for longer than the configured timeout."""


# the statuses of a use case's run (flows/retrain.py ``outcome``) that fail a multi-use-case run
# and the CLI; "not promoted" (a failed gate, a rejected review) and "skipped" (no data) do not
FAILED_RUN_STATUSES = ("invalid data", "error")


class RetrainFailedError(FunnelError):
    """Some use cases of a multi-use-case run errored or had invalid data; the others still ran.

    ``results`` holds every use case's summary (the same list a successful run returns)."""

    def __init__(self, results: list[dict]) -> None:
        failed = [r for r in results if r.get("status") in FAILED_RUN_STATUSES]
        named = "; ".join(f"{r['use_case']}: {r['status']}" for r in failed)
        super().__init__(
            f"{len(failed)} of {len(results)} use case run(s) failed ({named}); the others ran to their "
            "decision. Each run's error is in the summary and in the Prefect UI: fix it and re-run "
            "`funnel retrain <use case>`."
        )
        self.results = results
        self.failed = [str(r["use_case"]) for r in failed]


# OSErrors that say a file or folder is missing or forbidden: retrying cannot help
PERMANENT_OS_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)
# HTTP statuses worth another try besides every server-side (5xx) one: request timeout, too many requests
RETRY_STATUSES = frozenset({408, 429})


def http_status(exc: BaseException) -> int | None:
    """The HTTP status a client library attached to ``exc`` (MLflow's ``get_http_status_code()``,
    requests' and httpx's ``response.status_code``), or None."""
    getter = getattr(exc, "get_http_status_code", None)
    status = getter() if callable(getter) else getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def is_transient(exc: BaseException | None) -> bool:
    """Whether ``exc`` may pass on a retry: a network or OS error (not a missing or forbidden
    file), a timeout, or an HTTP 408/429/5xx answer (MLflow's server included), here or in the
    ``raise ... from`` chain. A FunnelError is not (bad data, a failed gate or a bad setting fail
    the same way every time) unless it says so: a RegistryError for a 5xx or unreachable server."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, FunnelError):  # only a registry that failed (not one that refused) may pass
            return bool(getattr(exc, "transient", False))
        # before the OSError test: requests' HTTPError is an OSError, and a 404 stays a 404
        status = http_status(exc)
        if status is not None:
            return status >= 500 or status in RETRY_STATUSES
        if isinstance(exc, TimeoutError) or (isinstance(exc, OSError) and not isinstance(exc, PERMANENT_OS_ERRORS)):
            return True
        exc = exc.__cause__
    return False
