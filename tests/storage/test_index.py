"""The SQLite index under the history: schema, pragmas, change tracking, migrations."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from cometnb._core.errors import CometError
from cometnb._storage.index import DB_NAME, SCHEMA_VERSION, Index, IndexRow


def insert(index: Index, rid: str, prompt: str = "p", tags: str = "[]") -> IndexRow:
    return index.insert(rid, 1.0, prompt, "m", "ok", tags, '{"request": {}}')


def test_reading_does_not_create_the_file(tmp_path: Path) -> None:
    index = Index(tmp_path / "h")
    assert index.rows_after(0) == [] and index.count() == 0
    assert not (tmp_path / "h").exists()


def test_first_write_creates_a_versioned_wal_database(tmp_path: Path) -> None:
    index = Index(tmp_path / "h")
    row = insert(index, "a")
    assert row[:2] == ("a", 1) and (tmp_path / "h" / DB_NAME).is_file()
    conn = sqlite3.connect(tmp_path / "h" / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    internal = index._connect(create=False)
    assert internal is not None
    assert internal.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
    index.close()


def test_rows_after_returns_only_what_changed(tmp_path: Path) -> None:
    index = Index(tmp_path)
    for rid in ("a", "b", "c"):
        insert(index, rid)
    assert [r[0] for r in index.rows_after(0)] == ["a", "b", "c"]
    assert [r[0] for r in index.rows_after(2)] == ["c"]
    assert index.set_tags("a", '["x"]') is True
    changed = index.rows_after(3)
    assert [(r[0], r[1], r[6]) for r in changed] == [("a", 4, '["x"]')]
    assert index.set_tags("missing", "[]") is False
    assert index.count() == 3


def test_duplicate_id_is_rejected_and_rolled_back(tmp_path: Path) -> None:
    index = Index(tmp_path)
    insert(index, "a")
    with pytest.raises(sqlite3.IntegrityError):
        insert(index, "a")
    insert(index, "b")  # the connection is usable again: no transaction left open
    assert index.count() == 2


def test_two_indexes_on_one_file_see_each_other(tmp_path: Path) -> None:
    one, two = Index(tmp_path), Index(tmp_path)
    insert(one, "a")
    insert(two, "b")
    assert [r[0] for r in one.rows_after(0)] == ["a", "b"]
    assert [r[1] for r in two.rows_after(0)] == [1, 2]


def test_threads_share_one_index(tmp_path: Path) -> None:
    index = Index(tmp_path)
    threads = [
        threading.Thread(target=lambda n=n: [insert(index, f"{n}-{i}") for i in range(20)])
        for n in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    rows = index.rows_after(0)
    assert len(rows) == 120 and sorted(r[1] for r in rows) == list(range(1, 121))


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(CometError, match="newer cometnb") as info:
        Index(tmp_path).rows_after(0)
    assert "pip install -U cometnb" in str(info.value)


def test_an_unversioned_file_is_migrated(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / DB_NAME).close()  # an empty database at version 0
    index = Index(tmp_path)
    assert index.count() == 0
    insert(index, "a")
    assert index.count() == 1


def test_an_unwritable_index_is_still_read_then_reopened_for_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only folder or full disk: records still load; a later write retries for real."""
    insert(Index(tmp_path), "a")

    def refuse(self: Index) -> sqlite3.Connection:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    index = Index(tmp_path)
    with monkeypatch.context() as patched:
        patched.setattr(Index, "_open_writable", refuse)
        assert [r[0] for r in index.rows_after(0)] == ["a"] and index.count() == 1
        with pytest.raises(sqlite3.OperationalError):
            insert(index, "b")
    insert(index, "b")  # writable again (space freed): the read-only connection is replaced
    assert [r[0] for r in index.rows_after(0)] == ["a", "b"]
    index.close()


def test_a_failed_commit_rolls_back_so_the_next_write_works(tmp_path: Path) -> None:
    index = Index(tmp_path)
    insert(index, "a")
    with pytest.raises(sqlite3.IntegrityError):
        insert(index, "a")  # fails inside the transaction
    insert(index, "b")
    assert index.count() == 2
    index.close()
