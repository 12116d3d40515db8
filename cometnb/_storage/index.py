"""The history's SQLite index: one row per record, shared safely by threads and processes.

One connection per :class:`Index`, guarded by a lock (writes are rare: one per generation).
WAL mode lets readers run while another kernel writes; ``busy_timeout`` makes a second writer
wait instead of failing; every write takes the write lock up front (``BEGIN IMMEDIATE``) so
two processes appending at once serialise instead of tripping over stale snapshots.

Every insert or update stamps the row with the next ``seq`` number, so a reader catches up
with everything that changed since it last looked with one indexed query (``rows_after``).
The schema is versioned with ``PRAGMA user_version``; :data:`SCHEMA_VERSION` is this code's.

What every SQLite file of a history folder shares: one lazily opened connection per object,
guarded by a lock, written in ``BEGIN IMMEDIATE`` transactions (the index and the batch state).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from cometnb._core.errors import CometError

__all__ = [
    "COLUMNS",
    "DB_NAME",
    "SCHEMA_VERSION",
    "SPEND_KIND",
    "SPEND_USD",
    "Index",
    "IndexRow",
    "SqliteFile",
    "immediate",
]


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


DB_NAME = "index.sqlite3"
SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 30_000

# One row of the records table, as read: id, seq, created_at, prompt, model, status,
# tags (JSON list), doc (the record's JSON document).
IndexRow = tuple[str, int, float, str, str, str, str, str]
COLUMNS = "id, seq, created_at, prompt, model, status, tags, doc"

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS records (
    id         TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL,
    created_at REAL NOT NULL,
    prompt     TEXT NOT NULL,
    model      TEXT NOT NULL,
    status     TEXT NOT NULL,
    tags       TEXT NOT NULL DEFAULT '[]',
    doc        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_seq ON records (seq);
"""
# Indexes that let find() answer from a small part of the file (see _storage/queries.py):
# prompts with their ids (a text search scans these, not the documents), and the few records
# whose document holds a revised prompt. Indexes only: no schema version change, created on
# the first write of a new folder or the first search of an older one.
SEARCH_INDEXES = """
CREATE INDEX IF NOT EXISTS records_prompt ON records (prompt, id);
CREATE INDEX IF NOT EXISTS records_revised ON records (instr(doc, '"revised_prompt":"'))
    WHERE instr(doc, '"revised_prompt":"') > 0;
"""
# Schema 2 (edits): records may name a parent (the record an edit's first input came from) in
# their document; an expression index finds an image's edits without reading every document.
# Older rows have no parent and need no change: the migration only adds the index.
_SCHEMA_V2 = """
CREATE INDEX IF NOT EXISTS records_parent ON records (json_extract(doc, '$.parent'));
"""
# The index History.spend() reads instead of the documents (see _storage/spend.py):
# each record's time, model and tags with two values of its stored cost. SPEND_KIND: 0 = cost
# unknown (usd null), 1 = exact, 2 = estimated, 3 = left to Python (no stored cost: an older
# record, priced now; or a usd / estimated of another JSON type, which Cost.from_dict reads
# its own way). SPEND_USD: the usd when it is a number. Queries use these very expressions
# (SQLite reads an indexed expression from the index only where the query's is the same).
# Created like SEARCH_INDEXES (new folders; older ones on their first spend question).
_USD_TYPE = "json_type(doc, '$.cost.usd')"
_ESTIMATED = "json_extract(doc, '$.cost.estimated')"
SPEND_KIND = (
    f"CASE WHEN {_USD_TYPE} = 'null' THEN 0 WHEN {_USD_TYPE} IN ('integer', 'real') THEN "
    f"CASE typeof({_ESTIMATED}) WHEN 'null' THEN 1 WHEN 'integer' THEN 1 + ({_ESTIMATED} != 0) "
    "ELSE 3 END ELSE 3 END"
)
SPEND_USD = f"CASE WHEN {_USD_TYPE} IN ('integer', 'real') THEN json_extract(doc, '$.cost.usd') END"
SPEND_INDEX = f"""
CREATE INDEX IF NOT EXISTS records_spend ON records
    (created_at, model, tags, ({SPEND_KIND}), ({SPEND_USD}));
"""
# Migrations: MIGRATIONS[v] upgrades a database at version v to v + 1.
_MIGRATIONS: dict[int, str] = {0: _SCHEMA_V1 + SEARCH_INDEXES + SPEND_INDEX, 1: _SCHEMA_V2}
# Schemas this code reads even where it cannot migrate (a read-only folder): same records table.
_READABLE = range(1, SCHEMA_VERSION + 1)
_NEXT_SEQ = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM records)"


