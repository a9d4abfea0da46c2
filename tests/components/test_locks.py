"""Locks give up after their timeout with a message naming the lock (never wait forever)."""

from __future__ import annotations

import pytest

from components.errors import ConfigError, LockTimeoutError
from components.locks import advisory_lock, file_lock, sqlalchemy_url


def test_a_held_file_lock_times_out_with_a_message_naming_it(tmp_path):
    path = tmp_path / "locks" / "intent.lock"
    # a second open file description contends like another process would
    with (file_lock(path, 5, "moving an alias of intent"),
          pytest.raises(LockTimeoutError, match=r"moving an alias of intent: another run has held the lock .*intent.lock"),
          file_lock(path, 0.5, "moving an alias of intent")):
        pass
    with file_lock(path, 0.5, "moving an alias of intent"):  # released: free again
        pass


def test_postgres_urls_use_the_installed_driver():
    assert sqlalchemy_url("postgresql://u:p@h:5/db") == "postgresql+psycopg://u:p@h:5/db"
    assert sqlalchemy_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    with pytest.raises(ConfigError, match="not a PostgreSQL URL"):
        sqlalchemy_url("mysql://u:p@h/db")


def test_an_unreachable_lock_database_is_a_clear_error():
    with (pytest.raises(ConfigError, match="cannot reach the lock database at 127.0.0.1:1/db"),
          advisory_lock("postgresql://u:p@127.0.0.1:1/db", "alias-intent", 1, "moving an alias of intent")):
        pass
