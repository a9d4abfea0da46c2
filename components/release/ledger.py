"""The promotion ledger: every alias move, kept in the registry itself.

MLflow keeps no history of alias moves (mlflow#2169). funnel records each move — from version,
to version, who, when, why, the gate's verdict, the flow run — as a tag of the registered model
(``ledger.000001``, ``ledger.000002``, ...), so the history lives wherever the registry lives
and survives restarts. Moves of one use case are serialised by a lock and checked against the
champion the decision was based on, so two racing promotions cannot both win.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from components.config import LOCK_ENV, Settings
from components.errors import ConfigError, LedgerError, PromotionConflictError
from components.locks import DEFAULT_TIMEOUT_S, advisory_lock, file_lock, is_postgres

TAG_PREFIX = "ledger."
ACTOR_ENV = "FUNNEL_ACTOR"
# an entry's status: written before the alias moves (intent), after it moved (applied), or
# settled as not applied when a crash stopped the move in between
INTENT, APPLIED, NOT_APPLIED = "intent", "applied", "not applied"
MANUAL = "manual promotion"
# the model-version tag a reviewer's answer is written to (``review_answer``)
REVIEW_ANSWER_TAG = "review.answer"


@dataclass(frozen=True)
class LedgerEntry:
    sequence: int
    use_case: str
    action: str  # promote | approve | rollback
    alias: str
    from_version: str | None
    to_version: str
    actor: str
    at: str
    reason: str
    gate: str = ""
    flow_run_id: str = ""
    # entries written before statuses existed were applied
    status: str = APPLIED

    @property
    def tag(self) -> str:
        return f"{TAG_PREFIX}{self.sequence:06d}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LedgerEntry:
        return cls(**json.loads(text))


def current_actor(settings: Settings | None = None) -> str:
    """Who is acting. With an MLflow server that has user accounts: the MLflow user the server
    confirmed (``FUNNEL_ACTOR`` cannot override a signed-in identity); else ``FUNNEL_ACTOR``
    when set (CI, a service account), else the OS user."""
    if settings is not None:
        from components.release import registry

        user = registry.authenticated_user(settings)
        if user is not None:
            return user
    try:
        return os.environ.get(ACTOR_ENV) or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def review_answer(approve: bool, reason: str, reviewer: str, answer_id: str) -> str:
    """The answer a reviewer writes to the model version (``REVIEW_ANSWER_TAG``) with their own
    registry credentials before resuming the flow: only someone the registry lets edit the model
    can write it, and the flow accepts no answer without it."""
    return json.dumps({"approve": approve, "reason": reason[:500], "reviewer": reviewer, "answer_id": answer_id},
                      sort_keys=True)


def confirm_review_answer(tags: dict[str, str], approve: bool, answer_id: str) -> dict:
    """The registry's copy of a review answer that resumed the flow (pure); ReviewError when the
    answer did not come through `funnel review` (e.g. typed in the Prefect UI) or differs."""
    from components.errors import ReviewError

    try:
        recorded = json.loads(tags.get(REVIEW_ANSWER_TAG, ""))
    except ValueError:
        recorded = None
    if not isinstance(recorded, dict) or not answer_id or recorded.get("answer_id") != answer_id \
            or recorded.get("approve") is not approve:
        raise ReviewError(
            "the review answer is not confirmed by the registry, so it counts as neither approval nor rejection; "
            "@champion is unchanged. Answer with `funnel review approve|reject`: it writes the answer to the "
            "model version as your MLflow user (only users who may edit the model can review), then resumes "
            "the flow. Re-run the flow to ask again."
        )
    return recorded


def parse_ledger(tags: dict[str, str]) -> list[LedgerEntry]:
    """The ledger entries among a registered model's tags, oldest first."""
    entries = [LedgerEntry.from_json(v) for k, v in tags.items() if re.fullmatch(rf"{re.escape(TAG_PREFIX)}\d+", k)]
    return sorted(entries, key=lambda e: e.sequence)


def read_ledger(settings: Settings, use_case: str) -> list[LedgerEntry]:
    from components.release import registry

    return parse_ledger(registry.model_tags(settings, use_case))


