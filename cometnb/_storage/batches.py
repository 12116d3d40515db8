"""Batch state: which items of a named batch are done, failed, in flight or still to send.

A resumable batch (``cometnb.batch``) keeps one row per item in ``<history>/batches.sqlite3``,
beside the history index (its own file, so the record schema and its migrations stay apart).
An item is marked ``sending`` (committed) right before each POST of its request and only
then — back to ``pending`` while it backs off after a failure certainly not billed — and
``done`` / ``failed`` / ``uncertain`` once its record is in the history, so after an
exception, a kernel restart or ``kill -9`` the next run knows exactly what is left. A row still
``sending`` when a run starts was on the wire when the last one died: :meth:`BatchStore.begin`
hands it back as ``interrupted`` for the runner to settle (by its record in the history, or
``uncertain`` without one).

States: ``pending`` (never sent, waiting for its turn, or sent and certainly not billed),
``sending``, ``done``, ``failed`` (an answer that was not an image; not billed),
``uncertain`` (may have been billed: read timeout, 5xx after sending, in flight when a run
stopped; sent again only with ``retry_billed=True``).

Like the history index, it is safe for several threads (one connection behind a lock) and
processes (WAL, ``BEGIN IMMEDIATE``, a busy timeout). This module imports the core only.

One run at a time per named batch: an operating-system lock on a small file.

Two kernels (or a kernel and a script) running the same batch at once would both send its
pending items, and each would take the other's requests in flight for a dead run's. The
runner holds :func:`hold_batch` for the whole run; a second run of the same name is refused
at once, before anything is sent. The lock is ``flock`` on
``<history>/.batch-locks/<hash of the name>.lock``: the kernel drops it when the process
ends, so a killed run leaves nothing to clean up and the next run resumes.

A run that was interrupted may still be marking its items when the caller gets control back:
:meth:`BatchHold.release_after` keeps the lock until that work is done. Where ``flock`` is
not available (Windows, or a network filesystem that refuses it) there is no lock, and one run
at a time is up to the user.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cometnb._core.billing import BillingRisk
from cometnb._core.errors import BatchBusyError, CometError
from cometnb._storage.index import SqliteFile, immediate

__all__ = [
    "DB_NAME",
    "REQUESTS",
    "BatchHold",
    "BatchStore",
    "ItemState",
    "State",
    "hold_batch",
]


DB_NAME = "batches.sqlite3"
State = Literal["pending", "sending", "done", "failed", "uncertain"]
_BUSY_MS = 30_000
# The rows of single requests (``generate``, ``generate_many``, ``edit``) on the wire: marked
# ``sending`` before the POST like a batch item, dropped once the request has its record. A row
# left behind is a request a killed process sent, which may have been billed.
REQUESTS = "~requests"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_items (
    batch      TEXT NOT NULL,
    key        TEXT NOT NULL,
    position   INTEGER NOT NULL,
    state      TEXT NOT NULL,
    record_id  TEXT,
    error      TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    billing    TEXT,
    PRIMARY KEY (batch, key)
);
CREATE INDEX IF NOT EXISTS batch_items_state ON batch_items (batch, state);
"""
_COLUMNS = "key, position, state, record_id, error, attempts, billing"
# A table made before the billing column (issue 22): added in place, NULL for its old rows.
_ADD_BILLING = "ALTER TABLE batch_items ADD COLUMN billing TEXT"


@dataclass(frozen=True)
class ItemState:
    """One item's row: where it is in the input, its state, its record and its last error,
    and that error's :class:`BillingRisk` (``None`` for a row written before it was kept)."""

    key: str
    position: int
    state: State
    record_id: str | None = None
    error: str | None = None
    attempts: int = 0
    billing: BillingRisk | None = None


