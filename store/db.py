"""Short-lived DuckDB connections with lock retry, and the schema migrations.

DuckDB allows one writing process and no readers beside it, so no ftod process holds a
connection across UI awaits or between polls. A conflicting lock is retried with
backoff up to a deadline, then reported as StoreBusyError.
"""

from __future__ import annotations

import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from store.errors import (
    FtodError,
    StoreBusyError,
    StoreDamaged,
    WorkspaceError,
    environment_problem,
    store_damage,
)
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
        return self._retrying(lambda: duckdb.connect(str(self.path), read_only=read_only))

    def _retrying(self, open_store: Callable[[], T]) -> T:
        """`open_store()`, retried while another process holds the lock, up to the deadline."""
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.02
        while True:
            try:
                return open_store()
            except (duckdb.IOException, duckdb.ConnectionException) as error:
                if not _is_lock_conflict(error):
                    translated = self._translated(error)
                    if translated is not None:
                        raise translated from error
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

    def _translated(self, error: duckdb.Error) -> FtodError | None:
        """A damaged file or a full, read-only disk, said as such; None for anything else."""
        return store_damage(error, self.path) or environment_problem(error)

    @contextmanager
    def _translating(self) -> Iterator[None]:
        try:
            yield
        except duckdb.Error as error:
            translated = self._translated(error)
            if translated is None:
                raise
            raise translated from error

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection, closed when the block ends."""
        if not self.path.exists():
            self.migrate()
        with _process_lock(self.path), self._translating():
            connection = self._connect(read_only=True)
            try:
                yield connection
            finally:
                connection.close()

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection inside one transaction: all of the block, or none of it."""
        with _process_lock(self.path), self._translating():
            connection = self._connect(read_only=False)
            try:
                # A file shorter than its used blocks was surely cut short; a write into it
                # could succeed beside the lost blocks and leave more to lose. One pragma.
                cut_short = _size_error(connection, self.path)
                if cut_short is not None:
                    raise StoreDamaged(
                        f"The store file {self.path} is damaged ({cut_short}). Restore it from "
                        "a copy; `ftod store check` shows which tables still read, and "
                        "`ftod store backup` saves them while they do."
                    )
                connection.execute("BEGIN TRANSACTION")
                try:
                    yield connection
                except BaseException:
                    # A failed ROLLBACK (the disk that failed the block) must not hide why.
                    with suppress(duckdb.Error):
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


@dataclass(frozen=True, slots=True)
class TableCheck:
    """One table read from end to end: its row count, or why it could not be read."""

    table: str
    rows: int | None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"table": self.table, "rows": self.rows, "error": self.error}


@dataclass(frozen=True, slots=True)
class StoreCheck:
    """What `ftod store check` found: every table of the schema read, or the reason none could."""

    path: Path
    tables: tuple[TableCheck, ...]
    open_error: str | None = None  # the file itself would not open (or list its tables)
    size_error: str | None = None  # shorter than its own header says: it was cut short

    @property
    def damaged(self) -> tuple[TableCheck, ...]:
        return tuple(table for table in self.tables if table.error is not None)

    @property
    def ok(self) -> bool:
        return self.open_error is None and self.size_error is None and not self.damaged

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "open_error": self.open_error,
            "size_error": self.size_error,
            "tables": [table.as_json() for table in self.tables],
        }


def _expected_tables() -> list[str]:
    """The tables the migrations make, from a throwaway in-memory database."""
    connection = duckdb.connect(":memory:")
    try:
        for _version, statements in MIGRATIONS:
            for statement in statements:
                connection.execute(statement)
        return _table_names(connection)
    finally:
        connection.close()


def _table_names(connection: duckdb.DuckDBPyConnection) -> list[str]:
    rows = connection.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY table_name"
    ).fetchall()
    return [str(row[0]) for row in rows]


def check_store(store: Store) -> StoreCheck:
    """Read every row of every table (hashing whole rows, so no column is skipped)."""
    if not store.path.is_file():
        return StoreCheck(store.path, (), open_error=f"{store.path} does not exist")
    with _process_lock(store.path):
        try:
            connection = store._retrying(lambda: duckdb.connect(str(store.path), read_only=True))
        except (StoreDamaged, WorkspaceError) as error:
            return StoreCheck(store.path, (), open_error=error.message)
        try:
            try:
                present = _table_names(connection)
            except duckdb.Error as error:
                return StoreCheck(store.path, (), open_error=str(error))
            checks: list[TableCheck] = []
            for table in sorted(set(present) | set(_expected_tables())):
                if table not in present:
                    checks.append(TableCheck(table, None, "missing"))
                    continue
                try:
                    row = connection.execute(
                        f'SELECT count(*), bit_xor(hash(t)) FROM "{table}" AS t'
                    ).fetchone()
                except duckdb.Error as error:
                    checks.append(TableCheck(table, None, str(error)))
                    continue
                checks.append(TableCheck(table, int(row[0]) if row else 0))
            return StoreCheck(
                store.path, tuple(checks), size_error=_size_error(connection, store.path)
            )
        finally:
            connection.close()


def _size_error(connection: duckdb.DuckDBPyConnection, path: Path) -> str | None:
    """Why the file is too short for the blocks its header says are in use, if it is.

    A lower bound only (used blocks may sit past free ones, and DuckDB itself trims free
    blocks off the end), so it never calls a whole file short. A file with a write-ahead
    log is not measured: blocks replayed from the log are counted before they reach it."""
    if path.with_name(path.name + ".wal").exists():
        return None
    row = connection.execute(
        "SELECT block_size, used_blocks FROM pragma_database_size()"
    ).fetchone()
    if row is None:
        return None
    needed = int(row[0]) * int(row[1])
    actual = path.stat().st_size
    if actual >= needed:
        return None
    return (
        f"the file is {actual} bytes, but its header says {row[1]} blocks of {row[0]} bytes "
        "are in use: it was cut short"
    )


def backup_store(store: Store, destination: Path) -> StoreCheck:
    """Copy the store into a new DuckDB file at `destination` (replacing one there) in one
    read transaction, so the copy is consistent even while others use the store; the copy is
    checked before it takes the destination's name. Works on a read-only workspace."""
    destination = Path(destination)
    building = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.tmp")
    mask = os.umask(0o022)
    os.umask(mask)
    try:
        with _process_lock(store.path), store._translating():
            connection = duckdb.connect(":memory:")
            try:
                store._retrying(
                    lambda: connection.execute("ATTACH ? AS source (READ_ONLY)", [str(store.path)])
                )
                connection.execute("ATTACH ? AS backup_copy", [str(building)])
                connection.execute("COPY FROM DATABASE source TO backup_copy")
                connection.execute("DETACH backup_copy")
                connection.execute("DETACH source")
            finally:
                connection.close()
        copied = check_store(Store(building, busy_timeout_s=store.busy_timeout_s))
        if not copied.ok:
            raise StoreDamaged(
                f"The copy of {store.path} does not read back whole; it was not kept. Run "
                "`ftod store check`."
            )
        os.chmod(building, 0o666 & ~mask)
        os.replace(building, destination)
    finally:
        building.unlink(missing_ok=True)
        building.with_name(building.name + ".wal").unlink(missing_ok=True)
    return StoreCheck(destination, copied.tables)


def _current_version(connection: duckdb.DuckDBPyConnection) -> int:
    exists = connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = connection.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0