def rollback_target(entries: list[LedgerEntry], alias: str, current: str | None) -> str:
    """The version ``alias`` pointed to before it moved to ``current`` (pure)."""
    for entry in reversed(entries):
        if entry.alias == alias and entry.to_version == current and entry.status == APPLIED:
            if entry.from_version is None:
                raise LedgerError(f"v{current} was the first @{alias}: there is no earlier version to roll back to")
            return entry.from_version
    raise LedgerError(
        f"the ledger has no move of @{alias} to v{current}; name the version with --to"
    )


def rollback_action(entries: list[LedgerEntry], alias: str, target: str, *, force: bool, reason: str | None) -> str:
    """The ledger action of moving ``@alias`` back to ``target`` (pure): a rollback when ``target``
    served as ``@alias`` before; anything else (a version that failed its gate or was never
    reviewed) only with ``force`` and a reason, recorded as a manual promotion."""
    if any(e.alias == alias and e.to_version == str(target) and e.status == APPLIED for e in entries):
        return "rollback"
    if not force:
        raise LedgerError(
            f"v{target} was never @{alias}, so no gate or reviewer passed it; a rollback only returns to a "
            f"version that served before. To serve it anyway: --force --reason 'why' (recorded as a manual "
            f"promotion). `funnel history` lists the earlier @{alias} versions."
        )
    if not (reason or "").strip():
        raise LedgerError("--force needs --reason: the ledger records why a version no gate passed was promoted")
    return MANUAL


def lock_target(settings: Settings) -> str:
    """Where alias moves are serialised: FUNNEL_LOCK_URL, else derived from the tracking URI.
    An MLflow server (http/https) gives no lock all workers share, so it needs FUNNEL_LOCK_URL."""
    uri = settings.lock_url or settings.tracking_uri
    if is_postgres(uri) or uri == "file":
        return uri
    if uri.startswith("sqlite:///") or "://" not in uri or uri.startswith("file:"):
        return "file"
    raise ConfigError(
        f"alias moves through the MLflow server at {uri} need a lock every worker shares: set "
        f"{LOCK_ENV}=postgresql://user:password@host:port/database (infra/docker-compose.yml sets it), "
        f"or {LOCK_ENV}=file when every run of this registry is on this one machine. Nothing was changed."
    )