class BatchStore(SqliteFile):
    """The batch table of one history folder (created on first use).

    Example::

        >>> store = BatchStore(Path("cometnb-history"))  # doctest: +SKIP
        >>> store.begin("catalog", ["a1", "b2"])  # doctest: +SKIP
        ({'a1': ItemState(key='a1', position=0, state='pending', ...), ...}, [])
    """

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / DB_NAME
        super().__init__()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                str(self.path),
                timeout=_BUSY_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                # NORMAL: a commit survives the process dying (kill -9), which is what resuming
                # needs; only power loss may lose the last marks, never a history record.
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.executescript(_SCHEMA)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(batch_items)")}
                if "billing" not in columns:
                    conn.execute(_ADD_BILLING)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connect()
            with immediate(conn):
                yield conn

    # --- a run -------------------------------------------------------------------------------

    def begin(
        self, batch: str, keys: Sequence[str]
    ) -> tuple[dict[str, ItemState], list[ItemState]]:
        """Register this run's ``keys`` (new ones as pending, in input order) and return every
        key's state, plus the items a dead run left ``sending`` (now ``interrupted``: the
        caller settles each with :meth:`mark`)."""
        now = time.time()
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO batch_items (batch, key, position, state, updated_at) "
                "VALUES (?, ?, ?, 'pending', ?) "
                "ON CONFLICT (batch, key) DO UPDATE SET position = excluded.position",
                [(batch, key, position, now) for position, key in enumerate(keys)],
            )
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM batch_items WHERE batch = ?", (batch,)
            ).fetchall()
        states = {row[0]: _state(row) for row in rows}
        wanted = set(keys)
        interrupted = [s for k, s in states.items() if k in wanted and s.state == "sending"]
        return {k: s for k, s in states.items() if k in wanted}, interrupted

    def mark(
        self,
        batch: str,
        key: str,
        state: State,
        *,
        record_id: str | None = None,
        error: str | None = None,
        billing: BillingRisk | None = None,
    ) -> None:
        """Commit ``key``'s new state (``sending`` also counts an attempt)."""
        risk = None if billing is None else billing.value
        with self._write() as conn:
            conn.execute(
                "UPDATE batch_items SET state = ?, record_id = COALESCE(?, record_id), "
                "error = ?, billing = ?, attempts = attempts + ?, updated_at = ? "
                "WHERE batch = ? AND key = ?",
                (state, record_id, error, risk, int(state == "sending"), time.time(), batch, key),
            )

    def start(self, batch: str, key: str, note: str) -> None:
        """Add ``key`` to ``batch`` already ``sending`` (one commit), ``note`` as its error
        text until it is dropped: what the row is, should it outlive its process."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO batch_items "
                "(batch, key, position, state, error, attempts, updated_at) "
                "VALUES (?, ?, 0, 'sending', ?, 1, ?)",
                (batch, key, note, time.time()),
            )

    def states(self, batch: str) -> dict[str, ItemState]:
        """Every item of ``batch`` ever registered, by key."""
        with self._lock:
            rows = self._connect().execute(
                f"SELECT {_COLUMNS} FROM batch_items WHERE batch = ? ORDER BY position", (batch,)
            )
            return {row[0]: _state(row) for row in rows.fetchall()}

    def names(self) -> list[str]:
        """The batches this folder holds, oldest first."""
        with self._lock:
            rows = self._connect().execute(
                "SELECT batch FROM batch_items GROUP BY batch ORDER BY MIN(updated_at)"
            )
            return [row[0] for row in rows.fetchall()]

    def forget(self, batch: str, keys: Iterable[str] | None = None) -> int:
        """Drop ``batch``'s rows (only ``keys`` when given): its items are sent again next
        time. Records in the history stay. Returns how many rows went."""
        with self._write() as conn:
            if keys is None:
                cur = conn.execute("DELETE FROM batch_items WHERE batch = ?", (batch,))
            else:
                cur = conn.executemany(
                    "DELETE FROM batch_items WHERE batch = ? AND key = ?",
                    [(batch, key) for key in keys],
                )
            return int(cur.rowcount)


def _state(row: tuple[str, int, str, str | None, str | None, int, str | None]) -> ItemState:
    key, position, state, record_id, error, attempts, billing = row
    known: tuple[State, ...] = ("pending", "sending", "done", "failed", "uncertain")
    value: State = state if state in known else "pending"
    risk = BillingRisk.parse(billing)
    return ItemState(key, position, value, record_id, error, attempts, risk)


LOCKS = ".batch-locks"
log = logging.getLogger("cometnb")
_held_here: set[str] = set()  # lock files this process holds (a second run here is told so)
_held_lock = threading.Lock()
# flock refused by the filesystem itself (not by another holder): run without the lock.
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class BatchHold:
    """The lock of one run; released when the run's block ends, or later (see below)."""

    def __init__(self) -> None:
        self._after: threading.Event | None = None

    def release_after(self, finished: threading.Event) -> None:
        """Keep the lock past the block until ``finished`` is set: an interrupted run whose
        tasks are still marking items (set only for a job that started, so it ends)."""
        self._after = finished


@contextlib.contextmanager
def hold_batch(root: Path, name: str) -> Iterator[BatchHold]:
    """Hold batch ``name`` of the history at ``root`` while the block runs, or raise
    :class:`BatchBusyError` when another run holds it."""
    hold = BatchHold()
    if sys.platform == "win32":  # pragma: no cover - no fcntl
        yield hold
        return
    import fcntl

    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    path = Path(root) / LOCKS / f"{digest}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise CometError(
            f"the batch {name!r} cannot keep its state in {root} "
            f"({exc.strerror or type(exc).__name__}); nothing was sent",
            hint="Set a writable folder with %config CometImg.history_dir.",
        ) from None
    key = str(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with _held_lock:
                here = key in _held_here
            where = "in this kernel" if here else "in another kernel or process"
            raise BatchBusyError(
                f"the batch {name!r} is already running {where}; nothing was sent",
                hint="Wait for it to finish (or stop it), then run this again: it resumes.",
            ) from None
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            log.warning("cometnb: %s cannot lock files; batch %r runs unlocked", root, name)
        with _held_lock:
            _held_here.add(key)
        yield hold
    finally:
        _release(fd, key, hold._after)


def _release(fd: int, key: str, after: threading.Event | None) -> None:
    def close() -> None:
        with _held_lock:
            _held_here.discard(key)
        os.close(fd)  # also releases the lock

    if after is None or after.is_set():
        close()
        return

    def close_after() -> None:
        after.wait()
        close()

    threading.Thread(target=close_after, name="cometnb-batch-lock", daemon=True).start()
