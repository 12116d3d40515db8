"""No billed image ends up invisible (issue 13, item 3).

Before sending, the history's index is checked as well as its image folder: a read-only,
corrupt, truncated or newer-version index is refused with a clear ``CometError`` and the
simulator sees no request. A damaged index is rebuilt from the record documents written
beside the images, and ``History.repair()`` adopts images a killed process left unlisted.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_KEY

from cometnb._core.errors import CometError
from cometnb.history import History
from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).resolve().parent
MODEL = "gpt-image-1-mini"


def _client(sim: SimServer, folder: Path) -> Any:
    from cometnb._client.client import Client

    return Client(api_key=FAKE_KEY, base_url=sim.base_url, history=History(folder))


def _seed(sim: SimServer, folder: Path, count: int = 2) -> list[str]:
    with _client(sim, folder) as c:
        ids = [str(c.generate(f"seed {i}", model=MODEL).record_id) for i in range(count)]
    History(folder).close()
    return ids


def _refused_before_sending(sim: SimServer, folder: Path, *words: str) -> CometError:
    before = sim.request_count
    with _client(sim, folder) as c, pytest.raises(CometError) as info:
        c.generate("this one must not be sent", model=MODEL)
    assert sim.request_count == before, "the request was sent (and billed) anyway"
    text = str(info.value)
    assert "nothing was sent" in text and len(text) < 400
    assert any(w in text for w in words), text
    return info.value


@contextlib.contextmanager
def read_only_file(path: Path) -> Iterator[None]:
    """Make one file read-only, also for root (a read-only bind mount of the file)."""
    if os.geteuid() == 0:
        ok = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True)
        ro = subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(path)], capture_output=True, check=False
        )
        if ok.returncode or ro.returncode:
            if not ok.returncode:
                subprocess.run(["umount", str(path)], capture_output=True, check=False)
            pytest.skip("cannot bind-mount here")
        try:
            yield
        finally:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
        return
    path.chmod(0o444)
    try:
        yield
    finally:
        path.chmod(0o644)


# --- checked before sending ------------------------------------------------------------------


def test_read_only_index_is_refused_before_sending(sim: SimServer, tmp_path: Path) -> None:
    folder = tmp_path / "h"
    _seed(sim, folder)
    with read_only_file(folder / "index.sqlite3"):
        _refused_before_sending(sim, folder, "read", "index")
        assert len(History(folder)) == 2  # still readable


def test_corrupt_index_is_refused_and_len_is_a_comet_error(sim: SimServer, tmp_path: Path) -> None:
    folder = tmp_path / "h"
    _seed(sim, folder)
    index = folder / "index.sqlite3"
    for extra in ("-wal", "-shm"):
        Path(f"{index}{extra}").unlink(missing_ok=True)
    index.write_bytes(b"this is not a database, it was overwritten" * 200)
    _refused_before_sending(sim, folder, "damaged")
    with pytest.raises(CometError, match="damaged") as info:
        len(History(folder))
    assert "repair()" in str(info.value)


def test_truncated_index_is_refused(sim: SimServer, tmp_path: Path) -> None:
    folder = tmp_path / "h"
    _seed(sim, folder, count=6)
    index = folder / "index.sqlite3"
    data = index.read_bytes()
    for extra in ("-wal", "-shm"):
        Path(f"{index}{extra}").unlink(missing_ok=True)
    index.write_bytes(data[: len(data) // 2 + 100])
    _refused_before_sending(sim, folder, "damaged")


def test_newer_version_index_is_refused(sim: SimServer, tmp_path: Path) -> None:
    folder = tmp_path / "h"
    _seed(sim, folder)
    with contextlib.closing(sqlite3.connect(folder / "index.sqlite3")) as conn:
        conn.execute("PRAGMA user_version = 99")
        conn.commit()
    _refused_before_sending(sim, folder, "newer")


def test_read_only_root_is_refused(sim: SimServer, tmp_path: Path) -> None:
    folder = tmp_path / "h"
    _seed(sim, folder)
    if os.geteuid() == 0:
        with read_only_file(folder / "index.sqlite3"), read_only_file(folder / "images"):
            _refused_before_sending(sim, folder, "read", "index", "cannot")
        return
    for path in (folder, folder / "images", folder / "index.sqlite3"):
        path.chmod(0o555)
    try:
        _refused_before_sending(sim, folder, "read", "index", "cannot")
    finally:
        for path in (folder, folder / "images", folder / "index.sqlite3"):
            path.chmod(0o755)


# --- repair ----------------------------------------------------------------------------------


def test_every_record_has_a_document_beside_its_images(sim: SimServer, tmp_path: Path) -> None:
    folder = tmp_path / "h"
    ids = _seed(sim, folder)
    sim.fault("500")
    with _client(sim, folder) as c, pytest.raises(CometError):
        c.generate("a failure is a record too", model=MODEL)
    docs = sorted(p.stem for p in (folder / "records").glob("*.json"))
    assert docs == sorted(r.id for r in History(folder)) and set(ids) <= set(docs)


def test_corrupt_index_is_rebuilt_by_repair(sim: SimServer, tmp_path: Path) -> None:
    folder = tmp_path / "h"
    ids = _seed(sim, folder, count=3)
    History(folder).tag(ids[0], "keeper")
    index = folder / "index.sqlite3"
    for extra in ("-wal", "-shm"):
        Path(f"{index}{extra}").unlink(missing_ok=True)
    index.write_bytes(b"\0" * 4096)
    hist = History(folder)
    check = hist.repair(dry_run=True)
    assert check.rebuilt and check.dry_run and "would rebuild" in str(check)
    report = hist.repair()
    assert report.rebuilt and sorted(report.restored) == sorted(ids)
    assert report.damaged_copy is not None and report.damaged_copy.exists()
    again = History(folder)
    assert [r.id for r in again] == ids
    assert again.get(ids[0]).tags == ("keeper",)  # type: ignore[union-attr]
    assert all(r.images[0].path.exists() for r in again)
    assert str(History(folder).repair()).endswith("nothing to repair")
    with _client(sim, folder) as c:  # and it takes new records again
        c.generate("after the repair", model=MODEL)
    assert len(History(folder)) == 4


def _kill_during(sim: SimServer, folder: Path, point: str, count: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    done = subprocess.run(
        [
            sys.executable,
            str(HERE / "_kill_client.py"),
            sim.base_url,
            str(folder),
            point,
            str(count),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    assert done.returncode == -9, (done.returncode, done.stdout, done.stderr[-1500:])


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before-document", "before-index", "mid-image"])
def test_kill_9_leaves_nothing_invisible_after_repair(
    sim: SimServer, tmp_path: Path, point: str
) -> None:
    folder = tmp_path / "h"
    _kill_during(sim, folder, point, count=3)
    hist = History(folder)
    # The grid frees its slot once an answer is read, so request 2 may still have been storing.
    assert len(hist) >= 1, "the requests before the kill are recorded"
    report = hist.repair()
    after = History(folder)
    listed = {img.path.name for r in after for img in r.images}
    on_disk = {p.name for p in (folder / "images").iterdir() if not p.name.startswith(".")}
    assert on_disk <= listed, f"unlisted images after repair: {on_disk - listed} ({report})"
    prompts = sorted(r.prompt for r in after)
    if point == "before-document":  # the killed request's images had no document yet
        assert len(report.adopted) == 1 and len(after) == 3
        assert [r.tags for r in after if r.origin == "repair"] == [("adopted",)]
        assert "harbour number 2" in prompts  # its prompt, from the file name
    elif point == "before-index":  # its document was written: restored as it was
        assert report.restored and len(after) == 3 and "harbour number 2" in prompts
        assert not report.adopted
    else:  # a half-written image is a hidden temporary: never adopted as an image
        # (request 2 may have been killed while storing too: restored or adopted, listed.)
        assert len(after) == 2 and not any(".tmp" in name for name in listed)
        assert any(p.name.endswith(".tmp") for p in (folder / "images").iterdir())
    assert len(History(folder).repair().adopted) == 0  # idempotent


def test_repair_removes_abandoned_temporaries_and_says_so(sim: SimServer, tmp_path: Path) -> None:
    folder = tmp_path / "h"
    _seed(sim, folder, count=1)
    old = folder / "images" / ".20260101-000000-0000-abcdef-0-x.png.999.abcdef.tmp"
    young = folder / "images" / ".20260101-000000-0000-abcdef-1-x.png.999.abcdef.tmp"
    for path in (old, young):
        path.write_bytes(b"\x89PNG half written")
    os.utime(old, (os.path.getmtime(old) - 600, os.path.getmtime(old) - 600))
    hist = History(folder)
    assert hist.repair(dry_run=True).temporaries == 1 and old.exists()
    report = hist.repair()
    assert report.temporaries == 1 and "remove 1 abandoned temporary" in str(report)
    assert not old.exists() and young.exists()  # a young one may still be being written
    assert not report.adopted and len(History(folder)) == 1


# --- a valid SQLite file that is not our index any more ----------------------------------------


def _drop_tables(index: Path) -> None:
    with contextlib.closing(sqlite3.connect(index)) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for name in names:
            conn.execute(f"DROP TABLE {name}")
        conn.commit()  # user_version stays set: only the schema check can tell


def _every_read_is_one_clear_error(folder: Path) -> None:
    h = History(folder)
    reads = {
        "len": lambda: len(h),
        "h[-1]": lambda: h[-1],
        "find": lambda: h.find("seed"),
        "records": h.records,
        "list": lambda: list(h),
        "get": lambda: h.get("x"),
    }
    for label, read in reads.items():
        with pytest.raises(CometError) as info:
            read()
        text = str(info.value)
        assert str(folder) in text and "repair()" in text, (label, text)
    assert repr(h).startswith(f"<History {folder}")  # a repr never raises
    assert "repair" in repr(h)


def test_index_with_tables_dropped_is_refused_before_sending(
    sim: SimServer, tmp_path: Path
) -> None:
    folder = tmp_path / "h"
    _seed(sim, folder)
    _drop_tables(folder / "index.sqlite3")
    _refused_before_sending(sim, folder, "damaged")
    images = sorted((folder / "images").iterdir())
    assert len(images) == 2  # nothing billed, nothing stored outside a record
    _every_read_is_one_clear_error(folder)
    report = History(folder).repair()
    assert report.rebuilt and len(History(folder)) == 2


def test_index_path_that_is_a_directory_is_a_clear_error(sim: SimServer, tmp_path: Path) -> None:
    folder = tmp_path / "h"
    _seed(sim, folder)
    index = folder / "index.sqlite3"
    for extra in ("", "-wal", "-shm"):
        Path(f"{index}{extra}").unlink(missing_ok=True)
    index.mkdir()
    _refused_before_sending(sim, folder, "damaged", "index")
    _every_read_is_one_clear_error(folder)
    assert History(folder).repair().rebuilt and len(History(folder)) == 2