@contextlib.contextmanager
def alias_lock(settings: Settings, use_case: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Serialise alias moves of one use case: a PostgreSQL advisory lock (FUNNEL_LOCK_URL, or the
    PostgreSQL registry itself) across machines, or a file lock beside the SQLite registry."""
    target = lock_target(settings)
    what = f"moving an alias of {use_case}"
    if target != "file":
        with advisory_lock(target, f"alias-{use_case}", timeout_s, what):
            yield
        return
    uri = settings.tracking_uri
    folder = Path(uri.removeprefix("sqlite:///")).parent if uri.startswith("sqlite:///") else settings.repo_root
    with file_lock(folder / ".funnel-locks" / f"{use_case}.lock", timeout_s, what):
        yield


def reconcile(settings: Settings, use_case: str, alias: str, current: str | None,
              entries: list[LedgerEntry]) -> list[LedgerEntry]:
    """Settle moves a crash left as intents (called under the lock): an intent whose alias points
    at its target was applied; any other was not. Entries are rewritten, never dropped."""
    from components.release import registry

    settled = []
    for entry in entries:
        if entry.status == INTENT and entry.alias == alias:
            status = APPLIED if current == entry.to_version else NOT_APPLIED
            entry = replace(entry, status=status, reason=f"{entry.reason} [settled later: {status}]"[:2000])
            registry.set_model_tag(settings, use_case, entry.tag, entry.to_json())
        settled.append(entry)
    return settled


def move_alias(
    settings: Settings,
    use_case: str,
    alias: str,
    to_version: str,
    *,
    expected_from: str | None = None,
    require_expected: bool = False,
    action: str,
    reason: str,
    actor: str | None = None,
    gate: str = "",
    flow_run_id: str = "",
    lock_timeout_s: float = DEFAULT_TIMEOUT_S,
) -> LedgerEntry:
    """Move ``@alias`` to ``to_version`` and record it, under the use case's lock: the ledger entry
    is written first as an intent, then the alias moves, then the entry is marked applied, so a
    crash anywhere leaves a record the next move settles (``reconcile``).

    With ``require_expected``, ``expected_from`` is the version the decision was based on (None: no
    champion); when the alias has moved since, nothing changes and PromotionConflictError says so.
    """
    from components.release import registry

    with alias_lock(settings, use_case, lock_timeout_s):
        current_version = registry.get_alias_version(settings, use_case, alias)
        current = str(current_version.version) if current_version is not None else None
        if require_expected and current != expected_from:
            raise PromotionConflictError(
                f"{use_case}: @{alias} moved from {_v(expected_from)} to {_v(current)} after v{to_version} "
                f"was evaluated against it; nothing was changed. Re-run the flow so the gate compares "
                f"against the current @{alias}."
            )
        if registry.get_version(settings, use_case, to_version) is None:
            raise LedgerError(f"{use_case} has no version {to_version}; see `funnel history {use_case}`")
        tags = registry.model_tags(settings, use_case)
        entries = reconcile(settings, use_case, alias, current, parse_ledger(tags))
        sequence = max((e.sequence for e in entries), default=0) + 1
        entry = LedgerEntry(
            sequence=sequence,
            use_case=use_case, action=action, alias=alias, from_version=current,
            to_version=str(to_version), actor=actor or current_actor(settings),
            at=datetime.now(UTC).isoformat(timespec="seconds"), reason=reason[:2000],
            gate=gate, flow_run_id=flow_run_id, status=INTENT,
        )
        if entry.tag in tags:  # never overwrite a record, whatever parse_ledger made of it
            raise LedgerError(f"{use_case}: ledger tag {entry.tag} exists already; nothing was changed")
        registry.set_model_tag(settings, use_case, entry.tag, entry.to_json())
        registry.set_alias(settings, use_case, alias, str(to_version))
        entry = replace(entry, status=APPLIED)
        registry.set_model_tag(settings, use_case, entry.tag, entry.to_json())
    return entry


def _v(version: str | None) -> str:
    return f"v{version}" if version else "nothing"


def describe_lineage(settings: Settings, use_case: str, version: str | None, alias: str) -> dict[str, str]:
    """Where a model version came from: data (md5, DVC path and remote), code (git commit),
    orchestration (Prefect flow run), validation (GX result) and the champion before it."""
    from components.release import registry

    if version is None:
        current = registry.get_alias_version(settings, use_case, alias)
        if current is None:
            raise LedgerError(f"{use_case} has no @{alias}; pass --version")
        version = str(current.version)
    found = registry.get_version(settings, use_case, version)
    if found is None:
        raise LedgerError(f"{use_case} has no version {version}; see `funnel history {use_case}`")
    tags = found.tags
    run = registry.get_run(settings, found.run_id)
    promoted = [e for e in read_ledger(settings, use_case)
                if e.to_version == str(version) and e.alias == alias and e.status == APPLIED]
    return {
        "use case": use_case,
        "version": str(version),
        "aliases": ", ".join(f"@{a}" for a in found.aliases) or "-",
        "MLflow run": found.run_id,
        "data md5": tags.get("data_md5", "-"),
        "DVC snapshot": f"{run.data.tags.get('data_path', '-')} (stage snapshot@{use_case}, remote {tags.get('data_remote', '-')})",
        "data rows / source": f"{run.data.tags.get('data_rows', '-')} rows from {run.data.tags.get('data_source', '-')}",
        "git commit": tags.get("git_commit", "-"),
        "Prefect flow run": tags.get("prefect_flow_run_id", "-") or "-",
        "GX result": run.data.tags.get("validation", "-"),
        "gate": tags.get("gate.verdict", "-"),
        "champion when registered": tags.get("champion_at_registration", "-"),
        f"previous @{alias}": (
            ", ".join(f"v{e.from_version or '-'} (moved {e.at} by {e.actor}, {e.action})" for e in promoted)
            or f"never @{alias}"
        ),
    }


def versions_trained_on(settings: Settings, data_md5: str) -> list[dict[str, str]]:
    """Every model version (any use case) trained on the snapshot with this md5."""
    from components.release import registry

    return [
        {"use case": v.name, "version": str(v.version), "aliases": ", ".join(f"@{a}" for a in v.aliases) or "-",
         "gate": v.tags.get("gate.verdict", "-"), "git commit": v.tags.get("git_commit", "-")[:12],
         "run": v.run_id}
        for v in registry.versions_with_tag(settings, "data_md5", data_md5)
    ]
