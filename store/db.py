"""Short-lived DuckDB connections with lock retry, and the schema migrations.

DuckDB allows one writing process and no readers beside it, so no ftod process holds a
connection across UI awaits or between polls. A conflicting lock is retried with
backoff up to a deadline, then reported as StoreBusyError.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb

from store.errors import StoreBusyError, WorkspaceError
from store.migrations import MIGRATIONS
from store.workspace import Workspace

BUSY_TIMEOUT_ENV = "FTOD_BUSY_TIMEOUT"
DEFAULT_BUSY_TIMEOUT_S = 120.0

# One process never opens the same file with two configurations (read-only and
# read-write) at once: DuckDB refuses it, so connections in a process take turns.
_PROCESS_LOCKS: dict[Path, threading.RLock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()

T = TypeVar("T")


def _process_lock(path: Path) -> threading.RLock:
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(path, threading.RLock())


def _is_lock_conflict(error: Exception) -> bool:
    text = str(error)
    return (
        "Could not set lock" in text
        or "Conflicting lock" in text
        or "different configuration" in text
    )


class Store:
    """The workspace database. Hands out short-lived connections; holds none."""

    def __init__(
        self,
        database_path: Path,
        busy_timeout_s: float | None = None,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        self.path = database_path
        if busy_timeout_s is None:
            busy_timeout_s = float(os.environ.get(BUSY_TIMEOUT_ENV, DEFAULT_BUSY_TIMEOUT_S))
        self.busy_timeout_s = busy_timeout_s
        self.lock_waits = 0  # how many times we waited on another process (tests read this)
        self.on_wait = on_wait  # told the remaining seconds each time we wait on a lock

    @classmethod
    def open(
        cls,
        workspace: Workspace,
        busy_timeout_s: float | None = None,
        on_wait: Callable[[float], None] | None = None,
    ) -> Store:
        if not workspace.root.is_dir():
            raise WorkspaceError(f"No ftod workspace at {workspace.root}. Run `ftod init`.")
        store = cls(workspace.database_path, busy_timeout_s, on_wait)
        store.migrate()
        return store

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.02
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except (duckdb.IOException, duckdb.ConnectionException) as error:
                if not _is_lock_conflict(error):
                    raise WorkspaceError(f"Cannot open the store {self.path}: {error}") from error
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreBusyError(
                        f"The store {self.path} stayed locked by another ftod process for "
                        f"{self.busy_timeout_s:.0f} s. Try again when it finishes "
                        f"(or raise {BUSY_TIMEOUT_ENV})."
                    ) from error
                self.lock_waits += 1
                if self.on_wait is not None:
                    self.on_wait(remaining)
                time.sleep(min(delay * (1 + random.random() * 0.5), remaining))
                delay = min(delay * 2, 0.5)

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection, closed when the block ends."""
        if not self.path.exists():
            self.migrate()
        with _process_lock(self.path):
            connection = self._connect(read_only=True)
            try:
                yield connection
            finally:
                connection.close()

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection inside one transaction: all of the block, or none of it."""
        with _process_lock(self.path):
            connection = self._connect(read_only=False)
            try:
                connection.execute("BEGIN TRANSACTION")
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            finally:
                connection.close()

    def schema_version(self) -> int:
        with self.reading() as connection:
            return _current_version(connection)

    def migrate(self) -> int:
        """Apply the forward migrations this file lacks. Returns the schema version."""
        target = max(version for version, _ in MIGRATIONS)
        if self.path.exists():
            try:
                with _process_lock(self.path):
                    connection = self._connect(read_only=True)
                    try:
                        if _current_version(connection) >= target:
                            return target
                    finally:
                        connection.close()
            except duckdb.Error:
                pass  # unreadable version table: let the write path report it
        with self.writing() as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version INTEGER PRIMARY KEY,"
                " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
            )
            current = _current_version(connection)
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    connection.execute(statement)
                connection.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
                current = version
            return current


def _current_version(connection: duckdb.DuckDBPyConnection) -> int:
    exists = connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = connection.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0