class Index(SqliteFile):
    """The index file ``<root>/index.sqlite3``; created on the first write, not on reads.

    ``read_only=True`` (the Jupyter server's browser) opens it with ``mode=ro`` only: it never
    creates, migrates or adds indexes to a file, and every write raises :class:`CometError`.

    Example::

        >>> index = Index(Path("cometnb-history"))  # doctest: +SKIP
        >>> index.rows_after(0)  # every row, in change order  # doctest: +SKIP
    """

    def __init__(self, root: Path, *, read_only: bool = False) -> None:
        self.path = root / DB_NAME
        super().__init__()
        self._read_only = False  # opened by the read-only fallback: reopen before writing
        self._only_reads = read_only
        self._ensured: set[str] = set()  # index DDL already made (or that cannot be made)

    # --- connection ------------------------------------------------------------------------

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._only_reads:
            return self._connect_read_only(create)
        if self._conn is not None and create and self._read_only:
            self.close()  # the folder may have become writable again (space freed)
        if self._conn is not None:
            return self._conn
        if not create and not self.path.exists():
            return None  # reading a folder that has no history yet: nothing to show
        try:
            self._conn, self._read_only = self._open_writable(), False
        except (sqlite3.OperationalError, OSError):
            if create:
                raise
            # A read-only folder (or a full disk) must still show the records it holds.
            self._conn, self._read_only = self._open_read_only(), True
        return self._conn

    def _connect_read_only(self, create: bool) -> sqlite3.Connection | None:
        if create:
            raise CometError(f"the history index {self.path} was opened read-only")
        if self._conn is None and self.path.exists():
            self._conn, self._read_only = self._open_read_only(), True
        return self._conn

    def _open_writable(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._open(str(self.path), uri=False)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed record survives power loss, not only a crash (costs one fsync).
            conn.execute("PRAGMA synchronous = FULL")
            _migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        """Open for reading only: ``mode=ro`` first; ``immutable=1`` when SQLite cannot even
        create the WAL's shared-memory file (nothing can write there, so no locking is lost)."""
        base = f"{self.path.resolve().as_uri()}?mode=ro"
        for uri in (base, f"{base}&immutable=1"):
            conn = self._open(uri, uri=True)
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
            except sqlite3.OperationalError:
                conn.close()
                continue
            if version not in _READABLE:
                conn.close()
                raise CometError(
                    f"the history index {self.path} is read-only and at schema {version}; "
                    f"this cometnb reads schemas 1 to {SCHEMA_VERSION}",
                    hint="Open it where it is writable once, or use a matching cometnb version.",
                )
            return conn
        raise CometError(f"could not open the history index {self.path} for reading")

    @staticmethod
    def _open(target: str, *, uri: bool) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; writes say BEGIN IMMEDIATE themselves.
        conn = sqlite3.connect(
            target,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
            uri=uri,
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connect(create=True)
            assert conn is not None
            with immediate(conn):
                yield conn

    # --- queries ---------------------------------------------------------------------------

    def insert(
        self,
        record_id: str,
        created_at: float,
        prompt: str,
        model: str,
        status: str,
        tags: str,
        doc: str,
    ) -> IndexRow:
        """Commit one row; returns it as stored (with its ``seq``)."""
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO records ({COLUMNS}) VALUES (?, {_NEXT_SEQ}, ?, ?, ?, ?, ?, ?)",
                (record_id, created_at, prompt, model, status, tags, doc),
            )
            row = conn.execute(
                f"SELECT {COLUMNS} FROM records WHERE id = ?", (record_id,)
            ).fetchone()
        return _as_row(row)

    def update_tags(self, record_id: str, change: Callable[[list[str]], str]) -> IndexRow | None:
        """Read a record's tags and write ``change(tags)`` in one transaction (so two
        processes tagging at once both keep their tags); the new row, ``None`` if no record."""
        with self._write() as conn:
            found = conn.execute("SELECT tags FROM records WHERE id = ?", (record_id,)).fetchone()
            if found is None:
                return None
            conn.execute(
                f"UPDATE records SET tags = ?, seq = {_NEXT_SEQ} WHERE id = ?",
                (change(list(json.loads(found[0]))), record_id),
            )
            row = conn.execute(
                f"SELECT {COLUMNS} FROM records WHERE id = ?", (record_id,)
            ).fetchone()
        return _as_row(row)

    def set_tags(self, record_id: str, tags: str) -> bool:
        """Replace a record's tags (bumping its ``seq``); False when there is no such record."""
        with self._write() as conn:
            cur = conn.execute(
                f"UPDATE records SET tags = ?, seq = {_NEXT_SEQ} WHERE id = ?", (tags, record_id)
            )
            return cur.rowcount > 0

    def rows_after(self, seq: int) -> list[IndexRow]:
        """Rows inserted or changed since ``seq`` (all rows for 0), in ``seq`` order."""
        with self._lock, self._readable():
            conn = self._connect(create=False)
            if conn is None:
                return []
            cur = conn.execute(f"SELECT {COLUMNS} FROM records WHERE seq > ? ORDER BY seq", (seq,))
            return cur.fetchall()

    def select(
        self,
        where: str = "1",
        params: tuple[Any, ...] = (),
        *,
        order: str = "id",
        limit: int = -1,
        offset: int = 0,
    ) -> list[IndexRow]:
        """Rows matching ``where`` (SQL over the columns, with ``?`` ``params``), in ``order``.

        For :mod:`~cometnb._storage.queries`: answers without loading every record.
        """
        with self._lock, self._readable():
            conn = self._connect(create=False)
            if conn is None:
                return []
            sql = f"SELECT {COLUMNS} FROM records WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?"
            return conn.execute(sql, (*params, limit, offset)).fetchall()

    def ensure_search_indexes(self) -> None:
        """Create :data:`SEARCH_INDEXES` once (no-op without an index file or write access:
        searches then scan, with the same answers)."""
        self._ensure(SEARCH_INDEXES, ("records_prompt", "records_revised"))

    def ensure_spend_index(self) -> None:
        """Create :data:`SPEND_INDEX` once (no-op without an index file or write access:
        ``History.spend`` then scans the documents, with the same answer)."""
        self._ensure(SPEND_INDEX, ("records_spend",))

    def _ensure(self, ddl: str, names: tuple[str, ...]) -> None:
        if self._only_reads or ddl in self._ensured or not self.path.exists():
            return
        self._ensured.add(ddl)
        with contextlib.suppress(sqlite3.Error, OSError, CometError):
            with self._lock, self._readable():  # already there: no write lock to wait for
                conn = self._connect(create=False)
                marks = ", ".join("?" * len(names))
                sql = (
                    f"SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN ({marks})"
                )
                if conn is not None and conn.execute(sql, names).fetchone()[0] == len(names):
                    return
            with self._write() as conn:
                for statement in ddl.split(";"):
                    if statement.strip():
                        conn.execute(statement)

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection | None]:
        """One read transaction (so several queries see one snapshot, while other processes
        write) under the lock, failures reported as by every read; ``None`` without a file."""
        with self._lock, self._readable():
            conn = self._connect(create=False)
            if conn is None:
                yield None
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                with contextlib.suppress(sqlite3.Error):  # reads only: nothing to keep
                    conn.execute("ROLLBACK")

    def children(self, record_id: str) -> list[str]:
        """Ids of the records whose ``parent`` is ``record_id`` (edits of its images), in order."""
        with self._lock, self._readable():
            conn = self._connect(create=False)
            if conn is None:
                return []
            cur = conn.execute(
                "SELECT id FROM records WHERE json_extract(doc, '$.parent') = ? ORDER BY id",
                (record_id,),
            )
            return [row[0] for row in cur.fetchall()]

    def count(self) -> int:
        """How many records the index holds (0 when there is no index file yet)."""
        with self._lock, self._readable():
            conn = self._connect(create=False)
            if conn is None:
                return 0
            return int(conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def revision(self) -> tuple[int, ...]:
        """A token that changes whenever the index may have changed, in any process: compare
        two to know whether re-reading is needed (a panel polls it every few seconds).

        Cheap: two ``stat`` calls, ``PRAGMA data_version`` (moves when another connection
        commits) and ``MAX(seq)`` from its index (moves on this connection's own writes).
        """
        if not self.path.exists():
            return (0,)  # no index yet
        with self._lock, self._readable():
            conn = self._connect(create=False)
            if conn is None:
                return (0,)
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            top = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()[0])
        stats: list[int] = []  # after opening: opening may create the WAL file
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                st = path.stat()
            except OSError:
                stats += [0, 0, 0]
                continue
            stats += [st.st_ino, st.st_mtime_ns, st.st_size]
        return (*stats, version, top)

    @contextmanager
    def _readable(self) -> Iterator[None]:
        """Any SQLite failure on a read is one clear :class:`CometError`, never a raw sqlite3
        one: a corrupt or truncated file, a table dropped (``no such table``), a directory in
        the file's place (``disk I/O error``); only lock contention is told apart."""
        try:
            yield
        except sqlite3.Error as exc:
            self.close()
            text = str(exc).lower()
            if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
                raise CometError(
                    f"the history index {self.path} is locked by another process ({exc})",
                    hint="Wait for the other kernel to finish writing, then try again.",
                ) from None
            raise damaged_index_error(self.path, exc) from None


def damaged_index_error(path: Path, exc: BaseException, note: str = "") -> CometError:
    """The error for an index SQLite cannot read (corrupt, truncated, not a database)."""
    return CometError(
        f"the history index {path} is damaged ({exc}){note}",
        hint=f"Run cometnb.history({str(path.parent)!r}).repair() to rebuild it from the "
        "record files.",
    )


def _as_row(row: Any) -> IndexRow:
    if row is None:  # pragma: no cover - the row was inserted in the same transaction
        raise CometError("history index lost a row it just wrote")
    return tuple(row)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to :data:`SCHEMA_VERSION` (two processes may race here: serialise)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CometError(
                f"this history was written by a newer cometnb (schema {version}; this one "
                f"reads up to {SCHEMA_VERSION})",
                hint="Upgrade cometnb: pip install -U cometnb",
            )
        while version < SCHEMA_VERSION:
            for statement in _MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            version += 1
            conn.execute(f"PRAGMA user_version = {version}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
