"""The SQLite index under the history: schema, pragmas, change tracking, migrations."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from cometnb._core.errors import CometError
from cometnb._storage.index import DB_NAME, SCHEMA_VERSION, Row, Store


def insert(store: Store, rid: str, prompt: str = "p", tags: str = "[]") -> Row:
    return store.insert(rid, 1.0, prompt, "m", "ok", tags, '{"request": {}}')


def test_reading_does_not_create_the_file(tmp_path: Path) -> None:
    store = Store(tmp_path / "h")
    assert store.rows_after(0) == [] and store.count() == 0
    assert not (tmp_path / "h").exists()


def test_first_write_creates_a_versioned_wal_database(tmp_path: Path) -> None:
    store = Store(tmp_path / "h")
    row = insert(store, "a")
    assert row[:2] == ("a", 1) and (tmp_path / "h" / DB_NAME).is_file()
    conn = sqlite3.connect(tmp_path / "h" / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    internal = store._connect(create=False)
    assert internal is not None
    assert internal.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
    store.close()


def test_rows_after_returns_only_what_changed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for rid in ("a", "b", "c"):
        insert(store, rid)
    assert [r[0] for r in store.rows_after(0)] == ["a", "b", "c"]
    assert [r[0] for r in store.rows_after(2)] == ["c"]
    assert store.set_tags("a", '["x"]') is True
    changed = store.rows_after(3)
    assert [(r[0], r[1], r[6]) for r in changed] == [("a", 4, '["x"]')]
    assert store.set_tags("missing", "[]") is False
    assert store.count() == 3


def test_duplicate_id_is_rejected_and_rolled_back(tmp_path: Path) -> None:
    store = Store(tmp_path)
    insert(store, "a")
    with pytest.raises(sqlite3.IntegrityError):
        insert(store, "a")
    insert(store, "b")  # the connection is usable again: no transaction left open
    assert store.count() == 2


def test_two_stores_on_one_file_see_each_other(tmp_path: Path) -> None:
    one, two = Store(tmp_path), Store(tmp_path)
    insert(one, "a")
    insert(two, "b")
    assert [r[0] for r in one.rows_after(0)] == ["a", "b"]
    assert [r[1] for r in two.rows_after(0)] == [1, 2]


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = Store(tmp_path)
    threads = [
        threading.Thread(target=lambda n=n: [insert(store, f"{n}-{i}") for i in range(20)])
        for n in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    rows = store.rows_after(0)
    assert len(rows) == 120 and sorted(r[1] for r in rows) == list(range(1, 121))


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(CometError, match="newer cometnb") as info:
        Store(tmp_path).rows_after(0)
    assert "pip install -U cometnb" in str(info.value)


def test_an_unversioned_file_is_migrated(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / DB_NAME).close()  # an empty database at version 0
    store = Store(tmp_path)
    assert store.count() == 0
    insert(store, "a")
    assert store.count() == 1


def test_an_unwritable_index_is_still_read_then_reopened_for_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only folder or full disk: records still load; a later write retries for real."""
    insert(Store(tmp_path), "a")

    def refuse(self: Store) -> sqlite3.Connection:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    store = Store(tmp_path)
    with monkeypatch.context() as patched:
        patched.setattr(Store, "_open_writable", refuse)
        assert [r[0] for r in store.rows_after(0)] == ["a"] and store.count() == 1
        with pytest.raises(sqlite3.OperationalError):
            insert(store, "b")
    insert(store, "b")  # writable again (space freed): the read-only connection is replaced
    assert [r[0] for r in store.rows_after(0)] == ["a", "b"]
    store.close()


def test_a_failed_commit_rolls_back_so_the_next_write_works(tmp_path: Path) -> None:
    store = Store(tmp_path)
    insert(store, "a")
    with pytest.raises(sqlite3.IntegrityError):
        insert(store, "a")  # fails inside the transaction
    insert(store, "b")
    assert store.count() == 2
    store.close()
