"""The promotion ledger: every alias move, kept in the registry itself.

MLflow keeps no history of alias moves (mlflow#2169). funnel records each move — from version,
to version, who, when, why, the gate's verdict, the flow run — as a tag of the registered model
(``ledger.000001``, ``ledger.000002``, ...), so the history lives wherever the registry lives
and survives restarts. Moves of one use case are serialised by a lock and checked against the
champion the decision was based on, so two racing promotions cannot both win.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from components.config import Settings
from components.errors import LedgerError, PromotionConflictError

TAG_PREFIX = "ledger."
ACTOR_ENV = "FUNNEL_ACTOR"


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

    @property
    def tag(self) -> str:
        return f"{TAG_PREFIX}{self.sequence:06d}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LedgerEntry:
        return cls(**json.loads(text))


def current_actor() -> str:
    """Who is acting: ``FUNNEL_ACTOR`` when set (CI, a service account), else the OS user."""
    try:
        return os.environ.get(ACTOR_ENV) or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


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
        if entry.alias == alias and entry.to_version == current:
            if entry.from_version is None:
                raise LedgerError(f"v{current} was the first @{alias}: there is no earlier version to roll back to")
            return entry.from_version
    raise LedgerError(
        f"the ledger has no move of @{alias} to v{current}; name the version with --to"
    )


@contextlib.contextmanager
def alias_lock(settings: Settings, use_case: str) -> Iterator[None]:
    """Serialise alias moves of one use case across processes.

    Embedded set-up: an exclusive file lock beside the SQLite registry (or in the repo). With a
    PostgreSQL registry: a transaction-level advisory lock in that database as well, so workers
    on other machines are serialised too.
    """
    uri = settings.tracking_uri
    folder = Path(uri.removeprefix("sqlite:///")).parent if uri.startswith("sqlite:///") else settings.repo_root
    lock_dir = folder / ".funnel-locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / f"{use_case}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            with _database_lock(uri, use_case):
                yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _database_lock(uri: str, use_case: str) -> Iterator[None]:
    if not uri.startswith(("postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://", "postgres://")):
        yield
        return
    import zlib

    import sqlalchemy

    engine = sqlalchemy.create_engine(uri.replace("postgres://", "postgresql://", 1))
    try:
        with engine.begin() as connection:
            key = zlib.crc32(f"funnel-alias-{use_case}".encode())
            connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            yield
    finally:
        engine.dispose()


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
) -> LedgerEntry:
    """Move ``@alias`` to ``to_version`` and append the move to the ledger, under the use case's lock.

    With ``require_expected``, ``expected_from`` is the version the decision was based on (None: no
    champion); when the alias has moved since, nothing changes and PromotionConflictError says so.
    """
    from components.release import registry

    with alias_lock(settings, use_case):
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
        entries = parse_ledger(registry.model_tags(settings, use_case))
        entry = LedgerEntry(
            sequence=(entries[-1].sequence + 1) if entries else 1,
            use_case=use_case, action=action, alias=alias, from_version=current,
            to_version=str(to_version), actor=actor or current_actor(),
            at=datetime.now(UTC).isoformat(timespec="seconds"), reason=reason[:2000],
            gate=gate, flow_run_id=flow_run_id,
        )
        registry.set_alias(settings, use_case, alias, str(to_version))
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
    promoted = [e for e in read_ledger(settings, use_case) if e.to_version == str(version) and e.alias == alias]
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
