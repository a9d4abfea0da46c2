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
