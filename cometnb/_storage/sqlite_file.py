"""What every SQLite file of a history folder shares: one lazily opened connection per object,
guarded by a lock, written in ``BEGIN IMMEDIATE`` transactions (the index and the batch state)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

__all__ = ["SqliteFile", "immediate"]


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: taken at once (``BEGIN IMMEDIATE``), committed or rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")  # may fail too (a full disk): then roll back as well
    except BaseException:
        with suppress(sqlite3.Error):  # the original error is the one to report
            conn.execute("ROLLBACK")
        raise


class SqliteFile:
    """Holds ``_conn`` (opened by the subclass) under ``_lock``; ``close`` and clean-up."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    def close(self) -> None:
        """Close the connection (reopened automatically when used again)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __del__(self) -> None:
        # Newer Pythons warn about connections left to the garbage collector.
        conn, self._conn = getattr(self, "_conn", None), None
        if conn is not None:
            conn.close()
