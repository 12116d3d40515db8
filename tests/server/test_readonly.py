"""The sidebar never writes a history, and reads one that a kernel is writing at that moment."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import httpx
from _history_helpers import api_result

from cometnb._storage.folder import History
from server.jupyter import Server

# SQLite's own coordination files, which any reader of a WAL database may create.
SQLITE_READER_FILES = {"index.sqlite3-wal", "index.sqlite3-shm"}


def _snapshot(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Every file and folder under ``folder``: content hash, size and modification time."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if rel in SQLITE_READER_FILES:
            continue
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        out[rel] = (digest, st.st_size, st.st_mtime_ns)
    return out


def _crawl(api: httpx.Client, hid: str) -> int:
    """Ask every route for everything the history holds; how many requests were made."""
    asked = 0

    def get(url: str, **params: object) -> httpx.Response:
        nonlocal asked
        asked += 1
        r = api.get(url, params={"history": hid, **params})
        assert r.status_code in (200, 404), (url, r.status_code)
        return r

    assert api.get("/cometnb/api/histories", params={"refresh": "1"}).status_code == 200
    get("/cometnb/api/facets")
    for params in ({"q": "fox"}, {"q": "été"}, {"status": "error"}, {"min_cost": "0.01"}):
        get("/cometnb/api/records", **params)
    offset, records = 0, []
    while True:
        page = get("/cometnb/api/records", offset=offset, limit=200).json()
        records += page["records"]
        offset += 200
        if offset >= page["total"]:
            break
    for rec in records:
        detail = get(f"/cometnb/api/records/{rec['id']}").json()
        for image in rec["images"]:
            for what in ("preview", "original", "download"):
                get(f"/cometnb/api/records/{rec['id']}/images/{image['index']}/{what}")
        for source in detail["sources"]:
            get(f"/cometnb/api/records/{rec['id']}/sources/{source['position']}/preview")
    return asked


def test_a_full_crawl_changes_nothing_in_the_history(
    server: Server, main_id: str, api: httpx.Client
) -> None:
    folder = server.root / "proj" / "cometnb-history"
    before = _snapshot(folder)
    names_before = set(os.listdir(folder))
    asked = _crawl(api, main_id)
    assert asked > 700
    assert _snapshot(folder) == before
    assert set(os.listdir(folder)) - names_before <= SQLITE_READER_FILES
    assert "index.sqlite3" in before and any(k.startswith("previews/") for k in before)


def test_a_history_being_written_is_readable_and_new_records_show(
    server: Server, api: httpx.Client
) -> None:
    folder = server.root / "live" / "cometnb-history"
    hid = server.history_id("live/cometnb-history")
    first = api.get("/cometnb/api/histories").json()
    entry = next(h for h in first["histories"] if h["id"] == hid)
    page = api.get("/cometnb/api/records", params={"history": hid}).json()

    # A kernel holds its write lock mid-transaction: reads still answer, from the last commit.
    with closing(sqlite3.connect(folder / "index.sqlite3", isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE records SET tags = '[\"pending\"]'")
        during = api.get("/cometnb/api/records", params={"history": hid, "tag": "pending"})
        assert during.status_code == 200 and during.json()["total"] == 0
        writer.execute("ROLLBACK")

    # Records a kernel commits while the server runs show at once, with a new revision.
    h = History(folder)
    added = []
    done = threading.Event()

    def kernel() -> None:
        for n in range(3):
            rec = h.record_success(
                {"model": "gpt-image-2", "prompt": f"written live {n}"},
                api_result(),
                elapsed_s=0.1,
                tags=["live"],
            )
            added.append(rec.id)
        done.set()

    thread = threading.Thread(target=kernel)
    thread.start()
    while not done.is_set():  # reading while the writes happen
        assert api.get("/cometnb/api/records", params={"history": hid}).status_code == 200
    thread.join(30)
    after = api.get("/cometnb/api/records", params={"history": hid}).json()
    assert after["total"] == page["total"] + 3
    assert [r["id"] for r in after["records"][:3]] == added[::-1]
    assert after["newest"] == added[-1] and after["revision"] != page["revision"]
    listed = api.get("/cometnb/api/histories").json()
    now = next(h for h in listed["histories"] if h["id"] == hid)
    assert now["records"] == entry["records"] + 3 and now["revision"] != entry["revision"]
    h.tag(added[0], "favourite")  # a re-tag changes the revision too
    tagged = api.get("/cometnb/api/records", params={"history": hid}).json()
    assert tagged["revision"] != after["revision"] and tagged["total"] == after["total"]
