"""Locks with a timeout and a message that names what is held: a file lock (one machine) and a
PostgreSQL advisory lock (every machine that reaches the database).

A run that cannot get a lock within ``timeout_s`` raises LockTimeoutError saying which lock,
where, and what to do; it never waits forever behind a stuck run."""

from __future__ import annotations

import contextlib
import fcntl
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

from components.errors import ConfigError, LockTimeoutError

POLL_S = 0.2
# the wait when a caller passes no timeout (library use); runs pass common.lock_timeout_s
DEFAULT_TIMEOUT_S = 300.0
POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://", "postgresql+psycopg2://")


@contextlib.contextmanager
def file_lock(path: Path, timeout_s: float, what: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created with its folder), held for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(
                        f"{what}: another run has held the lock {path} for more than {timeout_s:.0f} s "
                        "(common.lock_timeout_s). Wait for it to finish, or, if no funnel run is alive "
                        "on this machine, re-run: the lock is released when its process ends."
                    ) from None
                time.sleep(POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_postgres(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def sqlalchemy_url(url: str) -> str:
    """A PostgreSQL URL on the psycopg 3 driver (the one funnel's stack extra installs)."""
    for scheme in POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    raise ConfigError(f"not a PostgreSQL URL (expected postgresql://...): {url.split('://', 1)[0]}://...")


def lock_key(name: str) -> int:
    """A stable 32-bit advisory-lock key for ``name`` (the same on every machine)."""
    return zlib.crc32(f"funnel-{name}".encode())


@contextlib.contextmanager
def advisory_lock(url: str, name: str, timeout_s: float, what: str) -> Iterator[None]:
    """A transaction-level advisory lock ``name`` in the PostgreSQL database at ``url``: every
    process on every machine that uses the same database and name is serialised."""
    try:
        import sqlalchemy
        from sqlalchemy.exc import OperationalError
    except ImportError:  # pragma: no cover - sqlalchemy comes with MLflow
        raise ConfigError("a PostgreSQL lock needs sqlalchemy; install funnel[stack]") from None
    try:
        engine = sqlalchemy.create_engine(sqlalchemy_url(url))
    except ImportError:
        raise ConfigError("a PostgreSQL lock needs the psycopg driver; install funnel[stack]") from None
    host = url.split("@")[-1]
    try:
        connection = engine.connect()
    except OperationalError:
        engine.dispose()
        raise ConfigError(f"{what}: cannot reach the lock database at {host}; check FUNNEL_LOCK_URL "
                          "and that PostgreSQL is up. Nothing was changed.") from None
    deadline = time.monotonic() + timeout_s
    try:
        with connection.begin():
            while not connection.execute(sqlalchemy.text("SELECT pg_try_advisory_xact_lock(:key)"),
                                         {"key": lock_key(name)}).scalar():
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(
                        f"{what}: another run has held the lock {name!r} in PostgreSQL at {host} for more "
                        f"than {timeout_s:.0f} s (common.lock_timeout_s); wait for it to finish and re-run."
                    )
                time.sleep(POLL_S)
            yield
    finally:
        connection.close()
        engine.dispose()
